"""Validation of OCI runtime configs (config.json) and state documents.

Two layers, because they have different costs:

* ``semantic_problems`` is hand-written, imports nothing heavy and runs on every
  ``pyoci create``.  It checks what a JSON Schema cannot express (paths that must
  exist, namespaces a setting depends on, duplicates, known names) and the types of
  the fields it reads, and it never raises, whatever shape the document has.
* ``schema_problems`` runs the JSON Schemas in ``schemas/`` (draft 2020-12) with
  ``jsonschema``.  That import costs ~100 ms, so ``validate_config`` only pays it
  when asked (``full=True``) or when the semantic pass already found an error, so
  that a broken config gets the complete list of problems in one go.

Every problem carries a JSON path (``linux.namespaces[2].type``) and a reason a
person can act on.  Warnings (``Problem.warning``) are things runc accepts with a
warning, e.g. a relative mount destination; they never make validation fail.

Choices made where the spec leaves room (documented so callers can rely on them):

* ``null`` is a type error wherever a value is expected (Go would silently treat it
  as absent; we would rather say so).
* JSON numbers with a fraction (``1.0``) are not integers, as in Go's decoder.
* Unknown syscall names in seccomp rules are warnings: runc/libseccomp skip them,
  and profiles (e.g. Docker's) name syscalls of other architectures or newer kernels.
* Duplicate mount destinations are warnings: runc mounts them in order, the later
  one on top of the earlier (``--tmpfs`` over an image volume relies on this).
* Unknown capability names are warnings (the spec: runtimes SHOULD log a warning
  and go on); the hint names the right spelling when it is only the case or the
  missing CAP_ prefix.
* With ``bundle=None`` no check touches the filesystem (root.path, namespace paths).
"""

from __future__ import annotations

import os
import posixpath
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing, dataclasses and pathlib cost ~10 ms: create runs this module every time
    from pathlib import Path
    from typing import Any, Callable, Iterable

__all__ = [
    "Problem",
    "semantic_problems",
    "schema_problems",
    "validate_config",
    "validate_bundle",
    "schemas_dir",
    "format_problems",
    "has_errors",
    "main",
]


class Problem:
    """One thing wrong (or suspicious, if ``warning``) with a document.

    ``path`` is a JSON path such as ``linux.namespaces[2].type``; "" is the root.
    Immutable and hashable so that problems can be deduplicated with a set.
    """

    __slots__ = ("path", "reason", "warning")
    path: str
    reason: str
    warning: bool

    def __init__(self, path: str, reason: str, warning: bool = False) -> None:
        object.__setattr__(self, "path", path)
        object.__setattr__(self, "reason", reason)
        object.__setattr__(self, "warning", warning)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Problem is immutable")

    def _key(self) -> tuple[str, str, bool]:
        return (self.path, self.reason, self.warning)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Problem) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return "Problem(path=%r, reason=%r, warning=%r)" % self._key()

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}" if self.path else self.reason


# --------------------------------------------------------------------------- known names

#: Linux capabilities, in kernel order (CAP_CHOWN = 0 ... CAP_CHECKPOINT_RESTORE = 40).
CAPABILITIES: frozenset[str] = frozenset(
    "CAP_" + n
    for n in (
        "CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP "
        "LINUX_IMMUTABLE NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK "
        "IPC_OWNER SYS_MODULE SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT "
        "SYS_NICE SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL "
        "SETFCAP MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON "
        "BPF CHECKPOINT_RESTORE"
    ).split()
)

RLIMITS: frozenset[str] = frozenset(
    "RLIMIT_" + n
    for n in (
        "AS CORE CPU DATA FSIZE LOCKS MEMLOCK MSGQUEUE NICE NOFILE NPROC RSS RTPRIO "
        "RTTIME SIGPENDING STACK"
    ).split()
)

NAMESPACE_TYPES: tuple[str, ...] = ("mount", "pid", "network", "ipc", "uts", "user", "cgroup", "time")

SECCOMP_ACTIONS: frozenset[str] = frozenset(
    "SCMP_ACT_" + n
    for n in "KILL KILL_PROCESS KILL_THREAD TRAP ERRNO TRACE ALLOW LOG NOTIFY".split()
)
SECCOMP_ARCHES: frozenset[str] = frozenset(
    "SCMP_ARCH_" + n
    for n in (
        "X86 X86_64 X32 ARM AARCH64 MIPS MIPS64 MIPS64N32 MIPSEL MIPSEL64 MIPSEL64N32 PPC "
        "PPC64 PPC64LE S390 S390X PARISC PARISC64 RISCV64 LOONGARCH64 M68K SH SHEB"
    ).split()
)
SECCOMP_FLAGS: frozenset[str] = frozenset(
    "SECCOMP_FILTER_FLAG_" + n for n in "TSYNC LOG SPEC_ALLOW WAIT_KILLABLE_RECV".split()
)
SECCOMP_OPS: frozenset[str] = frozenset(
    "SCMP_CMP_" + n for n in "NE LT LE EQ GE GT MASKED_EQ".split()
)

