"""Process set-up just before exec: rlimits, scheduling, user and groups, capabilities, no_new_privs, fds,
signals."""
from __future__ import annotations

import os
import resource
import _signal as signal  # the C module: signal.py's enums cost ~1 ms per container

from pyoci.errors import ConfigError, ContainerError
from pyoci.spec import Capabilities, MemoryPolicy, Process, Scheduler

RLIMITS = {
    "RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3, "RLIMIT_CORE": 4, "RLIMIT_RSS": 5,
    "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7, "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9, "RLIMIT_LOCKS": 10,
    "RLIMIT_SIGPENDING": 11, "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13, "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
}
_INFINITY = (1 << 64) - 1


def set_rlimits(proc: Process) -> None:
    for rl in proc.rlimits:
        if rl.type not in RLIMITS:
            raise ConfigError("process.rlimits: unknown type %r" % rl.type)
        soft = resource.RLIM_INFINITY if rl.soft >= _INFINITY else rl.soft
        hard = resource.RLIM_INFINITY if rl.hard >= _INFINITY else rl.hard
        try:
            resource.setrlimit(RLIMITS[rl.type], (soft, hard))
        except (OSError, ValueError) as e:
            raise ContainerError("process.rlimits: cannot set %s to %d/%d: %s" % (rl.type, rl.soft, rl.hard, e)) from None


SCHED_POLICIES = {"SCHED_OTHER": 0, "SCHED_FIFO": 1, "SCHED_RR": 2, "SCHED_BATCH": 3, "SCHED_IDLE": 5,
                  "SCHED_DEADLINE": 6}  # SCHED_ISO (4) is reserved: Linux has never implemented it
SCHED_FLAGS = {"SCHED_FLAG_RESET_ON_FORK": 0x01, "SCHED_FLAG_RECLAIM": 0x02, "SCHED_FLAG_DL_OVERRUN": 0x04,
               "SCHED_FLAG_KEEP_POLICY": 0x08, "SCHED_FLAG_KEEP_PARAMS": 0x10, "SCHED_FLAG_UTIL_CLAMP_MIN": 0x20,
               "SCHED_FLAG_UTIL_CLAMP_MAX": 0x40}
IO_CLASSES = {"IOPRIO_CLASS_RT": 1, "IOPRIO_CLASS_BE": 2, "IOPRIO_CLASS_IDLE": 3}


def scheduler_problems(s: Scheduler, path: str = "process.scheduler") -> list[tuple[str, str]]:
    """What the kernel would refuse with a bare EINVAL, named by field (runc's rules, and the policy names)."""
    out = []
    if s.policy not in SCHED_POLICIES:
        out.append((path + ".policy", "%s is not a scheduling policy Linux implements" % s.policy))
    out += [(path + ".flags", "unknown flag %s" % f) for f in s.flags if f not in SCHED_FLAGS]
    if not -20 <= s.nice <= 19:
        out.append((path + ".nice", "must be between -20 and 19, not %d" % s.nice))
    if s.priority and s.policy not in ("SCHED_FIFO", "SCHED_RR"):
        out.append((path + ".priority", "only SCHED_FIFO and SCHED_RR take a priority"))
    if s.policy in ("SCHED_FIFO", "SCHED_RR") and not 1 <= s.priority <= 99:
        out.append((path + ".priority", "%s needs a priority between 1 and 99" % s.policy))
    if s.policy != "SCHED_DEADLINE" and (s.runtime or s.deadline or s.period):
        out.append((path, "runtime, deadline and period are for SCHED_DEADLINE only"))
    return out


def set_scheduling(proc: Process) -> None:
    """process.scheduler and process.ioPriority for the calling process, still privileged (a real-time policy,
    a negative nice and the RT I/O class need CAP_SYS_NICE / CAP_SYS_ADMIN); inherited by what it execs."""
    if proc.scheduler is None and proc.io_priority is None:
        return
    from pyoci import syscalls

    s = proc.scheduler
    if s is not None:
        problems = scheduler_problems(s)
        if problems:
            raise ConfigError("%s: %s" % problems[0])
        flags = 0
        for f in s.flags:
            flags |= SCHED_FLAGS[f]
        try:
            syscalls.sched_setattr(SCHED_POLICIES[s.policy], flags, s.nice, s.priority, s.runtime, s.deadline,
                                   s.period)
        except OSError as e:
            raise ContainerError("process.scheduler: cannot set %s: %s" % (s.policy, os.strerror(e.errno))) from None
    io = proc.io_priority
    if io is not None:
        if io.klass not in IO_CLASSES:
            raise ConfigError("process.ioPriority.class: unknown class %s" % io.klass)
        if not 0 <= io.priority <= 7:
            raise ConfigError("process.ioPriority.priority: must be between 0 and 7, not %d" % io.priority)
        try:
            syscalls.ioprio_set(IO_CLASSES[io.klass], io.priority)
        except OSError as e:
            raise ContainerError("process.ioPriority: cannot set %s %d: %s" % (
                io.klass, io.priority, os.strerror(e.errno))) from None


