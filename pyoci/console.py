"""Terminals: a pty made inside the container whose master goes to --console-socket (SCM_RIGHTS), like runc."""
from __future__ import annotations

import fcntl
import os
import _socket as socket  # the C module: socket.py's enums and selectors cost ~2 ms per container
import struct
import termios

from pyoci import fdpass, syscalls
from pyoci.errors import ContainerError
from pyoci.syscalls import C

DEVPTS_SUPER_MAGIC = 0x1CD1


def connect(path: str) -> socket.socket:
    """Connected by the runtime on the host side, before the init leaves the host's filesystem."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as e:
        sock.close()
        raise ContainerError("--console-socket %s: %s" % (path, e.strerror)) from None
    return sock


def open_pty() -> tuple[int, int, str]:
    """Open /dev/ptmx (after pivot_root: the container's devpts), unlock, open the slave without following links."""
    try:
        master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as e:
        raise ContainerError("process.terminal: cannot open /dev/ptmx: %s (mount devpts at /dev/pts)"
                             % e.strerror) from None
    try:
        if syscalls.fstatfs_type(master) != DEVPTS_SUPER_MAGIC:
            raise ContainerError("process.terminal: /dev/ptmx is not on a devpts filesystem")
        fcntl.ioctl(master, C.TIOCSPTLCK, struct.pack("i", 0))
        n = struct.unpack("I", fcntl.ioctl(master, C.TIOCGPTN, b"\0\0\0\0"))[0]
        name = "/dev/pts/%d" % n
        try:  # the peer of this very master, no path lookup at all (CVE-2025-52565)
            slave = fcntl.ioctl(master, C.TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
        except OSError:  # kernels before 4.13
            slave = os.open(name, os.O_RDWR | os.O_NOCTTY | os.O_NOFOLLOW | os.O_CLOEXEC)
        if syscalls.fstatfs_type(slave) != DEVPTS_SUPER_MAGIC:
            os.close(slave)
            raise ContainerError("%s is not on a devpts filesystem" % name)
        return master, slave, name
    except BaseException:
        os.close(master)
        raise


def own_slave(slave: int, uid: int) -> None:
    """The process's own terminal: its user's, group tty (from the container's /etc/group) if there is one,
    mode 620, before the process runs (a non-root process must be able to reopen and set up /dev/tty)."""
    gid = -1
    try:
        with open("/etc/group") as f:
            for line in f:
                parts = line.split(":")
                if parts[0] == "tty" and len(parts) > 2 and parts[2].isdigit():
                    gid = int(parts[2])
                    break
    except OSError:
        pass
    try:
        os.fchown(slave, uid, gid)
        os.fchmod(slave, 0o620)
    except OSError as e:
        raise ContainerError("process.terminal: cannot give the terminal to uid %d: %s" % (uid, e.strerror)) from None


def clear_onlcr(fd: int) -> None:
    attrs = termios.tcgetattr(fd)
    attrs[1] &= ~termios.ONLCR
    termios.tcsetattr(fd, termios.TCSANOW, attrs)


def set_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def send_fd(sock: socket.socket, fd: int, name: str = "/dev/ptmx") -> None:
    fdpass.send_fd(sock, fd, name.encode())


def recv_fd(sock: socket.socket) -> int:
    _msg, fd = fdpass.recv_with_fd(sock, 4096)
    if fd is None:
        raise ContainerError("console socket: no file descriptor received")
    return fd


def make_controlling(slave: int, session: bool = True) -> None:
    """The slave as stdio and (session) controlling terminal of a new session."""
    if session:
        os.setsid()
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    for i in (0, 1, 2):
        os.dup2(slave, i, inheritable=True)
