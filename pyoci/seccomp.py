"""linux.seccomp: the OCI seccomp object as a libseccomp filter (runtime-spec config-linux.md#seccomp).

``check`` builds the whole filter without loading it, so that ``create`` fails in the runtime, before
anything is forked, on everything but the kernel's final word. ``load_filter`` builds it again and
loads it into the calling process: the container's init, just before it execs.

Behaviour follows runc (libcontainer/seccomp, specconv.SetupSeccomp) where the spec leaves room:

* SCMP_ACT_KILL is SCMP_ACT_KILL_THREAD; SCMP_ACT_ERRNO and SCMP_ACT_TRACE return EPERM unless
  errnoRet/defaultErrnoRet says otherwise (the spec: an errno on any other action is an error).
* The native architecture is always in the filter; ``architectures`` adds more.
* SECCOMP_FILTER_FLAG_TSYNC is always applied (libseccomp-golang does so); LOG and SPEC_ALLOW set the
  matching libseccomp attributes. Without a ``flags`` key (not even []), SPEC_ALLOW is set when the
  kernel has it, as runc does.
* The filter never sets no_new_privs itself: that is process.noNewPrivileges' business. Loading without
  it needs CAP_SYS_ADMIN, so the caller loads before dropping capabilities in that case.
* A rule whose action is the default action is skipped (libseccomp refuses it); a syscall name
  libseccomp does not know is skipped with a debug message (profiles name newer syscalls).
* Several conditions on the same argument become one rule per condition (OR), as runc does:
  libseccomp refuses two conditions on one argument within a rule.
* More than 32 rules: libseccomp's binary-tree layout (runc's threshold).
* ``{}`` (no defaultAction and no syscalls) means no filter, as in runc.

* SCMP_ACT_NOTIFY (seccomp user notification): the filter is loaded with a listener (libseccomp adds
  SECCOMP_FILTER_FLAG_NEW_LISTENER); ``load_filter`` returns its fd, which the loading process hands to the
  runtime and closes (the container must never hold it); the runtime sends it to the agent at
  ``listenerPath`` (``send_to_agent``). NOTIFY rules need a listenerPath; a listenerPath without NOTIFY rules
  is ignored, as runc does.
* SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (a notified syscall, once the agent has it, waits for the answer
  through every signal but a fatal one): libseccomp 2.5 has no attribute for it, so that filter is exported
  as BPF and loaded by pyoci with seccomp(2) and the flags libseccomp would have given it. Without NOTIFY rules
  it means nothing and is left out, as libseccomp 2.6 (runc's) does.

Not implemented: runc's BPF patch that turns syscalls newer than the profile into ENOSYS.

pyoci._seccomp (the compiled libseccomp binding) is imported here, not lazily: the init imports this
module while the host's files are still reachable.
"""
from __future__ import annotations

import errno
import os

from pyoci import log
from pyoci._seccomp import ffi, lib
from pyoci.errors import ConfigError, ContainerError, NotSupported

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn

_S = "linux.seccomp"
_UINT64_MAX = (1 << 64) - 1
_DATA_MAX = 0xFFFF  # SECCOMP_RET_DATA: errnoRet must fit in 16 bits
_MAX_ARGS = 6
_TREE_THRESHOLD = 32

#: Actions that take no data; SCMP_ACT_ERRNO/TRACE are built with their errno.
_ACTIONS: dict[str, int] = {
    "SCMP_ACT_KILL": lib.SCMP_ACT_KILL_THREAD,
    "SCMP_ACT_KILL_THREAD": lib.SCMP_ACT_KILL_THREAD,
    "SCMP_ACT_KILL_PROCESS": lib.SCMP_ACT_KILL_PROCESS,
    "SCMP_ACT_TRAP": lib.SCMP_ACT_TRAP,
    "SCMP_ACT_ALLOW": lib.SCMP_ACT_ALLOW,
    "SCMP_ACT_LOG": lib.SCMP_ACT_LOG,
    "SCMP_ACT_NOTIFY": lib.SCMP_ACT_NOTIFY,
}
_ERRNO_ACTIONS = ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE")
_NOTIFY = "SCMP_ACT_NOTIFY"