MPOL_MODES = {"MPOL_DEFAULT": 0, "MPOL_PREFERRED": 1, "MPOL_BIND": 2, "MPOL_INTERLEAVE": 3, "MPOL_LOCAL": 4,
              "MPOL_PREFERRED_MANY": 5, "MPOL_WEIGHTED_INTERLEAVE": 6}
MPOL_FLAGS = {"MPOL_F_STATIC_NODES": 1 << 15, "MPOL_F_RELATIVE_NODES": 1 << 14, "MPOL_F_NUMA_BALANCING": 1 << 13}


def memory_policy_problems(mp: MemoryPolicy, path: str = "linux.memoryPolicy") -> list[tuple[str, str]]:
    """What set_mempolicy(2) would refuse with a bare EINVAL, named by field (nodes the host lacks are the
    kernel's to refuse)."""
    out = []
    if mp.mode not in MPOL_MODES:
        out.append((path + ".mode", "unknown mode %s" % mp.mode))
    out += [(path + ".flags", "unknown flag %s" % f) for f in mp.flags if f not in MPOL_FLAGS]
    if mp.mode in ("MPOL_DEFAULT", "MPOL_LOCAL"):
        if mp.nodes:
            out.append((path + ".nodes", "must be empty for %s" % mp.mode))
        if mp.flags:
            out.append((path + ".flags", "%s takes no flags" % mp.mode))
    elif mp.mode != "MPOL_PREFERRED" and not mp.nodes:
        out.append((path + ".nodes", "%s needs at least one node" % mp.mode))
    if "MPOL_F_STATIC_NODES" in mp.flags and "MPOL_F_RELATIVE_NODES" in mp.flags:
        out.append((path + ".flags", "MPOL_F_STATIC_NODES and MPOL_F_RELATIVE_NODES exclude each other"))
    if "MPOL_F_NUMA_BALANCING" in mp.flags and mp.mode not in ("MPOL_BIND", "MPOL_PREFERRED_MANY"):
        out.append((path + ".flags", "MPOL_F_NUMA_BALANCING is for MPOL_BIND and MPOL_PREFERRED_MANY only"))
    return out


def set_memory_policy(mp: MemoryPolicy | None) -> None:
    """linux.memoryPolicy for the calling process, inherited by what it forks and execs."""
    if mp is None:
        return
    from pyoci import syscalls

    problems = memory_policy_problems(mp)
    if problems:
        raise ConfigError("%s: %s" % problems[0])
    mode = MPOL_MODES[mp.mode]
    for f in mp.flags:
        mode |= MPOL_FLAGS[f]
    try:
        syscalls.set_mempolicy(mode, mp.nodes)
    except OSError as e:
        raise ContainerError("linux.memoryPolicy: cannot set %s on nodes %s: %s" % (
            mp.mode, ",".join(map(str, mp.nodes)) or "(none)", os.strerror(e.errno))) from None


ALL_CPUS = range(8192)  # sched_setaffinity keeps those the process's cpuset allows


def place_exec_stage(pid: int, proc: Process) -> None:
    """From the runtime, on the exec stage it forked, before that joins the container's cgroup:
    process.oomScoreAdj (the stage cannot write its own /proc/self once in the container's mount namespace;
    what it forks and execs inherits it) and process.execCPUAffinity.initial."""
    if proc.oom_score_adj is not None:
        try:
            with open("/proc/%d/oom_score_adj" % pid, "w") as f:
                f.write(str(proc.oom_score_adj))
        except OSError as e:
            raise ContainerError("process.oomScoreAdj: cannot set %d: %s" % (proc.oom_score_adj, e.strerror)) from None
    aff = proc.exec_cpu_affinity
    if aff is not None and aff.initial:
        _set_affinity(pid, aff.initial, "process.execCPUAffinity.initial")


