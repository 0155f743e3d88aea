"""--pidfd-socket PATH (runc's create/run/exec flag): a pidfd of the container's init, or of the exec'd
process, sent over a unix socket (SCM_RIGHTS, with "pidfd" as the message), so that a supervisor can wait
for and signal that very process with no pid-reuse race. The socket is connected before anything is made:
a wrong path fails the command with nothing left behind."""
from __future__ import annotations

import os
import _socket as socket  # the C module: socket.py's enums cost ~2 ms

from pyoci.errors import ContainerError
from pyoci.fdpass import send_fd


def connect(path: str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        s.settimeout(10)
        s.connect(path)
    except OSError as e:
        s.close()
        raise ContainerError("--pidfd-socket %s: cannot connect: %s" % (path, e.strerror or e)) from None
    return s


def send(sock: socket.socket, pid: int) -> None:
    """The pidfd of pid over sock, then both closed."""
    try:
        fd = os.pidfd_open(pid)
    except OSError as e:
        sock.close()
        raise ContainerError("--pidfd-socket: pidfd_open(%d): %s" % (pid, e.strerror)) from None
    try:
        send_fd(sock, fd, b"pidfd")
    except OSError as e:
        raise ContainerError("--pidfd-socket: cannot send the pidfd: %s" % (e.strerror or e)) from None
    finally:
        os.close(fd)
        sock.close()
