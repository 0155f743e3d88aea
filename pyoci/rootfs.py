"""Root filesystem: mounts in order, pivot_root, masked and read-only paths.

Every path inside the rootfs is resolved with openat2(RESOLVE_IN_ROOT) against a directory fd of the rootfs,
and mounts are made through the resulting O_PATH fd (/proc/self/fd/N), so a symlink in the rootfs can never
send a mount, a mkdir or a device node onto the host.
"""
from __future__ import annotations

import errno
import os
import stat

from pyoci import syscalls
from pyoci.errors import ConfigError, ContainerError
from pyoci.spec import Mount, Spec
from pyoci.syscalls import C

O_PATH = os.O_PATH | os.O_CLOEXEC
PROC_SUPER_MAGIC = 0x9FA0

# option -> (clear, set) on the mount flags
_FLAGS: dict[str, tuple[bool, int]] = {}
_PROPAGATION: dict[str, int] = {}


def _tables() -> None:
    if _FLAGS:
        return
    for name, clear, flag in (
        ("ro", False, C.MS_RDONLY), ("rw", True, C.MS_RDONLY), ("nosuid", False, C.MS_NOSUID),
        ("suid", True, C.MS_NOSUID), ("nodev", False, C.MS_NODEV), ("dev", True, C.MS_NODEV),
        ("noexec", False, C.MS_NOEXEC), ("exec", True, C.MS_NOEXEC), ("sync", False, C.MS_SYNCHRONOUS),
        ("async", True, C.MS_SYNCHRONOUS), ("dirsync", False, C.MS_DIRSYNC), ("remount", False, C.MS_REMOUNT),
        ("mand", False, C.MS_MANDLOCK), ("nomand", True, C.MS_MANDLOCK), ("noatime", False, C.MS_NOATIME),
        ("atime", True, C.MS_NOATIME), ("nodiratime", False, C.MS_NODIRATIME), ("diratime", True, C.MS_NODIRATIME),
        ("relatime", False, C.MS_RELATIME), ("norelatime", True, C.MS_RELATIME),
        ("strictatime", False, C.MS_STRICTATIME), ("nostrictatime", True, C.MS_STRICTATIME),
        ("lazytime", False, C.MS_LAZYTIME), ("nolazytime", True, C.MS_LAZYTIME),
        ("symfollow", True, C.MS_NOSYMFOLLOW), ("nosymfollow", False, C.MS_NOSYMFOLLOW),
        ("bind", False, C.MS_BIND), ("rbind", False, C.MS_BIND | C.MS_REC),
    ):
        _FLAGS[name] = (clear, flag)
    for name, flag in (
        ("private", C.MS_PRIVATE), ("rprivate", C.MS_PRIVATE | C.MS_REC), ("shared", C.MS_SHARED),
        ("rshared", C.MS_SHARED | C.MS_REC), ("slave", C.MS_SLAVE), ("rslave", C.MS_SLAVE | C.MS_REC),
        ("unbindable", C.MS_UNBINDABLE), ("runbindable", C.MS_UNBINDABLE | C.MS_REC),
    ):
        _PROPAGATION[name] = flag


# recursive option -> (clear, MOUNT_ATTR_*), applied with mount_setattr(AT_RECURSIVE) to the whole mounted tree
_RECURSIVE: dict[str, tuple[bool, int]] = {}


def _recursive_table() -> dict[str, tuple[bool, int]]:
    if not _RECURSIVE:
        for name, clear, attr in (
            ("rro", False, C.MOUNT_ATTR_RDONLY), ("rrw", True, C.MOUNT_ATTR_RDONLY),
            ("rnosuid", False, C.MOUNT_ATTR_NOSUID), ("rsuid", True, C.MOUNT_ATTR_NOSUID),
            ("rnodev", False, C.MOUNT_ATTR_NODEV), ("rdev", True, C.MOUNT_ATTR_NODEV),
            ("rnoexec", False, C.MOUNT_ATTR_NOEXEC), ("rexec", True, C.MOUNT_ATTR_NOEXEC),
            ("rnodiratime", False, C.MOUNT_ATTR_NODIRATIME), ("rdiratime", True, C.MOUNT_ATTR_NODIRATIME),
            ("rnosymfollow", False, C.MOUNT_ATTR_NOSYMFOLLOW), ("rsymfollow", True, C.MOUNT_ATTR_NOSYMFOLLOW),
        ):
            _RECURSIVE[name] = (clear, attr)
    return _RECURSIVE


