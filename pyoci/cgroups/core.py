"""The hierarchies mounted on this host and the container's cgroup on each of them (the ``Cgroup`` interface).

Creates the cgroup, moves processes into it, lists, signals, freezes them, and removes it; ``Cgroup.apply``
hands linux.resources to pyoci.cgroups.resources.
"""
from __future__ import annotations

import errno
import os
import time

from pyoci.errors import ConfigError, ContainerError, NotSupported

R = "linux.resources"  # the config's field, in messages

TYPE_CHECKING = False  # typing itself is not imported on the hot path
if TYPE_CHECKING:
    from pyoci.cgroups.resources import Apply


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


def start_migration_wait() -> int | None:
    """On a host with cgroup v1 hierarchies, fork a child that moves itself into the cgroup it is already in
    and exits; returns its pid (reap it), None on a pure cgroup v2 host (clone3 places the init there).

    Why: every cgroup migration takes the kernel's global cgroup_threadgroup_rwsem for writing, and the first
    one after a quiet spell waits for an RCU grace period while the lock changes mode (8-25 ms on the
    development VM); for about one grace period afterwards more migrations are cheap. The no-op move starts
    that wait in a child, so it overlaps the runtime's own work and the init's placement later finds the lock
    ready. The wait holds cgroup_mutex, which mkdir needs: call this once the cgroup exists. The child touches
    nothing but its own membership, and is never in the container's cgroup (whose pids.max it would count
    against)."""
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        return None
    pid = os.fork()
    if pid == 0:
        try:
            own = process_cgroups()
            h = next(h for h in hierarchies() if h.version == 1 and h.name in own)
            fd = os.open(os.path.join(h.mountpoint, own[h.name].lstrip("/"), "cgroup.procs"), os.O_WRONLY)
            os.write(fd, b"0")  # 0: the writer itself
        finally:
            os._exit(0)
    return pid


