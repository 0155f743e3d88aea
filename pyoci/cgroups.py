"""Cgroup placement on every mounted hierarchy, v1 and v2 behind one interface.

Resource limits are applied by a later layer; this module only creates the container's cgroup, moves
processes into it, lists and signals them, and removes it.
"""
from __future__ import annotations

import errno
import os
import time

from pyoci.errors import ContainerError, NotSupported

CGROUP2_MAGIC = "cgroup2"


class Hierarchy:
    """One mounted cgroup hierarchy: its mount point, its controllers ('' for cgroup2), its version."""

    def __init__(self, mountpoint: str, controllers: frozenset[str], version: int) -> None:
        self.mountpoint = mountpoint
        self.controllers = controllers
        self.version = version

    @property
    def name(self) -> str:
        """Key used in state files and /proc/PID/cgroup matching (e.g. 'cpu,cpuacct', 'name=systemd', '')."""
        return ",".join(sorted(self.controllers))


def hierarchies() -> list[Hierarchy]:
    """Hierarchies mounted in our mount namespace, one per hierarchy (first mount wins)."""
    seen: set[str] = set()
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fstype, _source, superopts = (right.split() + ["", ""])[:3]
            if fstype not in ("cgroup", "cgroup2"):
                continue
            mountpoint = left.split()[4]
            if fstype == "cgroup2":
                ctrls: frozenset[str] = frozenset()
                version = 2
            else:
                known = {"rw", "ro", "relatime", "noatime", "nosuid", "nodev", "noexec", "xattr", "clone_children",
                         "noprefix", "cpuset_v2_mode", "favordynmods"}
                ctrls = frozenset(o for o in superopts.split(",") if o not in known and not o.startswith("release_agent"))
                version = 1
            key = "%d:%s" % (version, ",".join(sorted(ctrls)))
            if key in seen:
                continue
            seen.add(key)
            out.append(Hierarchy(mountpoint, ctrls, version))
    return out


def process_cgroups(pid: int | str = "self") -> dict[str, str]:
    """Map hierarchy name -> path from /proc/PID/cgroup ('' is the cgroup2 hierarchy)."""
    out = {}
    with open("/proc/%s/cgroup" % pid) as f:
        for line in f:
            _hid, ctrls, path = line.rstrip("\n").split(":", 2)
            out[",".join(sorted(ctrls.split(","))) if ctrls else ""] = path
    return out


class Cgroup:
    """The container's cgroup, the same relative path on every hierarchy."""

    def __init__(self, paths: dict[str, str], created: list[str] | None = None) -> None:
        self.paths = paths  # hierarchy name -> absolute directory
        self.created = created or []  # directories we made, deepest last

    @classmethod
    def for_container(cls, cgroups_path: str, cid: str, systemd: bool = False) -> Cgroup:
        """Resolve linux.cgroupsPath like runc: absolute from each hierarchy's root, relative from ours."""
        if systemd or (":" in cgroups_path and not cgroups_path.startswith("/")):
            raise NotSupported("linux.cgroupsPath %r: the systemd cgroup driver is not supported (no systemd here)"
                               % cgroups_path)
        if ".." in cgroups_path.split("/"):
            raise ContainerError("linux.cgroupsPath %r: must not contain '..'" % cgroups_path)
        rel = cgroups_path or "/" + cid
        own = process_cgroups() if not rel.startswith("/") else {}
        paths = {}
        for h in hierarchies():
            base = own.get(h.name, "/") if own else "/"
            paths[h.name] = os.path.normpath(os.path.join(h.mountpoint, base.lstrip("/"), rel.lstrip("/")))
        return cls(paths)

    def create(self) -> None:
        """mkdir -p on every hierarchy; v1 cpuset levels inherit cpus/mems so tasks can join."""
        try:
            for name, path in self.paths.items():
                missing = []
                p = path
                while not os.path.isdir(p):
                    missing.append(p)
                    p = os.path.dirname(p)
                for d in reversed(missing):
                    os.mkdir(d, 0o755)
                    self.created.append(d)
                    if "cpuset" in name.split(","):
                        for f in ("cpuset.cpus", "cpuset.mems"):
                            _copy_from_parent(d, f)
        except OSError as e:
            self.destroy()
            raise ContainerError("cannot create cgroup: %s" % e) from None

    def add(self, pid: int) -> None:
        for path in self.paths.values():
            try:
                with open(os.path.join(path, "cgroup.procs"), "w") as f:
                    f.write(str(pid))
            except OSError as e:
                raise ContainerError("cannot move pid %d into cgroup %s: %s" % (pid, path, e.strerror)) from None

    def pids(self) -> list[int]:
        """Every process of the container (the hierarchy most likely to be complete is used)."""
        for name in sorted(self.paths, key=lambda n: ("pids" not in n, "freezer" not in n, n)):
            try:
                with open(os.path.join(self.paths[name], "cgroup.procs")) as f:
                    return [int(x) for x in f.read().split()]
            except OSError:
                continue
        return []

    def signal_all(self, sig: int) -> None:
        for pid in self.pids():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def destroy(self, timeout: float = 5.0) -> None:
        """Remove what we created (a directory still busy is retried until timeout)."""
        deadline = time.monotonic() + timeout
        dirs = list(self.created)  # never remove a cgroup someone else made
        for d in sorted(dirs, key=len, reverse=True):
            while True:
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError as e:
                    if e.errno != errno.EBUSY or time.monotonic() > deadline:
                        from pyoci import log

                        log.warning("cannot remove cgroup %s: %s" % (d, e.strerror))
                        break
                    time.sleep(0.01)


def _copy_from_parent(d: str, name: str) -> None:
    with open(os.path.join(os.path.dirname(d), name)) as f:
        value = f.read().strip()
    if value:
        with open(os.path.join(d, name), "w") as f:
            f.write(value)
