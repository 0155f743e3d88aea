"""linux.resources applied to a container's cgroup, as runc and crun translate it, shared by v1 and v2.

Every field is checked and located first (each controller is driven where this host mounts it, hybrid hosts
included: a field whose controller is missing is an error naming the field), collected as operations, and
only then written; the version-specific translations live in pyoci.cgroups.v1 and .v2, the device rules in
pyoci.cgroups.devices.
"""
from __future__ import annotations

import errno
import os

from pyoci.cgroups import core, v1, v2
from pyoci.cgroups.core import R, Cgroup, hierarchies
from pyoci.errors import ConfigError, ContainerError


def show(value: str) -> str:
    return '"%s"' % value if (" " in value or not value) else value


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


class Apply:
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
                self._v2_avail = set(core.read_value(os.path.join(root, "cgroup.controllers")).split()) if root else set()
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
            core.write_value(os.path.join(d, name), value)
        except OSError as e:
            raise ContainerError("%s: cannot write %s=%s: %s" % (field, name, show(value), e.strerror)) from None

    @staticmethod
    def try_write(d: str, name: str, value: str) -> int:
        """0, or the errno of a failed write (for runc's retry-in-another-order rules)."""
        try:
            core.write_value(os.path.join(d, name), value)
        except OSError as e:
            return e.errno or errno.EIO
        return 0

    @staticmethod
    def read(field: str, d: str, name: str) -> str:
        try:
            return core.read_value(os.path.join(d, name))
        except OSError as e:
            raise ContainerError("%s: cannot read %s: %s" % (field, name, e.strerror)) from None

    def write_op(self, field: str, d: str, name: str, value: str) -> None:
        self.op(field, lambda: self.write(field, d, name, value))

    # ------------------------------------------------------------------ run
    def plan(self) -> None:
        """Check every field and queue its writes."""
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

    def execute(self) -> None:
        """Enable the cgroup v2 controllers needed, then write."""
        if self.v2_needed:
            v2.enable(self)
        for _field, fn in self.ops:
            fn()  # type: ignore[operator]

    # ------------------------------------------------------------------ devices
    def devices(self) -> None:
        if self.update and "devices" not in self.res:
            return
        from pyoci.cgroups import devices

        rules = devices.parse(self.res.get("devices"))
        d = self.v1_dir("devices")
        if d is not None:
            for field, name, value in devices.v1_writes(rules):
                self.write_op(field, d, name, value)
        elif "" in self.cg.paths:
            insns = devices.program(rules)
            self.op(R + ".devices", lambda: devices.attach(self.cg.paths[""], insns))
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

                log.warning("%s.%s: ignored (kernel memory limits are deprecated and not enforced by recent "
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
            v1.memory(self, d, limit, reservation, swap, swappiness, flags)
        else:
            v2.memory(self, d, limit, reservation, swap, swappiness, flags)
            if not (limit or reservation or swap) and not had:
                del self.v2_needed["memory"]  # only v1 knobs, ignored: nothing to enable

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
            v1.cpu(self, d, shares, quota, period, burst, rt_runtime, rt_period, idle)
        else:
            for key, value in (("realtimeRuntime", rt_runtime), ("realtimePeriod", rt_period)):
                if value:
                    raise ContainerError("%s.%s: real-time group scheduling is not supported on cgroup v2"
                                         % (C, key))
            v2.cpu(self, d, shares, quota, period, burst, idle)

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
            v1.block_io(self, d, weight, leaf, wdev, throttles)
        else:
            _ver, d = self.locate("io", "%s.%s" % (B, wanted[0]))
            v2.block_io(self, d, weight, leaf, wdev, throttles)

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
        usage = int(core.read_value(os.path.join(d, usage_file)))
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