def set_final_affinity(proc: Process) -> None:
    """process.execCPUAffinity.final, in the exec stage once in the container's cgroup; without one, after an
    initial affinity, every CPU the container's cpuset allows (the spec's default)."""
    aff = proc.exec_cpu_affinity
    if aff is not None and (aff.final or aff.initial):
        _set_affinity(0, aff.final or ALL_CPUS, "process.execCPUAffinity.final")


def _set_affinity(pid: int, cpus: list[int] | range, path: str) -> None:
    try:
        os.sched_setaffinity(pid, cpus)
    except OSError as e:
        shown = ",".join(map(str, cpus)) if isinstance(cpus, list) else "all"
        raise ContainerError("%s: cannot run on CPUs %s: %s" % (path, shown, os.strerror(e.errno))) from None


def refuse_labels(proc: Process, mount_label: str | None = None) -> None:
    """LSM labels are not applied by pyoci: running without one would be weaker than asked."""
    from pyoci.errors import NotSupported

    for field, value in (("process.apparmorProfile", proc.apparmor_profile),
                         ("process.selinuxLabel", proc.selinux_label), ("linux.mountLabel", mount_label)):
        if value:
            raise NotSupported("%s: LSM labels are not applied by pyoci yet (running without would be weaker "
                               "than asked)" % field)


def find_executable(proc: Process) -> str:
    """args[0] resolved in the container's PATH (from process.env; none set: only names with a '/', as runc),
    checked before start. The words are the kernel's, as runc's: engines map "no such file or directory" and
    "executable file not found" to exit 127, "permission denied" to 126."""
    name = proc.args[0]
    if "/" in name:
        candidates = [name if name.startswith("/") else os.path.join(proc.cwd, name)]
    else:
        path = next((e[5:] for e in proc.env if e.startswith("PATH=")), "")
        candidates = [os.path.join(d or ".", name) for d in path.split(":")] if path else []
    for c in candidates:
        if os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    for c in candidates:
        if os.path.exists(c):
            raise ContainerError("process.args[0]: exec %s: permission denied" % c)
    if "/" in name:
        raise ContainerError("process.args[0]: exec %s: no such file or directory" % name)
    raise ContainerError('process.args[0]: exec: "%s": executable file not found in $PATH' % name)


CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)


_last_cap: list[int] = []


def last_cap() -> int:
    """The kernel's highest capability, read once in the runtime (bootstrap.preload calls this before any
    fork): after pivot_root, /proc/sys/kernel/cap_last_cap would be whatever the container put there."""
    if not _last_cap:
        try:
            with open("/proc/sys/kernel/cap_last_cap") as f:
                value = int(f.read())
        except (OSError, ValueError):
            value = len(CAPABILITIES) - 1
        _last_cap.append(value)
    return _last_cap[0]


_bounding: list[int] = []


def runtime_bounding() -> int:
    """The runtime's own bounding set (CapBnd), read once before any fork: no process it starts can hold a
    capability outside it, whatever the config asks."""
    if not _bounding:
        value = (1 << (last_cap() + 1)) - 1
        try:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("CapBnd:"):
                        value = int(line.split()[1], 16)
                        break
        except (OSError, ValueError):
            pass
        _bounding.append(value)
    return _bounding[0]


def ungrantable(caps: Capabilities | None) -> list[str]:
    """Known capabilities asked for that the runtime's bounding set lacks: dropped with a warning (spec 1.3:
    runtimes SHOULD NOT fail for capabilities that cannot be granted; `docker --privileged` asks for all)."""
    if caps is None:
        return []
    held, top = runtime_bounding(), last_cap()
    asked = {n for names in (caps.bounding, caps.effective, caps.permitted, caps.inheritable, caps.ambient)
             for n in names if n in CAPABILITIES and CAPABILITIES.index(n) <= top}
    return sorted(n for n in asked if not held & (1 << CAPABILITIES.index(n)))


def warn_ungrantable(caps: Capabilities | None) -> None:
    lost = ungrantable(caps)
    if lost:
        from pyoci import log

        log.warning("process.capabilities: %s not in the runtime's bounding set: not granted" % ", ".join(lost))


def _mask(names: list[str]) -> int:
    """Names -> bit mask; a name this kernel does not know, or one outside the runtime's bounding set, is
    skipped, like runc (`create` has warned: pyoci.validate, ungrantable)."""
    mask, top = 0, last_cap()
    for n in names:
        try:
            num = CAPABILITIES.index(n)
        except ValueError:
            num = -1
        if not 0 <= num <= top:
            continue
        mask |= 1 << num
    return mask & runtime_bounding()