# the access-time mode is one value, not a bit: each option picks one (the negations as mount(8) words them:
# "atime"/"nostrictatime" give the kernel's default, relatime; "norelatime" gives strictatime)
_RECURSIVE_ATIME = {"rrelatime": "RELATIME", "ratime": "RELATIME", "rnostrictatime": "RELATIME",
                    "rnoatime": "NOATIME", "rstrictatime": "STRICTATIME", "rnorelatime": "STRICTATIME"}


def option_words() -> set[str]:
    """Every option word parse_options takes as such (filesystem data such as mode= or size= aside)."""
    _tables()
    return {*_FLAGS, *_PROPAGATION, *_recursive_table(), *_RECURSIVE_ATIME, "tmpcopyup", "idmap", "ridmap"}


class Options:
    """One mount's options, split as the kernel takes them."""

    __slots__ = ("flags", "prop", "data", "attr_set", "attr_clr", "copyup", "idmap")

    def __init__(self) -> None:
        self.flags = 0  # mount(2) flags
        self.prop: list[int] = []  # propagation changes, in order
        self.data = ""  # the filesystem's own options
        self.attr_set = self.attr_clr = 0  # recursive attributes (mount_setattr)
        self.copyup = False  # tmpcopyup: the tmpfs starts with what the directory held
        self.idmap = ""  # "idmap" or "ridmap" (recursive), or "" when the mount is not id-mapped


def parse_options(options: list[str]) -> Options:
    """Mount options, as mount(8) reads them, plus the OCI extensions (recursive attributes, tmpcopyup, idmap)."""
    _tables()
    rec = _recursive_table()
    o, data = Options(), []
    for opt in options:
        if opt in _FLAGS:
            clear, flag = _FLAGS[opt]
            o.flags = o.flags & ~flag if clear else o.flags | flag
        elif opt in _PROPAGATION:
            o.prop.append(_PROPAGATION[opt])
        elif opt in rec:
            clear, attr = rec[opt]
            if clear:
                o.attr_clr, o.attr_set = o.attr_clr | attr, o.attr_set & ~attr
            else:
                o.attr_set, o.attr_clr = o.attr_set | attr, o.attr_clr & ~attr
        elif opt in _RECURSIVE_ATIME:
            o.attr_set = (o.attr_set & ~C.MOUNT_ATTR__ATIME) | getattr(C, "MOUNT_ATTR_" + _RECURSIVE_ATIME[opt])
            o.attr_clr |= C.MOUNT_ATTR__ATIME  # the kernel: a new atime mode clears the whole field
        elif opt == "tmpcopyup":
            o.copyup = True
        elif opt in ("idmap", "ridmap"):
            o.idmap = opt
        else:
            data.append(opt)
    o.data = ",".join(data)
    return o


def propagation_flag(name: str) -> int:
    _tables()
    if name not in _PROPAGATION:
        raise ConfigError("linux.rootfsPropagation: unknown value %r" % name)
    return _PROPAGATION[name]


def inside(path: str) -> str:
    """A path of the container, absolute and normalised (posix normpath keeps a leading '//': not here)."""
    return "/" + os.path.normpath("/" + path).lstrip("/")


def fdpath(fd: int) -> str:
    return "/proc/self/fd/%d" % fd


def open_in_root(rootfd: int, path: str, flags: int = O_PATH, nofollow: bool = False) -> int:
    """Open path as if rootfd were '/': symlinks (absolute or '..') can never leave the rootfs."""
    resolve = C.RESOLVE_IN_ROOT | C.RESOLVE_NO_MAGICLINKS | (C.RESOLVE_NO_SYMLINKS if nofollow else 0)
    return syscalls.openat2(rootfd, path.lstrip("/") or ".", flags, resolve)