_OPS: dict[str, int] = {
    "SCMP_CMP_NE": lib.SCMP_CMP_NE,
    "SCMP_CMP_LT": lib.SCMP_CMP_LT,
    "SCMP_CMP_LE": lib.SCMP_CMP_LE,
    "SCMP_CMP_EQ": lib.SCMP_CMP_EQ,
    "SCMP_CMP_GE": lib.SCMP_CMP_GE,
    "SCMP_CMP_GT": lib.SCMP_CMP_GT,
    "SCMP_CMP_MASKED_EQ": lib.SCMP_CMP_MASKED_EQ,
}

_ARCH_NAMES = (
    "X86 X86_64 X32 ARM AARCH64 MIPS MIPS64 MIPS64N32 MIPSEL MIPSEL64 MIPSEL64N32 PPC PPC64 PPC64LE "
    "S390 S390X PARISC PARISC64 RISCV64 LOONGARCH64 M68K SH SHEB"
).split()
#: 0 means the libseccomp pyoci was built against does not know the architecture.
_ARCHES: dict[str, int] = {"SCMP_ARCH_" + n: getattr(lib, "SCMP_ARCH_" + n) for n in _ARCH_NAMES}

_TSYNC = "SECCOMP_FILTER_FLAG_TSYNC"
_SPEC_ALLOW = "SECCOMP_FILTER_FLAG_SPEC_ALLOW"
_WAIT_KILLABLE = "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"
_FLAGS: dict[str, int] = {
    _TSYNC: lib.SCMP_FLTATR_CTL_TSYNC,
    "SECCOMP_FILTER_FLAG_LOG": lib.SCMP_FLTATR_CTL_LOG,
    _SPEC_ALLOW: lib.SCMP_FLTATR_CTL_SSB,
}
#: The kernel's filter flags (linux/seccomp.h), for the filter pyoci loads itself (_load_bpf).
_KERNEL_FLAGS = {_TSYNC: 1, "SECCOMP_FILTER_FLAG_LOG": 2, _SPEC_ALLOW: 4, "SECCOMP_FILTER_FLAG_NEW_LISTENER": 8,
                 "SECCOMP_FILTER_FLAG_TSYNC_ESRCH": 16, _WAIT_KILLABLE: 32}
#: Kernel filter flags the listener brings: pyoci's to set, not the config's.
_LISTENER_FLAGS = ("SECCOMP_FILTER_FLAG_NEW_LISTENER", "SECCOMP_FILTER_FLAG_TSYNC_ESRCH")


def check(seccomp: dict) -> None:
    """Translate and build the filter without loading it: every config error surfaces before fork."""
    ctx, _own = _build(seccomp, verbose=True)
    if ctx is not None:
        lib.seccomp_release(ctx)


def load_filter(seccomp: dict) -> int | None:
    """Build the filter and load it into the calling process (and, by TSYNC, all its threads); returns the
    notification fd when the filter has SCMP_ACT_NOTIFY rules (the caller hands it on and closes it).

    Logs nothing: in the init, stderr may be the container's and --log is out of reach; check() has
    already said what was skipped."""
    ctx, own = _build(seccomp, verbose=False)
    if ctx is None:
        return None
    try:
        if own:
            return _load_bpf(ctx, own)
        rc = lib.seccomp_load(ctx)
        fd = lib.seccomp_notify_fd(ctx) if rc == 0 and seccomp.get("listenerPath") else -1
    finally:
        lib.seccomp_release(ctx)
    if rc < 0:
        _load_failed(-rc)
    return fd if fd >= 0 else None


def _load_failed(err: int) -> NoReturn:
    hint = " (without process.noNewPrivileges, loading a filter needs CAP_SYS_ADMIN)" if err in (
        errno.EPERM, errno.EACCES) else ""
    raise ContainerError("%s: loading the filter: %s%s" % (_S, os.strerror(err), hint))


def _load_bpf(ctx: Any, flags: int) -> int:
    """The filter libseccomp built, exported as BPF and loaded with seccomp(2) with the kernel's flags (for the
    one libseccomp 2.5 cannot set); returns the listener fd (flags always have NEW_LISTENER)."""
    from pyoci import syscalls

    mem = os.memfd_create("pyoci-seccomp", os.MFD_CLOEXEC)
    try:
        rc = lib.seccomp_export_bpf(ctx, mem)
        if rc < 0:
            raise ContainerError("%s: exporting the filter: %s" % (_S, os.strerror(-rc)))
        program = os.pread(mem, os.fstat(mem).st_size, 0)
    finally:
        os.close(mem)
    try:
        return syscalls.seccomp_set_filter(flags, program)
    except OSError as e:
        _load_failed(e.errno)