#: Linux syscall names: x86_64 + i386 + asm-generic <asm/unistd*.h> of this build machine,
#: libseccomp 2.5's cross-architecture list (seccomp-syscalls.h) and a few newer ones.
_SYSCALL_NAMES = """
    _llseek _newselect _sysctl accept accept4 access acct add_key adjtimex afs_syscall alarm arch_prctl
    arm_fadvise64_64 arm_sync_file_range bdflush bind bpf break breakpoint brk cachectl cacheflush
    cachestat capget capset chdir chmod chown chown32 chroot clock_adjtime clock_adjtime64 clock_getres
    clock_getres_time64 clock_gettime clock_gettime64 clock_nanosleep clock_nanosleep_time64
    clock_settime clock_settime64 clone clone3 close close_range connect copy_file_range creat
    create_module delete_module dup dup2 dup3 epoll_create epoll_create1 epoll_ctl epoll_ctl_old
    epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old eventfd eventfd2 execve execveat exit exit_group
    faccessat faccessat2 fadvise64 fadvise64_64 fallocate fanotify_init fanotify_mark fchdir fchmod
    fchmodat fchmodat2 fchown fchown32 fchownat fcntl fcntl64 fdatasync fgetxattr finit_module
    flistxattr flock fork fremovexattr fsconfig fsetxattr fsmount fsopen fspick fstat fstat64 fstatat
    fstatat64 fstatfs fstatfs64 fsync ftime ftruncate ftruncate64 futex futex_requeue futex_time64
    futex_wait futex_waitv futex_wake futimesat get_kernel_syms get_mempolicy get_robust_list
    get_thread_area get_tls getcpu getcwd getdents getdents64 getegid getegid32 geteuid geteuid32 getgid
    getgid32 getgroups getgroups32 getitimer getpeername getpgid getpgrp getpid getpmsg getppid
    getpriority getrandom getresgid getresgid32 getresuid getresuid32 getrlimit getrusage getsid
    getsockname getsockopt gettid gettimeofday getuid getuid32 getxattr getxattrat gtty idle init_module
    inotify_add_watch inotify_init inotify_init1 inotify_rm_watch io_cancel io_destroy io_getevents
    io_pgetevents io_pgetevents_time64 io_setup io_submit io_uring_enter io_uring_register
    io_uring_setup ioctl ioperm iopl ioprio_get ioprio_set ipc kcmp kexec_file_load kexec_load keyctl
    kill landlock_add_rule landlock_create_ruleset landlock_restrict_self lchown lchown32 lgetxattr link
    linkat listen listmount listxattr listxattrat llistxattr llseek lock lookup_dcookie lremovexattr
    lseek lsetxattr lsm_get_self_attr lsm_list_modules lsm_set_self_attr lstat lstat64 madvise
    map_shadow_stack mbind membarrier memfd_create memfd_secret migrate_pages mincore mkdir mkdirat
    mknod mknodat mlock mlock2 mlockall mmap mmap2 modify_ldt mount mount_setattr move_mount move_pages
    mprotect mpx mq_getsetattr mq_notify mq_open mq_timedreceive mq_timedreceive_time64 mq_timedsend
    mq_timedsend_time64 mq_unlink mremap mseal msgctl msgget msgrcv msgsnd msync multiplexer munlock
    munlockall munmap name_to_handle_at nanosleep newfstatat nfsservctl nice oldfstat oldlstat
    oldolduname oldstat olduname open open_by_handle_at open_tree open_tree_attr openat openat2 pause
    pciconfig_iobase pciconfig_read pciconfig_write perf_event_open personality pidfd_getfd pidfd_open
    pidfd_send_signal pipe pipe2 pivot_root pkey_alloc pkey_free pkey_mprotect poll ppoll ppoll_time64
    prctl pread64 preadv preadv2 prlimit64 process_madvise process_mrelease process_vm_readv
    process_vm_writev prof profil pselect6 pselect6_time64 ptrace putpmsg pwrite64 pwritev pwritev2
    query_module quotactl quotactl_fd read readahead readdir readlink readlinkat readv reboot recv
    recvfrom recvmmsg recvmmsg_time64 recvmsg remap_file_pages removexattr removexattrat rename renameat
    renameat2 request_key restart_syscall riscv_flush_icache riscv_hwprobe rmdir rseq rt_sigaction
    rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait
    rt_sigtimedwait_time64 rt_tgsigqueueinfo rtas s390_guarded_storage s390_pci_mmio_read
    s390_pci_mmio_write s390_runtime_instr s390_sthyi sched_get_priority_max sched_get_priority_min
    sched_getaffinity sched_getattr sched_getparam sched_getscheduler sched_rr_get_interval
    sched_rr_get_interval_time64 sched_setaffinity sched_setattr sched_setparam sched_setscheduler
    sched_yield seccomp security select semctl semget semop semtimedop semtimedop_time64 send sendfile
    sendfile64 sendmmsg sendmsg sendto set_mempolicy set_mempolicy_home_node set_robust_list
    set_thread_area set_tid_address set_tls setdomainname setfsgid setfsgid32 setfsuid setfsuid32 setgid
    setgid32 setgroups setgroups32 sethostname setitimer setns setpgid setpriority setregid setregid32
    setresgid setresgid32 setresuid setresuid32 setreuid setreuid32 setrlimit setsid setsockopt
    settimeofday setuid setuid32 setxattr setxattrat sgetmask shmat shmctl shmdt shmget shutdown
    sigaction sigaltstack signal signalfd signalfd4 sigpending sigprocmask sigreturn sigsuspend socket
    socketcall socketpair splice spu_create spu_run ssetmask stat stat64 statfs statfs64 statmount statx
    stime stty subpage_prot swapcontext swapoff swapon switch_endian symlink symlinkat sync
    sync_file_range sync_file_range2 syncfs sys_debug_setcontext syscall sysfs sysinfo syslog sysmips
    tee tgkill time timer_create timer_delete timer_getoverrun timer_gettime timer_gettime64
    timer_settime timer_settime64 timerfd timerfd_create timerfd_gettime timerfd_gettime64
    timerfd_settime timerfd_settime64 times tkill truncate truncate64 tuxcall ugetrlimit ulimit umask
    umount umount2 uname unlink unlinkat unshare uretprobe uselib userfaultfd usr26 usr32 ustat utime
    utimensat utimensat_time64 utimes vfork vhangup vm86 vm86old vmsplice vserver wait4 waitid waitpid
    write writev
"""
_syscalls_cache: frozenset[str] | None = None


def known_syscalls() -> frozenset[str]:
    """The syscall names seccomp rules are checked against (parsed once, lazily)."""
    global _syscalls_cache
    if _syscalls_cache is None:
        _syscalls_cache = frozenset(_SYSCALL_NAMES.split())
    return _syscalls_cache


_ROOTFS_PROPAGATIONS = ("private", "shared", "slave", "unbindable", "rprivate", "rshared", "rslave", "runbindable")
_HOOK_NAMES = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")
_CAP_SETS = ("bounding", "effective", "inheritable", "permitted", "ambient")
_IO_CLASSES = ("IOPRIO_CLASS_RT", "IOPRIO_CLASS_BE", "IOPRIO_CLASS_IDLE")
_SCHED_POLICIES = ("SCHED_OTHER", "SCHED_FIFO", "SCHED_RR", "SCHED_BATCH", "SCHED_ISO", "SCHED_IDLE", "SCHED_DEADLINE")
_SEMVER_EXTRA = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz.-")


def _oci_version_ok(version: str) -> bool:
    """1.MINOR.PATCH[-PRE][+BUILD] (semver; no regex: `re` costs every create ~2 ms of imports)."""
    core, plus, build = version.partition("+")
    core, dash, pre = core.partition("-")
    for extra, present in ((build, plus), (pre, dash)):
        if present and not (extra and _SEMVER_EXTRA.issuperset(extra)):
            return False
    parts = core.split(".")
    return (len(parts) == 3 and parts[0] == "1"
            and all(p.isascii() and p.isdigit() and (p == "0" or p[0] != "0") for p in parts[1:]))


def _is_ident(key: str) -> bool:
    """[A-Za-z_][A-Za-z0-9_]*"""
    return key.isascii() and key.isidentifier()

