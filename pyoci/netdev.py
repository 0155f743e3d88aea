"""linux.netDevices: move named network devices of the runtime's network namespace into the container's
(config-linux.md#network-devices), over rtnetlink (no `ip` subprocess).

A child holds a netlink socket of each namespace (a socket stays in the one it was made in). It checks every
new name against the container's namespace first (a move cannot be undone: a virtual device would die with a
failed container), then per device: reads its permanent addresses of global scope (a move drops them all),
moves and renames it in one RTM_NEWLINK (IFLA_NET_NS_FD + IFLA_IFNAME; a "%d" template lets the kernel pick),
adds the addresses back and sets it up. Nothing is moved back on delete: the spec forbids it (when the
namespace goes, the kernel returns physical devices to the initial namespace and destroys virtual ones).
"""
from __future__ import annotations

import os
import socket
import struct

from pyoci.errors import ConfigError, ContainerError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable

NETLINK_ROUTE = 0
RTM_NEWLINK, RTM_GETLINK, RTM_NEWADDR, RTM_GETADDR = 16, 18, 20, 22
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE, NLM_F_DUMP = 0x1, 0x4, 0x200, 0x400, 0x300
IFLA_IFNAME, IFLA_NET_NS_FD = 3, 28
IFA_ADDRESS, IFA_LOCAL, IFA_BROADCAST, IFA_FLAGS = 1, 2, 4, 8
IFA_F_PERMANENT = 0x80
RT_SCOPE_UNIVERSE = 0
IFF_UP = 0x1
IFNAMSIZ = 16
_KEPT_ATTRS = (IFA_ADDRESS, IFA_LOCAL, IFA_BROADCAST)


def name_problem(name: str) -> str | None:
    """Why the kernel would refuse name for a network device (dev_valid_name), or None."""
    if not name or len(name.encode()) >= IFNAMSIZ or "/" in name or ":" in name or name in (".", "..") or \
            any(c.isspace() for c in name):
        return "%r is not a network device name (1 to 15 bytes, no '/', ':' or spaces)" % name
    return None


def check(devices: dict, has_netns: bool) -> None:
    """Before anything is created: the names, a network namespace to move into, and each device present."""
    if not has_netns:
        raise ConfigError("linux.netDevices: needs a network namespace of the container's (linux.namespaces)")
    for host, entry in devices.items():
        where = "linux.netDevices.%s" % host
        for n, path in ((host, where), ((entry or {}).get("name") or host, where + ".name")):
            problem = name_problem(n)
            if problem:
                raise ConfigError("%s: %s" % (path, problem))
        try:
            socket.if_nametoindex(host)
        except OSError:
            raise ContainerError("%s: no such network device in the runtime's network namespace" % where) from None


def move(devices: dict, init_pid: int) -> None:
    """Move every device into the network namespace of init_pid, keep its addresses, set it up. Done by a
    child holding a netlink socket of each namespace (a socket keeps the one it was made in)."""
    ns = os.open("/proc/%d/ns/net" % init_pid, os.O_RDONLY | os.O_CLOEXEC)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            _move_from_child(devices, ns)
            os._exit(0)
        except BaseException as e:  # noqa: BLE001 - one line to the runtime
            os.write(w, str(e).encode()[:4000])
            os._exit(1)
    os.close(w)
    os.close(ns)
    with os.fdopen(r, "rb") as f:
        message = f.read().decode(errors="replace")
    _, status = os.waitpid(pid, 0)
    if status:
        raise ContainerError(message or "linux.netDevices: moving the devices failed")


def _move_from_child(devices: dict, ns: int) -> None:
    from pyoci import syscalls

    with _Netlink() as host:
        syscalls.setns(ns, syscalls.C.CLONE_NEWNET)
        with _Netlink() as inside:
            taken = {name for _, name in socket.if_nameindex()}  # the container's, now
            plan = []
            for dev, entry in devices.items():
                where = "linux.netDevices.%s" % dev
                name = (entry or {}).get("name") or dev
                if "%d" not in name and name in taken:  # checked before anything moves: a move cannot be undone
                    raise ContainerError("%s: cannot move it into the container: a device named %s exists there"
                                         % (where, name))
                taken.add(name)
                plan.append((where, name, _index(host, dev, where)))
            for where, name, index in plan:
                addrs = [k for k in (_kept(a, index) for a in host.dump(RTM_GETADDR, struct.pack("=BBBBI", 0, 0, 0, 0, 0)))
                         if k is not None]
                _do(where, "move it into the container", host.request, RTM_NEWLINK, 0,
                    _ifinfo(index) + _attr(IFLA_NET_NS_FD, struct.pack("=I", ns)) + _attr(IFLA_IFNAME, name.encode() + b"\0"))
                if "%d" not in name:  # the index changes where the container's namespace had it taken
                    index = _index(inside, name, where)
                for a in addrs:
                    _do(where, "add its address back", inside.request, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL,
                        struct.pack("=4sI", a[:4], index) + a[4:])
                _do(where, "set it up", inside.request, RTM_NEWLINK, 0, _ifinfo(index, IFF_UP, IFF_UP))


