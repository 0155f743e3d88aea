"""Per-container state under --root: one directory per id, state.json written atomically, flock'd.

The init's pid is stored with its start time (field 22 of /proc/PID/stat) so that a recycled pid is never
mistaken for the container.
"""
from __future__ import annotations

import fcntl
import os

from pyoci.errors import AlreadyExists, NotFound, UsageError
from pyoci.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterator

OCI_VERSION = "1.3.0"
_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_+.-")
EXEC_SOCKET = "exec.sock"


class State(Record):
    id: str
    bundle: str
    status: str = "creating"
    pid: int = 0
    pid_start: int = 0
    annotations: dict[str, str] = {}
    created: str = ""
    rootfs: str = ""
    cgroup_paths: dict[str, Any] = {}  # {"paths": {hierarchy: dir}, "created": [dirs pyoci made], "unit": systemd's}
    hooks: dict[str, Any] = {}  # poststart/poststop hooks, kept for later commands
    owner: str = "root"
    own_pid_ns: bool = True  # with one, the kernel ends every process of the container with its init
    start_wait: float = 60.0  # how long start waits for the exec (startContainer hooks' timeouts in it); 0: no bound
    removing: bool = False  # written before delete removes anything: a half-deleted container is stopped

    def oci(self) -> dict[str, Any]:
        """The state object the spec defines (runtime.md#state)."""
        out: dict[str, Any] = {"ociVersion": OCI_VERSION, "id": self.id, "status": self.status}
        if self.status in ("created", "running"):
            out["pid"] = self.pid
        out["bundle"] = self.bundle
        if self.annotations:
            out["annotations"] = self.annotations
        return out


MAX_ID = 255  # ids name directories: NAME_MAX


def valid_id(cid: str) -> bool:
    return 0 < len(cid) <= MAX_ID and cid[0] not in ".-+" and _ID_CHARS.issuperset(cid)


def check_id(cid: str) -> None:
    """Ids become directory names: refuse anything that could escape --root."""
    if len(cid) > MAX_ID:
        raise UsageError("invalid container id %r...: %d characters, more than %d" % (cid[:32], len(cid), MAX_ID))
    if not valid_id(cid):
        raise UsageError("invalid container id %r: use letters, digits and _ + . - (not starting with . or -)" % cid)


def proc_start_time(pid: int) -> int | None:
    """Start time of pid in clock ticks, or None when it is gone or a zombie."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2:].split()
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


class Store:
    """The --root directory."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)

    def dir(self, cid: str) -> str:
        check_id(cid)
        return os.path.join(self.root, cid)

    def create(self, cid: str) -> tuple[str, int]:
        """Claim the id atomically (mkdir succeeds for exactly one caller) and lock it at once, before its
        state.json exists: a concurrent delete waits instead of removing a container being created.
        Returns the directory and the lock fd. Only root may look inside: config.json holds secrets."""
        from pyoci.errors import PyociError

        path = self.dir(cid)
        try:
            os.makedirs(self.root, mode=0o700, exist_ok=True)
            os.mkdir(path, 0o700)
        except FileExistsError:
            if not os.path.isdir(self.root):
                raise PyociError("--root %s: not a directory" % self.root) from None
            if self._wedged(cid):
                raise AlreadyExists("container %r already exists, left half-created or half-deleted by a runtime "
                                    "that died: remove it with `delete --force %s`" % (cid, cid)) from None
            raise AlreadyExists("container %r already exists" % cid) from None
        except OSError as e:
            raise PyociError("--root %s: %s" % (self.root, e.strerror)) from None
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        fcntl.flock(fd, fcntl.LOCK_EX)
        return path, fd

    def _wedged(self, cid: str) -> bool:
        """Nobody holds the lock, yet the state says a create or delete is under way (or there is none)."""
        try:
            fd = os.open(self.dir(cid), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False  # a live command holds it
        try:
            st = self.load(cid)
        except NotFound:
            return True
        finally:
            os.close(fd)
        return st.status == "creating" or st.removing

    def lock(self, cid: str) -> int:
        """flock the container's directory; commands on one id serialize. Returns the fd to close.
        A directory without state.json (its runtime died) can be locked: delete --force must reach it."""
        path = self.dir(cid)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NotFound("container %r does not exist" % cid) from None
        fcntl.flock(fd, fcntl.LOCK_EX)
        if os.fstat(fd).st_nlink == 0:  # removed by the delete we waited for
            os.close(fd)
            raise NotFound("container %r does not exist" % cid)
        return fd

    def load(self, cid: str) -> State:
        path = self.dir(cid)
        try:
            with open(os.path.join(path, "state.json"), "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            if os.path.isdir(path):  # claimed, never saved or half removed: visible, and removable
                return State(id=cid, bundle="", status="creating")
            raise NotFound("container %r does not exist" % cid) from None
        from pyoci import jsonio  # only now: a missing container never pays for it

        try:
            return State(**jsonio.loads(raw))
        except (ValueError, TypeError):
            raise NotFound("container %r has a corrupt state file" % cid) from None

    def save(self, st: State) -> None:
        from pyoci import jsonio

        _write_private(os.path.join(self.dir(st.id), "state.json"), jsonio.dumps(st.as_dict()))

    def save_config(self, cid: str, raw: dict[str, Any]) -> None:
        from pyoci import jsonio

        _write_private(os.path.join(self.dir(cid), "config.json"), jsonio.dumps(raw))

    def load_config(self, cid: str) -> dict[str, Any]:
        from pyoci import jsonio

        try:
            with open(os.path.join(self.dir(cid), "config.json"), "rb") as f:
                return jsonio.loads(f.read())  # type: ignore[no-any-return]
        except (OSError, ValueError) as e:
            raise NotFound("container %r: its saved config is unreadable: %s" % (cid, e)) from None

    def remove(self, cid: str) -> None:
        """state.json goes last: until then, a runtime killed here leaves a container delete can finish."""
        path = self.dir(cid)
        try:
            names = os.listdir(path)
        except FileNotFoundError:
            return
        for name in sorted(names, key=lambda n: n == "state.json"):  # flat: state.json, exec.sock, *.tmp
            try:
                os.unlink(os.path.join(path, name))
            except FileNotFoundError:
                pass
        try:
            os.rmdir(path)
        except FileNotFoundError:
            pass

    def ids(self) -> Iterator[str]:
        """Every container directory, also one whose state.json is missing (shown as creating)."""
        try:
            names = sorted(os.listdir(self.root))
        except FileNotFoundError:
            return
        for name in names:
            if valid_id(name) and os.path.isdir(os.path.join(self.root, name)):
                yield name


def _write_private(path: str, data: str) -> None:
    """Atomically (rename), readable by root only, whatever the caller's umask."""
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)
        view = memoryview(data.encode())
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)
    os.replace(tmp, path)


def refresh(st: State, state_dir: str) -> State:
    """Derive the live status: created while the exec socket waits, running while the init lives."""
    if st.removing:
        st.status = "stopped"
    if st.status in ("creating", "stopped") or not st.pid:
        return st
    if proc_start_time(st.pid) != st.pid_start:
        st.status = "stopped"
    elif os.path.exists(os.path.join(state_dir, EXEC_SOCKET)):
        st.status = "created"
    else:
        st.status = "running"
    return st
