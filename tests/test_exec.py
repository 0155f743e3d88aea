"""`pyoci exec`: another process in a created or running container, built like runc builds it."""
from __future__ import annotations

import json
import os
import subprocess
import threading
from pathlib import Path

from conftest import Bundle, ConsoleSocket, Runtime, pid_alive, read_until_eof, wait_for


# a process that outlives the command must not hold the test's capture pipes open
DETACHED = {"capture_output": False, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}


def running(rt: Runtime, bundle: Bundle) -> str:
    bundle.args("sleep", "60")
    cid = rt.create(bundle, None, **DETACHED)
    rt.ok("start", cid)
    return cid


def test_exec_runs_in_the_container_and_returns_its_exit_code(rt: Runtime, bundle: Bundle) -> None:
    cid = running(rt, bundle)
    try:
        r = rt.ok("exec", cid, "sh", "-c", "hostname; readlink /proc/self/ns/pid; readlink /proc/1/ns/pid")
        name, mine, init = r.stdout.split()
        assert name == bundle.config["hostname"]
        assert mine == init
        assert rt.cmd("exec", cid, "sh", "-c", "exit 7").returncode == 7
    finally:
        rt.delete(cid)


def test_exec_user_group_env_cwd(rt: Runtime, bundle: Bundle) -> None:
    cid = running(rt, bundle)
    try:
        assert rt.ok("exec", "--user", "1", cid, "id", "-u").stdout.strip() == "1"  # crun CVE-2026-30892
        out = rt.ok("exec", "-u", "1:100", "-g", "5", "-e", "FOO=bar", "--cwd", "/tmp", cid,
                    "sh", "-c", "id -u; id -g; id -G; echo $FOO; pwd").stdout.split("\n")
        assert out[:5] == ["1", "100", "100 5", "bar", "/tmp"]
    finally:
        rt.delete(cid)


def test_exec_capabilities(rt: Runtime, bundle: Bundle) -> None:
    cid = running(rt, bundle)
    try:
        status = rt.ok("exec", cid, "cat", "/proc/self/status").stdout
        caps = dict(line.split(":\t") for line in status.splitlines() if line.startswith("Cap"))
        assert int(caps["CapInh"], 16) == 0  # CVE-2022-29162
        assert int(caps["CapEff"], 16) == (1 << 5) | (1 << 10) | (1 << 29)  # KILL, NET_BIND_SERVICE, AUDIT_WRITE
        status = rt.ok("exec", "--cap", "CAP_SYS_ADMIN", cid, "cat", "/proc/self/status").stdout
        eff = int([line for line in status.splitlines() if line.startswith("CapEff")][0].split()[1], 16)
        assert eff & (1 << 21)
    finally:
        rt.delete(cid)


def test_exec_detached_pid_file_and_cgroup(rt: Runtime, bundle: Bundle, tmp_path: Path) -> None:
    cid = running(rt, bundle)
    pid_file = tmp_path / "exec.pid"
    try:
        rt.ok("exec", "-d", "--pid-file", pid_file, cid, "sleep", "30", **DETACHED)
        pid = int(pid_file.read_text())
        assert pid_alive(pid)
        init = rt.state(cid)["pid"]
        assert os.readlink("/proc/%d/ns/pid" % pid) == os.readlink("/proc/%d/ns/pid" % init)
        assert Path("/proc/%d/cgroup" % pid).read_text() == Path("/proc/%d/cgroup" % init).read_text()
    finally:
        rt.delete(cid)
    wait_for(lambda: not pid_alive(pid), what="the exec'd process to die with its container")


def test_exec_process_from_a_pipe(rt: Runtime, bundle: Bundle, tmp_path: Path) -> None:
    """`exec --process <(...)`: a FIFO is read to its end, as runc does (config.json must stay a regular file)."""
    cid = running(rt, bundle)
    fifo = tmp_path / "process.fifo"
    os.mkfifo(fifo)
    proc = {"args": ["echo", "from-pipe"], "cwd": "/", "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0}}
    writer = threading.Thread(target=lambda: fifo.write_text(json.dumps(proc)))
    writer.start()
    try:
        assert rt.ok("exec", "--process", fifo, cid).stdout == "from-pipe\n"
    finally:
        writer.join(10)
        rt.delete(cid)


def test_exec_process_file(rt: Runtime, bundle: Bundle, tmp_path: Path) -> None:
    cid = running(rt, bundle)
    proc = {"args": ["sh", "-c", "echo $X; id -u"], "cwd": "/", "env": ["X=from-file", "PATH=/bin"],
            "user": {"uid": 65534, "gid": 65534}}
    (tmp_path / "process.json").write_text(json.dumps(proc))
    try:
        assert rt.ok("exec", "--process", tmp_path / "process.json", cid).stdout.split() == ["from-file", "65534"]
    finally:
        rt.delete(cid)


def test_exec_sees_no_leaked_fds(rt: Runtime, bundle: Bundle, tmp_path: Path) -> None:
    cid = running(rt, bundle)
    leak = os.open(str(tmp_path), os.O_RDONLY)
    os.set_inheritable(leak, True)
    try:
        out = rt.ok("exec", cid, "ls", "/proc/self/fd", pass_fds=(leak,)).stdout.split()
        assert sorted(out) == ["0", "1", "2", "3"]  # 3 is ls's own directory fd
    finally:
        os.close(leak)
        rt.delete(cid)


def test_exec_with_a_terminal(rt: Runtime, bundle: Bundle, console: ConsoleSocket) -> None:
    cid = running(rt, bundle)
    try:
        rt.ok("exec", "-t", "-d", "--console-socket", console.path, cid, "sh", "-c", "tty")
        master = console.receive()
        try:
            assert b"/dev/pts/" in read_until_eof(master)
        finally:
            os.close(master)
    finally:
        rt.delete(cid)


def test_exec_errors(rt: Runtime, bundle: Bundle) -> None:
    assert "does not exist" in rt.fail("exec", "nosuch", "true")
    cid = running(rt, bundle)
    try:
        assert "not found" in rt.fail("exec", cid, "no-such-program")
        assert "--user" in rt.fail("exec", "-u", "root", cid, "true")
        assert "command is required" in rt.fail("exec", cid)
        assert "no such directory" in rt.fail("exec", "--cwd", "/no/such/dir", cid, "true")
        rt.ok("kill", cid, "KILL")
        rt.wait_status(cid, "stopped")
        assert "stopped" in rt.fail("exec", cid, "true")
    finally:
        rt.delete(cid)
