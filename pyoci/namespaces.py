"""Namespace creation and joining, and the id maps of a user namespace."""
from __future__ import annotations

import os

from pyoci.errors import ConfigError, ContainerError
from pyoci.spec import IDMapping, Linux, Namespace

# order matters when joining: the user namespace first (it owns the others), mount last but one, time after pid
JOIN_ORDER = ("user", "ipc", "uts", "network", "pid", "time", "cgroup", "mount")
PROC_NAME = {"pid": "pid", "network": "net", "mount": "mnt", "ipc": "ipc", "uts": "uts", "user": "user",
             "cgroup": "cgroup", "time": "time"}


def clone_flag(kind: str) -> int:
    from pyoci.syscalls import C

    return {"pid": C.CLONE_NEWPID, "network": C.CLONE_NEWNET, "mount": C.CLONE_NEWNS, "ipc": C.CLONE_NEWIPC,
            "uts": C.CLONE_NEWUTS, "user": C.CLONE_NEWUSER, "cgroup": C.CLONE_NEWCGROUP,
            "time": C.CLONE_NEWTIME}[kind]


def of_process(linux: Linux, pid: int) -> list[Namespace]:
    """Every namespace of the config, as process pid has it: to join (exec, startContainer hooks)."""
    return [Namespace(n.type, "/proc/%d/ns/%s" % (pid, PROC_NAME[n.type])) for n in linux.namespaces]


class Plan:
    """Which namespaces to create and which to join, decided once from the spec."""

    def __init__(self, linux: Linux) -> None:
        self.new: list[str] = []
        self.join: list[tuple[str, int]] = []  # (type, fd) opened in the runtime, before any fork
        self.joined: list[str] = []
        try:
            for ns in sorted(linux.namespaces, key=lambda n: JOIN_ORDER.index(n.type)):
                if ns.path:
                    self.join.append((ns.type, self._open(ns)))
                    self.joined.append(ns.type)
                else:
                    self.new.append(ns.type)
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _open(ns: Namespace) -> int:
        try:
            return os.open(ns.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise ConfigError("linux.namespaces: cannot open %s namespace %s: %s" % (ns.type, ns.path, e.strerror)) from None

    def has(self, kind: str) -> bool:
        return kind in self.new or kind in self.joined

    def close(self) -> None:
        for _, fd in self.join:
            os.close(fd)
        self.join = []

    def join_user(self) -> None:
        from pyoci import syscalls

        for kind, fd in self.join:
            if kind == "user":
                syscalls.setns(fd, clone_flag("user"))

    def join_others(self) -> None:
        from pyoci import syscalls

        for kind, fd in self.join:
            if kind != "user":
                syscalls.setns(fd, clone_flag(kind))

    def unshare_flags(self) -> int:
        """What stage 1 unshares: all new namespaces but the user namespace (unshared first, on its own)
        and the cgroup namespace, which the init unshares once the runtime has placed it in its cgroup."""
        flags = 0
        for kind in self.new:
            if kind not in ("user", "cgroup"):
                flags |= clone_flag(kind)
        return flags


def write_id_maps(pid: int, uid_maps: list[IDMapping], gid_maps: list[IDMapping], field: str = "linux") -> None:
    """Written by the runtime (outside the new user namespace), as only it holds the host ids. field: where
    the mappings come from in config.json, for the error."""
    for name, maps in (("uid_map", uid_maps), ("gid_map", gid_maps)):
        if not maps:
            continue
        data = "".join("%d %d %d\n" % (m.container_id, m.host_id, m.size) for m in maps)
        try:
            with open("/proc/%d/%s" % (pid, name), "w") as f:
                f.write(data)
        except OSError as e:
            raise ConfigError("%s.%s: cannot write %s: %s" % (
                field, "uidMappings" if name == "uid_map" else "gidMappings", name, e.strerror)) from None


def mapped_userns(uid_maps: list[IDMapping], gid_maps: list[IDMapping], field: str) -> int:
    """An fd of a new user namespace holding these mappings (for MOUNT_ATTR_IDMAP): a child unshares one, we
    write its maps and open it; the namespace lives on through the fd once the child is gone."""
    from pyoci import syscalls
    from pyoci.syscalls import C

    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(ready_r)
            os.close(done_w)
            syscalls.unshare(C.CLONE_NEWUSER)
            os.write(ready_w, b"1")
            os.read(done_r, 1)
        finally:
            os._exit(0)
    os.close(ready_w)
    os.close(done_r)
    try:
        if os.read(ready_r, 1) != b"1":
            raise ContainerError("cannot create a user namespace for an id-mapped mount")
        write_id_maps(pid, uid_maps, gid_maps, field)
        return os.open("/proc/%d/ns/user" % pid, os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(ready_r)
        os.close(done_w)
        os.waitpid(pid, 0)


def write_time_offsets(offsets: dict[str, tuple[int, int]]) -> None:
    """Must happen after unshare(CLONE_NEWTIME) and before the first process enters the namespace."""
    if not offsets:
        return
    data = "".join("%s %d %d\n" % (clock, s, ns) for clock, (s, ns) in offsets.items())
    with open("/proc/self/timens_offsets", "w") as f:
        f.write(data)


def loopback_up() -> None:
    """A new network namespace's lo is down: bring it up, as runc and crun do (a service binding 127.0.0.1
    must work without any network set-up). SIOCSIFFLAGS through the C socket module: no socket.py."""
    import _socket
    import fcntl
    import struct

    sock = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
    try:
        req = fcntl.ioctl(sock.fileno(), 0x8913, struct.pack("16sh22x", b"lo", 0))  # SIOCGIFFLAGS
        flags = struct.unpack_from("16sh", req)[1]
        fcntl.ioctl(sock.fileno(), 0x8914, struct.pack("16sh22x", b"lo", flags | 0x1))  # SIOCSIFFLAGS |= IFF_UP
    except OSError as e:
        raise ContainerError("cannot bring up lo in the new network namespace: %s" % e.strerror) from None
    finally:
        sock.close()
