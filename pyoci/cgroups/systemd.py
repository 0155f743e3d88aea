"""The systemd cgroup driver (``--systemd-cgroup``): the container's cgroup is a transient unit of systemd's.

linux.cgroupsPath is runc's ``slice:prefix:name`` (``system.slice:docker:ID``): the unit is the scope
``prefix-name.scope`` in that slice (``name.scope`` without a prefix; a name ending in ``.slice`` is a slice
unit itself); empty parts default to ``system.slice``, ``pyoci`` and the container's id. Its cgroup is where
systemd puts it: nested slices by name, ``a-b.slice`` in ``a.slice/``.

Create forks the init, then asks systemd (StartTransientUnit, waiting for the job) for the unit with the init in
PIDs, Delegate=yes, DefaultDependencies=no, accounting on, linux.resources as unit properties (runc's mapping:
MemoryMax, CPUWeight, CPUQuotaPerSecUSec, TasksMax, IOWeight..., DevicePolicy/DeviceAllow) and the
``org.systemd.property.*`` annotations; then writes the cgroup files as the cgroupfs driver does (what systemd
has no property for, and the eBPF device filter), before the init runs any container code. Update sets the
unit's properties (SetUnitProperties) and the files; delete stops the unit and resets it, so nothing remains.
pause, ps, kill --all, events and stats read and write the cgroup files, as with the cgroupfs driver. On a
cgroup v1 host the same calls (v1 property names); controllers systemd does not manage are made by us.
"""
from __future__ import annotations

import os

from pyoci.cgroups.core import R, Cgroup, hierarchies, process_cgroups
from pyoci.errors import ConfigError, ContainerError, NotSupported

TYPE_CHECKING = False  # typing itself is not imported on the hot path
if TYPE_CHECKING:
    from typing import Callable

    from pyoci.cgroups.devices import Rule
    from pyoci.cgroups.resources import Apply

P = "linux.cgroupsPath"
DEFAULT_SLICE = "system.slice"
DEFAULT_PREFIX = "pyoci"
ANNOTATION = "org.systemd.property."
INFINITY = (1 << 64) - 1  # systemd's "infinity" for the uint64 limits
_UNIT_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:-_.\\")

def running() -> bool:
    """systemd is PID 1 here (sd_booted(3): /run/systemd/system is a directory)."""
    try:
        import stat

        return stat.S_ISDIR(os.lstat("/run/systemd/system").st_mode)
    except OSError:
        return False


def expand_slice(name: str, field: str = P) -> str:
    """The cgroup path of a slice unit, as systemd nests them: a-b-c.slice -> /a.slice/a-b.slice/a-b-c.slice."""
    suffix = ".slice"
    if not name.endswith(suffix) or name == suffix or "/" in name or not _valid_unit(name):
        raise ConfigError("%s: %r is not a systemd slice name (NAME.slice, no '/')" % (field, name))
    base = name[:-len(suffix)]
    if base == "-":
        return "/"
    path, prefix = "", ""
    for part in base.split("-"):
        if not part:
            raise ConfigError("%s: %r is not a systemd slice name (empty part between '-')" % (field, name))
        path += "/" + prefix + part + suffix
        prefix += part + "-"
    return path


def _valid_unit(name: str) -> bool:
    return 0 < len(name) <= 255 and set(name) <= _UNIT_CHARS


def unit_of(cgroups_path: str, cid: str) -> tuple[str, str, str]:
    """(slice, unit, cgroup path below the mount) for linux.cgroupsPath in the systemd driver's form."""
    if not cgroups_path:
        cgroups_path = ":%s:%s" % (DEFAULT_PREFIX, cid)
    parts = cgroups_path.split(":")
    if len(parts) != 3:
        raise ConfigError('%s %r: the systemd cgroup driver wants "slice:prefix:name" (e.g. '
                          '"system.slice:docker:ID")' % (P, cgroups_path))
    slice_, prefix, name = parts
    slice_ = slice_ or DEFAULT_SLICE
    name = name or cid
    parent = expand_slice(slice_, "%s %r: the slice" % (P, cgroups_path))
    if name.endswith(".slice"):
        unit, path = name, expand_slice(name, "%s %r: the name" % (P, cgroups_path))
    else:
        unit = "%s-%s.scope" % (prefix, name) if prefix else name + ".scope"
        if not _valid_unit(unit):
            raise ConfigError("%s %r: %r is not a valid systemd unit name (letters, digits and :-_.\\ only, at "
                              "most 255 characters)" % (P, cgroups_path, unit))
        path = parent.rstrip("/") + "/" + unit
    return slice_, unit, path


