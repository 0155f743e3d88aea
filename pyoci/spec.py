"""config.json read once into typed objects; everything after this works on them, never on raw dicts.

Type errors found here name the JSON path. The fast semantic checks (pyoci.validate) run first; the full
JSON-schema check runs only when something is wrong, so a valid config never pays for jsonschema.
"""
from __future__ import annotations

import os
from pyoci.errors import ConfigError
from pyoci.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

NAMESPACE_TYPES = ("pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time")


class _Reader:
    """Typed access to a JSON object that reports the path of whatever is wrong."""

    def __init__(self, data: Any, path: str) -> None:
        if not isinstance(data, dict):
            raise ConfigError("%s: must be an object" % (path or "config"))
        self.data = data
        self.path = path

    def _p(self, key: str) -> str:
        return "%s.%s" % (self.path, key) if self.path else key

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = None, required: bool = False) -> Any:
        if key not in self.data or self.data[key] is None:
            if required:
                raise ConfigError("%s: is required" % self._p(key))
            return default
        value = self.data[key]
        if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise ConfigError("%s: must be an integer" % self._p(key))
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool) and kind is not object):
            names = {str: "a string", bool: "a boolean", list: "an array", dict: "an object"}
            raise ConfigError("%s: must be %s" % (self._p(key), names.get(kind, str(kind))))  # type: ignore[call-overload,arg-type]
        return value

    def strings(self, key: str, required: bool = False) -> list[str]:
        value = self.get(key, list, [], required)
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise ConfigError("%s[%d]: must be a string" % (self._p(key), i))
        return list(value)

    def objects(self, key: str) -> list[_Reader]:
        return [_Reader(item, "%s[%d]" % (self._p(key), i)) for i, item in enumerate(self.get(key, list, []))]

    def sub(self, key: str) -> _Reader | None:
        value = self.get(key, dict)
        return None if value is None else _Reader(value, self._p(key))

    def uint(self, key: str, default: int | None = None, bits: int = 32, required: bool = False) -> int | None:
        value = self.get(key, int, default, required)
        if value is not None and not 0 <= value < (1 << bits):
            raise ConfigError("%s: %d is out of range" % (self._p(key), value))
        return value


class User(Record):
    uid: int = 0
    gid: int = 0
    umask: int | None = None
    additional_gids: list[int] = []


class Capabilities(Record):
    bounding: list[str] = []
    effective: list[str] = []
    inheritable: list[str] = []
    permitted: list[str] = []
    ambient: list[str] = []


class Rlimit(Record):
    type: str
    soft: int
    hard: int


class Scheduler(Record):
    """process.scheduler: sched_setattr(2)'s fields, the policy and flags by their names."""
    policy: str
    nice: int = 0
    priority: int = 0
    flags: list[str] = []
    runtime: int = 0
    deadline: int = 0
    period: int = 0


class IOPriority(Record):
    klass: str  # process.ioPriority.class
    priority: int = 0


class CPUAffinity(Record):
    """process.execCPUAffinity: CPU lists (None: not given, or empty)."""
    initial: list[int] | None = None
    final: list[int] | None = None


class Process(Record):
    args: list[str]
    cwd: str
    env: list[str] = []
    terminal: bool = False
    console_size: tuple[int, int] | None = None  # (height, width)
    user: User
    capabilities: Capabilities | None = None
    rlimits: list[Rlimit] = []
    no_new_privileges: bool = False
    oom_score_adj: int | None = None
    scheduler: Scheduler | None = None
    io_priority: IOPriority | None = None
    exec_cpu_affinity: CPUAffinity | None = None
    apparmor_profile: str = ""
    selinux_label: str = ""


class Mount(Record):
    destination: str
    type: str = ""
    source: str = ""
    options: list[str] = []
    uid_mappings: list[IDMapping] = []  # an id-mapped mount's own mappings (mount_setattr MOUNT_ATTR_IDMAP)
    gid_mappings: list[IDMapping] = []


class Hook(Record):
    path: str
    args: list[str] = []
    env: list[str] = []
    timeout: int | None = None


class Namespace(Record):
    type: str
    path: str = ""


class IDMapping(Record):
    container_id: int
    host_id: int
    size: int