UINT32_MAX = 2**32 - 1
UINT64_MAX = 2**64 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
ID_MAX = 2**32 - 2  # (uid_t)-1 means "no id" to the kernel


# --------------------------------------------------------------------------- small helpers

def json_type(value: object) -> str:
    """The JSON name of a Python value's type, for messages ("expected string, got array")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


_HUGE = 10**40


def _show(value: object, limit: int = 60) -> str:
    """A short JSON-ish rendering of a value for a message; safe for huge ints and odd objects."""
    if _is_int(value) and abs(value) >= _HUGE:  # type: ignore[arg-type]
        return ("-" if value < 0 else "") + "an integer of more than 40 digits"  # type: ignore[operator]
    import json  # messages only: a valid config never gets here

    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        try:
            text = repr(value)
        except Exception:  # noqa: BLE001 - a message must never fail
            text = f"<{type(value).__name__}>"
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def join_path(base: str, key: str | int) -> str:
    """Append an object key or array index to a JSON path ('a.b[2]["x.y"]')."""
    if isinstance(key, int) and not isinstance(key, bool):
        return f"{base}[{key}]"
    key = str(key)
    if _is_ident(key):
        return f"{base}.{key}" if base else key
    return f"{base}[{_show(key, 200)}]"


def _path_sort_key(path: str) -> tuple:
    """Sort 'a[10]' after 'a[2]'."""
    import re  # only when there are problems to sort

    parts: list[tuple[int, Any]] = []
    for m in re.finditer(r"\[(\d+)\]|\[(\"(?:[^\"\\]|\\.)*\")\]|([^.\[\]]+)", path):
        if m.group(1) is not None:
            parts.append((0, int(m.group(1))))
        else:
            parts.append((1, m.group(2) or m.group(3)))
    return tuple(parts)


def _sorted_unique(problems: Iterable[Problem]) -> list[Problem]:
    seen: set[Problem] = set()
    out: list[Problem] = []
    for p in problems:
        if p not in seen:
            seen.add(p)
            out.append(p)
    out.sort(key=lambda p: _path_sort_key(p.path))  # stable: keeps order within a path
    return out


def has_errors(problems: Iterable[Problem]) -> bool:
    """True if any problem is an error (not a warning)."""
    return any(not p.warning for p in problems)


def format_problems(problems: Iterable[Problem], source: str = "config.json") -> str:
    """One line per problem, 'warning: ' or 'error: ' first, ready for stderr."""
    lines = []
    for p in problems:
        kind = "warning" if p.warning else "error"
        lines.append(f"{source}: {kind}: {p}")
    return "\n".join(lines)


MISSING = "required field is missing"


def _type_reason(expected: str, value: object) -> str:
    # Same wording as schema_problems uses, so identical findings deduplicate.
    return f"expected {expected}, got {json_type(value)}"


# --------------------------------------------------------------------------- semantic checks

_ABSENT = object()


class _Checker:
    """Walks the fields pyoci uses; every accessor reports wrong types instead of raising."""

    def __init__(self, bundle: str | os.PathLike | None) -> None:
        self.bundle = bundle
        self.problems: list[Problem] = []
        self.ns: dict[str, dict] = {}  # namespace type -> its (first) entry

    # reporting
    def err(self, path: str, reason: str) -> None:
        self.problems.append(Problem(path, reason))

    def warn(self, path: str, reason: str) -> None:
        self.problems.append(Problem(path, reason, warning=True))

    # typed access: returns the value or _ABSENT (after reporting a wrong type / missing field)
    def get(self, obj: dict, key: str, path: str, kind: str, required: bool = False) -> Any:
        p = join_path(path, key)
        if key not in obj:
            if required:
                self.err(p, MISSING)
            return _ABSENT
        value = obj[key]
        if not self.is_kind(value, kind):
            self.err(p, _type_reason(kind, value))
            return _ABSENT
        return value

    @staticmethod
    def is_kind(value: object, kind: str) -> bool:
        if kind == "object":
            return isinstance(value, dict)
        if kind == "array":
            return isinstance(value, list)
        if kind == "string":
            return isinstance(value, str)
        if kind == "boolean":
            return isinstance(value, bool)
        if kind == "integer":
            return _is_int(value)
        raise AssertionError(kind)

    def items(self, obj: dict, key: str, path: str, kind: str, required: bool = False) -> list[tuple[str, Any]]:
        """(path, item) for the items of an array field that have the right type."""
        arr = self.get(obj, key, path, "array", required)
        if arr is _ABSENT:
            return []
        base = join_path(path, key)
        out = []
        for i, item in enumerate(arr):
            if self.is_kind(item, kind):
                out.append((f"{base}[{i}]", item))
            else:
                self.err(f"{base}[{i}]", _type_reason(kind, item))
        return out

    def int_in(self, obj: dict, key: str, path: str, lo: int, hi: int, required: bool = False) -> Any:
        value = self.get(obj, key, path, "integer", required)
        if value is not _ABSENT and not lo <= value <= hi:
            self.err(join_path(path, key), f"{_show(value)} is out of range {lo}..{hi}")
            return _ABSENT
        return value

    def enum(self, obj: dict, key: str, path: str, allowed: Iterable[str], what: str, required: bool = False) -> Any:
        value = self.get(obj, key, path, "string", required)
        if value is not _ABSENT and value not in allowed:
            self.err(join_path(path, key), f"unknown {what} {_show(value)}; expected one of {', '.join(sorted(allowed))}")
            return _ABSENT
        return value

    def absolute(self, obj: dict, key: str, path: str, required: bool = False) -> Any:
        value = self.get(obj, key, path, "string", required)
        if value is not _ABSENT and not value.startswith("/"):
            self.err(join_path(path, key), f"must be an absolute path, got {_show(value)}")
            return _ABSENT
        return value

    # ---------------------------------------------------------------- the document
    def check(self, config: object) -> None:
        if not isinstance(config, dict):
            self.err("", f"config must be a JSON object, got {json_type(config)}")
            return
        self.oci_version(config)
        linux = self.get(config, "linux", "", "object")
        if linux is _ABSENT:
            linux = {}
        self.namespaces(linux)  # first: several checks depend on which namespaces exist
        self.root(config)
        self.process(config)
        for key in ("hostname", "domainname"):
            value = self.get(config, key, "", "string")
            if value is not _ABSENT and value and "uts" not in self.ns:
                self.err(key, f"setting the {key} needs a private UTS namespace; add {{\"type\": \"uts\"}} to linux.namespaces")
        self.mounts(config)
        self.hooks(config)
        self.annotations(config, "annotations")
        self.linux(linux)

    def oci_version(self, config: dict) -> None:
        version = self.get(config, "ociVersion", "", "string", required=True)
        if version is not _ABSENT and not _oci_version_ok(version):
            self.err("ociVersion", f"must be a 1.x SemVer version such as \"1.0.2\", got {_show(version)} (pyoci implements runtime-spec 1.x)")

    def root(self, config: dict) -> None:
        root = self.get(config, "root", "", "object", required=True)
        if root is _ABSENT:
            return
        path = self.get(root, "path", "root", "string", required=True)
        self.get(root, "readonly", "root", "boolean")
        if path is _ABSENT:
            return
        if not path:
            self.err("root.path", "must not be empty")
            return
        if self.bundle is None:
            return
        full = os.path.join(os.fspath(self.bundle), path)
        shown = path if os.path.isabs(path) else f"{path} (in bundle {os.fspath(self.bundle)})"
        try:
            st = os.stat(full)
        except FileNotFoundError:
            self.err("root.path", f"{shown} does not exist")
            return
        except (OSError, ValueError) as exc:
            self.err("root.path", f"cannot access {shown}: {getattr(exc, 'strerror', None) or exc}")
            return
        import stat as _stat

        if not _stat.S_ISDIR(st.st_mode):
            self.err("root.path", f"{shown} is not a directory")

    def process(self, config: dict) -> None:
        proc = self.get(config, "process", "", "object")
        if proc is _ABSENT:
            return
        P = "process"
        self.items(proc, "args", P, "string", required=True)
        if "args" in proc and isinstance(proc["args"], list) and not proc["args"]:
            self.err("process.args", "must not be empty: it names the program to run")
        cwd = self.get(proc, "cwd", P, "string", required=True)
        if cwd is not _ABSENT and not cwd.startswith("/"):
            self.err("process.cwd", f"must be an absolute path, got {_show(cwd)}")
        self.get(proc, "terminal", P, "boolean")
        self.get(proc, "noNewPrivileges", P, "boolean")
        for key in ("apparmorProfile", "selinuxLabel", "commandLine"):
            self.get(proc, key, P, "string")
        self.int_in(proc, "oomScoreAdj", P, -1000, 1000)
        console = self.get(proc, "consoleSize", P, "object")
        if console is not _ABSENT:
            for key in ("height", "width"):
                self.int_in(console, key, "process.consoleSize", 0, UINT64_MAX, required=True)
        for path, entry in self.items(proc, "env", P, "string"):
            self.env_entry(path, entry)
        self.user(proc)
        self.capabilities(proc)
        self.rlimits(proc)
        io = self.get(proc, "ioPriority", P, "object")
        if io is not _ABSENT:
            self.enum(io, "class", "process.ioPriority", _IO_CLASSES, "I/O priority class", required=True)
            self.int_in(io, "priority", "process.ioPriority", 0, 7)
        sched = self.get(proc, "scheduler", P, "object")
        if sched is not _ABSENT:
            S = "process.scheduler"
            policy = self.enum(sched, "policy", S, _SCHED_POLICIES, "scheduling policy", required=True)
            nums = {k: self.int_in(sched, k, S, lo, hi) for k, lo, hi in (
                ("nice", -20, 19), ("priority", -(2**31), 2**31 - 1), ("runtime", 0, UINT64_MAX),
                ("deadline", 0, UINT64_MAX), ("period", 0, UINT64_MAX))}
            flags = [f for _, f in self.items(sched, "flags", S, "string")]
            if policy is not _ABSENT:  # the rules create applies, on what is well-typed
                from pyoci.process import scheduler_problems
                from pyoci.spec import Scheduler

                given = {k: v for k, v in nums.items() if v is not _ABSENT}
                for path, reason in scheduler_problems(Scheduler(policy=policy, flags=flags, **given)):
                    self.err(path, reason)
        aff = self.get(proc, "execCPUAffinity", P, "object")
        if aff is not _ABSENT:
            for key in ("initial", "final"):
                self.id_list(aff, key, "process.execCPUAffinity")

    def id_list(self, obj: dict, key: str, where: str) -> list[int]:
        """A CPU or node list ("0-3,7"), as create parses it."""
        text = self.get(obj, key, where, "string")
        if text is _ABSENT:
            return []
        from pyoci.errors import ConfigError
        from pyoci.spec import parse_id_list

        try:
            return parse_id_list(text, f"{where}.{key}")
        except ConfigError as e:
            path, _, reason = str(e).partition(": ")
            self.err(path, reason)
            return []

    def env_entry(self, path: str, entry: str) -> None:
        name, sep, _ = entry.partition("=")
        if not sep:
            self.err(path, f"{_show(entry)} is not of the form KEY=VALUE")
        elif not name:
            self.err(path, f"{_show(entry)} has an empty variable name")
        elif "\0" in entry:
            self.err(path, "contains a NUL byte")

    def user(self, proc: dict) -> None:
        user = self.get(proc, "user", "process", "object")
        if user is _ABSENT:
            return
        U = "process.user"
        for key in ("uid", "gid"):
            self.int_in(user, key, U, 0, ID_MAX, required=True)
        self.int_in(user, "umask", U, 0, UINT32_MAX)
        for path, gid in self.items(user, "additionalGids", U, "integer"):
            if not 0 <= gid <= ID_MAX:
                self.err(path, f"{_show(gid)} is out of range 0..{ID_MAX}")

    def capabilities(self, proc: dict) -> None:
        caps = self.get(proc, "capabilities", "process", "object")
        if caps is _ABSENT:
            return
        for cap_set in _CAP_SETS:
            for path, name in self.items(caps, cap_set, "process.capabilities", "string"):
                if name not in CAPABILITIES:
                    hint = ""
                    if name.upper() in CAPABILITIES or "CAP_" + name.upper() in CAPABILITIES:
                        hint = f" (did you mean {_show(name.upper() if name.upper() in CAPABILITIES else 'CAP_' + name.upper())}?)"
                    # config-linux.md: an unknown capability SHOULD be a warning, not a failure
                    self.warn(path, f"unknown capability {_show(name)}{hint} (ignored)")

    def rlimits(self, proc: dict) -> None:
        seen: dict[str, str] = {}
        for path, rl in self.items(proc, "rlimits", "process", "object"):
            kind = self.get(rl, "type", path, "string", required=True)
            soft = self.int_in(rl, "soft", path, 0, UINT64_MAX, required=True)
            hard = self.int_in(rl, "hard", path, 0, UINT64_MAX, required=True)
            if kind is not _ABSENT:
                if kind not in RLIMITS:
                    self.err(f"{path}.type", f"unknown rlimit {_show(kind)}; expected one of {', '.join(sorted(RLIMITS))}")
                elif kind in seen:
                    self.err(f"{path}.type", f"duplicate rlimit {_show(kind)} (first at {seen[kind]})")
                else:
                    seen[kind] = path
            if soft is not _ABSENT and hard is not _ABSENT and soft > hard:
                self.err(f"{path}.soft", f"soft limit {soft} is greater than hard limit {hard}")

    def mounts(self, config: dict) -> None:
        seen: dict[str, str] = {}
        for path, mount in self.items(config, "mounts", "", "object"):
            dest = self.get(mount, "destination", path, "string", required=True)
            for key in ("source", "type"):
                self.get(mount, key, path, "string")
            self.items(mount, "options", path, "string")
            for key in ("uidMappings", "gidMappings"):
                self.idmappings(mount, key, path)
            if dest is _ABSENT:
                continue
            if not dest:
                self.err(f"{path}.destination", "must not be empty")
                continue
            if not dest.startswith("/"):
                self.warn(f"{path}.destination", f"{_show(dest)} is not absolute; it is taken relative to the container's root (deprecated, runc does the same)")
            norm = "/" + posixpath.normpath("/" + dest).lstrip("/")  # normpath keeps a leading "//"
            if norm in seen:
                self.warn(f"{path}.destination", f"{_show(dest)} is also the destination of {seen[norm]}; this mount will be on top of the earlier one")
            else:
                seen[norm] = path

    def idmappings(self, obj: dict, key: str, path: str) -> None:
        for p, m in self.items(obj, key, path, "object"):
            for field in ("containerID", "hostID"):
                self.int_in(m, field, p, 0, UINT32_MAX, required=True)
            if self.int_in(m, "size", p, 0, UINT32_MAX, required=True) == 0:
                self.err(f"{p}.size", "must be at least 1")

    def hooks(self, config: dict) -> None:
        hooks = self.get(config, "hooks", "", "object")
        if hooks is _ABSENT:
            return
        for name in _HOOK_NAMES:
            for path, hook in self.items(hooks, name, "hooks", "object"):
                self.absolute(hook, "path", path, required=True)
                self.items(hook, "args", path, "string")
                for p, entry in self.items(hook, "env", path, "string"):
                    self.env_entry(p, entry)
                timeout = self.get(hook, "timeout", path, "integer")
                if timeout is not _ABSENT and timeout <= 0:
                    self.err(f"{path}.timeout", f"must be greater than zero (seconds), got {_show(timeout)}")

    def annotations(self, obj: dict, key: str) -> None:
        ann = self.get(obj, key, "", "object")
        if ann is _ABSENT:
            return
        for k, v in ann.items():
            if k == "":
                self.err(key, "annotation keys must not be empty")
            elif not isinstance(v, str):
                self.err(join_path(key, k), _type_reason("string", v))

    # ---------------------------------------------------------------- linux
    def namespaces(self, linux: dict) -> None:
        for path, ns in self.items(linux, "namespaces", "linux", "object"):
            kind = self.get(ns, "type", path, "string", required=True)
            ns_path = self.get(ns, "path", path, "string")
            if kind is not _ABSENT:
                if kind not in NAMESPACE_TYPES:
                    self.err(f"{path}.type", f"unknown namespace type {_show(kind)}; expected one of {', '.join(NAMESPACE_TYPES)}")
                elif kind in self.ns:
                    self.err(f"{path}.type", f"duplicate namespace {_show(kind)}")
                else:
                    self.ns[kind] = ns
            if ns_path is _ABSENT or ns_path == "":
                continue
            if not ns_path.startswith("/"):
                self.err(f"{path}.path", f"must be an absolute path, got {_show(ns_path)}")
            elif self.bundle is not None:
                try:
                    os.stat(ns_path)
                except FileNotFoundError:
                    self.err(f"{path}.path", f"{_show(ns_path)} does not exist")
                except (OSError, ValueError) as exc:
                    self.err(f"{path}.path", f"cannot access {_show(ns_path)}: {getattr(exc, 'strerror', None) or exc}")

    def linux(self, linux: dict) -> None:
        L = "linux"
        self.user_mappings(linux)
        offsets = self.get(linux, "timeOffsets", L, "object")
        if offsets is not _ABSENT:
            if "time" not in self.ns:
                self.err("linux.timeOffsets", "needs a time namespace; add {\"type\": \"time\"} to linux.namespaces")
            for clock, off in offsets.items():
                p = join_path("linux.timeOffsets", clock)
                if clock not in ("monotonic", "boottime"):
                    self.err(p, f"unknown clock {_show(clock)}; expected boottime or monotonic")
                if not isinstance(off, dict):
                    self.err(p, _type_reason("object", off))
                    continue
                self.int_in(off, "secs", p, INT64_MIN, INT64_MAX)
                self.int_in(off, "nanosecs", p, 0, 999_999_999)
        for path, dev in self.items(linux, "devices", L, "object"):
            kind = self.enum(dev, "type", path, ("c", "b", "u", "p"), "device type", required=True)
            self.absolute(dev, "path", path, required=True)
            for key in ("major", "minor"):
                if key in dev:
                    self.get(dev, key, path, "integer")
                elif kind in ("c", "b", "u"):
                    self.err(join_path(path, key), f"{MISSING} (needed for device type {_show(kind)})")
            self.int_in(dev, "fileMode", path, 0, UINT32_MAX)
            for key in ("uid", "gid"):
                self.int_in(dev, key, path, 0, UINT32_MAX)
        self.get(linux, "cgroupsPath", L, "string")
        self.resources(linux)
        self.sysctl(linux)
        self.seccomp(linux)
        self.enum(linux, "rootfsPropagation", L, _ROOTFS_PROPAGATIONS, "propagation")
        for key in ("maskedPaths", "readonlyPaths"):
            for path, value in self.items(linux, key, L, "string"):
                if not value.startswith("/"):
                    self.err(path, f"must be an absolute path, got {_show(value)}")
        self.get(linux, "mountLabel", L, "string")
        pers = self.get(linux, "personality", L, "object")
        if pers is not _ABSENT:
            self.enum(pers, "domain", "linux.personality", ("LINUX", "LINUX32"), "personality domain", required=True)
            self.items(pers, "flags", "linux.personality", "string")
        mpol = self.get(linux, "memoryPolicy", L, "object")
        if mpol is not _ABSENT:
            from pyoci.process import MPOL_MODES, memory_policy_problems
            from pyoci.spec import MemoryPolicy

            M = "linux.memoryPolicy"
            mode = self.enum(mpol, "mode", M, tuple(MPOL_MODES), "memory policy mode", required=True)
            nodes = self.id_list(mpol, "nodes", M)
            flags = [f for _, f in self.items(mpol, "flags", M, "string")]
            if mode is not _ABSENT:  # the rules create applies
                for path, reason in memory_policy_problems(MemoryPolicy(mode=mode, nodes=nodes, flags=flags)):
                    self.err(path, reason)
        self.get(linux, "intelRdt", L, "object")
        devices = self.get(linux, "netDevices", L, "object")
        if devices is not _ABSENT:
            from pyoci.netdev import name_problem

            for host, entry in devices.items():
                where = f"linux.netDevices.{host}"
                names = [(host, where)]
                if self.get(devices, host, "linux.netDevices", "object") is not _ABSENT:
                    new = self.get(entry, "name", where, "string")
                    if new not in (_ABSENT, ""):  # empty or absent: the host's name
                        names.append((new, f"{where}.name"))
                for n, path in names:
                    problem = name_problem(n)
                    if problem:
                        self.err(path, problem)
            if "network" not in self.ns:
                self.err("linux.netDevices", "needs a network namespace of the container's (linux.namespaces)")

    def user_mappings(self, linux: dict) -> None:
        user_ns = self.ns.get("user")
        creates_userns = user_ns is not None and not user_ns.get("path")
        for key in ("uidMappings", "gidMappings"):
            self.idmappings(linux, key, "linux")
            present = isinstance(linux.get(key), list) and bool(linux.get(key))
            if creates_userns and not present:
                self.err(f"linux.{key}", "required: linux.namespaces creates a user namespace, which needs at least one mapping")
            elif user_ns is None and present:
                self.err(f"linux.{key}", "set, but linux.namespaces has no user namespace to apply it to; add {\"type\": \"user\"}")

    def resources(self, linux: dict) -> None:
        res = self.get(linux, "resources", "linux", "object")
        if res is _ABSENT:
            return
        R = "linux.resources"
        for path, rule in self.items(res, "devices", R, "object"):
            self.get(rule, "allow", path, "boolean", required=True)
            self.enum(rule, "type", path, ("a", "c", "b"), "device type")
            for key in ("major", "minor"):
                self.get(rule, key, path, "integer")
            access = self.get(rule, "access", path, "string")
            if access is not _ABSENT and (set(access) - set("rwm") or len(access) > 3):
                self.err(f"{path}.access", f"{_show(access)} must be a combination of \"r\", \"w\" and \"m\"")
        for section in ("memory", "cpu", "blockIO", "network", "pids", "rdma", "unified"):
            self.get(res, section, R, "object")
        self.items(res, "hugepageLimits", R, "object")
        mem = res.get("memory")
        if isinstance(mem, dict):
            self.int_in(mem, "swappiness", f"{R}.memory", 0, 100)
        unified = res.get("unified")
        if isinstance(unified, dict):
            for k, v in unified.items():
                if "/" in k or not k:
                    self.err(join_path(f"{R}.unified", k), "must be a cgroup file name (no \"/\")")
                elif not isinstance(v, str):
                    self.err(join_path(f"{R}.unified", k), _type_reason("string", v))

    def sysctl(self, linux: dict) -> None:
        sysctl = self.get(linux, "sysctl", "linux", "object")
        if sysctl is _ABSENT:
            return
        for name, value in sysctl.items():
            p = join_path("linux.sysctl", name)
            if not isinstance(value, str):
                self.err(p, _type_reason("string", value))
            key = name.replace("/", ".") if "." not in name else name
            if key.startswith("net."):
                needs = "network"
            elif (key.startswith(("kernel.shm", "kernel.msg", "fs.mqueue.")) or key in ("kernel.sem", "kernel.sem_next_id")):
                needs = "ipc"
            elif key in ("kernel.hostname", "kernel.domainname"):
                needs = "uts"
            else:
                self.err(p, f"{_show(name)} is not namespaced: setting it would change the host; pyoci only sets net.*, IPC (kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*) and UTS sysctls")
                continue
            if needs not in self.ns:
                self.err(p, f"needs a {needs} namespace (add {{\"type\": \"{needs}\"}} to linux.namespaces); without one it would change the host")

    def seccomp(self, linux: dict) -> None:
        sec = self.get(linux, "seccomp", "linux", "object")
        if sec is _ABSENT:
            return
        S = "linux.seccomp"
        default = self.enum(sec, "defaultAction", S, SECCOMP_ACTIONS, "seccomp action", required=True)
        if default == "SCMP_ACT_NOTIFY":
            self.err(f"{S}.defaultAction", "SCMP_ACT_NOTIFY cannot be the default action")
        self.int_in(sec, "defaultErrnoRet", S, 0, UINT32_MAX)
        for path, arch in self.items(sec, "architectures", S, "string"):
            if arch not in SECCOMP_ARCHES:
                self.err(path, f"unknown architecture {_show(arch)}; expected SCMP_ARCH_* such as SCMP_ARCH_X86_64")
        for path, flag in self.items(sec, "flags", S, "string"):
            if flag not in SECCOMP_FLAGS:
                self.err(path, f"unknown seccomp flag {_show(flag)}; expected one of {', '.join(sorted(SECCOMP_FLAGS))}")
        self.absolute(sec, "listenerPath", S)
        if self.get(sec, "listenerMetadata", S, "string") is not _ABSENT and "listenerPath" not in sec:
            self.err(f"{S}.listenerMetadata", "must not be set without listenerPath")
        notify_at = None
        known = known_syscalls()
        for path, rule in self.items(sec, "syscalls", S, "object"):
            names = self.items(rule, "names", path, "string", required=True)
            if isinstance(rule.get("names"), list) and not rule["names"]:
                self.err(f"{path}.names", "must name at least one syscall")
            for p, name in names:
                if name not in known:
                    self.warn(p, f"unknown syscall {_show(name)}; the rule will not apply to it")
            action = self.enum(rule, "action", path, SECCOMP_ACTIONS, "seccomp action", required=True)
            if action == "SCMP_ACT_NOTIFY" and notify_at is None:
                notify_at = f"{path}.action"
            self.int_in(rule, "errnoRet", path, 0, UINT32_MAX)
            for p, arg in self.items(rule, "args", path, "object"):
                self.int_in(arg, "index", p, 0, 5, required=True)
                self.int_in(arg, "value", p, 0, UINT64_MAX, required=True)
                self.int_in(arg, "valueTwo", p, 0, UINT64_MAX)
                self.enum(arg, "op", p, SECCOMP_OPS, "comparison operator", required=True)
        if notify_at and "listenerPath" not in sec:
            self.err(f"{S}.listenerPath", f"required because {notify_at} is SCMP_ACT_NOTIFY")


def semantic_problems(config: object, bundle: str | os.PathLike | None) -> list[Problem]:
    """Fast checks a schema cannot express, run on every create.

    Never imports jsonschema and never raises: any input shape yields a list of
    problems.  ``bundle`` anchors root.path; ``None`` skips all filesystem checks.
    """
    checker = _Checker(bundle)
    try:
        checker.check(config)
    except Exception as exc:  # noqa: BLE001 - a validator bug must not become a traceback in `pyoci create`
        checker.err("", f"internal error in pyoci's validator ({type(exc).__name__}: {_show(str(exc))}); please report it")
    return _sorted_unique(checker.problems)


# --------------------------------------------------------------------------- JSON Schema

_SCHEMA_FILES = {"config": "config-schema.json", "state": "state-schema.json", "features": "features-schema.json"}
_validators: dict[str, Any] = {}


def schemas_dir() -> Path:
    """Where the JSON Schemas live: pyoci/schemas when installed, <repo>/schemas in a checkout."""
    from pathlib import Path

    here = Path(__file__).resolve().parent
    for candidate in (here / "schemas", here.parent / "schemas"):
        if (candidate / _SCHEMA_FILES["config"]).is_file():
            return candidate
    raise FileNotFoundError(f"pyoci's JSON Schemas are missing (looked in {here / 'schemas'} and {here.parent / 'schemas'})")


def _validator(schema: str) -> Any:
    """Build (once) a validator for "config", "state" or "features" with all schema files registered."""
    if schema in _validators:
        return _validators[schema]
    if schema not in _SCHEMA_FILES:
        raise ValueError(f"unknown schema {schema!r}; expected one of {', '.join(_SCHEMA_FILES)}")
    import json

    import jsonschema

    documents = {f.name: json.loads(f.read_text(encoding="utf-8")) for f in sorted(schemas_dir().glob("*.json"))}
    base = jsonschema.Draft202012Validator
    # JSON "1.0" is not an integer for Go's decoder (runc), so not for us either.
    strict_int = base.TYPE_CHECKER.redefine("integer", lambda _checker, v: _is_int(v))
    cls = jsonschema.validators.extend(base, type_checker=strict_int)
    root = documents[_SCHEMA_FILES[schema]]
    try:
        from referencing import Registry, Resource
    except ImportError:  # jsonschema < 4.18
        store = {doc["$id"]: doc for doc in documents.values()}
        validator = cls(root, resolver=jsonschema.RefResolver(root["$id"], root, store=store))
    else:  # every $ref resolves to a local file: nothing is ever fetched from the network
        registry = Registry().with_resources((doc["$id"], Resource.from_contents(doc)) for doc in documents.values())
        validator = cls(root, registry=registry)
    _validators[schema] = validator
    return validator


def _schema_error_problems(error: Any) -> list[Problem]:
    """Turn one jsonschema error into problems worded for people."""
    path = ""
    for key in error.absolute_path:
        path = join_path(path, key)
    kind = error.validator
    sub = error.schema if isinstance(error.schema, dict) else {}
    inst = error.instance
    if kind == "required":
        names = [n for n in error.validator_value if isinstance(inst, dict) and n not in inst]
        return [Problem(join_path(path, n), MISSING) for n in names] or [Problem(path, error.message)]
    if kind == "type":
        expected = error.validator_value
        if isinstance(expected, list):
            expected = " or ".join(expected)
        return [Problem(path, _type_reason(str(expected), inst))]
    if kind in ("pattern", "propertyNames") and "x-error" in sub:
        return [Problem(path, f"{sub['x-error']}, got {_show(inst)}")]
    if kind == "enum":
        allowed = ", ".join(str(v) for v in error.validator_value)
        return [Problem(path, f"{_show(inst)} is not one of: {allowed}")]
    if kind in ("minimum", "maximum") and _is_int(inst):
        lo, hi = sub.get("minimum"), sub.get("maximum")
        if lo is not None and hi is not None:
            return [Problem(path, f"{_show(inst)} is out of range {lo}..{hi}")]
    if kind == "minItems" and error.validator_value == 1:
        return [Problem(path, "must not be empty")]
    if kind == "minLength" and error.validator_value == 1:
        return [Problem(path, "must not be empty")]
    if error.context:  # anyOf/oneOf: report the most relevant branch
        from jsonschema.exceptions import best_match

        return _schema_error_problems(best_match(error.context))
    return [Problem(path, error.message)]


def _tame_huge_ints(value: object) -> object:
    """Copy with integers too long for str() (Python's 4300-digit limit) replaced by
    10**100 (same sign): still out of every range, but jsonschema can print it."""
    if _is_int(value):
        return value if abs(value) < _HUGE else (_HUGE**2 if value > 0 else -(_HUGE**2))  # type: ignore[arg-type,operator]
    if isinstance(value, dict):
        return {k: _tame_huge_ints(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_tame_huge_ints(v) for v in value]
    return value


def schema_problems(instance: object, schema: str = "config") -> list[Problem]:
    """All JSON Schema violations of ``instance`` ("config", "state" or "features"), sorted by path.

    Imports jsonschema lazily (it is slow to import), so only callers that want the
    full report pay for it.
    """
    validator = _validator(schema)
    problems: list[Problem] = []
    try:
        instance = _tame_huge_ints(instance)
        for error in validator.iter_errors(instance):
            problems.extend(_schema_error_problems(error))
    except (RecursionError, ValueError) as exc:
        # Last resort; a report with one problem beats a traceback.
        problems.append(Problem("", f"schema validation gave up: {type(exc).__name__}: {_show(str(exc))}"))
    return _sorted_unique(problems)


# --------------------------------------------------------------------------- entry points

def validate_config(config: object, bundle: str | os.PathLike | None, full: bool = False) -> list[Problem]:
    """Semantic checks always; the schema too if ``full`` or if there is already an error.

    That way a valid config never pays for importing jsonschema, while a broken one
    gets every problem reported at once rather than one per attempt.
    """
    problems = semantic_problems(config, bundle)
    if full or has_errors(problems):
        # The semantic message is the more specific one: drop schema findings about
        # a path that already has a semantic error (e.g. a bad enum value).
        flagged = {p.path for p in problems if not p.warning}
        problems = problems + [p for p in schema_problems(config, "config") if p.path not in flagged]
    return _sorted_unique(problems)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


MAX_JSON = 64 << 20  # config.json and --process files: bigger is refused unread (runc reads without bound)
MAX_DEPTH = 500  # JSON nesting: deeper would exhaust Python's recursion (the spec's own schema needs ~8)


def _hostile_strings(obj: object, shown: str) -> list[Problem]:
    """A NUL byte cannot reach the kernel (paths, args, options are C strings): name the first field that
    has one. And refuse nesting deeper than MAX_DEPTH, which later steps could not walk. Iterative."""
    stack: list[tuple[object, str, int]] = [(obj, "", 0)]
    while stack:
        value, where, depth = stack.pop()
        if depth > MAX_DEPTH:
            return [Problem(where, f"{shown}: nested deeper than {MAX_DEPTH} levels")]
        if isinstance(value, str):
            if "\0" in value:
                return [Problem(where, "contains a NUL byte")]
        elif isinstance(value, dict):
            for k, v in value.items():
                path = f"{where}.{k}" if where else k
                if "\0" in k:
                    return [Problem(where, f"key {k!r} contains a NUL byte")]
                stack.append((v, path, depth + 1))
        elif isinstance(value, list):
            stack.extend((v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value))
    return []


def load_json(path: str | os.PathLike, pipe: bool = False) -> tuple[object, list[Problem]]:
    """Read a JSON file; any failure becomes a Problem ("" path) instead of an exception. With pipe, a FIFO is
    read to its end too (`exec --process <(...)`, which runc takes); otherwise only a regular file."""
    shown = os.fspath(path)
    try:
        # O_NONBLOCK: a FIFO must not hang the open; only a regular file (or the pipe asked for), bounded
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with open(fd, "rb") as f:
            st = os.fstat(fd)
            import stat

            if stat.S_ISDIR(st.st_mode):
                raise IsADirectoryError
            if pipe and stat.S_ISFIFO(st.st_mode):
                os.set_blocking(fd, True)
            elif not stat.S_ISREG(st.st_mode):
                return None, [Problem("", f"{shown} is not a regular file")]
            if st.st_size > MAX_JSON:
                return None, [Problem("", f"{shown} is {st.st_size} bytes, more than pyoci reads ({MAX_JSON})")]
            data = f.read(MAX_JSON + 1)
            if len(data) > MAX_JSON:
                return None, [Problem("", f"{shown} is more than {MAX_JSON} bytes, more than pyoci reads")]
    except FileNotFoundError:
        return None, [Problem("", f"{shown} does not exist")]
    except IsADirectoryError:
        return None, [Problem("", f"{shown} is a directory, not a file")]
    except OSError as exc:
        return None, [Problem("", f"cannot read {shown}: {exc.strerror or exc}")]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, [Problem("", f"{shown} is not UTF-8 (byte {exc.start}): JSON must be UTF-8")]
    if text.startswith("\ufeff"):
        text = text[1:]
    from pyoci import jsonio

    try:
        obj = jsonio.loads(text)  # without the json package (and the re/enum imports it brings)
    except (ValueError, RecursionError):
        pass
    else:
        return obj, _hostile_strings(obj, shown)
    import json  # a broken file: the json package says where

    try:
        return json.loads(text, parse_constant=_reject_constant), []
    except json.JSONDecodeError as exc:
        return None, [Problem("", f"{shown} is not valid JSON: line {exc.lineno}:{exc.colno}: {exc.msg}")]
    except RecursionError:
        return None, [Problem("", f"{shown}: nested deeper than {MAX_DEPTH} levels")]
    except ValueError as exc:
        # NaN/Infinity, integers longer than 4300 digits
        return None, [Problem("", f"{shown} is not valid JSON: {_show(str(exc), 120)}")]


def refused_problems(config: object) -> list[Problem]:
    """What is valid but this pyoci's create refuses, as warnings for `pyoci validate` (create says it as its
    error): nothing valid may look as if it will be applied."""
    def obj(parent: object, key: str) -> dict:
        value = parent.get(key) if isinstance(parent, dict) else None
        return value if isinstance(value, dict) else {}

    proc, linux = obj(config, "process"), obj(config, "linux")
    lsm = "LSM labels are not applied yet"
    found = [("process.apparmorProfile", proc.get("apparmorProfile"), lsm),
             ("process.selinuxLabel", proc.get("selinuxLabel"), lsm), ("linux.mountLabel", linux.get("mountLabel"), lsm),
             ("linux.intelRdt", "intelRdt" in linux, "resctrl groups are not managed yet"),
             ("linux.personality.flags", obj(linux, "personality").get("flags"), "the spec defines no flags yet")]
    return [Problem(path, "valid, but pyoci create refuses it: " + why, warning=True) for path, given, why in found
            if given]


def validate_bundle(bundle: str | os.PathLike, full: bool = True) -> list[Problem]:
    """Validate ``<bundle>/config.json``; unreadable or malformed files are problems too."""
    b = os.fspath(bundle)
    if not os.path.isdir(b):
        return [Problem("", f"bundle {b} is not a directory" if os.path.exists(b) else f"bundle {b} does not exist")]
    config, problems = load_json(os.path.join(b, "config.json"))
    if problems:
        return problems
    return _sorted_unique(validate_config(config, bundle, full=full) + refused_problems(config))


def main(argv: list[str] | None = None, out: Callable[[str], Any] | None = None) -> int:
    """``python -m pyoci.validate [--fast] [--state FILE] [BUNDLE]``: print problems, exit 1 on errors.

    The CLI's ``pyoci validate`` can delegate here.
    """
    import argparse

    parser = argparse.ArgumentParser(prog="pyoci validate", description="Check an OCI bundle's config.json (or a state document).")
    parser.add_argument("bundle", nargs="?", default=".", help="bundle directory (default: current directory)")
    parser.add_argument("--fast", action="store_true", help="semantic checks only, unless they find an error")
    parser.add_argument("--state", metavar="FILE", help="validate a state JSON document instead ('-' for stdin)")
    args = parser.parse_args(argv)
    write = out or (lambda s: print(s, file=sys.stderr))
    if args.state:
        import json

        if args.state == "-":
            try:
                doc, problems = json.loads(sys.stdin.read()), []
            except ValueError as exc:
                doc, problems = None, [Problem("", f"stdin is not valid JSON: {exc}")]
        else:
            doc, problems = load_json(args.state)
        if not problems:
            problems = schema_problems(doc, "state")
        source = args.state
    else:
        problems = validate_bundle(args.bundle, full=not args.fast)
        source = os.path.join(args.bundle, "config.json")
    if problems:
        write(format_problems(problems, source))
    return 1 if has_errors(problems) else 0


if __name__ == "__main__":
    sys.exit(main())
