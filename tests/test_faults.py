"""A runtime killed at any instant, and the answers engines need to clean up after it (issue 8, parts 2 and 6).

The fault-injection test SIGKILLs pyoci commands at random moments (delays drawn over each command's own
measured duration) and then does what an engine does, `delete --force`: it must succeed and leave nothing,
whatever the instant. We are the child subreaper meanwhile, so every process a killed runtime orphans
becomes our child and a leaked one cannot hide.
"""
from __future__ import annotations

import json
import os
import random
import subprocess
import time
from pathlib import Path

import prctl
import pytest

from conftest import Bundle, Runtime, cgroup_dirs_named, mounts_mentioning, one_line_error, wait_for


def _children() -> list[int]:
    """Our live (non-zombie) children; zombies are reaped on the way."""
    me = str(os.getpid())
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            data = Path("/proc", name, "stat").read_bytes()
        except OSError:
            continue
        fields = data[data.rindex(b")") + 2:].split()
        if fields[1].decode() != me:
            continue
        if fields[0] in (b"Z", b"X"):
            try:
                os.waitpid(int(name), os.WNOHANG)
            except ChildProcessError:
                pass
            continue
        out.append(int(name))
    return out


@pytest.fixture
def subreaper():
    prctl.set_child_subreaper(True)
    try:
        yield
    finally:
        prctl.set_child_subreaper(False)
        _children()


