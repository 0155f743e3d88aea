"""pyoci.seccomp: translation of linux.seccomp (check) and filters loaded into forked children (load_filter).

A filter is never loaded into the pytest process: every load happens in an os.fork() child that reports
through its exit status (or a pipe, where the filter still allows write) and leaves with os._exit.
"""
from __future__ import annotations

import ctypes
import errno
import json
import os
import signal
import threading
import traceback
from pathlib import Path
from typing import Any, Callable

import pytest

from pyoci import log, seccomp
from pyoci._seccomp import lib
from pyoci.errors import ConfigError, ContainerError, NotSupported

DATA = Path(__file__).resolve().parent / "data" / "configs"
ALLOW, ERRNO = "SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO"
NATIVE = next(n for n, t in seccomp._ARCHES.items() if t == lib.seccomp_arch_native())

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def nr(name: str) -> int:
    """The native syscall number, as libseccomp knows it."""
    n = lib.seccomp_syscall_resolve_name(name.encode())
    assert n >= 0, name
    return n


def raw(number: int, *args: int) -> tuple[int, int]:
    """syscall(2) with integer arguments: (return value, errno)."""
    ctypes.set_errno(0)
    ret = _libc.syscall(ctypes.c_long(number), *(ctypes.c_ulong(a) for a in args))
    return ret, ctypes.get_errno()


