"""--pidfd-socket (runc's create/run/exec flag): a pidfd of the init, or of the exec'd process, arrives on the
socket; it refers to that very process (fdinfo's Pid) and signals it; a socket nobody listens on fails the
command with nothing left behind."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
from pathlib import Path

from conftest import Bundle, Runtime, one_line_error

DETACHED = {"capture_output": False, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}


class Receiver:
    """Accepts one connection at path and keeps the fd sent on it."""

    def __init__(self, path: Path) -> None:
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(1)
        self.path = path
        self.message = b""
        self.fds: list[int] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        conn, _ = self.server.accept()
        with conn:
            self.message, self.fds, _, _ = socket.recv_fds(conn, 64, 1)

    def fd(self) -> int:
        self.thread.join(10)
        self.server.close()
        assert self.message == b"pidfd" and len(self.fds) == 1, (self.message, self.fds)
        return self.fds[0]


def pid_of(pidfd: int) -> int:
    fdinfo = Path("/proc/self/fdinfo/%d" % pidfd).read_text()
    return int(next(line.split()[1] for line in fdinfo.splitlines() if line.startswith("Pid:")))


def test_create_sends_the_init_and_exec_the_process(rt: Runtime, bundle: Bundle, tmp_path: Path) -> None:
    bundle.args("sleep", "60")
    rx = Receiver(tmp_path / "init.sock")
    cid = rt.create(bundle, None, "--pidfd-socket", rx.path, **DETACHED)
    try:
        fd = rx.fd()
        try:
            assert pid_of(fd) == rt.state(cid)["pid"]
            rt.ok("start", cid)
            ex = Receiver(tmp_path / "exec.sock")
            rt.ok("exec", "-d", "--pid-file", tmp_path / "exec.pid", "--pidfd-socket", ex.path, cid, "sleep", "60",
                  **DETACHED)
            efd = ex.fd()
            assert pid_of(efd) == int((tmp_path / "exec.pid").read_text())
            os.close(efd)
            signal.pidfd_send_signal(fd, signal.SIGKILL)  # the init, through its pidfd
            rt.wait_status(cid, "stopped")
        finally:
            os.close(fd)
    finally:
        rt.delete(cid)


def test_run_sends_the_init(rt: Runtime, bundle: Bundle, tmp_path: Path) -> None:
    bundle.args("sleep", "60")
    rx = Receiver(tmp_path / "run.sock")
    cid = rt.new_id()
    bundle.save()
    rt.ok("run", "-d", "--bundle", bundle.path, "--pidfd-socket", rx.path, cid, **DETACHED)
    try:
        fd = rx.fd()
        assert pid_of(fd) == rt.state(cid)["pid"]
        os.close(fd)
    finally:
        rt.delete(cid)


def test_nobody_listening_fails_with_nothing_left(rt: Runtime, bundle: Bundle, tmp_path: Path) -> None:
    bundle.args("true")
    cid = rt.new_id()
    bundle.save()
    r = rt.cmd("create", "--bundle", bundle.path, "--pidfd-socket", tmp_path / "none.sock", cid)
    assert one_line_error(r) == "pyoci: --pidfd-socket %s: cannot connect: No such file or directory" % (
        tmp_path / "none.sock")
    assert "does not exist" in rt.fail("state", cid)