class SystemdCgroup(Cgroup):
    """A container's cgroup that is a transient systemd unit (recorded in the state by the unit's name)."""

    def __init__(self, paths: dict[str, str], created: list[str] | None = None,
                 roots: dict[str, str] | None = None, unit: str = "", slice_: str = DEFAULT_SLICE,
                 extra: list | None = None) -> None:
        super().__init__(paths, created, roots)
        self.unit = unit
        self.slice = slice_
        self.extra = extra or []  # the annotations' properties, for the unit's start

    @classmethod
    def for_unit(cls, cgroups_path: str, cid: str, annotations: dict | None = None) -> SystemdCgroup:
        if not running():
            raise NotSupported("--systemd-cgroup: systemd is not running on this host (no /run/systemd/system): "
                               "leave the flag out to use the cgroupfs driver")
        slice_, unit, rel = unit_of(cgroups_path, cid)
        extra = annotation_properties(annotations or {})
        paths, roots = {}, {}
        for h in hierarchies():
            paths[h.name] = os.path.join(h.mountpoint, rel.lstrip("/"))
            roots[h.name] = h.mountpoint
        cg = cls(paths, roots=roots, unit=unit, slice_=slice_, extra=extra)
        if cg.pids():
            raise ContainerError("%s %r: the cgroup of unit %s already has processes in it" % (P, cgroups_path, unit))
        return cg

    def record(self) -> dict:
        return dict(super().record(), unit=self.unit)

    @property
    def unified(self) -> bool:
        """A pure cgroup v2 host (systemd's unified hierarchy): the v2 property names."""
        return list(self.paths) == [""]

    # ------------------------------------------------------------------ create
    def missing(self) -> list[str]:
        return []  # nothing is ours to make before systemd has made the unit (see start)

    def plan(self, resources: dict | None, update: bool = False) -> Apply:
        return super().plan(round_cpu_quota(resources or {}), update)

    def start(self, pid: int, planned: Apply, save: Callable[[], None]) -> None:
        """Start the unit with pid in it and the resources as properties; make the cgroups systemd does not
        (recorded by save first), and write the cgroup files."""
        from pyoci.cgroups.dbus import UNIT_EXISTS, Manager, SystemdError

        with Manager() as m:
            props = self.base_properties(pid) + resource_properties(planned.res, self.unified, m.version) + self.extra
            try:
                result = m.start_transient(self.unit, props)
            except SystemdError as e:
                if e.name != UNIT_EXISTS:
                    raise ContainerError("systemd refused to start unit %s: %s" % (self.unit, e)) from None
                try:  # a leftover failed unit of the same name: let systemd forget it, and try once more
                    m.reset_failed(self.unit)
                except SystemdError:
                    pass
                try:
                    result = m.start_transient(self.unit, props)
                except SystemdError as e:
                    unit = self.unit
                    if e.name == UNIT_EXISTS:
                        self.unit, self.paths = "", {}  # someone else's: never to be stopped or removed by us
                        save()
                        raise ContainerError("%s: systemd unit %s already exists" % (P, unit)) from None
                    raise ContainerError("systemd refused to start unit %s: %s" % (unit, e)) from None
            if result != "done":
                try:
                    m.reset_failed(self.unit)
                except SystemdError:
                    pass
                raise ContainerError("systemd could not start unit %s: the job's result is %r" % (self.unit, result))
        moved = self._follow(pid)
        self.created = Cgroup.missing(self)  # v1 controllers systemd does not manage (cpuset, freezer...)
        save()
        if self.created:
            Cgroup.create(self)
        # systemd moved pid into a scope; a slice takes no PIDs (runc's slice units are for kubelet's pods)
        join = {n: p for n, p in self.paths.items() if p in self.created or self.unit.endswith(".slice")}
        if join:
            Cgroup(join).add(pid)
        if moved:
            planned = Cgroup.plan(self, planned.res)
        planned.execute()

    def _follow(self, pid: int) -> bool:
        """Where systemd really put pid (the expected place, unless pyoci runs in a cgroup namespace of its
        own): adopt it. True when a path changed."""
        try:
            actual = process_cgroups(pid)
        except OSError:
            return False
        changed = False
        for name, path in self.paths.items():
            rel = actual.get(name)
            root = self.roots.get(name)
            if rel is None or root is None or self.unit not in rel.split("/"):
                continue
            real = os.path.join(root, rel.lstrip("/"))
            if real != path:
                from pyoci import log

                log.debug("systemd put unit %s at %s (not %s)" % (self.unit, real, path))
                self.paths[name] = real
                changed = True
        return changed

    def base_properties(self, pid: int) -> list:
        props: list = [("Description", ("s", "pyoci container " + self.unit))]
        if self.unit.endswith(".slice"):
            props.append(("Wants", ("as", [self.slice])))
        else:
            props += [("Slice", ("s", self.slice)), ("Delegate", ("b", True)), ("PIDs", ("au", [pid]))]
        io = "IOAccounting" if self.unified else "BlockIOAccounting"
        props += [(k, ("b", True)) for k in ("MemoryAccounting", "CPUAccounting", io, "TasksAccounting")]
        props.append(("DefaultDependencies", ("b", False)))
        return props

    # ------------------------------------------------------------------ update, delete
    def apply(self, resources: dict | None, update: bool = False) -> None:
        planned = self.plan(resources, update)
        if update and self.unit:
            from pyoci.cgroups.dbus import Manager, SystemdError

            with Manager() as m:
                props = resource_properties(planned.res, self.unified, m.version)
                if props:
                    try:
                        m.set_properties(self.unit, props)
                    except SystemdError as e:
                        raise ContainerError("systemd refused the properties of unit %s: %s" % (self.unit, e)) \
                            from None
        planned.execute()

    def destroy(self, timeout: float = 5.0) -> None:
        """Stop the unit (its processes are gone by now) and let systemd forget it; then remove what is left:
        the cgroups we made, sub-cgroups an old systemd leaves."""
        if self.unit:
            from pyoci.cgroups.dbus import NO_SUCH_UNIT, Manager, SystemdError

            with Manager() as m:
                for call in (m.stop, m.reset_failed):
                    try:
                        call(self.unit)
                    except SystemdError as e:
                        if e.name != NO_SUCH_UNIT:
                            raise ContainerError("systemd could not stop unit %s: %s" % (self.unit, e)) from None
        left = [p for p in self.paths.values() if p not in self.created and os.path.isdir(p)]
        Cgroup(self.paths, left + self.created, self.roots).destroy(timeout)


