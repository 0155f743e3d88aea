"""The container's cgroup on every mounted hierarchy, v1 and v2 behind one interface.

Creates the cgroup, applies linux.resources to it (``Cgroup.apply``, runc's translation for v1 and v2,
hybrid hosts included: each controller is driven where it is actually mounted), moves processes into it,
lists and signals them, and removes it.
"""
from __future__ import annotations

import errno
import os
import time

from pyoci.errors import ConfigError, ContainerError, NotSupported

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

    def __init__(self, paths: dict[str, str], created: list[str] | None = None,
                 roots: dict[str, str] | None = None) -> None:
        self.paths = paths  # hierarchy name -> absolute directory
        self.created = created or []  # directories we made, deepest last
        self.roots = roots or {}  # hierarchy name -> mount point (found from mountinfo when missing)

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
        """mkdir -p on every hierarchy; v1 cpuset levels inherit cpus/mems so tasks can join."""
        if not self.created:
            self.created = self.missing()
        cpusets = {d for name, path in self.paths.items() if "cpuset" in name.split(",")
                   for d in self.created if path == d or path.startswith(d + "/")}
        try:
            for d in self.created:
                try:
                    os.mkdir(d, 0o755)
                except FileExistsError:
                    continue
                if d in cpusets:
                    for f in ("cpuset.cpus", "cpuset.mems"):
                        _copy_from_parent(d, f)
        except OSError as e:
            try:
                self.destroy()
            except ContainerError:
                pass  # the paths are in the state: delete --force retries
            raise ContainerError("cannot create cgroup: %s" % e) from None

    def apply(self, resources: dict | None, update: bool = False) -> None:
        """Apply an OCI linux.resources object to this cgroup, like runc: every controller where it is mounted.

        Everything is checked before the first write (a field whose controller is missing on this host is an
        error naming the field); then the cgroup v2 controllers needed are enabled from the v2 root down,
        and the values are written. Any failed write is a ContainerError naming the field, file and value.
        update: `pyoci update` of a live container: device rules are rewritten only when given.
        """
        _Apply(self, resources or {}, update).run()

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
                _write(path, value)
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
                return _read(os.path.join(v1, "freezer.state")).strip() == "FROZEN"
            if "" in self.paths:
                return "frozen 1" in _read(os.path.join(self.paths[""], "cgroup.events")).splitlines()
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
        """Remove what we created, deepest first; a directory still busy after timeout is an error."""
        deadline = time.monotonic() + timeout
        for d in sorted(self.created, key=len, reverse=True):  # never remove a cgroup someone else made
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


def _copy_from_parent(d: str, name: str) -> None:
    with open(os.path.join(os.path.dirname(d), name)) as f:
        value = f.read().strip()
    if value:
        with open(os.path.join(d, name), "w") as f:
            f.write(value)


# ---------------------------------------------------------------------------------------- linux.resources
R = "linux.resources"
# runc's AllowedDevices: what every container may use whatever its rules say (v1 devices controller).
DEFAULT_DEVICE_RULES = ("c *:* m", "b *:* m", "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm",
                        "c 5:0 rwm", "c 5:1 rwm", "c 5:2 rwm", "c 136:* rwm")


def _write(path: str, value: str) -> None:
    """One write(2) of value to a cgroup file (never created: a missing file is ENOENT)."""
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def _show(value: str) -> str:
    return '"%s"' % value if (" " in value or not value) else value


def cpu_weight_from_shares(shares: int) -> int:
    """runc's v1 -> v2 conversion: [2, 262144] -> [1, 10000] linearly (0 means unset)."""
    if shares == 0:
        return 0
    shares = min(max(shares, 2), 262144)
    return 1 + ((shares - 2) * 9999) // 262142


def io_weight_from_blkio(weight: int) -> int:
    """runc's blkio.weight -> io.weight conversion: [10, 1000] -> [1, 10000] linearly."""
    if weight == 0:
        return 0
    weight = min(max(weight, 10), 1000)
    return 1 + ((weight - 10) * 9999) // 990


def swap_for_v2(swap: int, limit: int) -> int:
    """OCI swap is memory+swap (v1 memsw); memory.swap.max is swap alone. 0 = unset, -1 = max (runc's rules)."""
    if limit == -1 and swap == 0:
        return -1  # "memory unlimited" means swap unlimited too, as on v1
    if swap in (-1, 0):
        return swap
    if limit == -1:
        return swap
    if limit == 0:
        raise ValueError("a swap limit needs a memory limit (linux.resources.memory.limit)")
    if limit < 0:
        raise ValueError("invalid memory limit %d" % limit)
    if swap < limit:
        raise ValueError("memory+swap limit %d is below the memory limit %d" % (swap, limit))
    return swap - limit


def _v2num(value: int) -> str:
    """v2 .max/.low value: 0 unset (''), -1 (any negative) 'max'."""
    if value == 0:
        return ""
    return "max" if value < 0 else str(value)


