"""The OCI lifecycle through the CLI: create/start/state/kill/delete, run, pid files, races."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import prctl
import pytest

from conftest import Bundle, Runtime, pid_alive, wait_for


def _cmdline(pid: int) -> list[str]:
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        return f.read().decode().split("\0")[:-1]


@pytest.fixture
def out(bundle: Bundle, tmp_path: Path) -> Path:
    """A host directory bind-mounted at /out in the container."""
    d = tmp_path / "out"
    d.mkdir()
    bundle.bind(d, "/out")
    return d


def test_statuses_created_running_stopped(rt: Runtime, bundle: Bundle, out: Path) -> None:
    bundle.sh("echo started > /out/started; read x < /out/fifo")
    os.mkfifo(out / "fifo")
    cid = rt.create(bundle)
    try:
        st = rt.state(cid)
        assert st["status"] == "created"
        pid = st["pid"]
        assert pid_alive(pid)
        rt.ok("start", cid)
        st = rt.state(cid)
        assert st["status"] == "running" and st["pid"] == pid
        wait_for(lambda: (out / "started").exists(), what="the process to start")
        fd = os.open(out / "fifo", os.O_WRONLY)  # let the container finish
        os.write(fd, b"go\n")
        os.close(fd)
        rt.wait_status(cid, "stopped")
        st = rt.state(cid)
        assert st["id"] == cid and st["bundle"] == str(bundle.path)
        assert st.get("pid", 0) == 0
        rt.ok("delete", cid)
    finally:
        rt.cmd("delete", "--force", cid)
    assert "does not exist" in rt.fail("state", cid)


def test_create_does_not_run_args_until_start(rt: Runtime, bundle: Bundle, out: Path) -> None:
    bundle.args("touch", "/out/ran")
    with rt.container(bundle) as cid:
        time.sleep(0.2)
        assert not (out / "ran").exists(), "process.args ran at create"
        assert rt.status(cid) == "created"
        rt.ok("start", cid)
        wait_for(lambda: (out / "ran").exists(), what="process.args to run after start")
        rt.wait_status(cid, "stopped")


def test_pid_file_is_the_init_that_becomes_the_process(rt: Runtime, bundle: Bundle, tmp_path: Path) -> None:
    bundle.args("sleep", "30")
    pid_file = tmp_path / "init.pid"
    with rt.container(bundle, "--pid-file", pid_file) as cid:
        pid = int(pid_file.read_text())  # written before create returned
        assert rt.state(cid)["pid"] == pid
        assert pid_alive(pid)
        assert _cmdline(pid) != ["sleep", "30"]
        rt.ok("start", cid)
        assert rt.state(cid)["pid"] == pid
        wait_for(lambda: _cmdline(pid) == ["sleep", "30"], what="the init to exec process.args")


def test_pid_file_relative_to_cwd(rt: Runtime, bundle: Bundle, tmp_path: Path) -> None:
    bundle.args("sleep", "30")
    cid = rt.new_id()
    bundle.save()
    rt.ok("create", "-b", bundle.path, "--pid-file", "rel.pid", cid, cwd=tmp_path)
    try:
        assert int((tmp_path / "rel.pid").read_text()) == rt.state(cid)["pid"]
    finally:
        rt.ok("delete", "-f", cid)


def test_pid_file_in_missing_dir_fails_cleanly(rt: Runtime, bundle: Bundle, tmp_path: Path) -> None:
    bundle.save()
    cid = rt.new_id()
    rt.fail("create", "-b", bundle.path, "--pid-file", tmp_path / "no" / "such" / "x.pid", cid)
    assert "does not exist" in rt.fail("state", cid)


def test_process_exit_makes_stopped(rt: Runtime, bundle: Bundle) -> None:
    with rt.container(bundle) as cid:  # true
        rt.ok("start", cid)
        rt.wait_status(cid, "stopped")
        rt.ok("delete", cid)


def test_killed_and_reaped_init_shows_stopped(rt: Runtime, bundle: Bundle) -> None:
    """We become subreaper so the init is our child: kill and reap it ourselves; state must say stopped."""
    bundle.args("sleep", "30")
    prctl.set_child_subreaper(True)
    try:
        with rt.container(bundle) as cid:
            pid = rt.state(cid)["pid"]
            rt.ok("start", cid)
            os.kill(pid, signal.SIGKILL)
            wpid, status = os.waitpid(pid, 0)  # the init was reparented to us
            assert wpid == pid and os.WTERMSIG(status) == signal.SIGKILL
            assert rt.status(cid) == "stopped"
            assert "stopped" in rt.fail("kill", cid, "KILL")
            rt.ok("delete", cid)
    finally:
        prctl.set_child_subreaper(False)
        _reap_children()


def _reap_children() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def test_kill_created_container(rt: Runtime, bundle: Bundle) -> None:
    """A created (not started) container can be killed; it is then stopped."""
    bundle.args("sleep", "30")
    with rt.container(bundle) as cid:
        pid = rt.state(cid)["pid"]
        rt.ok("kill", cid, "KILL")
        wait_for(lambda: not pid_alive(pid), what="the init to die")
        assert rt.status(cid) == "stopped"
        assert "stopped" in rt.fail("start", cid)
        rt.ok("delete", cid)


def test_kill_default_sigterm_on_created(rt: Runtime, bundle: Bundle) -> None:
    bundle.args("sleep", "30")
    with rt.container(bundle) as cid:
        pid = rt.state(cid)["pid"]
        rt.ok("kill", cid)
        wait_for(lambda: not pid_alive(pid), what="SIGTERM to end the created init")
        assert rt.status(cid) == "stopped"


def test_delete_of_created_container_needs_force(rt: Runtime, bundle: Bundle) -> None:
    """runtime.md: deleting a container that is not stopped MUST have no effect and MUST fail (runc 1.1 deletes a
    created one anyway; pyoci follows the spec here)."""
    bundle.args("sleep", "30")
    cid = rt.create(bundle)
    pid = rt.state(cid)["pid"]
    assert "created" in rt.fail("delete", cid)
    assert rt.status(cid) == "created" and pid_alive(pid)
    rt.ok("delete", "--force", cid)
    assert not pid_alive(pid)


# ------------------------------------------------------------------------------------------ run
def test_run_exit_code(rt: Runtime, bundle: Bundle) -> None:
    bundle.sh("echo out; echo err >&2; exit 42")
    r = rt.run(bundle)
    assert r.returncode == 42
    assert r.stdout == "out\n"
    assert "err" in r.stderr


def test_run_removes_the_container(rt: Runtime, bundle: Bundle) -> None:
    cid = rt.new_id()
    assert rt.run(bundle, cid).returncode == 0
    assert "does not exist" in rt.fail("state", cid)


def test_run_keep(rt: Runtime, bundle: Bundle) -> None:
    bundle.sh("exit 3")
    cid = rt.new_id()
    assert rt.run(bundle, cid, "--keep").returncode == 3
    assert rt.status(cid) == "stopped"
    rt.ok("delete", cid)


def _popen_run(rt: Runtime, bundle: Bundle, cid: str, *extra: str, **kw: object) -> subprocess.Popen[bytes]:
    bundle.save()
    return subprocess.Popen(rt.argv("run", "-b", bundle.path, *extra, cid), stdin=subprocess.DEVNULL,
                            stdout=kw.get("stdout", subprocess.DEVNULL), stderr=subprocess.DEVNULL)


def test_run_killed_by_signal_exits_128_plus_n(rt: Runtime, bundle: Bundle) -> None:
    bundle.args("sleep", "30")
    cid = rt.new_id()
    p = _popen_run(rt, bundle, cid)
    try:
        wait_for(lambda: (rt.root / cid).exists() and rt.status(cid) == "running", what="running")
        rt.ok("kill", cid, "KILL")
        assert p.wait(20) == 128 + signal.SIGKILL
    finally:
        p.kill()
        p.wait()
    assert "does not exist" in rt.fail("state", cid)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR1, signal.SIGHUP, signal.SIGINT])
def test_run_forwards_signals(rt: Runtime, bundle: Bundle, out: Path, sig: int) -> None:
    n = int(sig)
    bundle.sh("trap 'echo %d > /out/got; exit 7' %d; touch /out/ready; while :; do sleep 0.05; done" % (n, n))
    cid = rt.new_id()
    p = _popen_run(rt, bundle, cid)
    try:
        wait_for(lambda: (out / "ready").exists(), what="container ready")
        p.send_signal(sig)
        assert p.wait(20) == 7
        assert (out / "got").read_text().strip() == str(n)
    finally:
        p.kill()
        p.wait()


def test_run_detach(rt: Runtime, bundle: Bundle, tmp_path: Path) -> None:
    bundle.args("sleep", "30")
    cid = rt.new_id()
    pid_file = tmp_path / "pid"
    r = rt.run(bundle, cid, "--detach", "--pid-file", pid_file, timeout=20)
    try:
        assert r.returncode == 0, r.stderr
        st = rt.state(cid)
        assert st["status"] == "running"
        assert int(pid_file.read_text()) == st["pid"]
        assert _cmdline(st["pid"]) == ["sleep", "30"]
    finally:
        rt.ok("delete", "-f", cid)


def test_run_d_short_flag(rt: Runtime, bundle: Bundle) -> None:
    bundle.args("sleep", "30")
    cid = rt.new_id()
    assert rt.run(bundle, cid, "-d").returncode == 0
    try:
        assert rt.status(cid) == "running"
    finally:
        rt.ok("delete", "-f", cid)


# ------------------------------------------------------------------------------------------ concurrency
def _parallel(rt: Runtime, argvs: list[list[object]], tmp_path: Path) -> list[tuple[int, str]]:
    procs = []
    for i, argv in enumerate(argvs):
        err = open(tmp_path / ("err%d" % i), "w+")
        procs.append((subprocess.Popen(rt.argv(*argv), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                       stderr=err), err))
    results = []
    for p, err in procs:
        rc = p.wait(60)
        err.seek(0)
        results.append((rc, err.read()))
        err.close()
    return results


def test_concurrent_create_of_one_id(rt: Runtime, bundle: Bundle, tmp_path: Path) -> None:
    bundle.args("sleep", "30")
    bundle.save()
    cid = rt.new_id()
    results = _parallel(rt, [["create", "-b", bundle.path, cid]] * 5, tmp_path)
    try:
        winners = [r for r in results if r[0] == 0]
        assert len(winners) == 1, results
        for rc, err in results:
            if rc:
                assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
                assert "exists" in err
        st = rt.state(cid)
        assert st["status"] == "created" and pid_alive(st["pid"])
        assert rt.ok("list", "-q").stdout.split() == [cid]
        rt.ok("start", cid)
        assert rt.status(cid) == "running"
    finally:
        rt.ok("delete", "-f", cid)


def test_concurrent_start_only_one_wins(rt: Runtime, bundle: Bundle, tmp_path: Path, out: Path) -> None:
    bundle.sh("echo x >> /out/runs; sleep 30")
    with rt.container(bundle) as cid:
        results = _parallel(rt, [["start", cid]] * 4, tmp_path)
        assert [r[0] for r in results].count(0) == 1, results
        for rc, err in results:
            assert "Traceback" not in err
        wait_for(lambda: (out / "runs").exists(), what="the process to run")
        time.sleep(0.1)
        assert (out / "runs").read_text() == "x\n"
        assert rt.status(cid) == "running"


def test_concurrent_force_delete(rt: Runtime, bundle: Bundle, tmp_path: Path) -> None:
    bundle.args("sleep", "30")
    cid = rt.create(bundle)
    rt.ok("start", cid)
    pid = rt.state(cid)["pid"]
    results = _parallel(rt, [["delete", "-f", cid]] * 4 + [["kill", cid, "KILL"]], tmp_path)
    for rc, err in results[:4]:
        assert rc == 0, err
    assert "Traceback" not in results[4][1]
    assert not pid_alive(pid)
    assert "does not exist" in rt.fail("state", cid)


def test_state_json_is_never_torn(rt: Runtime, bundle: Bundle, tmp_path: Path) -> None:
    """state while start/kill run in parallel always prints valid JSON (or a clean error)."""
    bundle.args("sleep", "30")
    with rt.container(bundle) as cid:
        starter = subprocess.Popen(rt.argv("start", cid), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(5):
            r = rt.cmd("state", cid)
            assert r.returncode == 0, r.stderr
            assert json.loads(r.stdout)["status"] in ("created", "running")
        assert starter.wait(30) == 0


def test_failed_create_leaves_nothing(rt: Runtime, bundle: Bundle) -> None:
    """A failure deep in create (a bind source that does not exist) leaves no state, cgroup or mount."""
    bundle.bind("/nonexistent/source/dir", "/mnt")
    bundle.save()
    cid = rt.new_id()
    rt.refuse(bundle, cid=cid)
    assert "does not exist" in rt.fail("state", cid)
    # the autouse check verifies cgroups and mounts


def test_long_container_id(rt: Runtime, bundle: Bundle) -> None:
    """A valid id of 200 characters works through the whole lifecycle (runc accepts it; nothing about the
    id may end up in a length-limited name such as a unix socket path)."""
    cid = rt.new_id() + "x" * 187
    assert len(cid) == 200
    bundle.args("sleep", "30")
    with rt.container(bundle, cid=cid):
        assert rt.status(cid) == "created"
        rt.ok("start", cid)
        assert rt.status(cid) == "running"
        assert rt.ok("list", "-q").stdout.split() == [cid]


def test_start_reports_a_failed_exec(rt: Runtime, bundle: Bundle) -> None:
    """args[0] exists and is executable but the kernel cannot run it: `start` says so (runc's start succeeds
    and the container silently stops)."""
    rootfs = bundle.private_rootfs()
    (rootfs / "bad").write_bytes(b"\x00\x01 not a program")
    (rootfs / "bad").chmod(0o755)
    bundle.args("/bad")
    with rt.container(bundle, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, capture_output=False) as cid:
        line = rt.fail("start", cid)
        assert "exec /bad: exec format error" in line
        rt.wait_status(cid, "stopped")
