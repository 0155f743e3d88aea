"""Device nodes and the standard /dev links, made by fd inside the rootfs (never through a host path)."""
from __future__ import annotations

import os
import stat

from pyoci import syscalls
from pyoci.errors import ConfigError, ContainerError
from pyoci.rootfs import O_PATH, ensure_file, fdpath, inside, mkdir_all, open_in_root
from pyoci.spec import Device, Spec
from pyoci.syscalls import C

DEFAULT_DEVICES = (
    Device("/dev/null", "c", 1, 3, 0o666, 0, 0),
    Device("/dev/zero", "c", 1, 5, 0o666, 0, 0),
    Device("/dev/full", "c", 1, 7, 0o666, 0, 0),
    Device("/dev/random", "c", 1, 8, 0o666, 0, 0),
    Device("/dev/urandom", "c", 1, 9, 0o666, 0, 0),
    Device("/dev/tty", "c", 5, 0, 0o666, 0, 0),
)
LINKS = (("/proc/self/fd", "fd"), ("/proc/self/fd/0", "stdin"), ("/proc/self/fd/1", "stdout"),
         ("/proc/self/fd/2", "stderr"))
_TYPES = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}


def needs_dev_setup(spec: Spec) -> bool:
    """runc's rule: unless /dev is bind-mounted from the host, the runtime populates it."""
    for m in spec.mounts:
        if inside(m.destination) == "/dev" and (m.type == "bind" or "bind" in m.options
                                                          or "rbind" in m.options):
            return False
    return True


def create_devices(spec: Spec, rootfd: int, userns: bool) -> None:
    """Default devices, then linux.devices (which may override them); bind host nodes in a user namespace."""
    devices: dict[str, Device] = {}
    populate = needs_dev_setup(spec)
    if populate:
        devices.update((d.path, d) for d in DEFAULT_DEVICES)
    for d in spec.linux.devices:
        devices[inside(d.path)] = d
    for d in devices.values():
        try:
            _make(rootfd, d, userns)
        except OSError as e:
            raise ContainerError("linux.devices: %s: %s" % (d.path, e.strerror or e)) from None
    if populate:
        _links(spec, rootfd)


def _make(rootfd: int, d: Device, userns: bool) -> None:
    if d.type not in _TYPES:
        raise ConfigError("linux.devices: %s: unknown type %r" % (d.path, d.type))
    path = inside(d.path)
    if not path.startswith("/dev/"):
        raise ConfigError("linux.devices: %s: devices must live under /dev" % d.path)
    if userns:  # mknod is not allowed: bind the host's node instead (runc does the same)
        fd = ensure_file(rootfd, path, nofollow=True)
        try:
            syscalls.mount(path, fdpath(fd), None, C.MS_BIND)
        finally:
            os.close(fd)
        return
    parent = mkdir_all(rootfd, os.path.dirname(path), nofollow=True)
    try:
        name = os.path.basename(path)
        try:
            st = os.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            pass
        else:
            if stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode):  # the image's data: never overwritten
                raise ConfigError("linux.devices: %s already exists in the rootfs and is not a device" % d.path)
            os.unlink(name, dir_fd=parent)
        mode = (d.file_mode if d.file_mode is not None else 0o666) & 0o7777
        old = os.umask(0)
        try:
            os.mknod(name, _TYPES[d.type] | mode, os.makedev(d.major, d.minor), dir_fd=parent)
        finally:
            os.umask(old)
        os.chown(name, d.uid or 0, d.gid or 0, dir_fd=parent, follow_symlinks=False)
    finally:
        os.close(parent)


def _links(spec: Spec, rootfd: int) -> None:
    devfd = mkdir_all(rootfd, "/dev", nofollow=True)
    try:
        links = list(LINKS)
        if os.path.exists("/proc/kcore"):
            links.append(("/proc/kcore", "core"))
        if any(inside(m.destination) == "/dev/pts" for m in spec.mounts):
            try:
                os.unlink("ptmx", dir_fd=devfd)
            except FileNotFoundError:
                pass
            links.append(("pts/ptmx", "ptmx"))
        for target, name in links:
            try:
                os.symlink(target, name, dir_fd=devfd)
            except FileExistsError:
                pass
    finally:
        os.close(devfd)


def check_dev_in_root(rootfd: int) -> None:
    """The rootfs's /dev must be a real directory of the rootfs, not a link out of it."""
    try:
        fd = open_in_root(rootfd, "/dev", O_PATH, nofollow=True)
    except FileNotFoundError:
        return
    except OSError as e:
        import errno

        why = "a symlink, which is not allowed" if e.errno == errno.ELOOP else e.strerror
        raise ContainerError("rootfs /dev: %s" % why) from None
    os.close(fd)