class Cgroup:
    """The container's cgroup, the same relative path on every hierarchy."""

    def __init__(self, paths: dict[str, str], created: list[str] | None = None,
                 roots: dict[str, str] | None = None) -> None:
        self.paths = paths  # hierarchy name -> absolute directory
        self.created = created or []  # directories we made, deepest last
        self.roots = roots or {}  # hierarchy name -> mount point (found from mountinfo when missing)

    unit: str | None = None  # the systemd unit, for the systemd driver's cgroups (pyoci.cgroups.systemd)

    @classmethod
    def for_container(cls, cgroups_path: str, cid: str, systemd: bool = False,
                      annotations: dict | None = None) -> Cgroup:
        """Resolve linux.cgroupsPath like runc: absolute from each hierarchy's root, relative from ours; with
        systemd, runc's slice:prefix:name (a systemd unit, pyoci.cgroups.systemd). Without it, that form is a
        directory name like any other, as runc's cgroupfs driver takes it (containerd's CRI plugin sends
        ``kubepods.slice:cri-containerd:ID`` when the kubelet's parent is a slice)."""
        if systemd:
            from pyoci.cgroups.systemd import SystemdCgroup

            return SystemdCgroup.for_unit(cgroups_path, cid, annotations)
        if ".." in cgroups_path.split("/"):
            raise ContainerError("linux.cgroupsPath %r: must not contain '..'" % cgroups_path)
        rel = cgroups_path or "/" + cid
        own = process_cgroups() if not rel.startswith("/") else {}
        paths, roots = {}, {}
        for h in hierarchies():
            base = own.get(h.name, "/") if own else "/"
            paths[h.name] = os.path.normpath(os.path.join(h.mountpoint, base.lstrip("/"), rel.lstrip("/")))
            roots[h.name] = h.mountpoint
            if paths[h.name] == os.path.normpath(h.mountpoint):
                raise ContainerError("linux.cgroupsPath %r: that is the root cgroup of %s, which holds the host's "
                                     "processes" % (cgroups_path, h.mountpoint))
        cg = cls(paths, roots=roots)
        if cg.pids():  # delete and kill --all act on everything in the cgroup: it must be the container's alone
            raise ContainerError("linux.cgroupsPath %r: the cgroup already has processes in it" % cgroups_path)
        return cg

    def missing(self) -> list[str]:
        """The directories create() will make, parents first: saved in the state before they exist, so that
        a runtime killed half-way leaves cgroups delete can find."""
        out = []
        for path in self.paths.values():
            new = []
            p = path
            while not os.path.isdir(p):
                new.append(p)
                p = os.path.dirname(p)
            out.extend(reversed(new))
        return out

    def create(self) -> None:
        """mkdir -p on every hierarchy; v1 cpuset levels with empty cpus/mems, ours or existing ones between
        the hierarchy's root and ours, take their parent's (as runc does) so tasks can join."""
        if not self.created:
            self.created = self.missing()
        try:
            for d in self.created:
                try:
                    os.mkdir(d, 0o755)
                except FileExistsError:
                    continue
            for name, path in self.paths.items():
                if "cpuset" in name.split(","):
                    _fill_cpuset(self.roots.get(name) or _mountpoint_of(path), path)
        except OSError as e:
            try:
                self.destroy()
            except ContainerError:
                pass  # the paths are in the state: delete --force retries
            raise ContainerError("cannot create cgroup: %s" % e) from None

    def record(self) -> dict:
        """What the state keeps of this cgroup (``from_record`` reads it back)."""
        return {"paths": self.paths, "created": self.created}

    @staticmethod
    def from_record(data: dict) -> Cgroup:
        if data.get("unit") is not None:
            from pyoci.cgroups.systemd import SystemdCgroup

            return SystemdCgroup(dict(data.get("paths", {})), list(data.get("created", [])), unit=data["unit"])
        return Cgroup(dict(data.get("paths", {})), list(data.get("created", [])))

    def plan(self, resources: dict | None, update: bool = False) -> Apply:
        """linux.resources checked and turned into writes (``execute`` does them), nothing written yet."""
        from pyoci.cgroups.resources import Apply

        planned = Apply(self, resources or {}, update)
        planned.plan()
        return planned

    def apply(self, resources: dict | None, update: bool = False) -> None:
        """Apply an OCI linux.resources object to this cgroup, like runc: every controller where it is mounted.

        Everything is checked before the first write (a field whose controller is missing on this host is an
        error naming the field); then the cgroup v2 controllers needed are enabled from the v2 root down,
        and the values are written. Any failed write is a ContainerError naming the field, file and value.
        update: `pyoci update` of a live container: device rules are rewritten only when given.
        """
        self.plan(resources, update).execute()

    def freeze(self, frozen: bool, timeout: float = 10.0) -> None:
        """pause/resume: the v1 freezer if mounted, else cgroup.freeze of v2; waits until the kernel is done."""
        v1 = next((p for n, p in self.paths.items() if "freezer" in n.split(",")), None)
        if v1 is not None:
            path, value, done = os.path.join(v1, "freezer.state"), "FROZEN" if frozen else "THAWED", None
        elif "" in self.paths:
            path, value, done = os.path.join(self.paths[""], "cgroup.freeze"), "1" if frozen else "0", "events"
        else:
            raise NotSupported("pause/resume: no freezer on this host (neither the v1 freezer nor cgroup v2)")
        deadline = time.monotonic() + timeout
        while True:
            try:
                write_value(path, value)
            except OSError as e:
                raise ContainerError("cannot write %s=%s: %s" % (path, value, e.strerror)) from None
            if self.frozen() == frozen:
                return
            if time.monotonic() > deadline:
                raise ContainerError("%s: the kernel did not finish %s the container" % (
                    path, "freezing" if frozen else "thawing"))
            time.sleep(0.002 if done else 0.001)

    def frozen(self) -> bool:
        v1 = next((p for n, p in self.paths.items() if "freezer" in n.split(",")), None)
        try:
            if v1 is not None:
                return read_value(os.path.join(v1, "freezer.state")).strip() == "FROZEN"
            if "" in self.paths:
                return "frozen 1" in read_value(os.path.join(self.paths[""], "cgroup.events")).splitlines()
        except OSError:
            pass
        return False

    def add(self, pid: int) -> None:
        for path in self.paths.values():
            try:
                with open(os.path.join(path, "cgroup.procs"), "w") as f:
                    f.write(str(pid))
            except OSError as e:
                raise ContainerError("cannot move pid %d into cgroup %s: %s" % (pid, path, e.strerror)) from None

    def sub(self, specs: list[str]) -> Cgroup:
        """`exec --cgroup [CONTROLLER[,CONTROLLER]:]PATH` (repeatable, runc's form): an existing sub-cgroup of
        this one, on the hierarchies of those controllers (cgroup v2's when it has them), or on every hierarchy
        without; the others stay the container's. A v2 hierarchy takes one path only."""
        paths = dict(self.paths)
        chosen: dict[str, str] = {}  # hierarchy name -> the path a controller's spec gave it
        for spec in sorted(specs, key=lambda x: ":" in x):  # PATH alone first: a controller's own one wins
            ctrl, _, rel = spec.partition(":") if ":" in spec else ("", "", spec)
            rel = rel.strip("/")  # "" (from "/"): the container's own cgroup
            if ".." in rel.split("/") or (":" in spec and not all(ctrl.split(","))):
                raise ContainerError("exec --cgroup %r: expected [CONTROLLER:]PATH, PATH a sub-cgroup of the "
                                     "container's (no '..')" % spec)
            names = list(paths) if not ctrl else [n for n in paths if self._has(n, ctrl.split(","))]
            if not names:
                raise ContainerError("exec --cgroup %r: the container has no cgroup with controller %s" % (spec, ctrl))
            for name in names:
                if ctrl and chosen.get(name, rel) != rel:
                    raise ContainerError("exec --cgroup %r: %s already gets %r from another controller (one "
                                         "hierarchy, one path)" % (spec, self.paths[name], chosen[name]))
                if ctrl:
                    chosen[name] = rel
                paths[name] = os.path.join(self.paths[name], rel) if rel else self.paths[name]
                if not os.path.isdir(paths[name]):
                    raise ContainerError("exec --cgroup %r: %s does not exist (make the sub-cgroup first)"
                                         % (spec, paths[name]))
        return Cgroup(paths)

    def _has(self, name: str, controllers: list[str]) -> bool:
        if name:  # a v1 hierarchy is named for its controllers
            return set(controllers) <= set(name.split(","))
        try:
            return set(controllers) <= set(read_value(os.path.join(self.paths[name], "cgroup.controllers")).split())
        except OSError:
            return False

    def pids(self) -> list[int]:
        """Every process of the container, in its cgroup and in any the container made below it (the hierarchy
        most likely to be complete is used)."""
        for name in sorted(self.paths, key=lambda n: ("pids" not in n, "freezer" not in n, n)):
            out: list[int] = []
            try:
                for d in [self.paths[name]] + _below(self.paths[name]):
                    with open(os.path.join(d, "cgroup.procs")) as f:
                        out.extend(int(x) for x in f.read().split())
            except OSError:
                continue
            return out
        return []

    def signal_all(self, sig: int) -> None:
        """sig to every process; SIGKILL (9) through cgroup.kill where the kernel has it (5.14+), which also gets
        the processes forked while the list is being walked."""
        if sig == 9 and "" in self.paths:
            try:
                write_value(os.path.join(self.paths[""], "cgroup.kill"), "1")
                return
            except OSError:
                pass  # older kernel: one by one
        for pid in self.pids():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def destroy(self, timeout: float = 5.0) -> None:
        """Remove what we created, and the cgroups the container made below its own, deepest first; a directory
        still busy after timeout is an error."""
        deadline = time.monotonic() + timeout
        own = set(self.paths.values())
        below = [d for path in own if path in self.created for d in _below(path)]
        for d in below + sorted(self.created, key=len, reverse=True):  # never remove a cgroup someone else made
            if d not in own and d not in below and _below(d):
                continue  # a level we made that now holds other containers' cgroups too: theirs to remove
            while True:
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError as e:
                    if e.errno != errno.EBUSY or time.monotonic() > deadline:
                        raise ContainerError("cannot remove cgroup %s: %s" % (d, e.strerror)) from None
                    time.sleep(0.01)


