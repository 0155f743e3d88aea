"""runtime.md: state, lifecycle and the create/start/state/kill/delete operations."""

from __future__ import annotations

import os
import re
import time

from ..core import CONV, MUST, SHOULD, T, case, proc_starttime
from ._util import cgroup_dirs_of, pid_alive

SEMVER = re.compile(r"^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")


def _same_file(a, b) -> bool:
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


# --------------------------------------------------------------------------- state

@case("state.created", "runtime.md#state", MUST,
      "status is `created` after create, before the program runs",
      mutants=("op:state-status-running",))
def state_created(t: T):
    t.bundle.sleeper()
    c = t.container()
    c.create()
    t.eq(c.state().get("status"), "created", "status after create")


@case("state.running", "runtime.md#state", MUST,
      "status is `running` after start while the program runs",
      mutants=("op:state-status-created",))
def state_running(t: T):
    t.bundle.sleeper()
    c = t.container()
    c.create()
    c.start()
    t.eq(c.state().get("status"), "running", "status after start")


@case("state.stopped", "runtime.md#state", MUST,
      "status is `stopped` once the container process has exited",
      mutants=("op:state-status-running",))
def state_stopped(t: T):
    t.bundle.set_args("/bin/true")
    c = t.container()
    c.create()
    c.start()
    deadline = time.monotonic() + 10
    while c.status() != "stopped":
        t.check(time.monotonic() < deadline, "status becomes `stopped` within 10s of the exit")
        time.sleep(0.05)
    t.log("ok: status is stopped after the process exited")


@case("state.id", "runtime.md#state", MUST,
      "state `id` is the container's ID",
      mutants=("op:state-wrong-id",))
def state_id(t: T):
    t.bundle.sleeper()
    c = t.container()
    c.create()
    t.eq(c.state().get("id"), c.id, "state.id")


@case("state.schema", "runtime.md#state", MUST,
      "state JSON adheres to state-schema.json (ociVersion, id, status, pid, bundle, annotations)",
      mutants=("op:state-pid-string", "op:state-no-ociversion"))
def state_schema(t: T):
    t.bundle.sleeper()
    t.bundle.config["annotations"] = {"org.example.key": "value"}
    c = t.container()
    c.create()
    for phase in ("created", "running"):
        st = c.state()
        for key in ("ociVersion", "id", "status", "bundle"):
            t.check(isinstance(st.get(key), str), f"[{phase}] `{key}` is a string (got {st.get(key)!r})")
        t.check(SEMVER.match(st["ociVersion"]) is not None,
                f"[{phase}] ociVersion {st['ociVersion']!r} is SemVer")
        t.check(isinstance(st.get("pid"), int) and not isinstance(st.get("pid"), bool)
                and st["pid"] > 0, f"[{phase}] `pid` is a positive integer (got {st.get('pid')!r})")
        ann = st.get("annotations", {})
        t.check(isinstance(ann, dict) and all(isinstance(k, str) and isinstance(v, str)
                                              for k, v in ann.items()),
                f"[{phase}] `annotations`, when present, is a map of strings (got {ann!r})")
        if phase == "created":
            c.start()


@case("state.pid", "runtime.md#state", MUST,
      "`pid` (required when created/running) is the container process as seen from the host",
      mutants=("op:state-no-pid", "op:state-wrong-pid"))
def state_pid(t: T):
    t.bundle.sleeper()
    c = t.container()
    c.create()
    for phase in ("created", "running"):
        st = c.state()
        pid = st.get("pid")
        t.check(isinstance(pid, int) and pid > 0, f"[{phase}] state has a pid (got {pid!r})")
        t.check(pid_alive(pid), f"[{phase}] pid {pid} is a live process")
        try:
            pidns = os.readlink(f"/proc/{pid}/ns/pid")
        except OSError as e:
            pidns = f"unreadable ({e})"
        t.check(pidns != os.readlink("/proc/self/ns/pid"),
                f"[{phase}] pid {pid} lives in the container's (new) pid namespace ({pidns})")
        t.check(_same_file(f"/proc/{pid}/root/probe", t.bundle.rootfs / "probe"),
                f"[{phase}] pid {pid} has the bundle's rootfs as its root")
        if phase == "created":
            c.start()
            st2 = c.state()
            t.eq(st2.get("pid"), pid, "pid unchanged by start")


@case("state.bundle", "runtime.md#state", MUST,
      "`bundle` is the absolute path of the bundle, even when create got a relative one",
      mutants=("op:state-relative-bundle",))