def send_to_agent(seccomp: dict, fd: int, pid: int, state: dict) -> None:
    """The container process state and the notification fd to the agent at listenerPath: one connection,
    one message with the fd (SCM_RIGHTS), closed (config-linux.md#the-container-process-state). The fd is
    closed here, sent or not."""
    import _socket as socket

    from pyoci import jsonio
    from pyoci.fdpass import send_fd
    from pyoci.state import OCI_VERSION

    path = seccomp["listenerPath"]
    doc = {"ociVersion": OCI_VERSION, "fds": ["seccompFd"], "pid": pid, "state": state}
    if seccomp.get("listenerMetadata"):
        doc["metadata"] = seccomp["listenerMetadata"]
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        s.settimeout(10)
        s.connect(path)
        data = jsonio.dumps(doc).encode()
        sent = send_fd(s, fd, data)
        if sent < len(data):
            s.sendall(data[sent:])
    except OSError as e:
        raise ContainerError("%s.listenerPath: cannot send to the seccomp agent at %s: %s"
                             % (_S, path, e.strerror or e)) from None
    finally:
        s.close()
        os.close(fd)


def _version() -> str:
    v = lib.seccomp_version()
    return "%d.%d.%d" % (v.major, v.minor, v.micro)


# --- for `pyoci features` -----------------------------------------------------------------------------------
_API_LEVEL = {_TSYNC: 2, "SECCOMP_FILTER_FLAG_LOG": 3, _SPEC_ALLOW: 4}  # libseccomp's API levels (seccomp_api_get)


def library_version() -> str:
    return _version()


def applied_flags() -> list[str]:
    """The linux.seccomp.flags pyoci applies."""
    return list(_FLAGS) + [_WAIT_KILLABLE]


def kernel_takes(flag: str) -> bool:
    """Whether this kernel has the filter flag: as libseccomp's API level tells (probed at first use), or for
    the one pyoci sets itself as seccomp(2) with no program answers (EFAULT: the flags passed its checks)."""
    if flag == _WAIT_KILLABLE:
        from pyoci import syscalls

        try:
            syscalls.seccomp_set_filter(_KERNEL_FLAGS["SECCOMP_FILTER_FLAG_NEW_LISTENER"] | _KERNEL_FLAGS[flag], None)
        except OSError as e:
            return e.errno == errno.EFAULT
        return False
    return lib.seccomp_api_get() >= _API_LEVEL.get(flag, 99)


def arch_known(name: str) -> bool:
    """Whether the libseccomp pyoci was built against knows the architecture."""
    return bool(_ARCHES.get(name))


def arch_usable(name: str) -> bool:
    """Whether a filter on this host can hold the architecture (libseccomp wants the native byte order)."""
    if not _ARCHES.get(name):
        return False
    ctx = lib.seccomp_init(lib.SCMP_ACT_ALLOW)
    try:
        return lib.seccomp_arch_add(ctx, _ARCHES[name]) in (0, -errno.EEXIST)
    finally:
        lib.seccomp_release(ctx)


def _uint(value: Any, path: str, maximum: int) -> int:
    if type(value) is not int or not 0 <= value <= maximum:
        raise ConfigError("%s: must be an integer from 0 to %d, got %s" % (path, maximum, _show(value)))
    return value


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else _json(value)


def _json(value: Any) -> str:
    import json

    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _list(obj: dict, key: str, path: str) -> list:
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError("%s.%s: must be an array, got %s" % (path, key, _show(value)))
    return value


def _action(obj: dict, key: str, errno_key: str, path: str) -> int:
    """The libseccomp action for obj[key], with obj[errno_key] for ERRNO/TRACE (default EPERM)."""
    name = obj.get(key)
    if name is None:
        raise ConfigError("%s.%s: required" % (path, key))
    ret = obj.get(errno_key)
    if ret is not None:
        _uint(ret, "%s.%s" % (path, errno_key), _DATA_MAX)
    if name in _ERRNO_ACTIONS:
        ret = errno.EPERM if ret is None else ret
        return lib.pyoci_scmp_act_errno(ret) if name == "SCMP_ACT_ERRNO" else lib.pyoci_scmp_act_trace(ret)
    if name == _NOTIFY and key == "defaultAction":
        raise ConfigError("%s.%s: SCMP_ACT_NOTIFY cannot be the default action" % (path, key))
    if not isinstance(name, str) or name not in _ACTIONS:
        raise ConfigError("%s.%s: unknown action %s" % (path, key, _show(name)))
    if ret is not None:
        raise ConfigError("%s.%s: %s takes no errno (only SCMP_ACT_ERRNO and SCMP_ACT_TRACE do)"
                          % (path, errno_key, name))
    return _ACTIONS[name]