def _below(d: str) -> list[str]:
    """The cgroups below d, deepest first (none, usually: only a container with a writable cgroup mount makes
    them)."""
    out: list[str] = []
    try:
        with os.scandir(d) as it:
            subs = [e.path for e in it if e.is_dir(follow_symlinks=False)]
    except OSError:
        return out
    for sub in subs:
        out.extend(_below(sub))
        out.append(sub)
    return out


def _fill_cpuset(root: str, path: str) -> None:
    """Each level below root down to path: an empty cpuset.cpus/mems takes its parent's, top down."""
    rel = os.path.relpath(path, root)
    if rel.startswith(".."):
        return
    d = root
    for part in [p for p in rel.split("/") if p not in ("", ".")]:
        d = os.path.join(d, part)
        for name in ("cpuset.cpus", "cpuset.mems"):
            with open(os.path.join(d, name)) as f:
                if f.read().strip():
                    continue
            with open(os.path.join(os.path.dirname(d), name)) as f:
                value = f.read().strip()
            if value:
                write_value(os.path.join(d, name), value)


def _mountpoint_of(path: str) -> str:
    from pyoci.cgroups import hierarchies

    return next((h.mountpoint for h in hierarchies() if path.startswith(h.mountpoint.rstrip("/") + "/")), path)


def write_value(path: str, value: str) -> None:
    """One write(2) of value to a cgroup file (never created: a missing file is ENOENT)."""
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def read_value(path: str) -> str:
    with open(path) as f:
        return f.read().strip()