class Device(Record):
    path: str
    type: str
    major: int = 0
    minor: int = 0
    file_mode: int | None = None
    uid: int | None = None
    gid: int | None = None


class MemoryPolicy(Record):
    """linux.memoryPolicy: set_mempolicy(2)'s mode and flags by their names, the node list parsed."""
    mode: str
    nodes: list[int] = []
    flags: list[str] = []


class Linux(Record):
    namespaces: list[Namespace] = []
    uid_mappings: list[IDMapping] = []
    gid_mappings: list[IDMapping] = []
    time_offsets: dict[str, tuple[int, int]] = {}
    devices: list[Device] = []
    cgroups_path: str = ""
    resources: dict[str, Any] | None = None
    sysctl: dict[str, str] = {}
    seccomp: dict[str, Any] | None = None
    rootfs_propagation: str = ""
    masked_paths: list[str] = []
    readonly_paths: list[str] = []
    personality: str = ""  # linux.personality.domain: LINUX or LINUX32
    memory_policy: MemoryPolicy | None = None
    intel_rdt: dict[str, Any] | None = None
    net_devices: dict[str, Any] = {}  # linux.netDevices: host name -> {"name": in the container}

    def namespace(self, kind: str) -> Namespace | None:
        for ns in self.namespaces:
            if ns.type == kind:
                return ns
        return None


class Spec(Record):
    oci_version: str
    bundle: str
    root_path: str  # absolute
    root_readonly: bool
    process: Process | None
    hostname: str | None
    domainname: str | None
    mounts: list[Mount]
    hooks: dict[str, list[Hook]]
    annotations: dict[str, str]
    linux: Linux
    raw: dict[str, Any]


HOOK_KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")


def _process(r: _Reader) -> Process:
    user = User()
    u = r.sub("user")
    if u is not None:
        user = User(uid=u.uint("uid", 0) or 0, gid=u.uint("gid", 0) or 0, umask=u.uint("umask"),
                    additional_gids=[_uint(v, "%s.additionalGids[%d]" % (u.path, i))
                                     for i, v in enumerate(u.get("additionalGids", list, []))])
    caps = None
    c = r.sub("capabilities")
    if c is not None:
        caps = Capabilities(*(c.strings(k) for k in ("bounding", "effective", "inheritable", "permitted", "ambient")))
    size = None
    cs = r.sub("consoleSize")
    if cs is not None:
        size = (cs.uint("height", 0) or 0, cs.uint("width", 0) or 0)
    rlimits = []
    for rl in r.objects("rlimits"):
        rlimits.append(Rlimit(rl.get("type", str, required=True), rl.uint("soft", 0, 64) or 0,
                              rl.uint("hard", 0, 64) or 0))
    oom = r.get("oomScoreAdj", int)
    sched = None
    sc = r.sub("scheduler")
    if sc is not None:
        sched = Scheduler(policy=sc.get("policy", str, required=True), nice=sc.get("nice", int, 0),
                          priority=sc.get("priority", int, 0), flags=sc.strings("flags"),
                          runtime=sc.uint("runtime", 0, 64) or 0, deadline=sc.uint("deadline", 0, 64) or 0,
                          period=sc.uint("period", 0, 64) or 0)
    aff = None
    a = r.sub("execCPUAffinity")
    if a is not None:
        aff = CPUAffinity(*(parse_id_list(a.get(k, str, ""), a._p(k)) or None for k in ("initial", "final")))
    io = None
    ior = r.sub("ioPriority")
    if ior is not None:
        io = IOPriority(klass=ior.get("class", str, required=True), priority=ior.get("priority", int, 0))
    return Process(args=r.strings("args"), cwd=r.get("cwd", str, required=True), env=r.strings("env"),
                   terminal=r.get("terminal", bool, False), console_size=size, user=user, capabilities=caps,
                   rlimits=rlimits, no_new_privileges=r.get("noNewPrivileges", bool, False), oom_score_adj=oom,
                   scheduler=sched, io_priority=io, exec_cpu_affinity=aff,
                   apparmor_profile=r.get("apparmorProfile", str, ""), selinux_label=r.get("selinuxLabel", str, ""))


