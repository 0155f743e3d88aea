"""Narrow Python interface over the cffi layer: every call raises OSError with errno, like os.* does."""
from __future__ import annotations

import errno
import os
import struct

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


def mount_setattr(fd: int, attr_set: int = 0, attr_clr: int = 0, propagation: int = 0, userns_fd: int = 0,
                  recursive: bool = False) -> None:
    """mount_setattr(2) on the mount fd is the root of (AT_EMPTY_PATH), and below it when recursive."""
    flags = lib.AT_EMPTY_PATH | (lib.AT_RECURSIVE if recursive else 0)
    _check(lib.pyoci_mount_setattr(fd, b"", flags, attr_set, attr_clr, propagation, userns_fd), "mount_setattr")


def open_tree_clone(path: str, recursive: bool) -> int:
    """A detached copy of the mount at path (and below it when recursive): attached later with move_mount."""
    flags = lib.OPEN_TREE_CLONE | lib.OPEN_TREE_CLOEXEC | (lib.AT_RECURSIVE if recursive else 0)
    return _check(lib.pyoci_open_tree(-100, _b(path), flags), "open_tree", path)  # AT_FDCWD


def move_mount(tree_fd: int, target_fd: int) -> None:
    """Attach the detached tree tree_fd on the directory or file target_fd (both by fd, no path lookup)."""
    _check(lib.pyoci_move_mount(tree_fd, b"", target_fd, b"",
                                lib.MOVE_MOUNT_F_EMPTY_PATH | lib.MOVE_MOUNT_T_EMPTY_PATH), "move_mount")


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


def fork_into_cgroup(cgroup_fd: int) -> int:
    """os.fork(), the child born in the cgroup v2 directory cgroup_fd (clone3 CLONE_INTO_CGROUP): no migration
    afterwards. Python's at-fork handlers do not run: only for a single-threaded process, as pyoci's stages are."""
    return _check(lib.pyoci_clone3_into_cgroup(cgroup_fd), "clone3(CLONE_INTO_CGROUP)")


def personality(persona: int) -> None:
    _check(lib.personality(persona), "personality")


# bpf(2): union bpf_attr laid out with struct (each command reads its own prefix of the union; the rest is 0)
_BPF_ATTR_SIZE = 128


def _bpf(cmd: int, attr: bytearray, what: str) -> int:
    attr.extend(bytes(_BPF_ATTR_SIZE - len(attr)))
    return _check(lib.pyoci_bpf(cmd, ffi.from_buffer(attr), len(attr)), what)


def _address(buf: object) -> int:
    return int(ffi.cast("uintptr_t", buf))


def bpf_prog_load(prog_type: int, insns: bytes, license: bytes, attach_type: int = 0,
                  name: bytes = b"") -> tuple[int, str]:
    """(program fd, '') or (-1, the verifier's log) when the kernel refuses the program (EACCES/EINVAL)."""
    code, lic, log = ffi.from_buffer(insns), ffi.new("char[]", license), ffi.new("char[]", 1 << 16)

    def attr(level: int) -> bytearray:
        return bytearray(struct.pack("=IIQQIIQII16sII", prog_type, len(insns) // 8, _address(code), _address(lic),
                                     level, len(log) if level else 0, _address(log) if level else 0, 0, 0,
                                     name[:15], 0, attach_type))

    try:
        return _bpf(lib.BPF_PROG_LOAD, attr(0), "bpf(BPF_PROG_LOAD)"), ""
    except OSError as e:
        if e.errno not in (errno.EACCES, errno.EINVAL):
            raise
    try:  # again with the verifier's log, only now: it makes loading slower
        return _bpf(lib.BPF_PROG_LOAD, attr(1), "bpf(BPF_PROG_LOAD)"), ""
    except OSError:
        return -1, ffi.string(log).decode(errors="replace")


def bpf_prog_attach(target_fd: int, prog_fd: int, attach_type: int, flags: int, replace_fd: int = 0) -> None:
    _bpf(lib.BPF_PROG_ATTACH, bytearray(struct.pack("=IIIII", target_fd, prog_fd, attach_type, flags, replace_fd)),
         "bpf(BPF_PROG_ATTACH)")


def bpf_prog_detach(target_fd: int, prog_fd: int, attach_type: int) -> None:
    _bpf(lib.BPF_PROG_DETACH, bytearray(struct.pack("=III", target_fd, prog_fd, attach_type)), "bpf(BPF_PROG_DETACH)")


def bpf_prog_query(target_fd: int, attach_type: int, capacity: int = 64) -> list[int]:
    """Ids of the programs attached to target_fd (a cgroup directory) for attach_type."""
    ids = ffi.new("uint32_t[]", capacity)
    attr = bytearray(struct.pack("=IIIIQI", target_fd, attach_type, 0, 0, _address(ids), capacity))
    _bpf(lib.BPF_PROG_QUERY, attr, "bpf(BPF_PROG_QUERY)")
    count = struct.unpack_from("=I", attr, 24)[0]
    return [ids[i] for i in range(min(count, capacity))]


def bpf_prog_get_fd_by_id(prog_id: int) -> int:
    return _bpf(lib.BPF_PROG_GET_FD_BY_ID, bytearray(struct.pack("=III", prog_id, 0, 0)), "bpf(BPF_PROG_GET_FD_BY_ID)")


def sched_setattr(policy: int, flags: int = 0, nice: int = 0, priority: int = 0, runtime: int = 0,
                  deadline: int = 0, period: int = 0) -> None:
    """sched_setattr(2) on the calling thread (inherited by its children and kept across exec)."""
    _check(lib.pyoci_sched_setattr(0, policy, flags, nice, priority, runtime, deadline, period), "sched_setattr")


def ioprio_set(klass: int, level: int) -> None:
    """ioprio_set(2) for the calling process: class and level as IOPRIO_PRIO_VALUE packs them."""
    _check(lib.pyoci_ioprio_set(1, 0, klass << 13 | level), "ioprio_set")  # IOPRIO_WHO_PROCESS, self


def seccomp_set_filter(flags: int, program: bytes | None) -> int:
    """seccomp(SECCOMP_SET_MODE_FILTER) of a BPF program (struct sock_filter[]) with the kernel's filter flags;
    the listener fd with SECCOMP_FILTER_FLAG_NEW_LISTENER. program None: only whether the kernel takes the
    flags (OSError EFAULT if it does, EINVAL if not)."""
    return _check(lib.pyoci_seccomp_set_filter(flags, program if program is not None else ffi.NULL,
                                               len(program or b"")), "seccomp")


def set_mempolicy(mode: int, nodes: list[int]) -> None:
    """set_mempolicy(2) for the calling thread (inherited by its children, kept across exec); mode includes
    the MPOL_F_* flags."""
    words = max(nodes) // 64 + 1 if nodes else 1
    mask = ffi.new("unsigned long[]", words)
    for n in nodes:
        mask[n // 64] |= 1 << (n % 64)
    _check(lib.pyoci_set_mempolicy(mode, mask if nodes else ffi.NULL, words * 64 + 1 if nodes else 0),
           "set_mempolicy")
