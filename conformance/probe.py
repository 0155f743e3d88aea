"""Parsing of what /probe (probe.sh) printed inside the container."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

PROBE_SH = Path(__file__).with_name("probe.sh")

# capabilities(7) numbering
CAPS = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN",
    "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON",
    "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
]

# /proc/<pid>/limits row title -> RLIMIT_* name
LIMIT_NAMES = {
    "Max cpu time": "RLIMIT_CPU", "Max file size": "RLIMIT_FSIZE", "Max data size": "RLIMIT_DATA",
    "Max stack size": "RLIMIT_STACK", "Max core file size": "RLIMIT_CORE",
    "Max resident set": "RLIMIT_RSS", "Max processes": "RLIMIT_NPROC",
    "Max open files": "RLIMIT_NOFILE", "Max locked memory": "RLIMIT_MEMLOCK",
    "Max address space": "RLIMIT_AS", "Max file locks": "RLIMIT_LOCKS",
    "Max pending signals": "RLIMIT_SIGPENDING", "Max msgqueue size": "RLIMIT_MSGQUEUE",
    "Max nice priority": "RLIMIT_NICE", "Max realtime priority": "RLIMIT_RTPRIO",
    "Max realtime timeout": "RLIMIT_RTTIME",
}

KEY_RE = re.compile(r"^([a-z][A-Za-z0-9_.]*)=(.*)$")


def caps_from_mask(mask: str) -> set[str]:
    v = int(mask, 16)
    return {name for i, name in enumerate(CAPS) if v >> i & 1} | \
        {f"CAP_{i}" for i in range(len(CAPS), 64) if v >> i & 1}


def _unescape(s: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), s)


@dataclass
class Mount:
    id: int
    parent: int
    major_minor: str
    root: str
    mountpoint: str
    options: set[str]          # per-mount options (ro, nosuid, ...)
    optional: list[str]        # shared:N, master:N, unbindable, ...
    fstype: str
    source: str
    super_options: set[str]

    @classmethod
    def parse(cls, line: str) -> "Mount":
        fields = line.split()
        sep = fields.index("-")
        return cls(int(fields[0]), int(fields[1]), fields[2], _unescape(fields[3]),
                   _unescape(fields[4]), set(fields[5].split(",")), fields[6:sep],
                   fields[sep + 1], _unescape(fields[sep + 2]),
                   set(fields[sep + 3].split(",")) if len(fields) > sep + 3 else set())

    @property
    def propagation(self) -> str:
        tags = [o.split(":")[0] for o in self.optional]
        if "shared" in tags:
            return "shared"
        if "master" in tags:
            return "slave"
        if "unbindable" in tags:
            return "unbindable"
        return "private"


@dataclass
class Dev:
    path: str
    kind: str       # "character special file", "fifo", "symbolic link", ...
    major: int | None
    minor: int | None
    mode: str
    uid: int
    gid: int
    target: str

    @classmethod
    def parse(cls, value: str) -> "Dev | None":
        parts = value.split("|")
        if len(parts) < 6:
            return None
        path, kind, mm, mode, owner, target = parts[0], parts[1], parts[2], parts[3], parts[4], parts[5]
        try:
            ma, mi = (int(x, 16) for x in mm.split(":"))
        except ValueError:
            ma = mi = None
        uid, _, gid = owner.partition(":")
        return cls(path, kind, ma, mi, mode, int(uid or -1), int(gid or -1), target)


class Probe:
    def __init__(self, values: dict[str, list[str]], raw: str, stderr: str = ""):
        self.values = values
        self.raw = raw
        self.stderr = stderr
        self.container = None

    @classmethod
    def parse(cls, text: str, stderr: str = "") -> "Probe":
        values: dict[str, list[str]] = {}
        for line in text.splitlines():
            m = KEY_RE.match(line.rstrip("\r"))
            if m:
                values.setdefault(m.group(1), []).append(m.group(2))
        return cls(values, text, stderr)

    # -- generic access
    def has(self, key: str) -> bool:
        return key in self.values

    def get(self, key: str, default=None):
        v = self.values.get(key)
        return v[-1] if v else default

    def all(self, key: str) -> list[str]:
        return list(self.values.get(key, []))

    @property
    def complete(self) -> bool:
        return self.has("probe.done")

    def describe(self) -> str:
        out = self.raw.strip().splitlines()
        err = self.stderr.strip().splitlines()
        return (f"probe printed {len(out)} lines" + (f"; last: {out[-1][:160]!r}" if out else "")
                + (f"; stderr: {' | '.join(err[-3:])[:300]!r}" if err else ""))

    # -- structured views
    @property
    def env(self) -> dict[str, str]:
        out = {}
        for e in self.all("env"):
            k, _, v = e.partition("=")
            out[k] = v
        return out

    def caps(self, which: str) -> set[str]:
        """which: Inh, Prm, Eff, Bnd, Amb"""
        mask = self.get(f"status.Cap{which}")
        return caps_from_mask(mask) if mask is not None else set()

    @property
    def limits(self) -> dict[str, tuple[str, str]]:
        out = {}
        for line in self.all("limit"):
            for title, name in LIMIT_NAMES.items():
                if line.startswith(title + " "):
                    rest = line[len(title):].split()
                    if len(rest) >= 2:
                        out[name] = (rest[0], rest[1])
        return out

    @property
    def mounts(self) -> list[Mount]:
        out = []
        for line in self.all("mount"):
            try:
                out.append(Mount.parse(line))
            except (ValueError, IndexError):
                pass
        return out

    def mount_at(self, path: str) -> Mount | None:
        """The topmost mount whose mountpoint is ``path``."""
        found = [m for m in self.mounts if m.mountpoint == path]
        return found[-1] if found else None

    @property
    def devs(self) -> dict[str, Dev]:
        out = {}
        for v in self.all("dev"):
            d = Dev.parse(v)
            if d:
                out[d.path] = d
        return out

    @property
    def groups(self) -> set[int]:
        return {int(g) for g in (self.get("status.Groups") or "").split()}