def state_bundle(t: T):
    t.bundle.sleeper()
    c = t.container()
    c.create(bundle_arg=t.bundle.path.name, cwd=str(t.bundle.path.parent))
    b = c.state().get("bundle")
    t.check(isinstance(b, str) and os.path.isabs(b), f"bundle {b!r} is an absolute path")
    t.check(os.path.realpath(b) == os.path.realpath(t.bundle.path),
            f"bundle {b!r} is the bundle directory {t.bundle.path}")


@case("state.annotations", "runtime.md#state", SHOULD,
      "state `annotations` lists the annotations of config.json",
      mutants=("cfg:drop-annotations",))
def state_annotations(t: T):
    t.bundle.sleeper()
    ann = {"org.example.conformance": "yes", "com.example.with space": "a b=c"}
    t.bundle.config["annotations"] = ann
    c = t.container()
    c.create()
    t.eq(c.state().get("annotations"), ann, "state.annotations")


@case("state.unknown-id", "runtime.md#query-state", MUST,
      "querying a container that does not exist is an error",
      mutants=("op:state-unknown-ok",))
def state_unknown(t: T):
    t.fails(t.rt.run("state", t.new_id() + "-nope"), "state of an unknown id")


@case("ops.missing-id", "runtime.md#operations", MUST,
      "state/start/kill/delete without a container ID are errors",
      mutants=("op:noid-ok",))
def ops_missing_id(t: T):
    for op in ("state", "start", "kill", "delete"):
        t.fails(t.rt.run(op), f"`{op}` without an id")


@case("state.pid-file", "cli#create", CONV,
      "`--pid-file` receives the container process pid (same as state.pid)",
      mutants=("op:pidfile-wrong",))
def state_pid_file(t: T):
    t.bundle.sleeper()
    c = t.container()
    c.create()
    t.check(c.pid_file.exists(), "pid file written by create")
    text = c.pid_file.read_text().strip()
    t.check(text.isdigit(), f"pid file holds a number ({text!r})")
    t.eq(int(text), c.state().get("pid"), "pid file vs state.pid")


# --------------------------------------------------------------------------- create

@case("create.args-not-run", "runtime.md#create", MUST,
      "process.args are not run by create, only after start",
      mutants=("op:create-starts",))
def create_args_not_run(t: T):
    share = t.host_dir("share")
    t.bundle.add_mount("/share", "bind", str(share), ["rbind", "rw"])
    t.bundle.set_args("/bin/sh", "-c", "echo ran > /share/ran")
    c = t.container()
    c.create()
    time.sleep(0.5)
    t.check(not (share / "ran").exists(), "program has not run 0.5s after create")
    t.eq(c.status(), "created", "status before start")
    c.start()
    c.wait("stopped")
    t.check((share / "ran").exists(), "program ran after start")


@case("create.duplicate-id", "runtime.md#create", MUST,
      "create with an ID already in use fails and leaves the existing container alone",
      mutants=("op:create-replaces",))
def create_duplicate(t: T):
    t.bundle.sleeper()
    c = t.container()
    c.create()
    pid = c.state().get("pid")
    b2 = t.new_bundle()
    b2.sleeper()
    c2 = t.container(b2, cid=c.id)
    t.fails(c2.create(check=False), "second create with the same id")
    st = c.state()
    t.eq((st.get("status"), st.get("pid"), os.path.realpath(st.get("bundle", ""))),
         ("created", pid, os.path.realpath(t.bundle.path)), "first container (status, pid, bundle)")


@case("create.error-no-container", "runtime.md#create", MUST,
      "if a config property cannot be applied, create fails and no container is created",
      mutants=("op:create-rc0",))
def create_error_no_container(t: T):
    t.bundle.add_mount("/share", "bind", str(t.tmp / "does-not-exist"), ["rbind"])
    c = t.container()
    t.fails(c.create(check=False), "create with a bind mount of a missing source")
    t.fails(c.state_cmd(), "state of the container whose create failed")


@case("create.error-leaves-no-trace", "runtime.md#errors", MUST,
      "a failed create leaves the environment as if never attempted: the ID is free again",
      mutants=("op:create-fail-leaves-container",))
def create_error_clean(t: T):
    t.bundle.add_mount("/share", "bind", str(t.tmp / "does-not-exist"), ["rbind"])
    t.bundle.sleeper()
    c = t.container()
    t.fails(c.create(check=False), "create with a bind mount of a missing source")
    t.bundle.config["mounts"].pop()
    c2 = t.container(cid=c.id)
    c2.create()
    t.eq(c2.status(), "created", "the same id created afterwards with a valid config")


@case("create.config-snapshot", "runtime.md#lifecycle", MUST,
      "changes to config.json after create do not affect the container",
      mutants=("op:start-recreates",))