def in_child(body: Callable[[int], Any]) -> tuple[int, str]:
    """Run body(write_fd) in a forked child; its return value (an int) is the exit code, an exception
    is reported on the pipe with code 99. Returns (wait status, what the child wrote)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 98
        try:
            import resource

            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # SIGSYS dumps core otherwise
            os.close(r)
            code = int(body(w) or 0)
        except BaseException:  # noqa: BLE001
            try:
                os.write(w, traceback.format_exc().encode())
            finally:
                code = 99
        os._exit(code)
    os.close(w)
    chunks = []
    while chunk := os.read(r, 65536):
        chunks.append(chunk)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    return status, b"".join(chunks).decode(errors="replace")


def exit_code(result: tuple[int, str]) -> int:
    status, out = result
    assert os.WIFEXITED(status), "child died of signal %d\n%s" % (os.WTERMSIG(status), out)
    assert os.WEXITSTATUS(status) != 99, out
    return os.WEXITSTATUS(status)


def report(w: int, value: Any) -> None:
    os.write(w, json.dumps(value).encode())


def results(result: tuple[int, str]) -> Any:
    assert exit_code(result) == 0, result[1]
    return json.loads(result[1])


def rule(names: list[str], action: str = ERRNO, **extra: Any) -> dict[str, Any]:
    return {"names": names, "action": action, **extra}


def arg(index: int, value: int, op: str = "SCMP_CMP_EQ", **extra: Any) -> dict[str, Any]:
    return {"index": index, "value": value, "op": op, **extra}


def status_field(name: str, tid: int | None = None) -> str:
    path = "/proc/self/status" if tid is None else "/proc/self/task/%d/status" % tid
    with open(path) as f:
        for line in f:
            if line.startswith(name + ":"):
                return line.split(":", 1)[1].strip()
    raise KeyError(name)


# ------------------------------------------------------------------------------------------- check()
BAD: list[tuple[str, Any, type, str]] = [
    ("not-object", [], ConfigError, "linux.seccomp: must be an object, got []"),
    ("no-default", {"syscalls": [rule(["mkdir"])]}, ConfigError, "linux.seccomp.defaultAction: required"),
    ("default-action", {"defaultAction": "SCMP_ACT_DROP"}, ConfigError,
     "linux.seccomp.defaultAction: unknown action 'SCMP_ACT_DROP'"),
    ("default-notify", {"defaultAction": "SCMP_ACT_NOTIFY"}, ConfigError,
     "linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be the default action"),
    ("default-errno-on-allow", {"defaultAction": ALLOW, "defaultErrnoRet": 1}, ConfigError,
     "linux.seccomp.defaultErrnoRet: SCMP_ACT_ALLOW takes no errno (only SCMP_ACT_ERRNO and SCMP_ACT_TRACE do)"),
    ("default-errno-range", {"defaultAction": ERRNO, "defaultErrnoRet": 65536}, ConfigError,
     "linux.seccomp.defaultErrnoRet: must be an integer from 0 to 65535, got 65536"),
    ("arch", {"defaultAction": ALLOW, "architectures": ["SCMP_ARCH_X86_64", "amd64"]}, ConfigError,
     "linux.seccomp.architectures[1]: unknown architecture 'amd64'"),
    ("arches-type", {"defaultAction": ALLOW, "architectures": "SCMP_ARCH_X86_64"}, ConfigError,
     "linux.seccomp.architectures: must be an array, got 'SCMP_ARCH_X86_64'"),
    ("flag", {"defaultAction": ALLOW, "flags": ["TSYNC"]}, ConfigError, "linux.seccomp.flags[0]: unknown flag 'TSYNC'"),
    ("action", {"defaultAction": ALLOW, "syscalls": [rule(["mkdir"]), rule(["rmdir"]), rule(["link"]),
                                                     rule(["unlink"], "X")]},
     ConfigError, "linux.seccomp.syscalls[3].action: unknown action 'X'"),
    ("action-missing", {"defaultAction": ALLOW, "syscalls": [{"names": ["mkdir"]}]}, ConfigError,
     "linux.seccomp.syscalls[0].action: required"),
    ("errno-on-kill", {"defaultAction": ALLOW, "syscalls": [rule(["mkdir"], "SCMP_ACT_KILL", errnoRet=1)]},
     ConfigError, "linux.seccomp.syscalls[0].errnoRet: SCMP_ACT_KILL takes no errno (only SCMP_ACT_ERRNO and "
     "SCMP_ACT_TRACE do)"),
    ("errno-negative", {"defaultAction": ALLOW, "syscalls": [rule(["mkdir"], errnoRet=-1)]}, ConfigError,
     "linux.seccomp.syscalls[0].errnoRet: must be an integer from 0 to 65535, got -1"),
    ("errno-bool", {"defaultAction": ALLOW, "syscalls": [rule(["mkdir"], errnoRet=True)]}, ConfigError,
     "linux.seccomp.syscalls[0].errnoRet: must be an integer from 0 to 65535, got true"),
    ("names-missing", {"defaultAction": ALLOW, "syscalls": [{"action": ERRNO}]}, ConfigError,
     "linux.seccomp.syscalls[0].names: required"),
    ("names-empty", {"defaultAction": ALLOW, "syscalls": [rule([])]}, ConfigError,
     "linux.seccomp.syscalls[0].names: must name at least one syscall"),
    ("name-type", {"defaultAction": ALLOW, "syscalls": [rule(["mkdir", 3])]}, ConfigError,
     "linux.seccomp.syscalls[0].names[1]: not a syscall name: 3"),
    ("name-empty", {"defaultAction": ALLOW, "syscalls": [rule([""])]}, ConfigError,
     "linux.seccomp.syscalls[0].names[0]: not a syscall name: ''"),
    ("rule-type", {"defaultAction": ALLOW, "syscalls": ["mkdir"]}, ConfigError,
     "linux.seccomp.syscalls[0]: must be an object, got 'mkdir'"),
    ("op", {"defaultAction": ALLOW, "syscalls": [rule(["mkdir"], args=[arg(0, 1), arg(1, 2, "SCMP_CMP_IN")])]},
     ConfigError, "linux.seccomp.syscalls[0].args[1].op: unknown operator 'SCMP_CMP_IN'"),
    ("index", {"defaultAction": ALLOW, "syscalls": [rule(["mkdir"], args=[arg(6, 1)])]}, ConfigError,
     "linux.seccomp.syscalls[0].args[0].index: must be an integer from 0 to 5, got 6"),
    ("value", {"defaultAction": ALLOW, "syscalls": [rule(["mkdir"], args=[arg(0, 1 << 64)])]}, ConfigError,
     "linux.seccomp.syscalls[0].args[0].value: must be an integer from 0 to 18446744073709551615, "
     "got 18446744073709551616"),
    ("value-float", {"defaultAction": ALLOW, "syscalls": [rule(["mkdir"], args=[arg(0, 1.0)])]}, ConfigError,
     "linux.seccomp.syscalls[0].args[0].value: must be an integer from 0 to 18446744073709551615, got 1.0"),
    ("value-two", {"defaultAction": ALLOW, "syscalls": [rule(["mkdir"], args=[arg(0, 1, valueTwo=-2)])]},
     ConfigError, "linux.seccomp.syscalls[0].args[0].valueTwo: must be an integer from 0 to "
     "18446744073709551615, got -2"),
    ("op-missing", {"defaultAction": ALLOW, "syscalls": [rule(["mkdir"], args=[{"index": 0, "value": 1}])]},
     ConfigError, "linux.seccomp.syscalls[0].args[0].op: required"),
    ("notify", {"defaultAction": ALLOW, "syscalls": [rule(["mkdir"]), rule(["rmdir"], "SCMP_ACT_NOTIFY")]},
     ConfigError, "linux.seccomp.syscalls[1].action: SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath (the "
     "seccomp agent's socket)"),
    ("new-listener", {"defaultAction": ALLOW, "flags": ["SECCOMP_FILTER_FLAG_NEW_LISTENER"]},
     ConfigError, "linux.seccomp.flags[0]: SECCOMP_FILTER_FLAG_NEW_LISTENER is not the config's to set "
     "(SCMP_ACT_NOTIFY rules bring the listener)"),
]


@pytest.mark.parametrize("config,exc,message", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_check_rejects(config: Any, exc: type, message: str) -> None:
    with pytest.raises(exc) as info:
        seccomp.check(config)
    assert str(info.value) == message
    assert type(info.value) is exc


def test_check_arch_of_the_other_byte_order() -> None:
    other = "SCMP_ARCH_S390X" if NATIVE != "SCMP_ARCH_S390X" else "SCMP_ARCH_X86_64"
    with pytest.raises(NotSupported, match=r"^linux\.seccomp\.architectures\[0\]: %s cannot share a filter "
                       r"with %s" % (other, NATIVE)):
        seccomp.check({"defaultAction": ALLOW, "architectures": [other]})


def test_check_arch_unknown_to_libseccomp() -> None:
    missing = [n for n, t in seccomp._ARCHES.items() if not t]
    if not missing:
        pytest.skip("this libseccomp knows every architecture of the spec")
    with pytest.raises(NotSupported, match=r"^linux\.seccomp\.architectures\[0\]: %s is not supported by "
                       r"libseccomp \d" % missing[0]):
        seccomp.check({"defaultAction": ALLOW, "architectures": [missing[0]]})


def test_check_accepts_everything_valid() -> None:
    seccomp.check({
        "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
        "architectures": [NATIVE, NATIVE],
        "flags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
        "listenerMetadata": "ignored without a listener",
        "syscalls": [
            rule(["read", "write", "exit_group"], ALLOW),
            rule(["mkdir"], "SCMP_ACT_KILL"), rule(["rmdir"], "SCMP_ACT_KILL_THREAD"),
            rule(["link"], "SCMP_ACT_KILL_PROCESS"), rule(["unlink"], "SCMP_ACT_TRAP"),
            rule(["chmod"], "SCMP_ACT_TRACE", errnoRet=5), rule(["chown"], "SCMP_ACT_LOG"),
            rule(["getpid"], ERRNO, errnoRet=0),
            rule(["personality"], ALLOW, args=[arg(0, 0, op) for op in seccomp._OPS]),
            rule(["dup3"], ALLOW, args=[arg(0, 1, "SCMP_CMP_NE"), arg(2, 0o2000000, "SCMP_CMP_MASKED_EQ",
                                                                       valueTwo=0o2000000)]),
            rule(["umask"], ALLOW, args=[arg(5, (1 << 64) - 1)]),
        ],
    })


@pytest.mark.parametrize("name", ["docker-moby", "kubernetes-cri", "podman-rootless-userns"])
def test_check_real_profiles(name: str) -> None:
    seccomp.check(json.loads((DATA / (name + ".json")).read_text())["linux"]["seccomp"])


def test_check_empty_object_is_no_filter() -> None:
    seccomp.check({})
    seccomp.check({"syscalls": []})


def test_rule_with_the_default_action_is_skipped() -> None:
    # libseccomp refuses a rule whose action is the default one; runc skips it, and so do we.
    seccomp.check({"defaultAction": ERRNO, "syscalls": [rule(["mkdir"]), rule(["rmdir"], ERRNO, errnoRet=1)]})
    seccomp.check({"defaultAction": "SCMP_ACT_KILL", "syscalls": [rule(["mkdir"], "SCMP_ACT_KILL_THREAD")]})


def test_unknown_syscall_is_skipped_with_a_debug_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(log, "_state", dict(log._state))
    logfile = tmp_path / "log"
    log.configure(str(logfile), debug=True)
    seccomp.check({"defaultAction": ALLOW, "syscalls": [rule(["mkdir", "no_such_syscall_at_all"])]})
    text = logfile.read_text()
    assert "level=debug" in text
    assert "linux.seccomp.syscalls[0].names[1]: unknown syscall 'no_such_syscall_at_all' ignored" in text


def test_attributes(monkeypatch: pytest.MonkeyPatch) -> None:
    """NNP never set by the filter, TSYNC always, SPEC_ALLOW by default only without flags, tree for > 32."""
    calls: list[tuple[int, int]] = []
    real = seccomp._set_attr

    def spy(ctx: Any, attr: int, value: int) -> int:
        calls.append((attr, value))
        return real(ctx, attr, value)

    monkeypatch.setattr(seccomp, "_set_attr", spy)
    seccomp.check({"defaultAction": ALLOW, "syscalls": [rule(["mkdir"])]})
    assert (lib.SCMP_FLTATR_CTL_NNP, 0) in calls
    assert (lib.SCMP_FLTATR_CTL_TSYNC, 1) in calls
    assert (lib.SCMP_FLTATR_CTL_SSB, 1) in calls
    assert lib.SCMP_FLTATR_CTL_OPTIMIZE not in [a for a, _ in calls]
    calls.clear()
    seccomp.check({"defaultAction": ALLOW, "flags": [], "syscalls": [rule(["mkdir"])]})
    assert lib.SCMP_FLTATR_CTL_SSB not in [a for a, _ in calls]
    assert (lib.SCMP_FLTATR_CTL_TSYNC, 1) in calls
    calls.clear()
    seccomp.check({"defaultAction": ALLOW, "flags": ["SECCOMP_FILTER_FLAG_LOG"],
                   "syscalls": [rule(["mkdir", "rmdir"])] * 17})
    assert (lib.SCMP_FLTATR_CTL_LOG, 1) in calls
    assert (lib.SCMP_FLTATR_CTL_OPTIMIZE, 2) in calls


def test_import_is_cheap() -> None:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-X", "importtime", "-c", "import pyoci.seccomp"],
                         capture_output=True, text=True, check=True).stderr
    heavy = [line for line in out.splitlines() if line.rstrip().endswith(("| typing", "| json", "| ctypes"))]
    assert not heavy, heavy


# ------------------------------------------------------------------------------ load_filter() in a child
def test_errno_default_eperm(tmp_path: Path) -> None:
    def body(w: int) -> None:
        seccomp.load_filter({"defaultAction": ALLOW, "syscalls": [rule(["mkdir", "mkdirat"])]})
        try:
            os.mkdir(tmp_path / "d")
            err = 0
        except OSError as e:
            err = e.errno
        report(w, {"err": err, "seccomp": status_field("Seccomp"), "nnp": status_field("NoNewPrivs")})

    got = results(in_child(body))
    assert got == {"err": errno.EPERM, "seccomp": "2", "nnp": "0"}  # the filter leaves no_new_privs alone
    assert not (tmp_path / "d").exists()


def test_errno_ret_and_default_errno_ret() -> None:
    def body(w: int) -> None:
        seccomp.load_filter({
            "defaultAction": ERRNO, "defaultErrnoRet": errno.ENOSYS,
            "syscalls": [rule(["exit", "exit_group", "write", "brk", "mmap", "munmap", "mprotect", "madvise",
                               "futex", "rt_sigreturn", "rt_sigprocmask", "getpid"], ALLOW),
                         rule(["getppid"], ERRNO, errnoRet=errno.EXDEV), rule(["getuid"], ERRNO, errnoRet=0)],
        })
        report(w, [raw(nr("getpid")) == (os.getpid(), 0), raw(nr("getppid")), raw(nr("gettid")),
                   raw(nr("getuid"))])

    assert results(in_child(body)) == [True, [-1, errno.EXDEV], [-1, errno.ENOSYS], [0, 0]]


def test_argument_comparisons() -> None:
    umask, personality, dup3 = nr("umask"), nr("personality"), nr("dup3")

    def body(w: int) -> None:
        seccomp.load_filter({"defaultAction": ALLOW, "syscalls": [
            rule(["personality"], ERRNO, errnoRet=errno.EACCES, args=[arg(0, 0xFFFFFFFF)]),
            # same index twice: one rule per condition, i.e. either matches
            rule(["umask"], ERRNO, errnoRet=errno.EDOM, args=[arg(0, 0o11), arg(0, 0o22)]),
            rule(["umask"], ERRNO, errnoRet=errno.ERANGE, args=[arg(0, 0o700, "SCMP_CMP_GT")]),
            # different indexes: both must match
            rule(["dup3"], ERRNO, errnoRet=errno.EBADE,
                 args=[arg(1, 100), arg(2, os.O_CLOEXEC, "SCMP_CMP_MASKED_EQ", valueTwo=os.O_CLOEXEC)]),
        ]})
        report(w, {
            "personality-query": raw(personality, 0xFFFFFFFF),
            "umask-11": raw(umask, 0o11), "umask-22": raw(umask, 0o22), "umask-33": raw(umask, 0o33)[1],
            "umask-777": raw(umask, 0o777), "umask-700": raw(umask, 0o700)[1],
            "dup3-both": raw(dup3, 1, 100, os.O_CLOEXEC), "dup3-fd": raw(dup3, 1, 101, os.O_CLOEXEC),
            "dup3-flags": raw(dup3, 1, 100, 0),
        })

    got = results(in_child(body))
    assert got["personality-query"] == [-1, errno.EACCES]
    assert got["umask-11"] == [-1, errno.EDOM] and got["umask-22"] == [-1, errno.EDOM]
    assert got["umask-33"] == 0 and got["umask-700"] == 0
    assert got["umask-777"] == [-1, errno.ERANGE]
    assert got["dup3-both"] == [-1, errno.EBADE]
    assert got["dup3-fd"] == [101, 0] and got["dup3-flags"] == [100, 0]


@pytest.mark.parametrize("op,value,blocked,allowed", [
    ("SCMP_CMP_NE", 0o22, [0o21, 0o23], [0o22]),
    ("SCMP_CMP_LT", 0o22, [0o21, 0], [0o22, 0o23]),
    ("SCMP_CMP_LE", 0o22, [0o22, 0o21], [0o23]),
    ("SCMP_CMP_EQ", 0o22, [0o22], [0o21, 0o23]),
    ("SCMP_CMP_GE", 0o22, [0o22, 0o23], [0o21]),
    ("SCMP_CMP_GT", 0o22, [0o23], [0o22, 0o21]),
])
def test_operators(op: str, value: int, blocked: list[int], allowed: list[int]) -> None:
    umask = nr("umask")

    def body(w: int) -> None:
        seccomp.load_filter({"defaultAction": ALLOW, "syscalls": [
            rule(["umask"], ERRNO, errnoRet=errno.EDOM, args=[arg(0, value, op)])]})
        report(w, [[raw(umask, v)[1] for v in blocked], [raw(umask, v)[1] for v in allowed]])

    got = results(in_child(body))
    assert got == [[errno.EDOM] * len(blocked), [0] * len(allowed)]


@pytest.mark.parametrize("action", ["SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD",
                                    "SCMP_ACT_TRAP"])
def test_kill_and_trap_deliver_sigsys(action: str) -> None:
    def body(w: int) -> int:
        seccomp.load_filter({"defaultAction": ALLOW, "syscalls": [rule(["getppid"], action)]})
        raw(nr("getppid"))
        return 0

    status, out = in_child(body)
    assert os.WIFSIGNALED(status), (status, out)
    assert os.WTERMSIG(status) == signal.SIGSYS


def test_trace_without_tracer_is_enosys_and_log_allows() -> None:
    def body(w: int) -> None:
        seccomp.load_filter({"defaultAction": ALLOW, "syscalls": [
            rule(["getppid"], "SCMP_ACT_TRACE"), rule(["getpid"], "SCMP_ACT_LOG")]})
        report(w, [raw(nr("getppid")), raw(nr("getpid"))[0] == os.getpid()])

    assert results(in_child(body)) == [[-1, errno.ENOSYS], True]


def test_tsync_reaches_other_threads(tmp_path: Path) -> None:
    def body(w: int) -> None:
        go, done = threading.Event(), threading.Event()
        seen: dict[str, Any] = {}

        def other() -> None:
            seen["tid"] = threading.get_native_id()
            go.wait()
            seen["seccomp"] = status_field("Seccomp", seen["tid"])
            try:
                os.mkdir(tmp_path / "t")
                seen["err"] = 0
            except OSError as e:
                seen["err"] = e.errno
            done.set()

        t = threading.Thread(target=other)
        t.start()
        seccomp.load_filter({"defaultAction": ALLOW, "flags": ["SECCOMP_FILTER_FLAG_TSYNC"],
                             "syscalls": [rule(["mkdir", "mkdirat"])]})
        go.set()
        done.wait(10)
        t.join(10)
        report(w, {"seccomp": seen.get("seccomp"), "err": seen.get("err")})

    assert results(in_child(body)) == {"seccomp": "2", "err": errno.EPERM}


def test_flags_load() -> None:
    def body(w: int) -> None:
        seccomp.load_filter({"defaultAction": ALLOW, "flags": [
            "SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
            "syscalls": [rule(["getppid"], ERRNO, errnoRet=errno.EXDEV)]})
        report(w, raw(nr("getppid")))

    assert results(in_child(body)) == [-1, errno.EXDEV]


def test_extra_architectures_and_big_profile() -> None:
    from pyoci.validate import known_syscalls

    extra = {"SCMP_ARCH_X86_64": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"], "SCMP_ARCH_AARCH64": ["SCMP_ARCH_ARM"]}
    profile = {"defaultAction": ERRNO, "defaultErrnoRet": errno.ENOSYS,
               "architectures": [NATIVE] + extra.get(NATIVE, []),
               "syscalls": [rule(sorted(known_syscalls() - {"getppid"}), ALLOW),
                            rule(["personality"], ALLOW, args=[arg(0, 0)]),
                            rule(["personality"], ALLOW, args=[arg(0, 8)])]}

    def body(w: int) -> None:
        seccomp.load_filter(profile)
        report(w, [raw(nr("getppid")), raw(nr("getpid"))[0] == os.getpid()])

    assert results(in_child(body)) == [[-1, errno.ENOSYS], True]


def test_load_quiet_and_skips_unknown(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(log, "_state", dict(log._state))
    log.configure(None, debug=True)  # would go to stderr

    def body(w: int) -> None:
        os.dup2(w, 2)
        seccomp.load_filter({"defaultAction": ALLOW, "syscalls": [
            rule(["no_such_syscall_at_all", "getppid"], ERRNO, errnoRet=errno.EXDEV)]})
        report(w, raw(nr("getppid")))

    assert results(in_child(body)) == [-1, errno.EXDEV]


def test_empty_object_loads_nothing() -> None:
    def body(w: int) -> None:
        seccomp.load_filter({})
        report(w, status_field("Seccomp"))

    assert results(in_child(body)) == "0"


def test_load_without_nnp_needs_cap_sys_admin() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to drop to another uid")

    def body(w: int) -> None:
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)  # all capabilities gone, no_new_privs unset
        try:
            seccomp.load_filter({"defaultAction": ALLOW, "syscalls": [rule(["mkdir"])]})
        except ContainerError as e:
            report(w, [str(e), status_field("Seccomp"), status_field("NoNewPrivs")])
            return
        report(w, "loaded")

    msg, mode, nnp = results(in_child(body))
    assert msg == ("linux.seccomp: loading the filter: Permission denied (without process.noNewPrivileges, "
                   "loading a filter needs CAP_SYS_ADMIN)")
    assert (mode, nnp) == ("0", "0")


def test_load_with_nnp_as_unprivileged_user() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to drop to another uid")

    def body(w: int) -> None:
        import prctl

        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)
        prctl.set_no_new_privs(True)
        seccomp.load_filter({"defaultAction": ALLOW, "syscalls": [rule(["getppid"], ERRNO, errnoRet=errno.EXDEV)]})
        report(w, raw(nr("getppid")))

    assert results(in_child(body)) == [-1, errno.EXDEV]


@pytest.mark.parametrize("nnp", [True, False], ids=["noNewPrivileges", "privileged-load"])
def test_docker_profile_then_exec_through_the_dmz(nnp: bool) -> None:
    """The init's tail under Docker's default profile: drop to a user, load (before dropping when
    no_new_privs is unset, as runc does), execveat the sealed memfd helper, which execs the program."""
    import fcntl

    import pyoci

    dmz = Path(pyoci.__file__).with_name("_dmz")
    if os.geteuid() != 0 or not dmz.exists() or not os.path.exists("/bin/sh"):
        pytest.skip("needs root, pyoci/_dmz and /bin/sh")
    profile = json.loads((DATA / "docker-moby.json").read_text())["linux"]["seccomp"]
    if NATIVE not in profile["architectures"]:
        profile["architectures"] = [NATIVE]

    def body(w: int) -> None:
        import prctl

        fd = os.memfd_create("pyoci-dmz", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        os.write(fd, dmz.read_bytes())
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW
                    | fcntl.F_SEAL_WRITE)
        if not nnp:
            seccomp.load_filter(profile)
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)
        if nnp:
            prctl.set_no_new_privs(True)
            seccomp.load_filter(profile)
        os.write(w, b"clone3=%d" % raw(nr("clone3"), 0, 0)[1])
        os.close(w)
        # pyoci-dmz ERRFD PATH ARGV...: fd 2 stands in for the runtime's set-up socket
        os.execve(fd, ["pyoci-dmz", "2", "/bin/sh", "sh", "-c", "exit 7"], {"PATH": "/usr/bin:/bin"})

    status, out = in_child(body)
    assert out == "clone3=%d" % errno.ENOSYS
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 7, (status, out)
