"""config.md#posix-platform-hooks and runtime.md#lifecycle: hooks, their order, their stdin and
their failure semantics. Hooks are small sh scripts that append their name to a log file and save
the state they received on stdin."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from ..core import MUST, Bundle, CaseFailed, T, case

CONTAINER_LOG = "/hooklog"     # where the host log dir is bind-mounted inside the container


class Hooks:
    def __init__(self, t: T, bundle: Bundle | None = None):
        self.t = t
        self.bundle = bundle or t.bundle
        self.log = t.host_dir("hooklog")
        self.scripts = t.host_dir("hookbin")     # host-only path: resolves in the runtime namespace
        self.n = 0
        self._mounted = False

    def _script(self, name: str, logdir: str, exit_code: int, sleep: float, shell: str) -> str:
        return f"""#!{shell}
PATH=/usr/sbin:/usr/bin:/sbin:/bin; export PATH
cat > "{logdir}/{name}.stdin"
echo "{name}" >> "{logdir}/order"
readlink /proc/self/ns/mnt > "{logdir}/{name}.mntns"
readlink /proc/self/ns/pid > "{logdir}/{name}.pidns"
echo "$0|$*" > "{logdir}/{name}.args"
env > "{logdir}/{name}.env"
{"exec sleep %s" % sleep if sleep else ""}
exit {exit_code}
"""

    def add(self, kind: str, name: str | None = None, *, exit_code: int = 0, sleep: float = 0,
            args: list[str] | None = None, env: list[str] | None = None,
            timeout: int | None = None) -> str:
        """Append a hook of ``kind`` to config.hooks; returns its name (the key in the log)."""
        self.n += 1
        name = name or f"{kind}{self.n}"
        if kind == "startContainer":
            # path resolves in the container namespace: the script lives in the rootfs and
            # logs to the host log dir bind-mounted at /hooklog
            self.mount_log()
            rel = Path("hookbin") / f"{name}.sh"
            path = self.bundle.rootfs / rel
            path.parent.mkdir(exist_ok=True)
            path.write_text(self._script(name, CONTAINER_LOG, exit_code, sleep, "/bin/sh"))
            hook_path = "/" + str(rel)
        else:
            path = self.scripts / f"{name}.sh"
            path.write_text(self._script(name, str(self.log), exit_code, sleep, "/bin/sh"))
            hook_path = str(path)
        os.chmod(path, 0o755)
        h: dict = {"path": hook_path, "args": args if args is not None else [hook_path, name]}
        if env is not None:
            h["env"] = env
        if timeout is not None:
            h["timeout"] = timeout
        self.bundle.config.setdefault("hooks", {}).setdefault(kind, []).append(h)
        return name

    def mount_log(self):
        if not self._mounted:
            self.bundle.add_mount(CONTAINER_LOG, "bind", str(self.log), ["rbind", "rw"])
            self._mounted = True

    # -- observation
    def order(self) -> list[str]:
        f = self.log / "order"
        return f.read_text().split() if f.exists() else []

    def ran(self, name: str) -> bool:
        return name in self.order()

    def stdin_state(self, name: str) -> dict:
        f = self.log / f"{name}.stdin"
        if not f.exists():
            raise CaseFailed(f"hook {name} did not run (order: {self.order()})")
        text = f.read_text()
        try:
            return json.loads(text)
        except ValueError:
            raise CaseFailed(f"hook {name} got no JSON state on stdin: {text[:200]!r}")

    def read(self, name: str, what: str) -> str:
        f = self.log / f"{name}.{what}"
        return f.read_text().strip() if f.exists() else ""


def _marker_program(t: T, hooks: Hooks) -> None:
    """The container program records that it ran in the (host) hook log dir."""
    hooks.mount_log()
    t.bundle.set_args("/bin/sh", "-c", f"echo program >> {CONTAINER_LOG}/order")


@case("hooks.prestart", "config.md#prestart", MUST,
      "prestart hooks run during create (host path), before the program",
      mutants=("cfg:drop-hooks",))
def hooks_prestart(t: T):
    h = Hooks(t)
    name = h.add("prestart")
    _marker_program(t, h)
    c = t.container()
    c.create()
    t.eq(h.order(), [name], "hooks run by the end of create")
    c.run_to_exit()
    t.eq(h.order(), [name, "program"], "order after start")


@case("hooks.createRuntime", "config.md#createruntime-hooks", MUST,
      "createRuntime hooks run during create, in the runtime namespace",
      mutants=("cfg:drop-hooks",))
def hooks_create_runtime(t: T):
    h = Hooks(t)
    name = h.add("createRuntime")
    c = t.container()
    c.create()
    t.eq(h.order(), [name], "hooks run by the end of create")
    t.eq(h.read(name, "mntns"), os.readlink("/proc/self/ns/mnt"), "hook mount namespace (runtime's)")


@case("hooks.createContainer", "config.md#createcontainer-hooks", MUST,
      "createContainer hooks run during create, in the container namespace",
      mutants=("cfg:drop-hooks", "cfg:createContainer-as-createRuntime"))
def hooks_create_container(t: T):
    h = Hooks(t)
    name = h.add("createContainer")
    c = t.container()
    c.create()
    t.eq(h.order(), [name], "hooks run by the end of create")
    t.eq(h.read(name, "mntns"), c.host_ns("mnt"), "hook mount namespace (container's)")


@case("hooks.startContainer", "config.md#startcontainer-hooks", MUST,
      "startContainer hooks run during start, in the container, before the program",
      mutants=("cfg:drop-hooks",))
def hooks_start_container(t: T):
    h = Hooks(t)
    name = h.add("startContainer")
    _marker_program(t, h)
    c = t.container()
    c.create()
    t.eq(h.order(), [], "no startContainer hook during create")
    mntns = c.host_ns("mnt")
    c.run_to_exit()
    t.eq(h.order(), [name, "program"], "order after start")
    t.eq(h.read(name, "mntns"), mntns, "hook mount namespace (container's)")


@case("hooks.poststart", "config.md#poststart", MUST,
      "poststart hooks run after the program started, before start returns",
      mutants=("cfg:drop-hooks",))
def hooks_poststart(t: T):
    h = Hooks(t)
    name = h.add("poststart")
    h.mount_log()
    t.bundle.set_args("/bin/sh", "-c", f"echo program >> {CONTAINER_LOG}/order; "
                      "trap 'exit 0' TERM; while :; do sleep 0.1; done")
    c = t.container()
    c.create()
    t.eq(h.order(), [], "no poststart hook during create")
    c.start()
    t.check(h.ran(name), f"poststart hook ran by the time start returned ({h.order()})")
    deadline = time.monotonic() + 5
    while len(h.order()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    t.eq(h.order(), ["program", name], "order")
    t.eq(h.read(name, "mntns"), os.readlink("/proc/self/ns/mnt"), "hook mount namespace (runtime's)")


@case("hooks.poststop", "config.md#poststop", MUST,
      "poststop hooks run after the container is deleted, before delete returns",
      mutants=("cfg:drop-hooks",))
def hooks_poststop(t: T):
    h = Hooks(t)
    name = h.add("poststop")
    t.bundle.set_args("/bin/true")
    c = t.container()
    c.create()
    c.start()
    c.wait("stopped")
    t.eq(h.order(), [], "no poststop hook before delete")
    c.delete()
    t.eq(h.order(), [name], "hooks run by the end of delete")


@case("hooks.order", "config.md#posix-platform-hooks", MUST,
      "hooks of a kind run in the listed order; kinds run in lifecycle order",
      mutants=("cfg:reverse-hooks",))
def hooks_order(t: T):
    h = Hooks(t)
    kinds = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart",
             "poststop")
    for kind in kinds:
        h.add(kind, f"{kind}-a")
        h.add(kind, f"{kind}-b")
    h.mount_log()
    t.bundle.set_args("/bin/sh", "-c", f"echo program >> {CONTAINER_LOG}/order")
    c = t.container()
    c.create()
    c.start()
    c.wait("stopped")
    c.delete()
    got = h.order()
    missing = [f"{k}-{x}" for k in kinds for x in "ab" if f"{k}-{x}" not in got]
    t.eq(missing, [], f"hooks that did not run (order: {got})")
    pos = {name: i for i, name in enumerate(got)}
    for kind in kinds:
        t.check(pos[f"{kind}-a"] < pos[f"{kind}-b"], f"{kind} hooks in the listed order ({got})")
    # the lifecycle order the spec states (poststart timing is hooks.poststart's business)
    chain = ["prestart-b", "createRuntime-a", "createRuntime-b", "createContainer-a",
             "createContainer-b", "startContainer-a", "startContainer-b", "program"]
    for a, b in zip(chain, chain[1:]):
        t.check(pos.get(a, -1) < pos.get(b, -1), f"{a} before {b} ({got})")
    t.eq(got[-2:], ["poststop-a", "poststop-b"], "poststop hooks last")


@case("hooks.state-stdin", "config.md#posix-platform-hooks", MUST,
      "every hook receives the container state (id, bundle, pid) as JSON on stdin",
      mutants=("op:hooks-no-stdin",))
def hooks_state(t: T):
    h = Hooks(t)
    kinds = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart",
             "poststop")
    for kind in kinds:
        h.add(kind, kind)
    t.bundle.set_args("/bin/sh", "-c", "sleep 0.2")
    c = t.container()
    c.create()
    c.start()
    c.wait("stopped")
    c.delete()
    for kind in kinds:
        st = h.stdin_state(kind)
        t.eq(st.get("id"), c.id, f"{kind}: state.id")
        t.check(os.path.realpath(st.get("bundle", "")) == os.path.realpath(t.bundle.path),
                f"{kind}: state.bundle {st.get('bundle')!r} is the bundle")
        t.check(isinstance(st.get("ociVersion"), str), f"{kind}: state has an ociVersion")
        t.check(st.get("status") in ("creating", "created", "running", "stopped"),
                f"{kind}: state.status {st.get('status')!r} is a lifecycle status")
        if kind in ("prestart", "createRuntime", "poststart"):
            # runtime-namespace hooks: pid as seen by the runtime
            t.eq(st.get("pid"), c.pid, f"{kind}: state.pid (host view)")


@case("hooks.args-env", "config.md#posix-platform-hooks", MUST,
      "hooks get their configured args (execv argv) and env",
      mutants=("cfg:hooks-drop-args-env",))
def hooks_args_env(t: T):
    h = Hooks(t)
    script = str(h.scripts / "argshook.sh")
    name = h.add("prestart", "argshook", args=["argv0-name", "first", "second arg"],
                 env=["HOOKVAR=hook value", "PATH=/usr/bin:/bin"])
    c = t.container()
    c.create()
    t.check(h.ran(name), "hook ran")
    # sh sets $0 to the script path when run through the #! line; the args follow it
    t.eq(h.read(name, "args"), f"{script}|first second arg", "hook $0|$*")
    env = dict(line.partition("=")[::2] for line in h.read(name, "env").splitlines())
    t.eq(env.get("HOOKVAR"), "hook value", "hook env HOOKVAR")


def _failing(t: T, kind: str):
    h = Hooks(t)
    h.add(kind, "failing", exit_code=1)
    h.add(kind, "after")
    h.add("poststop", "cleanup")
    _marker_program(t, h)
    c = t.container()
    res = c.create(check=False)
    return h, c, res


def _check_destroyed(t: T, h: Hooks, c, kind: str):
    """runtime-spec 1.3.0: after a failing hook the lifecycle continues at step 12 (the container destroyed)
    and 13 (the poststop hooks), with no delete asked for."""
    t.fails(c.state_cmd(), f"state after a failing {kind} hook (the container is destroyed)")
    t.check("cleanup" in h.order(), f"the poststop hooks ran after the failing {kind} hook ({h.order()})")


def _check_aborted(t: T, h: Hooks, c, res, kind: str):
    if res.ok:
        st = c.state_cmd()
        if st.ok:
            res2 = c.start(check=False)
            t.fails(res2, f"start after a failing {kind} hook")
        else:
            t.fails(res, f"create with a failing {kind} hook")
    else:
        t.log(f"ok: create failed ({res.brief()})")
    time.sleep(0.3)
    t.check("program" not in h.order(), f"the program never ran ({h.order()})")
    t.check("after" not in h.order(), f"hooks after the failing one did not run ({h.order()})")
    _check_destroyed(t, h, c, kind)


@case("hooks.prestart-fails", "runtime.md#lifecycle", MUST,
      "a failing prestart hook makes create fail, the container is stopped/destroyed",
      mutants=("op:hooks-ignore-failure",))
def hooks_prestart_fail(t: T):
    h, c, res = _failing(t, "prestart")
    t.fails(res, "create with a failing prestart hook")
    _check_aborted(t, h, c, res, "prestart")


@case("hooks.createRuntime-fails", "runtime.md#lifecycle", MUST,
      "a failing createRuntime hook makes create fail, the container is stopped/destroyed",
      mutants=("op:hooks-ignore-failure",))
def hooks_create_runtime_fail(t: T):
    h, c, res = _failing(t, "createRuntime")
    t.fails(res, "create with a failing createRuntime hook")
    _check_aborted(t, h, c, res, "createRuntime")


@case("hooks.createContainer-fails", "runtime.md#lifecycle", MUST,
      "a failing createContainer hook makes create fail, the container is stopped/destroyed",
      mutants=("op:hooks-ignore-failure",))
def hooks_create_container_fail(t: T):
    h, c, res = _failing(t, "createContainer")
    t.fails(res, "create with a failing createContainer hook")
    _check_aborted(t, h, c, res, "createContainer")


@case("hooks.startContainer-fails", "runtime.md#lifecycle", MUST,
      "a failing startContainer hook makes start fail; the program does not run",
      mutants=("op:hooks-ignore-failure",))
def hooks_start_container_fail(t: T):
    h = Hooks(t)
    h.add("startContainer", "failing", exit_code=1)
    h.add("startContainer", "after")
    h.add("poststop", "cleanup")
    _marker_program(t, h)
    c = t.container()
    c.create()
    res = c.start(check=False)
    time.sleep(0.3)
    t.check("program" not in h.order(), f"the program never ran ({h.order()})")
    t.check("after" not in h.order(), f"later startContainer hooks did not run ({h.order()})")
    t.fails(res, "start with a failing startContainer hook")
    _check_destroyed(t, h, c, "startContainer")


@case("hooks.poststart-fails", "runtime.md#lifecycle", MUST,
      "a failing poststart hook is an error (runtime-spec 1.3.0; 1.2 said warn): start fails, later poststart "
      "hooks do not run, the container is destroyed and the poststop hooks run",
      mutants=("op:hooks-ignore-failure",))
def hooks_poststart_fail(t: T):
    h = Hooks(t)
    h.add("poststart", "failing", exit_code=1)
    h.add("poststart", "after")
    h.add("poststop", "cleanup")
    t.bundle.sleeper()
    c = t.container()
    c.create()
    res = c.start(check=False)
    t.fails(res, "start with a failing poststart hook")
    t.check("after" not in h.order(), f"later poststart hooks did not run ({h.order()})")
    _check_destroyed(t, h, c, "poststart")


@case("hooks.poststop-fails", "runtime.md#lifecycle", MUST,
      "a failing poststop hook is only a warning: later hooks run and delete completes",
      mutants=("op:hooks-stop-at-failure",))
def hooks_poststop_fail(t: T):
    h = Hooks(t)
    h.add("poststop", "failing", exit_code=1)
    h.add("poststop", "after")
    t.bundle.set_args("/bin/true")
    c = t.container()
    c.create()
    c.start()
    c.wait("stopped")
    c.delete(check=False)
    t.check("after" in h.order(), f"the poststop hook after the failing one ran ({h.order()})")
    t.fails(c.state_cmd(), "state after delete (container is gone)")


@case("hooks.timeout", "config.md#posix-platform-hooks", MUST,
      "a hook running past its `timeout` is aborted (and, for prestart, create fails)",
      mutants=("cfg:hooks-drop-timeout",))
def hooks_timeout(t: T):
    h = Hooks(t)
    h.add("prestart", "slow", sleep=20, timeout=1)
    _marker_program(t, h)
    c = t.container()
    t0 = time.monotonic()
    res = c.create(check=False, timeout=40)
    took = time.monotonic() - t0
    t.check(took < 12, f"create returned {took:.1f}s after a hook with timeout=1 that sleeps 20s")
    t.fails(res, "create whose prestart hook timed out")