def parse_process(raw: Any, path: str = "process") -> Process:
    """A process object on its own (`exec --process FILE`, or the container's process with overrides)."""
    return _process(_Reader(raw, path))


def parse_id_list(text: str, path: str) -> list[int]:
    """A CPU or NUMA node list as the kernel writes them ("0-3,7"), sorted; "" is the empty list."""
    ids: set[int] = set()
    for part in text.split(",") if text.strip() else []:
        lo, sep, hi = part.strip().partition("-")
        if not lo.isdigit() or (sep and not hi.isdigit()) or (sep and int(hi) < int(lo)):
            raise ConfigError("%s: %r is not a list like 0-3,7" % (path, text))
        ids.update(range(int(lo), int(hi if sep else lo) + 1))
    if ids and max(ids) >= 1 << 16:
        raise ConfigError("%s: %d is out of range" % (path, max(ids)))
    return sorted(ids)


def _uint(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << 32:
        raise ConfigError("%s: must be an unsigned 32-bit integer" % path)
    return value


def _mappings(r: _Reader, key: str) -> list[IDMapping]:
    return [IDMapping(m.uint("containerID", required=True), m.uint("hostID", required=True),  # type: ignore[arg-type]
                      m.uint("size", required=True)) for m in r.objects(key)]  # type: ignore[arg-type]


def _linux(r: _Reader | None) -> Linux:
    if r is None:
        return Linux()
    namespaces = [Namespace(n.get("type", str, required=True), n.get("path", str, "")) for n in r.objects("namespaces")]
    devices = []
    for d in r.objects("devices"):
        devices.append(Device(path=d.get("path", str, required=True), type=d.get("type", str, required=True),
                              major=d.get("major", int, 0), minor=d.get("minor", int, 0),
                              file_mode=d.uint("fileMode"), uid=d.uint("uid"), gid=d.uint("gid")))
    offsets = {}
    t = r.sub("timeOffsets")
    if t is not None:
        for clock in t.data:
            o = t.sub(clock)
            assert o is not None
            offsets[clock] = (o.get("secs", int, 0), o.get("nanosecs", int, 0))
    sysctl = r.get("sysctl", dict, {})
    for k, v in sysctl.items():
        if not isinstance(v, str):
            raise ConfigError("linux.sysctl.%s: must be a string" % k)
    return Linux(namespaces=namespaces, uid_mappings=_mappings(r, "uidMappings"),
                 gid_mappings=_mappings(r, "gidMappings"), time_offsets=offsets, devices=devices,
                 cgroups_path=r.get("cgroupsPath", str, ""), resources=r.get("resources", dict),
                 sysctl=dict(sysctl), seccomp=r.get("seccomp", dict),
                 rootfs_propagation=r.get("rootfsPropagation", str, ""),
                 masked_paths=r.strings("maskedPaths"), readonly_paths=r.strings("readonlyPaths"),
                 personality=_personality(r.sub("personality")), memory_policy=_memory_policy(r.sub("memoryPolicy")),
                 intel_rdt=r.get("intelRdt", dict), net_devices=dict(r.get("netDevices", dict, {})))


def _memory_policy(r: _Reader | None) -> MemoryPolicy | None:
    if r is None:
        return None
    return MemoryPolicy(mode=r.get("mode", str, required=True), nodes=parse_id_list(r.get("nodes", str, ""),
                        r._p("nodes")), flags=r.strings("flags"))


def _personality(r: _Reader | None) -> str:
    if r is None:
        return ""
    domain = r.get("domain", str, required=True)
    if domain not in ("LINUX", "LINUX32"):
        raise ConfigError("linux.personality.domain: %r is not LINUX or LINUX32" % domain)
    if r.strings("flags"):
        raise ConfigError("linux.personality.flags: no flags are defined by the spec")
    return domain


def parse(raw: Any, bundle: str) -> Spec:
    """Typed view of an already-validated config; type errors still end as ConfigError, never a traceback."""
    r = _Reader(raw, "")
    root = r.sub("root")
    if root is None:
        raise ConfigError("root: is required on Linux")
    root_path = root.get("path", str, required=True)
    hooks: dict[str, list[Hook]] = {k: [] for k in HOOK_KINDS}
    h = r.sub("hooks")
    if h is not None:
        for kind in HOOK_KINDS:
            hooks[kind] = [Hook(x.get("path", str, required=True), x.strings("args"), x.strings("env"),
                                x.get("timeout", int)) for x in h.objects(kind)]
    annotations = r.get("annotations", dict, {})
    proc = r.sub("process")
    return Spec(
        oci_version=r.get("ociVersion", str, required=True), bundle=bundle,
        root_path=os.path.normpath(os.path.join(bundle, root_path)), root_readonly=root.get("readonly", bool, False),
        process=_process(proc) if proc is not None else None, hostname=r.get("hostname", str),
        domainname=r.get("domainname", str),
        mounts=[Mount(m.get("destination", str, required=True), m.get("type", str, ""), m.get("source", str, ""),
                      m.strings("options"), _mappings(m, "uidMappings"), _mappings(m, "gidMappings"))
                for m in r.objects("mounts")],
        hooks=hooks, annotations=dict(annotations), linux=_linux(r.sub("linux")), raw=raw)


def load(bundle: str) -> Spec:
    """Read, check and parse <bundle>/config.json. Every problem is reported before anything is created."""
    from pyoci import validate

    bundle = os.path.abspath(bundle)
    if not os.path.isdir(bundle):
        raise ConfigError("bundle %s: not a directory (is --bundle right?)" % bundle)
    raw, unreadable = validate.load_json(os.path.join(bundle, "config.json"))
    if unreadable:
        raise ConfigError(str(unreadable[0]))
    problems = validate.validate_config(raw, bundle)
    errors = [p for p in problems if not p.warning]
    if errors:
        raise ConfigError(_summary(errors), [str(p) for p in problems])
    for p in problems:
        from pyoci import log

        log.warning("config.json: %s" % p)
    try:
        return parse(raw, bundle)
    except ConfigError as e:
        # The fast checks missed it: the full schema gives the complete list.
        full = [p for p in validate.validate_config(raw, bundle, full=True) if not p.warning]
        if full:
            raise ConfigError(_summary(full), [str(p) for p in full]) from None
        raise e


def _summary(errors: list[Any]) -> str:
    """Every problem, on one line (the CLI's rule), the same words `pyoci validate` prints."""
    shown = "; ".join(str(p) for p in errors[:10])
    more = " (and %d more: run `pyoci validate`)" % (len(errors) - 10) if len(errors) > 10 else ""
    return "invalid config.json: %s%s" % (shown, more)


def _cgroupns() -> tuple[str, ...]:
    """runc's spec has a cgroup namespace only on a pure cgroup v2 host (/sys/fs/cgroup is cgroup2)."""
    from pyoci import syscalls

    try:
        fd = os.open("/sys/fs/cgroup", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return ()
    try:
        return ("cgroup",) if syscalls.fstatfs_type(fd) == 0x63677270 else ()  # CGROUP2_SUPER_MAGIC
    finally:
        os.close(fd)


def default_config(rootless: bool = False) -> dict[str, Any]:
    """What `pyoci spec` writes: runc's default, runnable with a busybox rootfs."""
    caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    config: dict[str, Any] = {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": True, "user": {"uid": 0, "gid": 0}, "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {k: list(caps) for k in ("bounding", "effective", "permitted", "ambient")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "pyoci",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
        ],
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount") + _cgroupns()],
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                            "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
                            "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
        },
    }
    if rootless:
        uid, gid = os.geteuid(), os.getegid()
        linux = config["linux"]
        linux["uidMappings"] = [{"containerID": 0, "hostID": uid, "size": 1}]
        linux["gidMappings"] = [{"containerID": 0, "hostID": gid, "size": 1}]
        linux["namespaces"] = [{"type": t} for t in ("pid", "ipc", "uts", "mount") + _cgroupns() + ("user",)]
        del linux["resources"]
        mounts = [m for m in config["mounts"] if m["destination"] not in ("/sys", "/sys/fs/cgroup")]
        mounts.append({"destination": "/sys", "type": "none", "source": "/sys",
                       "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]})
        for m in mounts:
            if m["destination"] in ("/dev/pts", "/dev/mqueue"):
                m["options"] = [o for o in m["options"] if not o.startswith("gid=")]
        config["mounts"] = mounts
    return config
