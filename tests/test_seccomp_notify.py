"""Seccomp user notification (linux.seccomp.listenerPath, SCMP_ACT_NOTIFY): the runtime sends the container
process state and the listener fd to an agent over a unix socket (config-linux.md#the-container-process-state);
a small agent here answers one syscall with an errno and lets another continue; for run and for exec."""
from __future__ import annotations

import errno
import fcntl
import json
import os
import select
import signal
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import Bundle, Runtime, one_line_error

SECCOMP_IOCTL_NOTIF_RECV = 0xC0502100  # _IOWR('!', 0, struct seccomp_notif): 80 bytes
SECCOMP_IOCTL_NOTIF_SEND = 0xC0182101  # _IOWR('!', 1, struct seccomp_notif_resp): 24 bytes
SECCOMP_USER_NOTIF_FLAG_CONTINUE = 1
needs_x86_64 = pytest.mark.skipif(os.uname().machine != "x86_64", reason="syscall numbers are x86-64's")
SYS_MKDIR, SYS_MKDIRAT, SYS_CHMOD, SYS_FCHMODAT = 83, 258, 90, 268


class Agent:
    """A seccomp agent: accepts connections at path; per connection, the state and the fd; then answers:
    mkdir with ENOSPC, chmod by letting it run (CONTINUE). Records what it got."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(4)
        self.states: list[dict[str, Any]] = []
        self.fd_names: list[list[str]] = []
        self.answered: list[int] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        listeners: list[int] = []
        self.server.settimeout(0.1)
        try:
            while not self.stop.is_set():
                try:
                    conn, _ = self.server.accept()
                    with conn:
                        msg, fds, _flags, _addr = socket.recv_fds(conn, 1 << 16, 4)
                        while True:  # the state may come in several messages, the fds in the first
                            more = conn.recv(1 << 16)
                            if not more:
                                break
                            msg += more
                    doc = json.loads(msg)
                    self.states.append(doc)
                    self.fd_names.append(doc.get("fds", []))
                    listeners += fds
                except TimeoutError:
                    pass
                ready = select.select(listeners, [], [], 0.05)[0] if listeners else []
                for fd in ready:
                    self._answer(fd, listeners)
        finally:
            for fd in listeners:
                os.close(fd)

    def _answer(self, fd: int, listeners: list[int]) -> None:
        req = bytearray(80)
        try:
            fcntl.ioctl(fd, SECCOMP_IOCTL_NOTIF_RECV, req, True)
        except OSError:
            listeners.remove(fd)  # the filter's processes are gone
            os.close(fd)
            return
        nid, _pid, _flags, nr = struct.unpack_from("=QIIi", req)
        self.answered.append(nr)
        if nr in (SYS_MKDIR, SYS_MKDIRAT):
            resp = struct.pack("=QqiI", nid, 0, -errno.ENOSPC, 0)
        else:
            resp = struct.pack("=QqiI", nid, 0, 0, SECCOMP_USER_NOTIF_FLAG_CONTINUE)
        try:
            fcntl.ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND, bytearray(resp), True)
        except OSError:
            pass

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.server.close()


@pytest.fixture
def agent(tmp_path: Path) -> Any:
    a = Agent(tmp_path / "agent.sock")
    yield a
    a.close()


def notify_bundle(bundle: Bundle, listener: Path, metadata: str | None = None) -> None:
    bundle.add_mount("/tmp", "tmpfs", "tmpfs")
    bundle.linux["seccomp"] = notify_profile(listener, metadata)


def notify_profile(listener: Path, metadata: str | None = None) -> dict[str, Any]:
    prof: dict[str, Any] = {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": str(listener),
                            "syscalls": [{"names": ["mkdir", "mkdirat", "chmod", "fchmodat"],
                                          "action": "SCMP_ACT_NOTIFY"}]}
    if metadata is not None:
        prof["listenerMetadata"] = metadata
    return prof


SCRIPT = ("mkdir /tmp/d 2>&1 | grep -c 'No space left on device'; touch /tmp/f; chmod 600 /tmp/f; echo chmod=$?; "
          "stat -c %a /tmp/f; ls /proc/self/fd | wc -l")


@needs_x86_64
def test_run_sends_the_state_and_the_fd_and_the_agent_answers(rt: Runtime, bundle: Bundle, agent: Agent) -> None:
    notify_bundle(bundle, agent.path, "some=metadata")
    bundle.sh(SCRIPT)
    cid = rt.new_id()
    bundle.save()
    r = rt.cmd("run", "--bundle", bundle.path, cid)
    assert r.returncode == 0, r.stderr
    out = r.stdout.split()
    assert out[:3] == ["1", "chmod=0", "600"], (r.stdout, r.stderr, agent.answered)  # ENOSPC; continued
    assert SYS_MKDIR in agent.answered or SYS_MKDIRAT in agent.answered
    (state,) = agent.states
    assert agent.fd_names == [["seccompFd"]]
    assert state["ociVersion"] == "1.3.0" and state["metadata"] == "some=metadata"
    assert state["state"]["id"] == cid and state["state"]["status"] == "creating"
    assert state["pid"] == state["state"]["pid"] > 0
    # the container never held the listener: stdin, stdout, stderr and ls's own directory fd only
    assert int(out[3]) == 4, r.stdout


@needs_x86_64
def test_exec_gets_its_own_listener(rt: Runtime, bundle: Bundle, agent: Agent) -> None:
    notify_bundle(bundle, agent.path)
    bundle.args("sleep", "30")
    with rt.container(bundle, capture_output=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as cid:
        rt.ok("start", cid)
        out = rt.ok("exec", cid, "sh", "-c", SCRIPT).stdout.split()
        assert out[:3] == ["1", "chmod=0", "600"]
        assert len(agent.states) == 2  # create's and exec's
        exec_state = agent.states[1]
        assert exec_state["state"]["status"] == "running" and exec_state["pid"] != exec_state["state"]["pid"]


@needs_x86_64
def test_the_runtimes_own_syscalls_may_be_notified(rt: Runtime, bundle: Bundle, agent: Agent) -> None:
    """execve, openat, read, close and write notified (runc's "important syscalls", and write, which runc
    refuses): the listener reaches the agent as soon as the filter is loaded, before the init or the exec stage
    makes one more of those calls, so nothing waits for an agent that has no fd yet."""
    busy = ["execve", "openat", "open", "read", "close", "write"]
    bundle.linux["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": str(agent.path),
                               "syscalls": [{"names": busy, "action": "SCMP_ACT_NOTIFY"}]}
    bundle.args("sleep", "30")
    with rt.container(bundle, capture_output=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as cid:
        rt.ok("start", cid, timeout=30)
        assert rt.ok("exec", cid, "echo", "hi", timeout=30).stdout == "hi\n"
    assert len(agent.states) == 2 and {3, 59} <= set(agent.answered)  # close and execve went through the agent


def test_an_agent_that_is_not_there_fails_create_cleanly(rt: Runtime, bundle: Bundle, tmp_path: Path) -> None:
    bundle.linux["seccomp"] = notify_profile(tmp_path / "nobody.sock")
    bundle.sh("echo ran")
    r = rt.run(bundle, None)
    assert r.returncode != 0 and "ran" not in r.stdout
    assert one_line_error(r).startswith("pyoci: linux.seccomp.listenerPath: cannot send to the seccomp agent at "
                                        "%s: " % (tmp_path / "nobody.sock")), r.stderr


def test_a_listener_path_without_notify_rules_is_ignored(rt: Runtime, bundle: Bundle, tmp_path: Path) -> None:
    bundle.linux["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": str(tmp_path / "nobody.sock"),
                               "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}
    assert rt.sh(bundle, "echo ran").split() == ["ran"]


def test_notify_rules_need_a_listener_path(rt: Runtime, bundle: Bundle) -> None:
    bundle.linux["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW",
                               "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}
    assert "linux.seccomp.listenerPath: required because linux.seccomp.syscalls[0].action is SCMP_ACT_NOTIFY" \
        in rt.refuse(bundle)


SECCOMP_IOCTL_NOTIF_ID_VALID = 0x40082102  # _IOW('!', 2, __u64)
SYS_CHDIR = 80


def _notified_chdir_through_a_signal(rt: Runtime, bundle: Bundle, tmp_path: Path, flags: list[str]) -> bool:
    """The container's shell (its trap makes SIGUSR1 a handled, non-fatal signal) makes a notified chdir; once
    the agent has it, the test sends the shell SIGUSR1, then asks the kernel whether that notification is
    still pending (SECCOMP_IOCTL_NOTIF_ID_VALID) and lets every chdir continue (the init's own too, made
    before it execs the shell). Returns the answer."""
    sock = tmp_path / ("agent-%d.sock" % len(flags))
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(sock))
    server.listen(1)
    server.settimeout(60)
    bundle.linux["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": str(sock), "flags": flags,
                               "syscalls": [{"names": ["chdir"], "action": "SCMP_ACT_NOTIFY"}]}
    bundle.sh('trap "echo usr1" USR1; cd /tmp; echo cd=$?')
    bundle.save()
    run = subprocess.Popen(rt.argv("run", "--bundle", bundle.path, rt.new_id()), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    fd = -1
    try:
        conn, _ = server.accept()
        with conn:
            _msg, fds, _flags, _addr = socket.recv_fds(conn, 1 << 16, 4)
        (fd,) = fds

        def receive(timeout: float = 30) -> tuple[int, int]:
            assert select.select([fd], [], [], timeout)[0], "no notification within %d s" % timeout
            req = bytearray(80)
            fcntl.ioctl(fd, SECCOMP_IOCTL_NOTIF_RECV, req, True)  # ENOENT: the filter's processes are gone
            nid, pid, _f, nr = struct.unpack_from("=QIIi", req)
            assert nr == SYS_CHDIR, nr
            return nid, pid

        def let_run(nid: int) -> None:
            fcntl.ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND, bytearray(struct.pack("=QqiI", nid, 0, 0,
                                                                               SECCOMP_USER_NOTIF_FLAG_CONTINUE)), True)

        nid, pid = receive()
        while Path("/proc/%d/comm" % pid).read_text().strip() != "sh":  # the init's own, before it execs sh
            let_run(nid)
            nid, pid = receive()
        os.kill(pid, signal.SIGUSR1)
        time.sleep(0.3)  # the signal is delivered: without the flag the kernel has dropped the notification
        try:
            fcntl.ioctl(fd, SECCOMP_IOCTL_NOTIF_ID_VALID, bytearray(struct.pack("=Q", nid)), True)
            pending = True
        except OSError as e:
            assert e.errno == errno.ENOENT, e
            pending = False
        if pending:
            let_run(nid)
        else:  # interrupted: the chdir fails (EINTR) or, restarted, asks again
            try:
                let_run(receive(2)[0])
            except (AssertionError, FileNotFoundError):
                pass
        out, err = run.communicate(timeout=60)
        assert run.returncode == 0 and "usr1" in out.split(), (out, err)
        assert ("cd=0" in out.split()) or not pending, (out, err)
        return pending
    finally:
        if fd >= 0:
            os.close(fd)
        if run.poll() is None:
            run.kill()
            run.wait()
        server.close()


@needs_x86_64
def test_wait_killable_recv_keeps_a_received_notification_through_signals(rt: Runtime, bundle: Bundle,
                                                                           tmp_path: Path) -> None:
    """SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (libseccomp 2.5 cannot set it; pyoci loads that filter itself):
    a notified syscall the agent has received waits for its answer through a non-fatal signal. Without the
    flag the same signal interrupts it and the kernel drops the notification (the syscall is made again)."""
    assert _notified_chdir_through_a_signal(rt, bundle, tmp_path, ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"])
    assert not _notified_chdir_through_a_signal(rt, bundle, tmp_path, [])