def drop_bounding(caps: Capabilities | None) -> None:
    """Before the uid change: dropping the bounding set needs CAP_SETPCAP. No capabilities object means
    none at all, in every set (runc's rule): a full bounding set would give root everything back at exec.
    Through the cffi prctl: python-prctl does not know the capabilities after CAP_BPF."""
    from pyoci import syscalls
    from pyoci.syscalls import C

    keep = _mask(caps.bounding if caps is not None else [])
    for cap in range(last_cap() + 1):
        if not keep & (1 << cap):
            syscalls.prctl(C.PR_CAPBSET_DROP, cap)


def set_user(proc: Process) -> None:
    """Groups, gid, uid, keeping capabilities across the switch so set_capabilities can set them exactly."""
    import prctl

    u = proc.user
    prctl.set_keepcaps(True)
    try:
        try:
            os.setgroups(u.additional_gids)
        except PermissionError:
            if u.additional_gids:  # setgroups is denied in a user namespace with setgroups=deny
                raise
        os.setresgid(u.gid, u.gid, u.gid)
        os.setresuid(u.uid, u.uid, u.uid)
    except OSError as e:
        raise ContainerError("process.user: cannot switch to uid %d gid %d: %s" % (u.uid, u.gid, e.strerror)) from None
    prctl.set_keepcaps(False)
    if u.umask is not None:
        os.umask(u.umask)


def set_capabilities(caps: Capabilities | None) -> None:
    """Effective, permitted and inheritable exactly as configured (inheritable empty unless asked), then ambient."""
    from pyoci import syscalls
    from pyoci.syscalls import C

    if caps is None:
        caps = Capabilities()  # runc: no capabilities object means none at all
    try:
        syscalls.capset(_mask(caps.effective), _mask(caps.permitted),
                        _mask(caps.inheritable))
    except OSError as e:
        raise ContainerError("process.capabilities: %s" % e.strerror) from None
    syscalls.prctl(C.PR_CAP_AMBIENT, C.PR_CAP_AMBIENT_CLEAR_ALL)
    ambient = _mask(caps.ambient)
    for cap in range(last_cap() + 1):
        if ambient & (1 << cap):
            try:
                syscalls.prctl(C.PR_CAP_AMBIENT, C.PR_CAP_AMBIENT_RAISE, cap)
            except OSError:
                pass  # like runc: an ambient capability must also be permitted and inheritable


def no_new_privileges(proc: Process) -> None:
    if proc.no_new_privileges:
        import prctl

        prctl.set_no_new_privs(True)


def open_fds(first: int, count: int) -> list[int]:
    """Which of first..first+count-1 are open: what a caller really passes with --preserve-fds. Called by
    the runtime before it opens anything of its own, so that none of its fds is ever handed over."""
    out = []
    for fd in range(first, first + count):
        try:
            os.fstat(fd)
        except OSError:
            continue
        out.append(fd)
    return out


def passed_fds(preserve_fds: int) -> tuple[list[int], int]:
    """The fds a caller hands to the container, as runc does: systemd socket activation's first (LISTEN_FDS,
    when LISTEN_PID is us), then --preserve-fds more; only those open. Returns them and the LISTEN_FDS count."""
    listen = 0
    if os.environ.get("LISTEN_PID") == str(os.getpid()):
        try:
            listen = max(0, int(os.environ.get("LISTEN_FDS", "0")))
        except ValueError:
            listen = 0
    return open_fds(3, listen + preserve_fds), listen


def close_fds(keep: set[int], inherit: list[int]) -> None:
    """Nothing of the runtime leaks into the container: every fd from 3 on closes but those in keep (our
    own, close-on-exec) and inherit (--preserve-fds, made inheritable)."""
    from pyoci import syscalls

    start = 3
    for fd in sorted(set(keep) | set(inherit)) + [0xFFFFFFFF + 1]:
        if fd > start:
            try:
                syscalls.close_range(start, fd - 1)
            except OSError:  # ENOSYS on old kernels
                os.closerange(start, min(fd, os.sysconf("SC_OPEN_MAX")))
        start = max(start, fd + 1)
    for fd in inherit:
        os.set_inheritable(fd, True)


def reset_signals() -> None:
    """Python ignores SIGPIPE and SIGXFSZ; exec keeps ignored signals ignored, so restore the defaults."""
    for sig in range(1, signal.NSIG):
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            continue
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):
            pass
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
