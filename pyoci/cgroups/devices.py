"""linux.resources.devices: the rules, written to the v1 devices controller or compiled to an eBPF program.

The rules apply in order, a later one overriding an earlier one for the accesses it names (the v1 controller's
semantics, which runc's v2 devicefilter also keeps). What every container needs is allowed after the config's
rules (runc's defaults: mknod of any device, /dev/null, zero, full, random, urandom, tty, console, ptmx, pts),
except an access the config denies for exactly that device: `{"allow": false, "type": "c", "major": 1,
"minor": 3}` closes /dev/null, while a general deny-all (every `runc spec` config starts with one) does not.

On cgroup v2 the rules become a BPF_PROG_TYPE_CGROUP_DEVICE program attached to the container's cgroup. For
each access the kernel asks about (mknod, read, write), the program walks the rules naming that access from
the last to the first; the first that matches the device decides; none matching denies. An update attaches
the new program before the old one goes (BPF_F_REPLACE, or both for a moment when several are attached): a
device is never without a filter. Programs go with the cgroup.
"""
from __future__ import annotations

import os
import struct

from pyoci.cgroups.core import R
from pyoci.errors import ConfigError, ContainerError

F = R + ".devices"


class Rule:
    """One device rule; major/minor None for any (a plain class: typing stays off the hot path)."""

    __slots__ = ("field", "allow", "type", "major", "minor", "access")

    def __init__(self, field: str, allow: bool, type: str, major: int | None, minor: int | None,
                 access: str) -> None:
        self.field = field  # where it came from, for messages
        self.allow = allow
        self.type = type  # "a", "b" or "c"
        self.major = major
        self.minor = minor
        self.access = access  # a combination of "r", "w", "m"

    def with_access(self, access: str) -> Rule:
        return Rule(self.field, self.allow, self.type, self.major, self.minor, access)

    def v1(self) -> list[str]:
        """The devices.allow/devices.deny lines of this rule."""
        if self.type == "a" and self.major is None and self.minor is None and set(self.access) == set("rwm"):
            return ["a"]
        num = lambda n: "*" if n is None else str(n)  # noqa: E731
        return ["%s %s:%s %s" % (t, num(self.major), num(self.minor), self.access)
                for t in (("c", "b") if self.type == "a" else (self.type,))]


def _default(spec: str) -> Rule:
    typ, nums, access = spec.split()
    major, minor = (None if n == "*" else int(n) for n in nums.split(":"))
    return Rule(F + " (default rule)", True, typ, major, minor, access)


# runc's AllowedDevices: what every container may use
DEFAULT_DEVICE_RULES = ("c *:* m", "b *:* m", "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm",
                        "c 5:0 rwm", "c 5:1 rwm", "c 5:2 rwm", "c 136:* rwm")
DEFAULTS = tuple(_default(s) for s in DEFAULT_DEVICE_RULES)


def parse(rules: object) -> list[Rule]:
    """The config's rules, each checked (errors name the field)."""
    if rules is None:
        return []
    if not isinstance(rules, list):
        raise ConfigError("%s: must be an array, got %r" % (F, rules))
    out = []
    for i, rule in enumerate(rules):
        field = "%s[%d]" % (F, i)
        if not isinstance(rule, dict):
            raise ConfigError("%s: must be an object, got %r" % (field, rule))
        allow = rule.get("allow")
        if not isinstance(allow, bool):
            raise ConfigError("%s.allow: must be true or false, got %r" % (field, allow))
        typ = rule.get("type") or "a"
        if typ not in ("a", "b", "c"):
            raise ConfigError('%s.type: must be "a", "b" or "c", got %r' % (field, typ))
        nums: list[int | None] = []
        for key in ("major", "minor"):
            n = rule.get(key)
            if n is not None and (isinstance(n, bool) or not isinstance(n, int)):
                raise ConfigError("%s.%s: must be an integer, got %r" % (field, key, n))
            if n is not None and n > 0x7FFFFFFF:
                raise ConfigError("%s.%s: must be a device number below 2^31, got %r" % (field, key, n))
            nums.append(None if n is None or n < 0 else n)
        access = rule.get("access")
        if access is None or access == "":
            access = "rwm"
        if not isinstance(access, str) or set(access) - set("rwm"):
            raise ConfigError('%s.access: must combine "r", "w" and "m", got %r' % (field, access))
        out.append(Rule(field, allow, typ, nums[0], nums[1], "".join(c for c in "rwm" if c in access)))
    return out


def effective(rules: list[Rule]) -> list[Rule]:
    """Deny everything, the config's rules, then the defaults less what the config denies for that device."""
    out = [Rule(F, False, "a", None, None, "rwm")] + rules
    for d in DEFAULTS:
        denied = {c for r in rules if not r.allow and (r.type, r.major, r.minor) == (d.type, d.major, d.minor)
                  for c in r.access}
        access = "".join(c for c in d.access if c not in denied)
        if access:
            out.append(d.with_access(access))
    return out


def v1_writes(rules: list[Rule]) -> list[tuple[str, str, str]]:
    """(field, file, line) for the v1 devices controller, in order."""
    return [(r.field, "devices.allow" if r.allow else "devices.deny", line)
            for r in effective(rules) for line in r.v1()]