def mkdir_all(rootfd: int, path: str, mode: int = 0o755, nofollow: bool = False, depth: int = 0) -> int:
    """mkdir -p inside the rootfs, by fd, one component at a time; returns an O_PATH fd of the directory.
    A symlink on the way to a directory that does not exist yet is followed within the rootfs: its target
    is made first (as the kernel would resolve it with the rootfs as /)."""
    parts = [p for p in inside(path).split("/") if p]
    cur = os.dup(rootfd)
    try:
        for i, name in enumerate(parts):
            sub = "/".join(parts[: i + 1])
            try:
                fd = open_in_root(rootfd, sub, O_PATH | os.O_DIRECTORY, nofollow)
            except FileNotFoundError:
                try:
                    os.mkdir(name, mode, dir_fd=cur)
                    fd = os.open(name, O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=cur)  # what we just made
                except FileExistsError:  # a symlink to what does not exist yet (var/run -> ../run)
                    target = None if nofollow or depth > 40 else _link_target(rootfd, cur, name)
                    if target is None:
                        raise ContainerError("%s: %s is a dangling symlink or was just created" % (path, sub)) from None
                    os.close(mkdir_all(rootfd, target, mode, depth=depth + 1))  # made inside the rootfs
                    fd = open_in_root(rootfd, sub, O_PATH | os.O_DIRECTORY)
            except NotADirectoryError:
                raise ContainerError("%s: /%s is not a directory in the rootfs" % (path, sub)) from None
            except OSError as e:
                if e.errno == errno.ELOOP:
                    raise ContainerError("%s: /%s is a symlink, which is not allowed here" % (path, sub)) from None
                raise
            os.close(cur)
            cur = fd
        return cur
    except BaseException:
        os.close(cur)
        raise


def _link_target(rootfd: int, parent: int, name: str) -> str | None:
    """Where symlink parent/name points, as a path inside the rootfs (None: not a symlink)."""
    try:
        link = os.readlink(name, dir_fd=parent)
    except OSError:
        return None
    if not link.startswith("/"):
        root = os.readlink(fdpath(rootfd))
        here = os.readlink(fdpath(parent))
        base = "/" + os.path.relpath(here, root) if here != root else "/"
        link = os.path.join(base, link)
    return os.path.normpath("/" + link.lstrip("/"))  # '..' above / stays at /, as RESOLVE_IN_ROOT has it


def ensure_file(rootfd: int, path: str, nofollow: bool = False, depth: int = 0) -> int:
    """Make path exist as a file (a bind target for a file or device); returns an O_PATH fd. A dangling
    symlink there is followed within the rootfs: its target is made (as the kernel would resolve it)."""
    parent = mkdir_all(rootfd, os.path.dirname(inside(path)))
    try:
        name = os.path.basename(inside(path))
        try:
            return open_in_root(rootfd, path, O_PATH, nofollow)
        except FileNotFoundError:
            try:
                fd = os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644,
                             dir_fd=parent)
            except FileExistsError:  # a symlink to what does not exist yet
                target = None if nofollow or depth > 40 else _link_target(rootfd, parent, name)
                if target is None:
                    raise ContainerError("%s: a dangling symlink or was just created" % path) from None
                os.close(ensure_file(rootfd, target, depth=depth + 1))
                return open_in_root(rootfd, path, O_PATH)
            os.close(fd)
            return open_in_root(rootfd, path, O_PATH, nofollow=True)
    finally:
        os.close(parent)


def _exists(rootfd: int, path: str) -> bool:
    try:
        os.close(open_in_root(rootfd, path))
        return True
    except OSError:
        return False


def _copy_tree(src: int, dst: int) -> None:
    """tmpcopyup: the directory src's entries into dst (a new tmpfs), recursively, with owner, mode and times;
    symlinks stay symlinks, device nodes and fifos are made again. Both are directory fds; nothing is
    followed, so a symlink in the image cannot make us read outside it."""
    with os.scandir(src) as it:
        entries = list(it)
    for e in entries:
        st = e.stat(follow_symlinks=False)
        mode = stat.S_IMODE(st.st_mode)
        if stat.S_ISDIR(st.st_mode):
            os.mkdir(e.name, 0o700, dir_fd=dst)
            s = os.open(e.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src)
            d = os.open(e.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dst)
            try:
                _copy_tree(s, d)
            finally:
                os.close(s)
                os.close(d)
        elif stat.S_ISREG(st.st_mode):
            s = os.open(e.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src)
            try:
                d = os.open(e.name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                            dir_fd=dst)
                try:
                    while os.sendfile(d, s, None, 1 << 30):
                        pass
                finally:
                    os.close(d)
            finally:
                os.close(s)
        elif stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(e.name, dir_fd=src), e.name, dir_fd=dst)
        else:
            os.mknod(e.name, st.st_mode, st.st_rdev, dir_fd=dst)
        os.chown(e.name, st.st_uid, st.st_gid, dir_fd=dst, follow_symlinks=False)
        if not stat.S_ISLNK(st.st_mode):
            os.chmod(e.name, mode, dir_fd=dst)
        os.utime(e.name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dst, follow_symlinks=False)
    st = os.fstat(src)
    os.fchown(dst, st.st_uid, st.st_gid)
    os.fchmod(dst, stat.S_IMODE(st.st_mode))


