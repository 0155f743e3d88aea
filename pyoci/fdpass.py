"""File descriptors over unix sockets (SCM_RIGHTS): the one way pyoci passes a pty master, a seccomp listener
or a pidfd, shared by the modules that do (no logic here, only the message framing)."""
from __future__ import annotations

import sys
import _socket as socket  # the C module: socket.py's enums and selectors cost ~2 ms per container


def send_fd(sock: socket.socket, fd: int, payload: bytes) -> int:
    """payload with fd attached; returns how much of payload went (a stream socket may take less)."""
    return sock.sendmsg([payload], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fd.to_bytes(4, sys.byteorder))])


def recv_with_fd(sock: socket.socket, size: int, flags: int = 0) -> tuple[bytes, int | None]:
    """One message and the fd attached to it, if any."""
    data, anc, _flags, _addr = sock.recvmsg(size, socket.CMSG_SPACE(4), flags)
    for level, kind, value in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            return data, int.from_bytes(value[:4], sys.byteorder)
    return data, None