def _hugepage_sizes() -> list[str]:
    """Huge page sizes of this host as cgroup file names spell them (2MB, 1GB, 64KB)."""
    out: list[str] = []
    try:
        names = os.listdir("/sys/kernel/mm/hugepages")
    except OSError:
        return out
    for n in names:
        if n.startswith("hugepages-") and n.endswith("kB"):
            kb = int(n[len("hugepages-"):-2])
            for unit, size in (("GB", 1 << 20), ("MB", 1 << 10), ("KB", 1)):
                if kb % size == 0:
                    out.append("%d%s" % (kb // size, unit))
                    break
    return sorted(out, key=lambda s: (len(s), s))


class _Apply:
    """One linux.resources application: build every operation (checking it can be done), then run them."""

    def __init__(self, cg: Cgroup, resources: dict, update: bool = False) -> None:
        if not isinstance(resources, dict):
            raise _bad(R, "must be an object", resources)
        self.cg = cg
        self.res = resources
        self.update = update
        self.ops: list[tuple[str, object]] = []  # (field, callable) in order
        self.v2_needed: dict[str, str] = {}  # v2 controller -> field that needs it
        self._v2_root: str | None = None
        self._v2_avail: set[str] | None = None

    # ------------------------------------------------------------------ where each controller lives
    def v1_dir(self, ctrl: str) -> str | None:
        for name, path in self.cg.paths.items():
            if name and ctrl in name.split(","):
                return path
        return None

    def v2_root(self) -> str | None:
        if "" not in self.cg.paths:
            return None
        if self._v2_root is None:
            root = self.cg.roots.get("")
            if not root:
                path = self.cg.paths[""]
                mounts = [h.mountpoint for h in hierarchies() if h.version == 2]
                mounts = [m for m in mounts if path == m or path.startswith(m.rstrip("/") + "/")]
                root = max(mounts, key=len) if mounts else path
            self._v2_root = root
        return self._v2_root

    def v2_available(self) -> set[str]:
        if self._v2_avail is None:
            root = self.v2_root()
            try:
                self._v2_avail = set(_read(os.path.join(root, "cgroup.controllers")).split()) if root else set()
            except OSError:
                self._v2_avail = set()
        return self._v2_avail

    def locate(self, ctrl: str, field: str, v1_only: bool = False) -> tuple[int, str]:
        """(version, directory) of the container's cgroup for controller ctrl, or an error naming field."""
        d = self.v1_dir(ctrl)
        if d is not None:
            return 1, d
        if v1_only:
            raise ContainerError("%s: the %s controller is not mounted on this host (it exists on cgroup v1 only)"
                                 % (field, ctrl))
        if ctrl in self.v2_available():
            self.v2_needed.setdefault(ctrl, field)
            return 2, self.cg.paths[""]
        where = "" if self.v2_root() is None else (" nor available in %s/cgroup.controllers"
                                                    % self.v2_root())
        raise ContainerError("%s: the %s controller is not mounted on this host (not a cgroup v1 hierarchy%s)"
                             % (field, ctrl, where))

    # ------------------------------------------------------------------ i/o, errors naming the field
    def op(self, field: str, fn: object) -> None:
        self.ops.append((field, fn))

    @staticmethod
    def write(field: str, d: str, name: str, value: str) -> None:
        try:
            _write(os.path.join(d, name), value)
        except OSError as e:
            raise ContainerError("%s: cannot write %s=%s: %s" % (field, name, _show(value), e.strerror)) from None

    @staticmethod
    def try_write(d: str, name: str, value: str) -> int:
        """0, or the errno of a failed write (for runc's retry-in-another-order rules)."""
        try:
            _write(os.path.join(d, name), value)
        except OSError as e:
            return e.errno or errno.EIO
        return 0

    @staticmethod
    def read(field: str, d: str, name: str) -> str:
        try:
            return _read(os.path.join(d, name))
        except OSError as e:
            raise ContainerError("%s: cannot read %s: %s" % (field, name, e.strerror)) from None

    def write_op(self, field: str, d: str, name: str, value: str) -> None:
        self.op(field, lambda: self.write(field, d, name, value))

    # ------------------------------------------------------------------ run
    def run(self) -> None:
        for section in ("cpu", "memory", "blockIO", "network", "pids", "rdma", "unified"):
            v = self.res.get(section)
            if v is not None and not isinstance(v, dict):
                raise _bad("%s.%s" % (R, section), "must be an object", v)
        for section in ("devices", "hugepageLimits"):
            v = self.res.get(section)
            if v is not None and not isinstance(v, list):
                raise _bad("%s.%s" % (R, section), "must be an array", v)
        self.cpuset()
        self.devices()
        self.memory()
        self.cpu()
        self.pids()
        self.block_io()
        self.hugetlb()
        self.network()
        self.rdma()
        self.unified()
        if self.v2_needed:
            self.enable_v2()
        for _field, fn in self.ops:
            fn()  # type: ignore[operator]

    def enable_v2(self) -> None:
        """+controller in cgroup.subtree_control of every ancestor of the container's v2 cgroup (runc/crun)."""
        root = self.v2_root() or ""
        path = self.cg.paths[""]
        rel = os.path.relpath(path, root)
        parts = [] if rel == "." else rel.split("/")
        ancestors = ([root] if parts else []) + [os.path.join(root, *parts[:i]) for i in range(1, len(parts))]
        for a in ancestors:
            try:
                enabled = set(_read(os.path.join(a, "cgroup.subtree_control")).split())
            except OSError as e:
                field = next(iter(self.v2_needed.values()))
                raise ContainerError("%s: cannot read %s/cgroup.subtree_control: %s" % (field, a, e.strerror)) from None
            missing = [c for c in self.v2_needed if c not in enabled]
            if not missing:
                continue
            if self.try_write(a, "cgroup.subtree_control", " ".join("+" + c for c in missing)) == 0:
                continue
            for c in missing:  # find the one the kernel refuses
                try:
                    _write(os.path.join(a, "cgroup.subtree_control"), "+" + c)
                except OSError as e:
                    hint = " (the cgroup has processes of its own)" if e.errno == errno.EBUSY else ""
                    raise ContainerError("%s: cannot enable the %s controller in %s/cgroup.subtree_control: %s%s"
                                         % (self.v2_needed[c], c, a, e.strerror, hint)) from None

    # ------------------------------------------------------------------ devices
    def devices(self) -> None:
        if self.update and "devices" not in self.res:
            return
        rules = self.res.get("devices") or []
        lines: list[tuple[str, str, str]] = [("%s.devices" % R, "devices.deny", "a")]
        for i, rule in enumerate(rules):
            field = "%s.devices[%d]" % (R, i)
            if not isinstance(rule, dict):
                raise _bad(field, "must be an object", rule)
            allow = rule.get("allow")
            if not isinstance(allow, bool):
                raise _bad(field + ".allow", "must be true or false", allow)
            typ = rule.get("type") or "a"
            if typ not in ("a", "b", "c"):
                raise _bad(field + ".type", 'must be "a", "b" or "c"', typ)
            nums = []
            for key in ("major", "minor"):
                n = _int(rule, key, field)
                nums.append("*" if n is None or n < 0 else str(n))
            access = rule.get("access")
            if access is None or access == "":
                access = "rwm"
            if not isinstance(access, str) or set(access) - set("rwm"):
                raise _bad(field + ".access", 'must combine "r", "w" and "m"', access)
            target = "devices.allow" if allow else "devices.deny"
            if typ == "a" and nums == ["*", "*"] and set(access) == set("rwm"):
                lines.append((field, target, "a"))  # the default for every device
            else:
                for t in (("c", "b") if typ == "a" else (typ,)):
                    lines.append((field, target, "%s %s:%s %s" % (t, nums[0], nums[1], access)))
        lines += [("%s.devices (default rule)" % R, "devices.allow", rule) for rule in DEFAULT_DEVICE_RULES]
        d = self.v1_dir("devices")
        if d is not None:
            for field, name, value in lines:
                self.write_op(field, d, name, value)
        elif rules and "" in self.cg.paths:
            from pyoci import log

            log.warning("%s.devices: %d device rule(s) not enforced: pyoci does not implement the cgroup v2 "
                        "device controller (an eBPF program) yet" % (R, len(rules)))
        elif rules:
            raise ContainerError("%s.devices: the devices controller is not mounted on this host" % R)

    # ------------------------------------------------------------------ memory
    def memory(self) -> None:
        mem = self.res.get("memory") or {}
        M = R + ".memory"
        for key in ("kernel", "kernelTCP"):
            if mem.get(key) is not None:
                _int(mem, key, M)
                from pyoci import log

                log.debug("%s.%s: ignored (kernel memory limits are deprecated and not enforced by recent "
                          "kernels; runc ignores them too)" % (M, key))
        limit = _int(mem, "limit", M) or 0
        reservation = _int(mem, "reservation", M) or 0
        swap = _int(mem, "swap", M) or 0
        swappiness = _int(mem, "swappiness", M)
        if swappiness is not None and swappiness != -1 and not 0 <= swappiness <= 100:
            raise _bad(M + ".swappiness", "must be between 0 and 100", swappiness)
        if swappiness == -1:
            swappiness = None
        flags = {k: _bool(mem, k, M) for k in ("disableOOMKiller", "useHierarchy", "checkBeforeUpdate")}
        wanted = [k for k, v in (("limit", limit), ("reservation", reservation), ("swap", swap),
                                 ("swappiness", swappiness is not None),
                                 ("disableOOMKiller", flags["disableOOMKiller"]),
                                 ("useHierarchy", flags["useHierarchy"] is not None)) if v]
        if not wanted:
            return
        had = "memory" in self.v2_needed
        ver, d = self.locate("memory", "%s.%s" % (M, wanted[0]))
        if flags["checkBeforeUpdate"] and (limit > 0 or swap > 0):
            usage_file = "memory.usage_in_bytes" if ver == 1 else "memory.current"
            self.op(M + ".checkBeforeUpdate", lambda: _check_usage(d, usage_file, limit, swap))
        if ver == 1:
            self.memory_v1(d, limit, reservation, swap, swappiness, flags)
        else:
            self.memory_v2(d, limit, reservation, swap, swappiness, flags)
            if not (limit or reservation or swap) and not had:
                del self.v2_needed["memory"]  # only v1 knobs, ignored: nothing to enable

    def memory_v1(self, d: str, limit: int, reservation: int, swap: int, swappiness: int | None,
                  flags: dict[str, bool | None]) -> None:
        M = R + ".memory"
        memsw = "memory.memsw.limit_in_bytes"
        has_memsw = os.path.exists(os.path.join(d, memsw))
        if limit == -1 and swap == 0 and has_memsw:
            swap = -1  # unlimited memory means unlimited memory+swap (runc)
        if swap and not has_memsw:
            if swap == -1:
                swap = 0  # no swap accounting: nothing to lift
            else:
                raise ContainerError("%s.swap: swap accounting is not enabled on this host (no %s; boot with "
                                     "swapaccount=1)" % (M, memsw))

        def set_limit() -> None:
            if not limit:
                return
            try:
                _write(os.path.join(d, "memory.limit_in_bytes"), str(limit))
            except OSError as e:
                extra = ""
                if e.errno == errno.EBUSY:
                    try:
                        extra = " (usage %s, peak %s)" % (_read(os.path.join(d, "memory.usage_in_bytes")),
                                                          _read(os.path.join(d, "memory.max_usage_in_bytes")))
                    except OSError:
                        pass
                raise ContainerError("%s.limit: cannot write memory.limit_in_bytes=%d: %s%s"
                                     % (M, limit, e.strerror, extra)) from None

        def set_swap() -> None:
            if swap:
                self.write(M + ".swap", d, memsw, str(swap))

        def limits() -> None:
            # the kernel keeps limit <= memsw at every step: raising, memsw goes first; lowering, limit first
            if limit and swap:
                cur = int(self.read(M + ".limit", d, "memory.limit_in_bytes"))
                if swap == -1 or cur < swap:
                    set_swap()
                    set_limit()
                    return
            set_limit()
            set_swap()

        if limit or swap:
            self.op(M + ".limit", limits)
        if reservation:
            self.write_op(M + ".reservation", d, "memory.soft_limit_in_bytes", str(reservation))
        if flags["disableOOMKiller"]:
            self.write_op(M + ".disableOOMKiller", d, "memory.oom_control", "1")
        if swappiness is not None:
            self.write_op(M + ".swappiness", d, "memory.swappiness", str(swappiness))
        if flags["useHierarchy"] is not None:
            value = "1" if flags["useHierarchy"] else "0"

            def hierarchy() -> None:
                err = self.try_write(d, "memory.use_hierarchy", value)
                if err == errno.EINVAL and value == "0":
                    from pyoci import log

                    log.warning("%s.useHierarchy: false ignored: this kernel always accounts memory "
                                "hierarchically" % M)
                elif err:
                    raise ContainerError("%s.useHierarchy: cannot write memory.use_hierarchy=%s: %s"
                                         % (M, value, os.strerror(err)))

            self.op(M + ".useHierarchy", hierarchy)

    def memory_v2(self, d: str, limit: int, reservation: int, swap: int, swappiness: int | None,
                  flags: dict[str, bool | None]) -> None:
        M = R + ".memory"
        from pyoci import log

        if limit or reservation or swap:
            try:
                swap2 = swap_for_v2(swap, limit)
            except ValueError as e:
                raise ContainerError("%s.swap: %s" % (M, e)) from None
            swap_value = _v2num(swap2)
            if swap_value == "" and swap > 0:
                swap_value = "0"  # memory+swap == memory: no swap at all

            def swap_max() -> None:
                err = self.try_write(d, "memory.swap.max", swap_value)
                if err == errno.ENOENT and swap_value in ("max", "0"):
                    return  # no swap accounting: nothing to set
                if err:
                    raise ContainerError("%s.swap: cannot write memory.swap.max=%s: %s"
                                         % (M, swap_value, os.strerror(err)))

            if swap_value:
                self.op(M + ".swap", swap_max)
            if _v2num(limit):
                self.write_op(M + ".limit", d, "memory.max", _v2num(limit))
            if _v2num(reservation):
                self.write_op(M + ".reservation", d, "memory.low", _v2num(reservation))
        if swappiness is not None:
            log.warning("%s.swappiness: ignored: cgroup v2 has no per-cgroup swappiness" % M)
        if flags["disableOOMKiller"]:
            log.warning("%s.disableOOMKiller: ignored: cgroup v2 cannot disable the OOM killer" % M)
        if flags["useHierarchy"] is False:
            log.warning("%s.useHierarchy: false ignored: cgroup v2 is always hierarchical" % M)

    # ------------------------------------------------------------------ cpu and cpuset
    def cpuset(self) -> None:
        cpu = self.res.get("cpu") or {}
        C = R + ".cpu"
        values = [(k, _str(cpu, k, C)) for k in ("cpus", "mems")]
        values = [(k, v) for k, v in values if v]
        if not values:
            return
        _ver, d = self.locate("cpuset", "%s.%s" % (C, values[0][0]))
        for key, value in values:
            self.write_op("%s.%s" % (C, key), d, "cpuset." + key, value)

    def cpu(self) -> None:
        cpu = self.res.get("cpu") or {}
        C = R + ".cpu"
        shares = _int(cpu, "shares", C) or 0
        quota = _int(cpu, "quota", C) or 0
        period = _int(cpu, "period", C) or 0
        burst = _int(cpu, "burst", C)
        rt_runtime = _int(cpu, "realtimeRuntime", C) or 0
        rt_period = _int(cpu, "realtimePeriod", C) or 0
        idle = _int(cpu, "idle", C)
        for key, value in (("shares", shares), ("period", period), ("burst", burst),
                           ("realtimePeriod", rt_period)):
            if value is not None and value < 0:
                raise _bad("%s.%s" % (C, key), "must not be negative", value)
        wanted = [k for k, v in (("shares", shares), ("quota", quota), ("period", period),
                                 ("realtimeRuntime", rt_runtime), ("realtimePeriod", rt_period)) if v]
        wanted += [k for k, v in (("burst", burst), ("idle", idle)) if v is not None]
        if not wanted:
            return
        if burst and quota > 0 and burst > quota:
            raise _bad(C + ".burst", "must not exceed cpu.quota (%d)" % quota, burst)
        ver, d = self.locate("cpu", "%s.%s" % (C, wanted[0]))
        if ver == 1:
            self.cpu_v1(d, shares, quota, period, burst, rt_runtime, rt_period, idle)
        else:
            for key, value in (("realtimeRuntime", rt_runtime), ("realtimePeriod", rt_period)):
                if value:
                    raise ContainerError("%s.%s: real-time group scheduling is not supported on cgroup v2"
                                         % (C, key))
            self.cpu_v2(d, shares, quota, period, burst, idle)

    def cpu_v1(self, d: str, shares: int, quota: int, period: int, burst: int | None, rt_runtime: int,
               rt_period: int, idle: int | None) -> None:
        C = R + ".cpu"
        if shares:
            def set_shares() -> None:
                self.write(C + ".shares", d, "cpu.shares", str(shares))
                got = int(self.read(C + ".shares", d, "cpu.shares"))
                if got != shares:  # the kernel clamps silently
                    raise ContainerError("%s.shares: %d is out of range: the %s allowed cpu.shares is %d"
                                         % (C, shares, "maximum" if shares > got else "minimum", got))

            self.op(C + ".shares", set_shares)

        def bandwidth() -> None:
            # runc's order: a new period or burst may be refused (EINVAL) until the new quota is in
            retry_period = retry_burst = False
            if period:
                err = self.try_write(d, "cpu.cfs_period_us", str(period))
                if err == errno.EINVAL and quota:
                    retry_period = True
                elif err:
                    raise ContainerError("%s.period: cannot write cpu.cfs_period_us=%d: %s"
                                         % (C, period, os.strerror(err)))
            if burst is not None:
                err = self.try_write(d, "cpu.cfs_burst_us", str(burst))
                if err == errno.ENOENT:
                    from pyoci import log

                    log.debug("%s.burst: ignored: this kernel has no cpu.cfs_burst_us" % C)
                elif err == errno.EINVAL and quota:
                    retry_burst = True
                elif err:
                    raise ContainerError("%s.burst: cannot write cpu.cfs_burst_us=%d: %s"
                                         % (C, burst, os.strerror(err)))
            if quota:
                self.write(C + ".quota", d, "cpu.cfs_quota_us", str(quota))
                if retry_period:
                    self.write(C + ".period", d, "cpu.cfs_period_us", str(period))
                if retry_burst:
                    self.write(C + ".burst", d, "cpu.cfs_burst_us", str(burst))

        if period or quota or burst is not None:
            self.op(C + ".quota", bandwidth)
        if idle is not None:
            self.write_op(C + ".idle", d, "cpu.idle", str(idle))

        def realtime() -> None:
            retry = False
            if rt_period:
                err = self.try_write(d, "cpu.rt_period_us", str(rt_period))
                if err == errno.EINVAL and rt_runtime:
                    retry = True
                elif err:
                    raise ContainerError("%s.realtimePeriod: cannot write cpu.rt_period_us=%d: %s"
                                         % (C, rt_period, os.strerror(err)))
            if rt_runtime:
                self.write(C + ".realtimeRuntime", d, "cpu.rt_runtime_us", str(rt_runtime))
                if retry:
                    self.write(C + ".realtimePeriod", d, "cpu.rt_period_us", str(rt_period))

        if rt_period or rt_runtime:
            if not os.path.exists(os.path.join(d, "cpu.rt_runtime_us")):
                field = C + (".realtimeRuntime" if rt_runtime else ".realtimePeriod")
                raise ContainerError("%s: real-time group scheduling is not available on this host (the kernel "
                                     "has no CONFIG_RT_GROUP_SCHED)" % field)
            self.op(C + ".realtimeRuntime", realtime)

    def cpu_v2(self, d: str, shares: int, quota: int, period: int, burst: int | None, idle: int | None) -> None:
        C = R + ".cpu"
        if idle is not None:
            self.write_op(C + ".idle", d, "cpu.idle", str(idle))
        if shares and not idle:  # cpu.weight cannot be set on an idle cgroup
            self.write_op(C + ".shares", d, "cpu.weight", str(cpu_weight_from_shares(shares)))

        def bandwidth() -> None:
            retry_burst = False
            if burst is not None:
                err = self.try_write(d, "cpu.max.burst", str(burst))
                if err == errno.EINVAL and (quota or period):
                    retry_burst = True
                elif err:
                    raise ContainerError("%s.burst: cannot write cpu.max.burst=%d: %s"
                                         % (C, burst, os.strerror(err)))
            if quota or period:
                value = "%s %d" % (quota if quota > 0 else "max", period or 100000)
                self.write(C + (".quota" if quota else ".period"), d, "cpu.max", value)
                if retry_burst:
                    self.write(C + ".burst", d, "cpu.max.burst", str(burst))

        if quota or period or burst is not None:
            self.op(C + ".quota", bandwidth)

    # ------------------------------------------------------------------ pids
    def pids(self) -> None:
        pids = self.res.get("pids") or {}
        limit = _int(pids, "limit", R + ".pids")
        if limit is None:
            return
        _ver, d = self.locate("pids", R + ".pids.limit")
        # runtime-spec: -1 (any negative) is "max"; 0 is a real limit (no new task at all)
        self.write_op(R + ".pids.limit", d, "pids.max", "max" if limit < 0 else str(limit))

    # ------------------------------------------------------------------ block I/O
    def block_io(self) -> None:
        bio = self.res.get("blockIO") or {}
        B = R + ".blockIO"
        weight = _int(bio, "weight", B) or 0
        leaf = _int(bio, "leafWeight", B) or 0
        wdev = [(f, _dev(e, f), _int(e, "weight", f) or 0, _int(e, "leafWeight", f) or 0)
                for f, e in _items(bio, "weightDevice", B)]
        throttles = []
        for key, v1file, v2key in (("throttleReadBpsDevice", "blkio.throttle.read_bps_device", "rbps"),
                                   ("throttleWriteBpsDevice", "blkio.throttle.write_bps_device", "wbps"),
                                   ("throttleReadIOPSDevice", "blkio.throttle.read_iops_device", "riops"),
                                   ("throttleWriteIOPSDevice", "blkio.throttle.write_iops_device", "wiops")):
            for f, e in _items(bio, key, B):
                rate = _int(e, "rate", f)
                if rate is None or rate < 0:
                    raise _bad(f + ".rate", "must be a non-negative integer", e.get("rate"))
                throttles.append((f, _dev(e, f), rate, v1file, v2key))
        wanted = [k for k in ("weight", "leafWeight", "weightDevice", "throttleReadBpsDevice",
                              "throttleWriteBpsDevice", "throttleReadIOPSDevice", "throttleWriteIOPSDevice")
                  if bio.get(k)]
        if not wanted:
            return
        d = self.v1_dir("blkio")
        if d is not None:
            self.block_io_v1(d, weight, leaf, wdev, throttles)
        else:
            _ver, d = self.locate("io", "%s.%s" % (B, wanted[0]))
            self.block_io_v2(d, weight, leaf, wdev, throttles)

    def block_io_v1(self, d: str, weight: int, leaf: int, wdev: list, throttles: list) -> None:
        B = R + ".blockIO"
        if os.path.exists(os.path.join(d, "blkio.weight")):
            wfile, wdfile = "blkio.weight", "blkio.weight_device"
        elif os.path.exists(os.path.join(d, "blkio.bfq.weight")):
            wfile, wdfile = "blkio.bfq.weight", "blkio.bfq.weight_device"
        else:
            wfile = wdfile = ""
        no_weight = ("proportional I/O weights are not available on this host (no blkio.weight nor "
                     "blkio.bfq.weight: no disk uses the BFQ or CFQ scheduler)")
        if weight:
            if not wfile:
                raise ContainerError("%s.weight: %s" % (B, no_weight))
            self.write_op(B + ".weight", d, wfile, str(weight))
        no_leaf = "leaf weights are not available on this host (no %s: they need the CFQ scheduler)"
        if leaf:
            if not os.path.exists(os.path.join(d, "blkio.leaf_weight")):
                raise ContainerError("%s.leafWeight: %s" % (B, no_leaf % "blkio.leaf_weight"))
            self.write_op(B + ".leafWeight", d, "blkio.leaf_weight", str(leaf))
        for f, dev, w, lw in wdev:
            if w:
                if not wdfile:
                    raise ContainerError("%s.weight: %s" % (f, no_weight))
                self.write_op(f + ".weight", d, wdfile, "%s %d" % (dev, w))
            if lw:
                if not os.path.exists(os.path.join(d, "blkio.leaf_weight_device")):
                    raise ContainerError("%s.leafWeight: %s" % (f, no_leaf % "blkio.leaf_weight_device"))
                self.write_op(f + ".leafWeight", d, "blkio.leaf_weight_device", "%s %d" % (dev, lw))
        for f, dev, rate, v1file, _v2key in throttles:
            self.write_op(f, d, v1file, "%s %d" % (dev, rate))

    def block_io_v2(self, d: str, weight: int, leaf: int, wdev: list, throttles: list) -> None:
        B = R + ".blockIO"
        from pyoci import log

        if leaf or any(lw for _f, _d, _w, lw in wdev):
            log.warning("%s.leafWeight: ignored: cgroup v2 has no leaf weights" % B)

        def weights() -> None:
            bfq = os.path.join(d, "io.bfq.weight")
            has_bfq = os.path.exists(bfq)
            per_device_bfq = False
            if has_bfq:  # per-device BFQ weights since 5.4: the file then reads "default N"
                try:
                    per_device_bfq = not _read(bfq).isdigit()
                except OSError:
                    pass
            if weight:
                if has_bfq:
                    self.write(B + ".weight", d, "io.bfq.weight", str(weight))
                else:
                    self.write(B + ".weight", d, "io.weight", str(io_weight_from_blkio(weight)))
            for f, dev, w, _lw in wdev:
                if not w:
                    continue
                if per_device_bfq:
                    self.write(f + ".weight", d, "io.bfq.weight", "%s %d" % (dev, w))
                else:
                    self.write(f + ".weight", d, "io.weight", "%s %d" % (dev, io_weight_from_blkio(w)))

        if weight or any(w for _f, _d, w, _lw in wdev):
            self.op(B + ".weight", weights)
        for f, dev, rate, _v1file, v2key in throttles:
            if rate:  # runc: 0 means no limit, nothing to write
                self.write_op(f, d, "io.max", "%s %s=%d" % (dev, v2key, rate))

    # ------------------------------------------------------------------ hugetlb
    def hugetlb(self) -> None:
        entries = list(_items(self.res, "hugepageLimits", R))
        if not entries:
            return
        ver, d = self.locate("hugetlb", R + ".hugepageLimits")
        suffix = ".limit_in_bytes" if ver == 1 else ".max"
        for f, e in entries:
            size = e.get("pageSize")
            if not isinstance(size, str) or not size or "/" in size or size.startswith("."):
                raise _bad(f + ".pageSize", 'must be a huge page size such as "2MB"', size)
            limit = _int(e, "limit", f)
            if limit is None or limit < 0:
                raise _bad(f + ".limit", "must be a non-negative integer", e.get("limit"))

            def set_one(f: str = f, size: str = size, limit: int = limit) -> None:
                name = "hugetlb.%s%s" % (size, suffix)
                if not os.path.exists(os.path.join(d, name)):
                    raise ContainerError("%s.pageSize: %r is not a huge page size of this host (it has %s)"
                                         % (f, size, ", ".join(_hugepage_sizes()) or "none"))
                self.write(f + ".limit", d, name, str(limit))
                rsvd = "hugetlb.%s.rsvd%s" % (size, suffix)  # reservations too, where the kernel has them
                if os.path.exists(os.path.join(d, rsvd)):
                    self.write(f + ".limit", d, rsvd, str(limit))

            self.op(f, set_one)

    # ------------------------------------------------------------------ network, rdma
    def network(self) -> None:
        net = self.res.get("network") or {}
        N = R + ".network"
        classid = _int(net, "classID", N)
        if classid:  # 0 is no class (runc writes nothing either)
            _ver, d = self.locate("net_cls", N + ".classID", v1_only=True)
            self.write_op(N + ".classID", d, "net_cls.classid", str(classid))
        prios = list(_items(net, "priorities", N))
        if prios:
            _ver, d = self.locate("net_prio", N + ".priorities", v1_only=True)
            for f, e in prios:
                name = e.get("name")
                prio = _int(e, "priority", f)
                if not isinstance(name, str) or not name or " " in name or "\n" in name:
                    raise _bad(f + ".name", "must be a network interface name", name)
                if prio is None or prio < 0:
                    raise _bad(f + ".priority", "must be a non-negative integer", e.get("priority"))
                self.write_op(f, d, "net_prio.ifpriomap", "%s %d" % (name, prio))

    def rdma(self) -> None:
        rdma = self.res.get("rdma") or {}
        if not rdma:
            return
        _ver, d = self.locate("rdma", R + ".rdma")
        for dev, lim in rdma.items():
            f = "%s.rdma.%s" % (R, dev)
            if not isinstance(lim, dict):
                raise _bad(f, "must be an object", lim)
            if not dev or any(c in dev for c in " \n/"):
                raise _bad(f, "must be an RDMA device name", dev)
            value = dev
            for key, word in (("hcaHandles", "hca_handle"), ("hcaObjects", "hca_object")):
                n = _int(lim, key, f)
                if n is not None:
                    value += " %s=%d" % (word, n)
            if value == dev:
                raise _bad(f, "must set hcaHandles or hcaObjects", lim)
            self.write_op(f, d, "rdma.max", value)

    # ------------------------------------------------------------------ unified (raw cgroup v2 files)
    def unified(self) -> None:
        unified = self.res.get("unified") or {}
        if not unified:
            return
        U = R + ".unified"
        if "" not in self.cg.paths:
            raise ContainerError("%s: cgroup v2 is not mounted on this host (cgroup v1 only)" % U)
        d = self.cg.paths[""]
        for key, value in unified.items():
            f = "%s.%s" % (U, key)
            if not isinstance(key, str) or not key or "/" in key or key in (".", ".."):
                raise _bad(f, 'must be a cgroup file name (no "/")', key)
            if not isinstance(value, str):
                raise _bad(f, "must be a string", value)
            ctrl, dot, _rest = key.partition(".")
            if not dot or not ctrl:
                raise _bad(f, "must be CONTROLLER.FILE, such as memory.high", key)
            if ctrl != "cgroup":
                if ctrl in self.v2_available():
                    self.v2_needed.setdefault(ctrl, f)
                elif self.v1_dir(ctrl) is not None:
                    raise ContainerError("%s: the %s controller is mounted as cgroup v1 on this host, not on the "
                                         "cgroup v2 hierarchy" % (f, ctrl))
                else:
                    raise ContainerError("%s: the %s controller is not available on this host (not in %s/"
                                         "cgroup.controllers)" % (f, ctrl, self.v2_root()))

            def set_one(f: str = f, key: str = key, value: str = value) -> None:
                lines = [line for line in value.split("\n") if line.strip()] or [value]
                for line in lines:  # one write per line (io.max, ...), as runc does
                    self.write(f, d, key, line)

            self.op(f, set_one)


def _check_usage(d: str, usage_file: str, limit: int, swap: int) -> None:
    """linux.resources.memory.checkBeforeUpdate: refuse a limit at or below the current usage."""
    try:
        usage = int(_read(os.path.join(d, usage_file)))
    except (OSError, ValueError):
        return  # best effort, as runc
    M = R + ".memory"
    if swap > 0 and swap <= usage:
        raise ContainerError("%s.swap: memory+swap limit %d is not above the current usage %d "
                             "(checkBeforeUpdate)" % (M, swap, usage))
    if limit > 0 and limit <= usage:
        raise ContainerError("%s.limit: memory limit %d is not above the current usage %d (checkBeforeUpdate)"
                             % (M, limit, usage))


def _bad(field: str, why: str, value: object) -> Exception:
    return ConfigError("%s: %s, got %r" % (field, why, value))


def _int(obj: dict, key: str, parent: str) -> int | None:
    v = obj.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise _bad("%s.%s" % (parent, key), "must be an integer", v)
    return v


def _bool(obj: dict, key: str, parent: str) -> bool | None:
    v = obj.get(key)
    if v is not None and not isinstance(v, bool):
        raise _bad("%s.%s" % (parent, key), "must be true or false", v)
    return v


def _str(obj: dict, key: str, parent: str) -> str | None:
    v = obj.get(key)
    if v is not None and not isinstance(v, str):
        raise _bad("%s.%s" % (parent, key), "must be a string", v)
    return v


def _items(obj: dict, key: str, parent: str):  # type: ignore[no-untyped-def]
    """(field, entry) for each object of the array obj[key]."""
    v = obj.get(key)
    if v is None:
        return
    if not isinstance(v, list):
        raise _bad("%s.%s" % (parent, key), "must be an array", v)
    for i, e in enumerate(v):
        f = "%s.%s[%d]" % (parent, key, i)
        if not isinstance(e, dict):
            raise _bad(f, "must be an object", e)
        yield f, e


def _dev(e: dict, field: str) -> str:
    major, minor = _int(e, "major", field), _int(e, "minor", field)
    if major is None or minor is None or major < 0 or minor < 0:
        raise _bad(field, "needs major and minor device numbers", {"major": e.get("major"), "minor": e.get("minor")})
    return "%d:%d" % (major, minor)