def create_config_snapshot(t: T):
    t.bundle.config["hostname"] = "before"
    t.bundle.process["env"].append("SNAPSHOT=before")
    c = t.container()
    c.create()
    t.bundle.config["hostname"] = "after"
    t.bundle.process["env"][-1] = "SNAPSHOT=after"
    t.bundle.process["args"] = ["/bin/sh", "-c", "echo hostname=changed"]
    t.bundle.write()
    p = c.run_to_exit()
    t.check(p.complete, f"the original program ran ({p.describe()})")
    t.eq(p.get("hostname"), "before", "hostname")
    t.eq(p.env.get("SNAPSHOT"), "before", "env SNAPSHOT")


@case("create.bundle-missing", "runtime.md#create", MUST,
      "create with a bundle path that does not exist fails and creates nothing",
      mutants=("op:create-rc0",))
def create_bundle_missing(t: T):
    c = t.container()
    t.fails(c.create(check=False, bundle_arg=str(t.tmp / "no-such-bundle"), write_config=False),
            "create with a missing bundle")
    t.fails(c.state_cmd(), "state after the failed create")


# --------------------------------------------------------------------------- start

@case("start.runs-program", "runtime.md#start", MUST,
      "start runs the user-specified program",
      mutants=("op:start-noop",))
def start_runs(t: T):
    c = t.container()
    c.create()
    c.start()
    c.wait("stopped")
    p = c.probe()
    t.check(p.complete, f"/probe ran to completion ({p.describe()})")


@case("start.running-fails", "runtime.md#start", MUST,
      "start on a running container fails and has no effect",
      mutants=("op:start-rc0",))
def start_running(t: T):
    share = t.host_dir("share")
    t.bundle.add_mount("/share", "bind", str(share), ["rbind", "rw"])
    t.bundle.set_args("/bin/sh", "-c", "echo x >> /share/runs; trap 'exit 0' TERM; "
                      "while :; do sleep 0.1; done")
    c = t.container()
    c.create()
    c.start()
    pid = c.state().get("pid")
    deadline = time.monotonic() + 5
    while not (share / "runs").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    t.fails(c.start(check=False), "start on a running container")
    time.sleep(0.3)
    st = c.state()
    t.eq((st.get("status"), st.get("pid")), ("running", pid), "(status, pid) afterwards")
    t.eq((share / "runs").read_text(), "x\n", "program ran exactly once")


@case("start.stopped-fails", "runtime.md#start", MUST,
      "start on a stopped container fails and has no effect",
      mutants=("op:start-rc0",))
def start_stopped(t: T):
    t.bundle.set_args("/bin/true")
    c = t.container()
    c.create()
    c.start()
    c.wait("stopped")
    t.fails(c.start(check=False), "start on a stopped container")
    t.eq(c.status(), "stopped", "status afterwards")


@case("start.unknown-id", "runtime.md#start", MUST,
      "start of a container that does not exist is an error",
      mutants=("op:start-rc0",))
def start_unknown(t: T):
    t.fails(t.rt.run("start", t.new_id() + "-nope"), "start of an unknown id")


@case("start.no-process", "runtime.md#start", MUST,
      "start generates an error if `process` was not set",
      mutants=("cfg:default-process",))
def start_no_process(t: T):
    del t.bundle.config["process"]
    c = t.container()
    res = c.create(check=False)
    if res.ok:
        t.fails(c.start(check=False), "start of a container without `process`")
    else:
        t.log(f"ok: create already refused the config without `process` ({res.brief()})")


# --------------------------------------------------------------------------- kill

@case("kill.sends-signal", "runtime.md#kill", MUST,
      "kill sends the specified signal to the container process",
      mutants=("op:kill-noop", "op:kill-sigkill"))
def kill_signal(t: T):
    t.bundle.set_args("/bin/sh", "-c", "trap 'echo got=USR1; exit 0' USR1; echo ready=1; "
                      "i=0; while [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; echo got=timeout")
    c = t.container()
    c.create()
    c.start()
    deadline = time.monotonic() + 5
    while "ready=1" not in c.stdout() and time.monotonic() < deadline:
        time.sleep(0.05)
    c.kill("USR1")
    c.wait("stopped", 10)
    t.eq(c.probe().get("got"), "USR1", "signal seen by the program")


@case("kill.created", "runtime.md#kill", MUST,
      "kill is allowed on a `created` container (KILL stops it)",
      mutants=("op:kill-created-fails",))
def kill_created(t: T):
    t.bundle.sleeper()
    c = t.container()
    c.create()
    c.kill("KILL")
    c.wait("stopped", 10)
    t.log("ok: created container stopped after kill KILL")