# ------------------------------------------------------------------------------------------- the eBPF program
# struct bpf_cgroup_dev_ctx { u32 access_type (access << 16 | type); u32 major; u32 minor; }
_TYPES = {"b": 1, "c": 2}  # BPF_DEVCG_DEV_BLOCK, _CHAR
_ACCESS = {"m": 1, "r": 2, "w": 4}  # BPF_DEVCG_ACC_MKNOD, _READ, _WRITE
_LDX_W, _AND32_K, _RSH32_K, _MOV32_K = 0x61, 0x54, 0x74, 0xB4
_JA, _JNE_K, _JSET_K, _EXIT = 0x05, 0x55, 0x45, 0x95


class _Asm:
    """Instructions with symbolic jump targets, resolved at the end; blocks nobody jumps to are left out
    (the verifier refuses unreachable instructions)."""

    def __init__(self) -> None:
        self.insns: list[tuple[int, int, int, int | str, int]] = []  # code, dst, src, off or label, imm
        self.labels: dict[str, int] = {}

    def emit(self, code: int, dst: int = 0, src: int = 0, off: int | str = 0, imm: int = 0) -> None:
        self.insns.append((code, dst, src, off, imm))

    def label(self, name: str) -> None:
        self.labels[name] = len(self.insns)

    def referenced(self, name: str) -> bool:
        return any(off == name for _c, _d, _s, off, _i in self.insns)

    def assemble(self) -> bytes:
        out = b""
        for pc, (code, dst, src, off, imm) in enumerate(self.insns):
            if isinstance(off, str):
                off = self.labels[off] - pc - 1
            out += struct.pack("<BBhi", code, (src << 4) | dst, off, imm)
        return out


def program(rules: list[Rule]) -> bytes:
    """The eBPF instructions enforcing effective(rules)."""
    rules = effective(rules)
    a = _Asm()
    a.emit(_LDX_W, 2, 1, 0)  # r2 = type
    a.emit(_AND32_K, 2, imm=0xFFFF)
    a.emit(_LDX_W, 3, 1, 0)  # r3 = access
    a.emit(_RSH32_K, 3, imm=16)
    a.emit(_LDX_W, 4, 1, 4)  # r4 = major
    a.emit(_LDX_W, 5, 1, 8)  # r5 = minor
    bits = list(_ACCESS)
    for i, bit in enumerate(bits):
        done = "access%d" % (i + 1) if i + 1 < len(bits) else "allow"
        a.emit(_JSET_K, 3, off=1, imm=_ACCESS[bit])  # asked for: walk the rules
        a.emit(_JA, off=done)
        for j, rule in enumerate(r for r in reversed(rules) if bit in r.access):
            conds = [(reg, value) for reg, value in ((2, _TYPES.get(rule.type)), (4, rule.major), (5, rule.minor))
                     if value is not None]
            for reg, value in conds:
                a.emit(_JNE_K, reg, off="%s.%d" % (bit, j), imm=value)
            a.emit(_JA, off=done if rule.allow else "deny")
            if not conds:
                break  # matches every device: the earlier rules cannot decide
            a.label("%s.%d" % (bit, j))
        else:
            a.emit(_JA, off="deny")  # no rule names this device
        a.label(done)
    a.emit(_MOV32_K, 0, imm=1)
    a.emit(_EXIT)
    if a.referenced("deny"):
        a.label("deny")
        a.emit(_MOV32_K, 0, imm=0)
        a.emit(_EXIT)
    return a.assemble()


def attach(cgroup_dir: str, insns: bytes) -> None:
    """Load the program and make it the only device filter of cgroup_dir, never leaving it without one."""
    from pyoci import syscalls
    from pyoci.syscalls import C

    try:
        dirfd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise ContainerError("%s: cannot open cgroup %s: %s" % (F, cgroup_dir, e.strerror)) from None
    fds: list[int] = []
    try:
        try:
            old = syscalls.bpf_prog_query(dirfd, C.BPF_CGROUP_DEVICE)
            fd, log = syscalls.bpf_prog_load(C.BPF_PROG_TYPE_CGROUP_DEVICE, insns, b"Apache-2.0",
                                             C.BPF_CGROUP_DEVICE, b"pyoci_devices")
        except OSError as e:
            raise ContainerError("%s: cannot load the device filter (an eBPF program): %s" % (F, e.strerror)) from None
        if fd < 0:
            last = [line for line in log.splitlines() if line.strip()][-1:] or ["no log"]
            raise ContainerError("%s: the kernel refused the device filter: %s" % (F, last[0]))
        fds.append(fd)
        try:
            fds.extend(syscalls.bpf_prog_get_fd_by_id(i) for i in old)
            if len(old) == 1:
                syscalls.bpf_prog_attach(dirfd, fd, C.BPF_CGROUP_DEVICE, C.BPF_F_ALLOW_MULTI | C.BPF_F_REPLACE,
                                         fds[1])
            else:
                syscalls.bpf_prog_attach(dirfd, fd, C.BPF_CGROUP_DEVICE, C.BPF_F_ALLOW_MULTI)
                for ofd in fds[1:]:
                    syscalls.bpf_prog_detach(dirfd, ofd, C.BPF_CGROUP_DEVICE)
        except OSError as e:
            raise ContainerError("%s: cannot attach the device filter to %s: %s" % (F, cgroup_dir, e.strerror)) \
                from None
    finally:
        for f in fds:
            os.close(f)
        os.close(dirfd)


def attached(cgroup_dir: str) -> list[int]:
    """Ids of the device programs attached to cgroup_dir (for tests and `pyoci state` debugging)."""
    from pyoci import syscalls
    from pyoci.syscalls import C

    fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return syscalls.bpf_prog_query(fd, C.BPF_CGROUP_DEVICE)
    finally:
        os.close(fd)