def _conditions(rule: dict, path: str) -> list[tuple[int, int, int, int]]:
    """args[] as (index, op, value, valueTwo)."""
    out = []
    for i, arg in enumerate(_list(rule, "args", path)):
        p = "%s.args[%d]" % (path, i)
        if not isinstance(arg, dict):
            raise ConfigError("%s: must be an object, got %s" % (p, _show(arg)))
        for key in ("index", "value", "op"):
            if arg.get(key) is None:
                raise ConfigError("%s.%s: required" % (p, key))
        index = _uint(arg["index"], p + ".index", _MAX_ARGS - 1)
        value = _uint(arg["value"], p + ".value", _UINT64_MAX)
        two = _uint(arg.get("valueTwo", 0), p + ".valueTwo", _UINT64_MAX)
        op = arg["op"]
        if not isinstance(op, str) or op not in _OPS:
            raise ConfigError("%s.op: unknown operator %s" % (p, _show(op)))
        out.append((index, _OPS[op], value, two))
    return out


def _names(rule: dict, path: str) -> list[str]:
    names = rule.get("names")
    if names is None:
        raise ConfigError("%s.names: required" % path)
    if not isinstance(names, list):
        raise ConfigError("%s.names: must be an array, got %s" % (path, _show(names)))
    if not names:
        raise ConfigError("%s.names: must name at least one syscall" % path)
    for i, name in enumerate(names):
        if not isinstance(name, str) or not name or "\0" in name:
            raise ConfigError("%s.names[%d]: not a syscall name: %s" % (path, i, _show(name)))
    return names


def _set_attr(ctx: Any, attr: int, value: int) -> int:
    """One seccomp_attr_set (a seam for the tests, which record the attributes)."""
    return lib.seccomp_attr_set(ctx, attr, value)


def _build(seccomp: dict, verbose: bool) -> tuple[Any, int]:
    """The filter context (caller releases it), or None when the object asks for no filter; and the kernel
    flags when pyoci must load it itself (_load_bpf), else 0."""
    if not isinstance(seccomp, dict):
        raise ConfigError("%s: must be an object, got %s" % (_S, _show(seccomp)))
    syscalls = _list(seccomp, "syscalls", _S)
    if seccomp.get("defaultAction") is None and not syscalls:
        return None, 0  # runc: no default action and no rules is no filter
    default = _action(seccomp, "defaultAction", "defaultErrnoRet", _S)

    arches = []
    for i, name in enumerate(_list(seccomp, "architectures", _S)):
        p = "%s.architectures[%d]" % (_S, i)
        if not isinstance(name, str) or name not in _ARCHES:
            raise ConfigError("%s: unknown architecture %s" % (p, _show(name)))
        if not _ARCHES[name]:
            raise NotSupported("%s: %s is not supported by libseccomp %s" % (p, name, _version()))
        arches.append((p, name, _ARCHES[name]))

    flags = []
    wait_killable = ""  # the path of SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV in the config, if there
    if "flags" in seccomp and seccomp["flags"] is not None:
        for i, name in enumerate(_list(seccomp, "flags", _S)):
            p = "%s.flags[%d]" % (_S, i)
            if name in _LISTENER_FLAGS:
                raise ConfigError("%s: %s is not the config's to set (SCMP_ACT_NOTIFY rules bring the listener)"
                                  % (p, name))
            if name == _WAIT_KILLABLE:
                wait_killable = p
                continue
            if not isinstance(name, str) or name not in _FLAGS:
                raise ConfigError("%s: unknown flag %s" % (p, _show(name)))
            flags.append((p, name))
        explicit_flags = True
    else:
        explicit_flags = False

    rules = []  # (path, name, action, conditions)
    for i, rule in enumerate(syscalls):
        p = "%s.syscalls[%d]" % (_S, i)
        if not isinstance(rule, dict):
            raise ConfigError("%s: must be an object, got %s" % (p, _show(rule)))
        names = _names(rule, p)
        action = _action(rule, "action", "errnoRet", p)
        conds = _conditions(rule, p)
        if action == default:
            continue
        if action == lib.SCMP_ACT_NOTIFY and not seccomp.get("listenerPath"):
            raise ConfigError("%s.action: SCMP_ACT_NOTIFY needs %s.listenerPath (the seccomp agent's socket)"
                              % (p, _S))
        for j, name in enumerate(names):
            rules.append(("%s.names[%d]" % (p, j), name, action, conds))

    own = 0  # the kernel flags of a filter pyoci loads itself (_load_bpf), 0 for libseccomp's seccomp_load
    if wait_killable and any(r[2] == lib.SCMP_ACT_NOTIFY for r in rules):
        if not kernel_takes(_WAIT_KILLABLE):
            raise NotSupported("%s: %s is not supported by this kernel (Linux 5.19+)"
                               % (wait_killable, _WAIT_KILLABLE))
        # TSYNC always (as below), which a listener takes only with TSYNC_ESRCH
        names = [_WAIT_KILLABLE, _TSYNC, *_LISTENER_FLAGS] + [name for _p, name in flags]
        for name in names:
            own |= _KERNEL_FLAGS[name]
    ctx = lib.seccomp_init(default)
    if ctx == ffi.NULL:
        raise NotSupported("%s.defaultAction: %s is not supported by this kernel or libseccomp %s"
                           % (_S, seccomp["defaultAction"], _version()))
    try:
        _fill(ctx, arches, flags, explicit_flags, rules, verbose)
    except BaseException:
        lib.seccomp_release(ctx)
        raise
    return ctx, own