@case("kill.stopped-fails", "runtime.md#kill", MUST,
      "kill on a stopped container fails and has no effect",
      mutants=("op:kill-rc0",))
def kill_stopped(t: T):
    t.bundle.set_args("/bin/true")
    c = t.container()
    c.create()
    c.start()
    c.wait("stopped")
    t.fails(c.kill("KILL", check=False), "kill on a stopped container")
    t.eq(c.status(), "stopped", "status afterwards")


@case("kill.unknown-id", "runtime.md#kill", MUST,
      "kill of a container that does not exist is an error",
      mutants=("op:kill-rc0",))
def kill_unknown(t: T):
    t.fails(t.rt.run("kill", t.new_id() + "-nope", "KILL"), "kill of an unknown id")


# --------------------------------------------------------------------------- delete

@case("delete.stopped", "runtime.md#delete", MUST,
      "delete of a stopped container removes it; the ID may then be reused",
      mutants=("op:delete-noop",))
def delete_stopped(t: T):
    t.bundle.set_args("/bin/true")
    c = t.container()
    c.create()
    c.start()
    c.wait("stopped")
    c.delete()
    t.fails(c.state_cmd(), "state after delete")
    c2 = t.container(cid=c.id)
    c2.create()
    t.eq(c2.status(), "created", "new container with the reused id")


@case("delete.running-fails", "runtime.md#delete", MUST,
      "delete of a running container fails and has no effect",
      mutants=("op:delete-forces",))
def delete_running(t: T):
    t.bundle.sleeper()
    c = t.container()
    c.create()
    c.start()
    pid = c.state().get("pid")
    t.fails(c.delete(check=False), "delete of a running container")
    st = c.state()
    t.eq((st.get("status"), st.get("pid")), ("running", pid), "(status, pid) afterwards")
    t.check(pid_alive(pid), "container process still alive")


@case("delete.created-fails", "runtime.md#delete", MUST,
      "delete of a `created` (not stopped) container fails and has no effect",
      mutants=("op:delete-forces",))
def delete_created(t: T):
    t.bundle.sleeper()
    c = t.container()
    c.create()
    t.fails(c.delete(check=False), "delete of a created container")
    t.eq(c.status(), "created", "status afterwards")


@case("delete.removes-resources", "runtime.md#delete", MUST,
      "delete removes what create made: the container, its process and cgroups, no host mounts left",
      mutants=("op:delete-noop", "op:delete-keeps-cgroup"))
def delete_resources(t: T):
    from ..core import mountpoints_under
    t.bundle.set_args("/bin/sh", "-c", "exit 0")
    t.bundle.linux["cgroupsPath"] = f"/conformance-{t.new_id()}"
    c = t.container()
    c.create()
    cg = cgroup_dirs_of(c.pid)
    t.check(cg, f"container process {c.pid} has cgroup directories")
    mine = [d for d in cg if t.bundle.linux["cgroupsPath"].strip("/") in str(d)]
    t.check(mine, f"the container's own cgroups exist ({[str(d) for d in cg]})")
    c.start()
    c.wait("stopped")
    c.delete()
    t.fails(c.state_cmd(), "state after delete")
    left = [str(d) for d in mine if d.exists()]
    t.eq(left, [], "container cgroup directories left after delete")
    t.check(not pid_alive(c.pid) or proc_starttime(c.pid) is None, "container process gone")
    t.eq(mountpoints_under(t.bundle.path), [], "host mounts left under the bundle")


@case("delete.keeps-bundle", "runtime.md#delete", MUST,
      "delete does not remove resources it did not create (bundle, rootfs, bind-mount sources)",
      mutants=("op:delete-removes-bundle-files",))
def delete_keeps_bundle(t: T):
    share = t.host_dir("share")
    (share / "keep").write_text("keep\n")
    t.bundle.add_mount("/share", "bind", str(share), ["rbind", "rw"])
    t.bundle.set_args("/bin/true")
    c = t.container()
    c.create()
    c.start()
    c.wait("stopped")
    c.delete()
    for p in (t.bundle.path / "config.json", t.bundle.rootfs / "bin" / "busybox",
              t.bundle.rootfs / "probe", share / "keep"):
        t.check(p.exists(), f"{p} still exists after delete")


@case("delete.unknown-id", "runtime.md#delete", MUST,
      "delete of a container that does not exist is an error",
      mutants=("op:delete-rc0",))
def delete_unknown(t: T):
    t.fails(t.rt.run("delete", t.new_id() + "-nope"), "delete of an unknown id")