def _index(nl: _Netlink, dev: str, where: str) -> int:
    """The device's index in the namespace of nl (asked over its socket: this process may have left it)."""
    for body in nl.dump(RTM_GETLINK, _ifinfo(0)):
        for kind, value in _attrs(body[16:]):
            if kind == IFLA_IFNAME and value.rstrip(b"\0").decode(errors="replace") == dev:
                return int(struct.unpack_from("=i", body, 4)[0])
    raise ContainerError("%s: no such network device in the runtime's network namespace" % where)


def _do(where: str, what: str, call: Callable[..., None], *args: object) -> None:
    try:
        call(*args)
    except OSError as e:
        raise ContainerError("%s: cannot %s: %s" % (where, what, os.strerror(e.errno))) from None


def _kept(msg: bytes, index: int) -> bytes | None:
    """A permanent address of global scope on that device (the spec's rule), as what RTM_NEWADDR needs: the
    ifaddrmsg's family, prefix length, flags and scope (the index is the caller's) and the address attributes
    (not its label, which names the device by its old name, nor its lifetimes)."""
    family, prefix, flags, scope, ifindex = struct.unpack_from("=BBBBI", msg)
    attrs = _attrs(msg[8:])
    for kind, value in attrs:
        if kind == IFA_FLAGS:
            flags |= struct.unpack("=I", value[:4])[0]
    if ifindex != index or scope != RT_SCOPE_UNIVERSE or not flags & IFA_F_PERMANENT:
        return None
    return struct.pack("=BBBB", family, prefix, flags & 0xFF, scope) + b"".join(
        _attr(kind, value) for kind, value in attrs if kind in _KEPT_ATTRS)


def _ifinfo(index: int, flags: int = 0, change: int = 0) -> bytes:
    return struct.pack("=BBHiII", socket.AF_UNSPEC, 0, 0, index, flags, change)


def _attr(kind: int, value: bytes) -> bytes:
    data = struct.pack("=HH", 4 + len(value), kind) + value
    return data + b"\0" * (-len(data) % 4)


def _attrs(data: bytes) -> list[tuple[int, bytes]]:
    out, i = [], 0
    while i + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, i)
        if length < 4:
            break
        out.append((kind, data[i + 4:i + length]))
        i += (length + 3) & ~3
    return out


class _Netlink:
    """One NETLINK_ROUTE socket of the caller's network namespace; requests wait for their answer."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
        self.sock.bind((0, 0))
        self.seq = 0

    def __enter__(self) -> _Netlink:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.sock.close()

    def _send(self, kind: int, flags: int, payload: bytes) -> int:
        self.seq += 1
        self.sock.send(struct.pack("=IHHII", 16 + len(payload), kind, NLM_F_REQUEST | flags, self.seq, 0) + payload)
        return self.seq

    def _replies(self, seq: int) -> list[tuple[int, bytes]]:
        """Messages answering seq until the ack or NLMSG_DONE; an error answer raises OSError."""
        out = []
        while True:
            data = self.sock.recv(1 << 16)
            i = 0
            while i + 16 <= len(data):
                length, kind, _flags, mseq, _pid = struct.unpack_from("=IHHII", data, i)
                body = data[i + 16:i + length]
                i += (length + 3) & ~3
                if mseq != seq:
                    continue
                if kind == NLMSG_ERROR:
                    err = -struct.unpack_from("=i", body)[0]
                    if err:
                        raise OSError(err, os.strerror(err))
                    return out
                if kind == NLMSG_DONE:
                    return out
                out.append((kind, body))

    def request(self, kind: int, flags: int, payload: bytes) -> None:
        self._replies(self._send(kind, flags | NLM_F_ACK, payload))

    def dump(self, kind: int, payload: bytes) -> list[bytes]:
        return [body for _, body in self._replies(self._send(kind, NLM_F_DUMP, payload))]
