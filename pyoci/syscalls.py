"""Narrow Python interface over the cffi layer: every call raises OSError with errno, like os.* does."""
from __future__ import annotations

import os

from pyoci._native import ffi, lib

C = lib  # constants: C.CLONE_NEWNS, C.MS_BIND, C.RESOLVE_IN_ROOT, ...


def _check(ret: int, what: str, path: str | None = None) -> int:
    if ret < 0:
        err = ffi.errno
        raise OSError(err, "%s: %s" % (what, os.strerror(err)), path)
    return ret


def _b(s: str | bytes | None) -> bytes | object:
    if s is None:
        return ffi.NULL
    return s if isinstance(s, bytes) else s.encode()


def unshare(flags: int) -> None:
    _check(lib.unshare(flags), "unshare")


def setns(fd: int, nstype: int = 0) -> None:
    _check(lib.setns(fd, nstype), "setns")


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0, data: str | None = None) -> None:
    _check(lib.mount(_b(source), _b(target), _b(fstype), flags, _b(data)), "mount", target)


def umount2(target: str, flags: int = 0) -> None:
    _check(lib.umount2(_b(target), flags), "umount2", target)


def pivot_root(new_root: str, put_old: str) -> None:
    _check(lib.pyoci_pivot_root(_b(new_root), _b(put_old)), "pivot_root", new_root)


def openat2(dirfd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
    return _check(lib.pyoci_openat2(dirfd, _b(path), flags | os.O_CLOEXEC, mode, resolve), "openat2", path)


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(lib.sethostname(raw, len(raw)), "sethostname")


def setdomainname(name: str) -> None:
    raw = name.encode()
    _check(lib.setdomainname(raw, len(raw)), "setdomainname")


def prctl(option: int, a2: int = 0, a3: int = 0, a4: int = 0, a5: int = 0) -> int:
    return _check(lib.prctl(option, a2, a3, a4, a5), "prctl")


def close_range(first: int, last: int = 0xFFFFFFFF) -> None:
    _check(lib.pyoci_close_range(first, last, 0), "close_range")


def fstatfs_type(fd: int) -> int:
    """f_type of the filesystem holding fd (PROC_SUPER_MAGIC, DEVPTS_SUPER_MAGIC, ...)."""
    return _check(lib.pyoci_fstatfs_type(fd), "fstatfs")


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """All three sets in one call, as 64-bit masks (python-prctl does not know caps past CAP_BPF/PERFMON)."""
    _check(lib.pyoci_capset(effective, permitted, inheritable), "capset")


def join_session_keyring(name: str) -> int:
    """A new session keyring, so the container cannot read the caller's keys (runc does the same)."""
    return _check(lib.pyoci_join_session_keyring(name.encode()), "keyctl(JOIN_SESSION_KEYRING)")


def personality(persona: int) -> None:
    _check(lib.personality(persona), "personality")