def round_cpu_quota(res: dict) -> dict:
    """res with cpu.quota rounded up as systemd will (CPUQuotaPerSecUSec has 10 ms steps), so that the file
    and the unit say the same (runc does this too)."""
    cpu = res.get("cpu")
    if not isinstance(cpu, dict):
        return res
    quota, period = cpu.get("quota"), cpu.get("period") or 100000
    if not _is_int(quota) or quota <= 0 or not _is_int(period) or period <= 0:
        return res
    per_sec = quota * 1000000 // period
    if per_sec % 10000 == 0:
        return res
    rounded = (per_sec // 10000 + 1) * 10000 * period // 1000000
    return dict(res, cpu=dict(cpu, quota=rounded))


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def resource_properties(res: dict, unified: bool, version: Callable[[], int]) -> list:
    """linux.resources (already checked by the cgroupfs plan) as unit properties, as runc maps them; what has
    no property is left to the files. version: systemd's, asked only when a property depends on it."""
    from pyoci.cgroups import v2

    props: list = []

    def num(section: str, key: str) -> int | None:
        v = (res.get(section) or {}).get(key)
        return v if _is_int(v) else None

    limit, reservation, swap = num("memory", "limit"), num("memory", "reservation"), num("memory", "swap")
    if limit:
        props.append(("MemoryMax" if unified else "MemoryLimit", ("t", INFINITY if limit < 0 else limit)))
    if unified:
        if reservation:
            props.append(("MemoryLow", ("t", INFINITY if reservation < 0 else reservation)))
        if swap:
            try:
                s = v2.swap_for_v2(swap, limit or 0)
            except ValueError:
                s = 0  # the plan has refused it already
            props.append(("MemorySwapMax", ("t", INFINITY if s < 0 else s)))
    shares, idle = num("cpu", "shares"), num("cpu", "idle")
    if idle == 1 and unified and version() >= 252:
        props.append(("CPUWeight", ("t", 0)))  # CPUWeight=idle
    elif shares:
        props.append(("CPUWeight", ("t", v2.cpu_weight_from_shares(shares))) if unified
                     else ("CPUShares", ("t", shares)))
    _cpu_quota(props, num("cpu", "quota") or 0, num("cpu", "period") or 0, version)
    pids = num("pids", "limit")
    if pids is not None:
        props.append(("TasksMax", ("t", INFINITY if pids < 0 else max(pids, 1))))  # systemd refuses 0
    _cpuset(props, (res.get("cpu") or {}).get("cpus"), (res.get("cpu") or {}).get("mems"), version)
    props += _io_properties(res.get("blockIO") or {}, unified)
    props += device_properties(res.get("devices"))
    if unified:
        props += _unified_properties(res.get("unified") or {}, version)
    return props


def _cpu_quota(props: list, quota: int, period: int, version: Callable[[], int]) -> None:
    if period and version() >= 242:
        props.append(("CPUQuotaPeriodUSec", ("t", period)))
    if quota or period:
        per_sec = INFINITY
        if quota > 0:
            per_sec = quota * 1000000 // (period or 100000)
            if per_sec % 10000:
                per_sec = (per_sec // 10000 + 1) * 10000
        props.append(("CPUQuotaPerSecUSec", ("t", per_sec)))


def _cpuset(props: list, cpus: object, mems: object, version: Callable[[], int]) -> None:
    for value, name in ((cpus, "AllowedCPUs"), (mems, "AllowedMemoryNodes")):
        if isinstance(value, str) and value and version() >= 244:
            bits = range_bits(value)
            if bits is not None:
                props.append((name, ("ay", bits)))


def range_bits(spec: str) -> bytes | None:
    """A cpuset list ("0-3,8") as systemd's bitmask bytes (lowest bits first), None when malformed."""
    mask = 0
    for part in spec.strip().split(","):
        part = part.strip()
        if not part:
            continue
        lo, dash, hi = part.partition("-")
        if not lo.isdigit() or (dash and not hi.isdigit()):
            return None
        a, b = int(lo), int(hi) if dash else int(lo)
        if a > b:
            return None
        mask |= ((1 << (b - a + 1)) - 1) << a
    if not mask:
        return None
    return mask.to_bytes((mask.bit_length() + 7) // 8, "little")


def _io_properties(bio: dict, unified: bool) -> list:
    from pyoci.cgroups import v2

    props: list = []

    def dev(e: dict) -> str:
        return "/dev/block/%d:%d" % (e.get("major"), e.get("minor"))

    weight = bio.get("weight")
    if _is_int(weight) and weight:
        props.append(("IOWeight", ("t", v2.io_weight_from_blkio(weight))) if unified
                     else ("BlockIOWeight", ("t", weight)))
    devs = [(dev(e), e["weight"]) for e in bio.get("weightDevice") or [] if _is_int(e.get("weight")) and e["weight"]]
    if devs:
        props.append(("IODeviceWeight", ("a(st)", [(d, v2.io_weight_from_blkio(w)) for d, w in devs])) if unified
                     else ("BlockIODeviceWeight", ("a(st)", devs)))
    names = (("throttleReadBpsDevice", "IOReadBandwidthMax", "BlockIOReadBandwidth"),
             ("throttleWriteBpsDevice", "IOWriteBandwidthMax", "BlockIOWriteBandwidth"),
             ("throttleReadIOPSDevice", "IOReadIOPSMax", None),
             ("throttleWriteIOPSDevice", "IOWriteIOPSMax", None))
    for key, v2name, v1name in names:
        name = v2name if unified else v1name
        rates = [(dev(e), e["rate"]) for e in bio.get(key) or [] if _is_int(e.get("rate")) and e["rate"]]
        if rates and name:
            props.append((name, ("a(st)", rates)))
    return props


def _unified_properties(unified: dict, version: Callable[[], int]) -> list:
    """runc's unifiedResToSystemdProps: the files systemd has properties for (the rest: files only)."""
    props: list = []
    memory = {"memory.high": "MemoryHigh", "memory.low": "MemoryLow", "memory.min": "MemoryMin",
              "memory.max": "MemoryMax", "memory.swap.max": "MemorySwapMax"}
    idle = str(unified.get("cpu.idle", "")).strip() == "1" and version() >= 252
    for key, raw in unified.items():
        v = str(raw).strip()
        if key == "cpu.idle" and idle:
            props.append(("CPUWeight", ("t", 0)))
        elif key == "cpu.weight" and not idle and v.isdigit():
            props.append(("CPUWeight", ("t", int(v))))
        elif key == "cpu.max":
            words = v.split()
            if 1 <= len(words) <= 2 and (words[0] == "max" or words[0].isdigit()) and \
                    (len(words) == 1 or words[1].isdigit()):
                _cpu_quota(props, 0 if words[0] == "max" else int(words[0]),
                           int(words[1]) if len(words) == 2 else 100000, version)
        elif key in ("cpuset.cpus", "cpuset.mems"):
            _cpuset(props, v if key == "cpuset.cpus" else None, v if key == "cpuset.mems" else None, version)
        elif key in memory and (v == "max" or v.isdigit()):
            props.append((memory[key], ("t", INFINITY if v == "max" else int(v))))
        elif key == "pids.max" and (v == "max" or v.isdigit()):
            props.append(("TasksMax", ("t", INFINITY if v == "max" else max(int(v), 1))))
    return props


# ------------------------------------------------------------------------------------------------ devices
def device_properties(rules: object) -> list:
    """DevicePolicy and DeviceAllow for the device rules, where systemd can say exactly what they allow:
    strict, with the allowed devices ("/dev/char/1:3", "char-pts" for a major, "char-*"). Where it cannot (a
    deny inside an allowed range, a rule for every major, a major without a name of its own in /proc/devices)
    systemd gets no device policy ("auto", none allowed listed) and the eBPF filter, which is written with the
    files in any case, is the only one: the container gets exactly its rules, never more or fewer."""
    from pyoci.cgroups import devices

    if rules is None:
        return []  # update without devices: the unit's stay as they are
    allowed = _allowed(devices.effective(devices.parse(rules)))
    entries = None if allowed is None else _device_entries(allowed)
    clear = ("DeviceAllow", ("a(ss)", []))  # an empty list clears what the unit had
    if entries is None:
        return [("DevicePolicy", ("s", "auto")), clear]
    return [("DevicePolicy", ("s", "strict")), clear] + ([("DeviceAllow", ("a(ss)", entries))] if entries else [])


def _allowed(rules: list[Rule]) -> dict[tuple[str, int | None, int | None], set[str]] | None:
    """The rules (last match wins, deny first) as an allow list of (type, major, minor) -> accesses, or None when
    no such list says the same."""
    allow: dict[tuple[str, int | None, int | None], set[str]] = {}
    default_allow = False
    for r in rules:
        types = ("c", "b") if r.type == "a" else (r.type,)
        if r.type == "a" and r.major is None and r.minor is None and set(r.access) == set("rwm"):
            allow.clear()
            default_allow = r.allow
            continue
        for t in types:
            key = (t, r.major, r.minor)
            if r.allow:
                if not default_allow:
                    allow.setdefault(key, set()).update(r.access)
                continue
            if default_allow:
                return None  # a deny list: systemd has none
            for k, acc in list(allow.items()):
                if not acc & set(r.access):
                    continue
                if _covers(key, k):
                    acc.difference_update(r.access)
                elif _covers(k, key):
                    return None  # a hole in an allowed range
    if default_allow:
        return {("c", None, None): set("rwm"), ("b", None, None): set("rwm")}
    return {k: a for k, a in allow.items() if a}


def _covers(a: tuple[str, int | None, int | None], b: tuple[str, int | None, int | None]) -> bool:
    """Pattern a includes every device of pattern b."""
    return a[0] == b[0] and a[1] in (None, b[1]) and a[2] in (None, b[2])


def _device_entries(allowed: dict[tuple[str, int | None, int | None], set[str]]) -> list[tuple[str, str]] | None:
    groups: dict[str, dict[str, list[int]]] | None = None
    out = []
    for (t, major, minor), access in allowed.items():
        kind = "char" if t == "c" else "block"
        if major is None:
            if minor is not None:
                return None  # "c *:5": systemd has no way to say it
            path = kind + "-*"
        elif minor is None:
            if groups is None:
                groups = _device_groups()
            names = [n for n, majors in groups.get(kind, {}).items() if majors == [major] and
                     not set(n) & set("*?[]\\")]
            if not names:
                return None  # no name for exactly this major
            path = "%s-%s" % (kind, names[0])
        else:
            path = "/dev/%s/%d:%d" % (kind, major, minor)
        out.append((path, "".join(c for c in "rwm" if c in access)))
    return out


def _device_groups() -> dict[str, dict[str, list[int]]]:
    """/proc/devices: kind ("char", "block") -> name -> the majors with that name."""
    out: dict[str, dict[str, list[int]]] = {"char": {}, "block": {}}
    kind = None
    try:
        with open("/proc/devices") as f:
            for line in f:
                if line.startswith("Character"):
                    kind = "char"
                elif line.startswith("Block"):
                    kind = "block"
                else:
                    words = line.split()
                    if kind and len(words) == 2 and words[0].isdigit():
                        out[kind].setdefault(words[1], []).append(int(words[0]))
    except OSError:
        pass
    return out


# ------------------------------------------------------------------------------------------------ annotations
def annotation_properties(annotations: dict) -> list:
    """The org.systemd.property.NAME annotations as unit properties (GVariant text values, as runc): NAMESec
    becomes NAMEUSec in microseconds."""
    from pyoci.cgroups.gvariant import GVariantError, parse

    props = []
    for key in sorted(annotations):
        if not key.startswith(ANNOTATION):
            continue
        field = "annotations[%r]" % key
        name = key[len(ANNOTATION):]
        if len(name) < 3 or not name.isascii() or not name.isalpha():
            raise ConfigError("%s: the property name must be at least 3 ASCII letters" % field)
        value = annotations[key]
        if not isinstance(value, str):
            raise ConfigError("%s: must be a string (a GVariant text value such as \"uint64 5\")" % field)
        try:
            sig, v = parse(value)
        except GVariantError as e:
            raise ConfigError("%s: %r is not a GVariant value: %s" % (field, value, e)) from None
        if name.endswith("Sec") and name[-4:-3].islower():
            if sig not in "ynqiuxtd" or len(sig) != 1:
                raise ConfigError("%s: %s is a time in seconds: it must be a number" % (field, name))
            name, sig, v = name[:-3] + "USec", "t", int(v * 1000000)  # type: ignore[operator]
            if v < 0:
                raise ConfigError("%s: a time must not be negative" % field)
        props.append((name, (sig, v)))
    return props