def bind_source(spec: Spec, m: Mount) -> str:
    return m.source if os.path.isabs(m.source) else os.path.join(spec.bundle, m.source)


def detach_sources(spec: Spec, userns: bool, userns_path: str = "") -> dict[int, int]:
    """Stage 1, before it enters the container's user namespace: a detached copy (open_tree) of each bind
    source the init could not reach as the container's root (with a user namespace: every bind), and of each
    id-mapped mount's source with MOUNT_ATTR_IDMAP set, which only the host's root may set. The init attaches
    them with move_mount. Each copy is made a slave first (runc's mounts in the container are slaves of the
    host's), then the mount options apply as for any bind."""
    out: dict[int, int] = {}
    try:
        for i, m in enumerate(spec.mounts):
            o = parse_options(m.options)
            bind = bool(o.flags & C.MS_BIND) or m.type == "bind"
            idmapped = bool(o.idmap or m.uid_mappings or m.gid_mappings)
            if idmapped and not bind:
                raise ConfigError("mounts[%d]: id-mapped mounts (idmap, uidMappings) are only supported for bind "
                                  "mounts" % i)
            if not (idmapped or (userns and bind)):
                continue
            source = bind_source(spec, m)
            try:
                tree = syscalls.open_tree_clone(source, recursive=bool(o.flags & C.MS_REC))
            except OSError as e:
                raise ContainerError("mounts[%d]: bind source %s: %s" % (i, source, e.strerror)) from None
            out[i] = tree
            syscalls.mount_setattr(tree, propagation=C.MS_SLAVE, recursive=True)
            if idmapped:
                ns = _idmap_userns(i, m, spec, userns, userns_path)
                try:
                    syscalls.mount_setattr(tree, C.MOUNT_ATTR_IDMAP, userns_fd=ns, recursive=o.idmap == "ridmap")
                except OSError as e:
                    raise ContainerError("mounts[%d]: cannot id-map %s: %s (the filesystem or kernel may not "
                                         "support id-mapped mounts)" % (i, source, e.strerror)) from None
                finally:
                    os.close(ns)
    except BaseException:
        for fd in out.values():
            os.close(fd)
        raise
    return out