def test_killed_at_random_instants_delete_force_removes_everything(rt: Runtime, bundle: Bundle, subreaper: None,
                                                                   tmp_path: Path) -> None:
    bundle.args("sleep", "30")
    bundle.hook("poststop", "/bin/true")  # a poststop hook to run (or not) while deletes are killed
    bundle.save()
    steps = [("create", "--bundle", str(bundle.path)), ("start",), ("kill",), ("delete", "--force")]

    def argv(step: tuple[str, ...], cid: str) -> list[str]:
        extra = ["9"] if step[0] == "kill" else []
        return rt.argv(*step, cid, *extra)

    # each command's own duration, measured once, scales where its kills land
    cid = rt.new_id("f")
    took = {}
    for step in steps:
        t = time.monotonic()
        subprocess.run(argv(step, cid), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, check=True)
        took[step[0]] = time.monotonic() - t
    rng = random.Random(8)
    cycles, killed, problems = 200, 0, []
    by_step = dict.fromkeys(took, 0)
    deadline = time.monotonic() + 50
    for n in range(cycles):
        if time.monotonic() > deadline:
            break
        cid = rt.new_id("f")
        victim = rng.randrange(len(steps))
        for i, step in enumerate(steps):
            p = subprocess.Popen(argv(step, cid), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
            if i == victim:
                time.sleep(rng.uniform(0, took[step[0]] * 1.2))
                p.kill()
                if p.wait() == -9:
                    killed += 1
                    by_step[step[0]] += 1
                break
            p.wait()
        r = rt.cmd("delete", "--force", cid)
        left = []
        if r.returncode != 0:
            left.append("delete --force failed: %s" % r.stderr.strip())
        if os.path.exists(rt.root / cid):
            left.append("state dir %s" % os.listdir(rt.root / cid))
        left += ["cgroup %s" % d for d in cgroup_dirs_named([cid])]
        left += ["mount %s" % m for m in mounts_mentioning(tmp_path)]
        left += ["process %d: %s" % (pid, Path("/proc/%d/cmdline" % pid).read_bytes()[:60])
                 for pid in _children()]
        if left:
            problems.append("cycle %d, %s killed: %s" % (n, steps[victim][0], left))
    print("fault injection: %d cycles, %d commands killed mid-way %s, %d with leftovers"
          % (n + 1, killed, by_step, len(problems)))
    assert n + 1 >= 150, "only %d cycles in time" % (n + 1)
    assert killed >= (n + 1) // 2, "most commands must die mid-way: %d of %d" % (killed, n + 1)
    assert not problems, "\n".join(problems[:10])


def test_wedged_directory_is_listed_and_removable(rt: Runtime, bundle: Bundle) -> None:
    """A state directory without state.json (a runtime died right after claiming the id)."""
    cid = rt.new_id()
    (rt.root / cid).mkdir(parents=True)
    listed = json.loads(rt.ok("list", "--format", "json").stdout)
    assert [(c["id"], c["status"]) for c in listed] == [(cid, "creating")]
    assert rt.state(cid)["status"] == "creating"
    bundle.save()
    err = rt.fail("create", "--bundle", bundle.path, cid)
    assert "delete --force %s" % cid in err
    rt.ok("delete", "--force", cid)
    assert not (rt.root / cid).exists()
    assert "does not exist" in rt.fail("delete", cid)
    rt.ok("delete", "--force", cid)  # runc: --force of a missing container succeeds


def test_half_deleted_container_is_stopped_and_removable(rt: Runtime, bundle: Bundle) -> None:
    bundle.args("sleep", "30")
    cid = rt.create(bundle)
    st = json.loads((rt.root / cid / "state.json").read_text())
    st["removing"] = True
    (rt.root / cid / "state.json").write_text(json.dumps(st))
    assert rt.status(cid) == "stopped"
    assert "container not running" in rt.fail("kill", cid, "9")
    assert "delete --force" in rt.fail("create", "--bundle", bundle.path, cid)
    rt.ok("delete", "--force", cid)
    wait_for(lambda: not os.path.exists("/proc/%d" % st["pid"]) or
             Path("/proc/%d/stat" % st["pid"]).read_text().split(") ")[1][0] in "ZX")


def test_busy_cgroup_fails_delete(rt: Runtime, bundle: Bundle) -> None:
    """A cgroup that cannot be removed (a cgroup below the container's holds a process of someone else's, out
    of the container's reach) is delete's error, and the container stays for a later delete. An empty cgroup
    below the container's is removed with it (runc removes the subtree too)."""
    bundle.args("sleep", "30")
    cid = rt.create(bundle)
    st = json.loads((rt.root / cid / "state.json").read_text())
    paths = st["cgroup_paths"]["paths"]
    other = next((n for n in paths if n and "pids" not in n.split(",") and "freezer" not in n.split(",")), None)
    if other is None:
        pytest.skip("needs a cgroup v1 hierarchy that delete does not list the container's processes from")
    leaf = Path(paths[other]) / "intruder"
    leaf.mkdir()
    empty = [Path(p) / "empty" for n, p in paths.items() if n != other]
    for e in empty:
        e.mkdir()
    outsider = subprocess.Popen(["sleep", "60"])
    try:
        (leaf / "cgroup.procs").write_text(str(outsider.pid))
        r = rt.cmd("delete", "--force", cid)
        assert r.returncode != 0
        assert "cannot remove cgroup" in one_line_error(r) and "intruder" in one_line_error(r)
        assert rt.status(cid) == "stopped"
    finally:
        outsider.kill()
        outsider.wait()
    wait_for(lambda: not (leaf / "cgroup.procs").read_text().split(), what="the intruder cgroup empty")
    rt.ok("delete", "--force", cid)
    assert not any(e.exists() for e in empty) and not leaf.exists()


def test_create_in_frozen_cgroup_is_refused(rt: Runtime, bundle: Bundle) -> None:
    from conftest import hierarchy_dirs

    parent = next((d for d in hierarchy_dirs() if d.name == "freezer" or (d / "cgroup.freeze").exists()
                   or (d / "cgroup.subtree_control").exists()), None)
    if parent is None:
        pytest.skip("no freezer")
    cid = rt.new_id()
    group = parent / ("frz" + cid)
    group.mkdir()
    try:
        (group / ("cgroup.freeze" if (group / "cgroup.freeze").exists() else "freezer.state")).write_text(
            "1" if (group / "cgroup.freeze").exists() else "FROZEN")
        bundle.linux["cgroupsPath"] = "/%s/%s" % (group.name, cid)
        t = time.monotonic()
        err = rt.refuse(bundle, cid=cid)
        assert "frozen" in err and time.monotonic() - t < 10
    finally:
        for f in ("cgroup.freeze", "freezer.state"):
            if (group / f).exists():
                (group / f).write_text("0" if f == "cgroup.freeze" else "THAWED")
        for d in sorted(group.rglob("*"), key=lambda p: len(str(p)), reverse=True):
            if d.is_dir():
                d.rmdir()
        group.rmdir()


# --- part 6: the answers containerd's shim recognises -------------------------------------------------------
def test_kill_all_of_stopped_container_succeeds_and_kills_leftovers(rt: Runtime, bundle: Bundle) -> None:
    """Without a pid namespace of its own, a process outlives the init; kill --all reaches it."""
    bundle.drop_namespace("pid")
    bundle.sh("sleep 30 & echo $! > /out/pid; exit 0")
    out = bundle.private_rootfs() / "out"
    with rt.container(bundle) as cid:
        rt.ok("start", cid)
        rt.wait_status(cid, "stopped")
        wait_for(lambda: (out / "pid").exists() and (out / "pid").read_text().strip())
        st = json.loads((rt.root / cid / "state.json").read_text())
        procs = Path(st["cgroup_paths"]["paths"][next(iter(st["cgroup_paths"]["paths"]))], "cgroup.procs")
        assert procs.read_text().split(), "the background sleep is still in the cgroup"
        assert "container not running" in rt.fail("kill", cid, "KILL")
        rt.ok("kill", "--all", cid, "KILL")
        wait_for(lambda: not procs.read_text().split(), what="the cgroup to empty")
        rt.ok("kill", "--all", cid, "KILL")  # again: nothing left, still fine


def test_kill_signal_zero_checks_liveness(rt: Runtime, bundle: Bundle) -> None:
    bundle.args("sleep", "30")
    with rt.container(bundle) as cid:
        rt.ok("kill", cid, "0")
        rt.ok("start", cid)
        rt.ok("kill", cid, "0")
        assert rt.status(cid) == "running"
        rt.ok("kill", cid, "KILL")
        rt.wait_status(cid, "stopped")
        assert "container not running" in rt.fail("kill", cid, "0")


# --- part 3: set-up never waits forever, hooks die with the runtime -------------------------------------------
def _pids_running(argv: list[str]) -> list[int]:
    want = ("\0".join(argv) + "\0").encode()
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if Path("/proc", name, "cmdline").read_bytes() == want:
                    out.append(int(name))
            except OSError:
                pass
    return out


@pytest.mark.parametrize("kind", ["prestart", "createRuntime", "createContainer", "startContainer", "poststart"])
def test_hooks_die_with_a_killed_runtime(rt: Runtime, bundle: Bundle, kind: str) -> None:
    marker = ["sleep", "%d" % (100000 + os.getpid() % 1000 * 100 + len(kind))]  # found by its command line
    bundle.args("sleep", "30")
    cid = rt.new_id()
    hook = {"path": "/bin/sleep", "args": marker}
    if kind in ("startContainer", "poststart"):  # the command killed is start
        rt.create(bundle, cid)
        st = json.loads((rt.root / cid / "state.json").read_text())
        st["hooks"][kind] = [hook]
        (rt.root / cid / "state.json").write_text(json.dumps(st))
        argv = rt.argv("start", cid)
    else:
        bundle.config.setdefault("hooks", {})[kind] = [hook]
        bundle.save()
        argv = rt.argv("create", "--bundle", bundle.path, cid)
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        (pid,) = wait_for(lambda: _pids_running(marker), what="the hook to run")
        p.kill()
        p.wait()
        wait_for(lambda: not _pids_running(marker), 5, what="the hook to die")
    finally:
        p.kill()
        p.wait()
        rt.ok("delete", "--force", cid)


def test_poststart_hook_leaving_a_daemon_does_not_block_start(rt: Runtime, bundle: Bundle, tmp_path: Path) -> None:
    bundle.args("sleep", "30")
    bundle.hook("poststart", "/bin/sh", "sh", "-c", "sleep 100 & echo started")
    with rt.container(bundle) as cid:
        t = time.monotonic()
        rt.ok("start", cid, timeout=20)
        assert time.monotonic() - t < 10


def test_untimed_poststop_hook_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """poststop failures only warn (runtime.md step 13): one without a timeout is bounded and killed; the
    fatal kinds without a timeout wait as the config asks (a test with the real bound would take 60 s)."""
    from pyoci import hooks
    from pyoci.spec import Hook

    monkeypatch.setattr(hooks, "UNTIMED_NONFATAL", 1)
    t = time.monotonic()
    hooks.run("poststop", [Hook(path="/bin/sleep", args=["sleep", "100"])], {"id": "x"})
    assert time.monotonic() - t < 5
    assert hooks.deadline([Hook(path="/bin/true", timeout=5)], 60) == 65
    assert hooks.deadline([Hook(path="/bin/true")], 60) is None