def _fill(ctx: Any, arches: list, flags: list, explicit_flags: bool, rules: list, verbose: bool) -> None:
    for p, name, token in arches:
        rc = lib.seccomp_arch_add(ctx, token)
        if rc == -errno.EDOM:
            native = next((n for n, t in _ARCHES.items() if t == lib.seccomp_arch_native()), "the native one")
            raise NotSupported("%s: %s cannot share a filter with %s (libseccomp needs one byte order)"
                               % (p, name, native))
        if rc < 0 and rc != -errno.EEXIST:
            raise NotSupported("%s: %s: %s (libseccomp %s)" % (p, name, os.strerror(-rc), _version()))

    # The real errno from the kernel rather than libseccomp's ECANCELED (harmless if unknown).
    _set_attr(ctx, lib.SCMP_FLTATR_API_SYSRAWRC, 1)
    if _set_attr(ctx, lib.SCMP_FLTATR_CTL_NNP, 0) < 0:
        raise ContainerError("%s: libseccomp %s cannot leave no_new_privs alone" % (_S, _version()))
    # TSYNC always, as runc (libseccomp-golang) does: a filter on one thread only makes no sense.
    tsync_rc = _set_attr(ctx, lib.SCMP_FLTATR_CTL_TSYNC, 1)
    for p, name in flags:
        rc = tsync_rc if name == _TSYNC else _set_attr(ctx, _FLAGS[name], 1)
        if rc < 0:
            raise NotSupported("%s: %s is not supported by this kernel or libseccomp %s (%s)"
                               % (p, name, _version(), os.strerror(-rc)))
    if not explicit_flags:
        _set_attr(ctx, lib.SCMP_FLTATR_CTL_SSB, 1)  # runc's default where available
    if len(rules) > _TREE_THRESHOLD:
        _set_attr(ctx, lib.SCMP_FLTATR_CTL_OPTIMIZE, 2)

    for p, name, action, conds in rules:
        nr = lib.seccomp_syscall_resolve_name(name.encode())
        if nr == lib.__NR_SCMP_ERROR:
            if verbose:
                log.debug("%s: unknown syscall %r ignored (libseccomp %s)" % (p, name, _version()))
            continue
        indexes = [c[0] for c in conds]
        if len(set(indexes)) == len(indexes):
            groups = [conds]
        else:
            groups = [[c] for c in conds]  # runc: one rule per condition when an argument repeats
        for group in groups:
            arr = ffi.new("struct scmp_arg_cmp[]", len(group)) if group else ffi.NULL
            for k, (index, op, value, two) in enumerate(group):
                arr[k].arg = index
                arr[k].op = op
                arr[k].datum_a = value
                arr[k].datum_b = two
            rc = lib.seccomp_rule_add_array(ctx, action, nr, len(group), arr)
            if rc < 0:
                raise ConfigError("%s: libseccomp rejected the rule for %r: %s"
                                  % (p, name, os.strerror(-rc)))