def _idmap_userns(i: int, m: Mount, spec: Spec, userns: bool, userns_path: str) -> int:
    """A user namespace fd holding the mount's mappings: its own, else the container's (as runc)."""
    if m.uid_mappings or m.gid_mappings:
        if not (m.uid_mappings and m.gid_mappings):
            raise ConfigError("mounts[%d]: an id-mapped mount needs both uidMappings and gidMappings" % i)
        uids, gids = m.uid_mappings, m.gid_mappings
    elif userns_path:
        try:
            return os.open(userns_path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise ConfigError("mounts[%d]: user namespace %s: %s" % (i, userns_path, e.strerror)) from None
    elif userns and spec.linux.uid_mappings and spec.linux.gid_mappings:
        uids, gids = spec.linux.uid_mappings, spec.linux.gid_mappings
    else:
        raise ConfigError("mounts[%d]: %s needs uidMappings and gidMappings (the mount's, or the container's user "
                          "namespace's)" % (i, "ridmap" if "ridmap" in m.options else "idmap"))
    from pyoci.namespaces import mapped_userns

    field = "mounts[%d]" % i if m.uid_mappings else "linux"
    return mapped_userns(uids, gids, field)




ALLOWED_PROC_BINDS = ("/proc/cpuinfo", "/proc/diskstats", "/proc/meminfo", "/proc/stat", "/proc/swaps",
                      "/proc/uptime", "/proc/loadavg", "/proc/slabinfo", "/proc/net/dev",
                      "/proc/sys/kernel/ns_last_pid")


def _check_proc_target(m: Mount, dest: str) -> None:
    """Only a real procfs at /proc; below it, only the files lxcfs-style tools legitimately replace."""
    if dest == "/proc":
        if m.type != "proc":
            raise ConfigError("mounts: %s must be of type proc, not %r (a fake /proc could redirect the "
                              "runtime's writes)" % (dest, m.type or "bind"))
    elif dest.startswith("/proc/") and dest not in ALLOWED_PROC_BINDS:
        raise ConfigError("mounts: %s: mounting over procfs is not allowed" % dest)


def _not_over_procfs(fd: int, dest: str) -> int:
    """The destination as resolved (a symlink in the image may lead into the procfs mounted just before):
    only /proc itself and the files tools like lxcfs legitimately replace may be on procfs."""
    if dest != "/proc" and dest not in ALLOWED_PROC_BINDS and syscalls.fstatfs_type(fd) == PROC_SUPER_MAGIC:
        os.close(fd)
        raise ConfigError("mounts: %s resolves into procfs: mounting over procfs is not allowed" % dest)
    return fd


class Mounter:
    """Performs the spec's mounts inside one rootfs, from the init process (in its own mount namespace).

    sources: detached mount trees made by stage 1 before it entered the user namespace (detach_sources), by
    index in spec.mounts: id-mapped mounts, and with a user namespace every bind (its source may be out of the
    container's user's reach)."""

    def __init__(self, spec: Spec, rootfd: int, userns: bool, cgroup_paths: dict[str, str],
                 sources: dict[int, int] | None = None) -> None:
        self.spec = spec
        self.rootfd = rootfd
        self.userns = userns
        self.cgroup_paths = cgroup_paths
        self.sources = sources or {}
        self.readonly_dev = False

    def mount_all(self) -> None:
        try:
            for i, m in enumerate(self.spec.mounts):
                try:
                    self.mount(m, self.sources.pop(i, None))
                except OSError as e:
                    raise ContainerError("mounts[%d] (%s on %s): %s" % (i, m.type or "bind", m.destination,
                                                                       e.strerror or e)) from None
        finally:
            for fd in self.sources.values():
                os.close(fd)
            self.sources = {}

    def finish(self) -> None:
        """After the mounts and the devices: /dev read-only at last, when asked (its submounts and device
        nodes need it writable until now, as runc does)."""
        if self.readonly_dev:
            fd = open_in_root(self.rootfd, "/dev")
            try:
                syscalls.mount(None, fdpath(fd), None, C.MS_REMOUNT | C.MS_BIND | C.MS_RDONLY | _locked(fd))
            except OSError as e:
                raise ContainerError("mounts: cannot make /dev read-only: %s" % e.strerror) from None
            finally:
                os.close(fd)

    def destination(self, m: Mount) -> str:
        """The path inside the rootfs; a host path below the rootfs is taken relative to it, as runc does."""
        root = self.spec.root_path.rstrip("/")
        dest = m.destination
        if root and dest.startswith(root + "/"):
            dest = dest[len(root):]
        return inside(dest)

    def mount(self, m: Mount, tree: int | None = None) -> None:
        dest = self.destination(m)
        _check_proc_target(m, dest)
        o = parse_options(m.options)
        if o.flags & C.MS_BIND or m.type == "bind":
            self._bind(m, dest, o, tree)
            return
        if o.idmap or m.uid_mappings or m.gid_mappings:  # detach_sources has refused it already
            raise ConfigError("mounts: %s: id-mapped mounts are only supported for bind mounts" % dest)
        if m.type == "cgroup":
            self._cgroup(dest, o.flags, o.data)
            self._finish(dest, o, nofollow=False)
            return
        if m.type == "cgroup2":  # the container's own cgroup, read-only unless "rw" is asked (as runc)
            from pyoci.cgroups import hierarchies

            unified = next((h.mountpoint for h in hierarchies() if h.version == 2), None)
            if unified is None:
                raise ContainerError("mounts: %s: no cgroup v2 hierarchy on this host" % m.destination)
            ro = 0 if "rw" in m.options else C.MS_RDONLY
            self._bind_cgroup(self.cgroup_paths.get("", unified), dest, o.flags | ro)
            self._finish(dest, o, nofollow=False)
            return
        strict = m.type in ("proc", "sysfs")  # only on real directories: CVE-2019-16884 and friends
        flags, data = o.flags, o.data
        if dest == "/dev" and flags & C.MS_RDONLY:  # read-only once its submounts and nodes are made: finish()
            flags &= ~C.MS_RDONLY
            self.readonly_dev = True
        existed = m.type == "tmpfs" and _exists(self.rootfd, dest)
        fd = _not_over_procfs(mkdir_all(self.rootfd, dest, nofollow=strict), dest)
        old = -1
        try:
            if m.type == "tmpfs":
                if existed:  # runc: the directory's own mode (a mode= in the options still wins)
                    data = ",".join(x for x in ("mode=%04o" % stat.S_IMODE(os.fstat(fd).st_mode), data) if x)
                if o.copyup:  # what the directory holds, read from under the new tmpfs once it is on top
                    old = os.open(fdpath(fd), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                syscalls.mount(m.source or m.type, fdpath(fd), m.type, flags, data or None)
            except PermissionError:
                if m.type != "sysfs" or not self.userns:
                    raise
                syscalls.mount("/sys", fdpath(fd), None, C.MS_BIND | C.MS_REC)
            if old >= 0:
                os.close(fd)
                fd = open_in_root(self.rootfd, dest, os.O_RDONLY | os.O_DIRECTORY, nofollow=strict)
                _copy_tree(old, fd)
        finally:
            os.close(fd)
            if old >= 0:
                os.close(old)
        self._finish(dest, o, nofollow=strict)

    def _finish(self, dest: str, o: Options, nofollow: bool) -> None:
        """Propagation and recursive attributes, on the mount now on top of dest."""
        if not (o.prop or o.attr_set or o.attr_clr):
            return
        fd = open_in_root(self.rootfd, dest, nofollow=nofollow)
        try:
            self._propagate(fd, o.prop)
            if o.attr_set or o.attr_clr:
                syscalls.mount_setattr(fd, o.attr_set, o.attr_clr, recursive=True)
        finally:
            os.close(fd)

    def _bind(self, m: Mount, dest: str, o: Options, tree: int | None) -> None:
        flags = o.flags | C.MS_BIND
        if tree is not None:
            src = tree
        else:
            source = bind_source(self.spec, m)
            try:
                src = os.open(source, O_PATH)
            except OSError as e:
                raise ContainerError("mounts: bind source %s: %s" % (source, e.strerror)) from None
        try:
            is_dir = stat.S_ISDIR(os.fstat(src).st_mode)
            fd = _not_over_procfs(mkdir_all(self.rootfd, dest) if is_dir else ensure_file(self.rootfd, dest), dest)
            try:
                if tree is not None:
                    syscalls.move_mount(tree, fd)
                else:
                    syscalls.mount(fdpath(src), fdpath(fd), None, flags & (C.MS_BIND | C.MS_REC))
                # the freshly made bind mount sits on top of the path: reopen to reach it
                os.close(fd)
                fd = open_in_root(self.rootfd, dest)
                extra = flags & ~(C.MS_BIND | C.MS_REC | C.MS_REMOUNT)
                if extra:
                    syscalls.mount(None, fdpath(fd), None, C.MS_BIND | C.MS_REMOUNT | extra | _locked(fd))
            finally:
                os.close(fd)
        finally:
            os.close(src)
        self._finish(dest, o, nofollow=False)

    def _propagate(self, fd: int, prop: list[int]) -> None:
        for p in prop:
            syscalls.mount(None, fdpath(fd), None, p)

    def _cgroup(self, dest: str, flags: int, data: str) -> None:
        """A tmpfs with the container's own cgroup of each hierarchy bound below it (read-only when asked)."""
        from pyoci.cgroups import hierarchies

        fd = _not_over_procfs(mkdir_all(self.rootfd, dest), dest)
        try:
            hs = hierarchies()
            if len(hs) == 1 and hs[0].version == 2:  # unified host: the container's cgroup is the whole mount
                self._bind_cgroup(self.cgroup_paths.get("", hs[0].mountpoint), dest, flags)
                return
            syscalls.mount("tmpfs", fdpath(fd), "tmpfs", flags & ~C.MS_RDONLY, "mode=755")
            os.close(fd)
            fd = open_in_root(self.rootfd, dest)  # the tmpfs now on top: the links go in it
            for h in hs:
                name = os.path.basename(h.mountpoint)
                sub = dest + "/" + name
                src = self.cgroup_paths.get(h.name, h.mountpoint)
                self._bind_cgroup(src, sub, flags)
                for ctrl in h.controllers:
                    if ctrl != name and not ctrl.startswith("name="):
                        try:
                            os.symlink(name, ctrl, dir_fd=fd)
                        except FileExistsError:
                            pass
            if flags & C.MS_RDONLY:
                syscalls.mount(None, fdpath(fd), None, C.MS_REMOUNT | flags)
        finally:
            os.close(fd)

    def _bind_cgroup(self, src: str, dest: str, flags: int) -> None:
        fd = mkdir_all(self.rootfd, dest)
        try:
            syscalls.mount(src, fdpath(fd), None, C.MS_BIND | C.MS_REC)
            os.close(fd)
            fd = open_in_root(self.rootfd, dest)
            syscalls.mount(None, fdpath(fd), None, C.MS_BIND | C.MS_REMOUNT | flags | _locked(fd))
        finally:
            os.close(fd)


def _locked(fd: int) -> int:
    """Flags the kernel locks on a bind mount made inside a user namespace: keep them on remount."""
    st = os.fstatvfs(fd)
    out = 0
    for bit, flag in ((os.ST_NOSUID, C.MS_NOSUID), (os.ST_NODEV, C.MS_NODEV), (os.ST_NOEXEC, C.MS_NOEXEC),
                      (os.ST_RDONLY, 0)):
        if st.f_flag & bit:
            out |= flag
    return out


def prepare(spec: Spec) -> int:
    """Make mount events stay inside our namespace and turn the rootfs into a mount point; returns its fd.

    Everything becomes a slave first (or what linux.rootfsPropagation says, as runc): nothing mounted here
    reaches the host, and pivot_root works wherever the bundle lives. rootfsPropagation applies to the new /
    after the pivot as well."""
    flag = C.MS_SLAVE | C.MS_REC
    if spec.linux.rootfs_propagation:
        flag = propagation_flag(spec.linux.rootfs_propagation)  # runc's prepareRoot: before the mounts
    syscalls.mount(None, "/", None, flag)
    _parent_mount_private(spec.root_path)
    syscalls.mount(spec.root_path, spec.root_path, None, C.MS_BIND | C.MS_REC)
    return os.open(spec.root_path, O_PATH | os.O_DIRECTORY)


def _unescape(field: str) -> str:
    """mountinfo's octal escapes (\\040 for a space...), decoded without a codec: the interpreter's files may
    be out of reach by now."""
    if "\\" not in field:
        return field
    parts = field.split("\\")
    return parts[0] + "".join(chr(int(p[:3], 8)) + p[3:] if p[:3].isdigit() else "\\" + p for p in parts[1:])


def _parent_mount_private(path: str) -> None:
    """The mount holding the rootfs, private when it is shared (rootfsPropagation shared): the rootfs's bind
    onto itself, and what is mounted in it, must not reach the host's peers."""
    real = os.path.realpath(path)
    best, shared = "", False
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split(" - ")[0].split()
            mp = _unescape(fields[4])
            if (real == mp or real.startswith(mp.rstrip("/") + "/")) and len(mp) >= len(best):
                best, shared = mp, any(x.startswith("shared:") for x in fields[6:])
    if best and shared:
        syscalls.mount(None, best, None, C.MS_PRIVATE)


def apply_root_propagation(spec: Spec) -> None:
    """After pivot_root: linux.rootfsPropagation on the container's / (runc does it at the same point)."""
    if spec.linux.rootfs_propagation:
        syscalls.mount(None, "/", None, propagation_flag(spec.linux.rootfs_propagation))


def mask_paths(rootfd: int, masked: list[str], readonly: list[str]) -> None:
    """maskedPaths: /dev/null over files, an empty read-only tmpfs over directories; readonlyPaths: ro binds.

    Run before pivot_root, with the container's /dev/null opened by fd and checked to be char 1:3.
    """
    null = None
    for path in masked:
        try:
            fd = open_in_root(rootfd, path)
        except FileNotFoundError:
            continue
        try:
            if stat.S_ISDIR(os.fstat(fd).st_mode):
                syscalls.mount("tmpfs", fdpath(fd), "tmpfs", C.MS_RDONLY, None)
            else:
                if null is None:
                    null = _open_dev_null(rootfd)
                syscalls.mount(fdpath(null), fdpath(fd), None, C.MS_BIND)
        finally:
            os.close(fd)
    if null is not None:
        os.close(null)
    for path in readonly:
        try:
            fd = open_in_root(rootfd, path)
        except FileNotFoundError:
            continue
        try:
            syscalls.mount(fdpath(fd), fdpath(fd), None, C.MS_BIND | C.MS_REC)
            os.close(fd)
            fd = open_in_root(rootfd, path)
            syscalls.mount(None, fdpath(fd), None,
                           C.MS_BIND | C.MS_REMOUNT | C.MS_RDONLY | C.MS_REC | _locked(fd))
        finally:
            os.close(fd)


def _open_dev_null(rootfd: int) -> int:
    """The container's /dev/null, refusing anything that is not the real 1:3 character device."""
    try:
        fd = open_in_root(rootfd, "/dev/null", nofollow=True)
    except OSError:
        fd = os.open("/dev/null", O_PATH)
    st = os.fstat(fd)
    if not stat.S_ISCHR(st.st_mode) or os.major(st.st_rdev) != 1 or os.minor(st.st_rdev) != 3:
        os.close(fd)
        raise ContainerError("/dev/null in the rootfs is not the null device; refusing to use it for maskedPaths")
    return fd


def pivot(rootfs: str, no_pivot: bool) -> None:
    """Enter the rootfs: pivot_root(".", ".") and lazily detach the old root (runc's way), or MS_MOVE+chroot."""
    os.chdir(rootfs)
    if no_pivot:
        _detach_host_proc_and_sys(os.path.realpath(rootfs))
        syscalls.mount(rootfs, "/", None, C.MS_MOVE)
        os.chroot(".")
    else:
        old = os.open("/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            syscalls.pivot_root(".", ".")
            os.fchdir(old)
            syscalls.mount(None, ".", None, C.MS_SLAVE | C.MS_REC)
            syscalls.umount2(".", C.MNT_DETACH)
        finally:
            os.close(old)
    os.chdir("/")


def _detach_host_proc_and_sys(rootfs: str) -> None:
    """Before MS_MOVE+chroot, which leave the rest of the host's mount tree in this mount namespace: detach
    every proc and sysfs mount outside the rootfs, or cover it with an empty tmpfs where it cannot be detached
    (a user namespace's locked mounts). A fully visible proc or sysfs anywhere in the namespace is what lets a
    process in a nested user namespace mount a fresh, unmasked one (`unshare -mrpf`; runc does the same).
    Each is made a slave first, recursively, so that neither the umount nor its children's reach the host."""
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            head, _, tail = line.partition(" - ")
            mp = _unescape(head.split()[4])
            if tail.split()[0] in ("proc", "sysfs") and mp != rootfs and not mp.startswith(rootfs.rstrip("/") + "/"):
                points.append(mp)
    for mp in sorted(points, key=len, reverse=True):  # the deepest first; a path mounted twice, twice
        try:
            syscalls.mount(None, mp, None, C.MS_SLAVE | C.MS_REC)
            syscalls.umount2(mp, C.MNT_DETACH)
        except OSError as e:
            if e.errno not in (errno.EINVAL, errno.EPERM):
                raise
            syscalls.mount("tmpfs", mp, "tmpfs", C.MS_RDONLY | C.MS_NOSUID | C.MS_NODEV | C.MS_NOEXEC)


def remount_root_readonly() -> None:
    syscalls.mount(None, "/", None, C.MS_BIND | C.MS_REMOUNT | C.MS_RDONLY | _locked_path("/"))


def _locked_path(path: str) -> int:
    fd = os.open(path, O_PATH)
    try:
        return _locked(fd)
    finally:
        os.close(fd)


def write_sysctls(sysctl: dict[str, str]) -> None:
    """Through the runtime's own /proc (before pivot), never a path the container could have replaced."""
    for key, value in sysctl.items():
        rel = key.replace(".", "/")
        if not key or ".." in key.split(".") or "/" in key:
            raise ConfigError("linux.sysctl: invalid name %r" % key)
        try:
            fd = os.open("/proc/sys/" + rel, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            raise ConfigError("linux.sysctl.%s: no such sysctl" % key) from None
        try:
            if syscalls.fstatfs_type(fd) != PROC_SUPER_MAGIC:
                raise ContainerError("linux.sysctl.%s: /proc/sys is not procfs" % key)
            os.write(fd, value.encode())
        except OSError as e:
            raise ContainerError("linux.sysctl.%s: cannot set %r: %s" % (key, value, e.strerror)) from None
        finally:
            os.close(fd)
