"""Shared fixtures for the runtime tests: real containers, a private --root, and a leak check after each test.

* ``rootfs`` (session): a busybox rootfs built once with bundles/busybox/build-rootfs.sh.
* ``rt``: a Runtime bound to a private ``--root`` in tmp_path; it makes unique container ids and runs the CLI.
* ``bundle``: a bundle dir in tmp_path whose config.json (``bundle.config``) the test edits; ``root.path`` is the
  shared rootfs by absolute path with ``readonly: true`` (use ``bundle.private_rootfs()`` to write into it).
* an autouse check (for every test that uses ``rt``): after the test, the --root holds no container, no cgroup
  named after one of the test's ids exists, no mount mentions the test's tmp dir or the shared rootfs, nothing
  new appeared in the shared rootfs's top or mount-point directories. Whatever was left behind is then
  force-cleaned and the test errors out.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest

REPO = Path(__file__).resolve().parent.parent
BUSYBOX = REPO / "bundles" / "busybox"
_SCRIPT = Path(sys.executable).with_name("pyoci")
PYOCI: list[str] = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "pyoci"]
CGROUP_ROOT = Path("/sys/fs/cgroup")
RUNC = "/usr/sbin/runc"
MOUNT_POINTS = ("/out", "/mnt", "/mnt/a", "/mnt/b", "/data", "/hooks", "/src")


def _runtime_available() -> str | None:
    if os.geteuid() != 0:
        return "runtime tests need root"
    if not Path("/bin/busybox").exists():
        return "runtime tests need busybox-static (/bin/busybox)"
    return None


# --------------------------------------------------------------------------------------------- helpers
def base_config(rootfs: Path | str) -> dict[str, Any]:
    """The busybox bundle's config (terminal false), with the shared rootfs by absolute path, read-only."""
    config = json.loads((BUSYBOX / "config.json").read_text())
    config["root"] = {"path": str(rootfs), "readonly": True}
    config["process"]["args"] = ["true"]
    return config


def one_line_error(r: subprocess.CompletedProcess[str]) -> str:
    """A failed command: non-zero exit, no traceback, exactly one error line on stderr (besides warnings
    logged about the config); returns that line."""
    assert r.returncode != 0, "expected a failure, got rc=0\nstdout=%s\nstderr=%s" % (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip() and "level=warning" not in line]
    assert len(lines) == 1, "expected one line on stderr, got:\n%s" % r.stderr
    return lines[0]


def wait_for(pred: Any, timeout: float = 10.0, interval: float = 0.01, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for %s" % what)
        time.sleep(interval)


def pid_alive(pid: int) -> bool:
    """True while pid exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except OSError:
        return False
    return data[data.rindex(")") + 2] not in "ZX"


def hierarchy_dirs() -> list[Path]:
    """Mount points of every cgroup hierarchy (v1 controllers and the unified one)."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            if right.split()[0] in ("cgroup", "cgroup2"):
                out.append(Path(left.split()[4]))
    return out


def cgroup_dirs_named(ids: list[str]) -> list[str]:
    """Every cgroup directory (on any hierarchy) whose name contains one of ids."""
    if not ids:
        return []
    found = []
    for h in hierarchy_dirs():
        for d, subdirs, _files in os.walk(h):
            for s in subdirs:
                if any(i in s for i in ids):
                    found.append(os.path.join(d, s))
    return found


def procs_cgroup_dir(pid: int) -> Path:
    """The directory of pid's cgroup where its processes are listed for the pids controller, as pyoci's cgroup
    layer finds it: the v1 pids hierarchy where one is mounted (hybrid hosts), else the unified one (pure
    cgroup v2). From /proc/PID/cgroup, so the pid must be alive."""
    from pyoci.cgroups import hierarchies, process_cgroups

    hs = hierarchies()
    h = next((h for h in hs if h.version == 1 and "pids" in h.controllers), None) or \
        next((h for h in hs if h.version == 2), None)
    assert h is not None, "no pids hierarchy and no cgroup v2 hierarchy mounted"
    return Path(h.mountpoint) / process_cgroups(pid)[h.name].lstrip("/")


def run_to_files(argv: list[str], timeout: float, input: str | None = None,
                 **kw: Any) -> subprocess.CompletedProcess[str]:
    """Run a command with stdout/stderr in files, never pipes: what it starts (a created container, an engine's
    conmon or shim) inherits its stdio and may hold a pipe open long after the command exits."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        kw.setdefault("stdin", subprocess.PIPE if input is not None else subprocess.DEVNULL)
        proc = subprocess.Popen(argv, stdout=out, stderr=err, **kw)
        try:
            if input is not None:
                assert proc.stdin is not None
                try:
                    proc.stdin.write(input.encode())
                    proc.stdin.close()
                except BrokenPipeError:
                    pass
            rc = proc.wait(timeout)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(argv, rc, out.read().decode(errors="replace"),
                                           err.read().decode(errors="replace"))


def mounts_mentioning(*paths: Path | str) -> list[str]:
    needles = [str(p) for p in paths]
    with open("/proc/self/mountinfo") as f:
        return [line.strip() for line in f if any(n in line for n in needles)]


# --------------------------------------------------------------------------------------------- bundle
def bare_procfs_probe(bundle: "Bundle") -> None:
    """Make the bundle try, from a nested user and pid namespace (`unshare -mrpf`), to mount a fresh proc and
    sysfs; check the run with bare_procfs_refused. Mapping uid 0 there needs CAP_SETFCAP."""
    caps = bundle.process["capabilities"]
    for k in ("bounding", "effective", "permitted"):
        caps[k] = sorted(set(caps.get(k, [])) | {"CAP_SETFCAP"})
    bundle.add_mount("/mnt", type="tmpfs", source="tmpfs")
    bundle.sh("unshare -mrpf sh -c 'mount -t proc none /mnt && echo mounted; mount -t sysfs none /mnt "
              "&& echo mounted'; echo done")


def bare_procfs_refused(r: subprocess.CompletedProcess[str]) -> bool:
    """The probe ran and the kernel refused both mounts (and nothing before them failed)."""
    return r.returncode == 0 and r.stdout.split() == ["done"] and r.stderr.count("permission denied") == 2


class Bundle:
    """A bundle directory; edit ``config`` then ``save()`` (the Runtime saves before create/run)."""

    def __init__(self, path: Path, rootfs: Path) -> None:
        self.path = path
        self.shared_rootfs = rootfs
        self.config = base_config(rootfs)
        path.mkdir(parents=True, exist_ok=True)

    def __str__(self) -> str:
        return str(self.path)

    @property
    def process(self) -> dict[str, Any]:
        return self.config["process"]

    @property
    def linux(self) -> dict[str, Any]:
        return self.config["linux"]

    def args(self, *args: str) -> Bundle:
        self.config["process"]["args"] = list(args)
        return self

    def sh(self, script: str) -> Bundle:
        return self.args("sh", "-c", script)

    def save(self) -> None:
        (self.path / "config.json").write_text(json.dumps(self.config, indent=1))

    def private_rootfs(self, name: str = "rootfs", readonly: bool = False) -> Path:
        """A writable copy of the rootfs inside the bundle, referenced by a relative root.path."""
        dest = self.path / name
        if not dest.exists():
            shutil.copytree(self.shared_rootfs, dest, symlinks=True)
        self.config["root"] = {"path": name, "readonly": readonly}
        return dest

    def add_mount(self, destination: str, type: str = "bind", source: str = "", options: list[str] | None = None,
                  index: int | None = None) -> dict[str, Any]:
        m: dict[str, Any] = {"destination": destination, "type": type, "source": source or type}
        if type == "bind" and options is None:
            options = ["rbind"]
        if options is not None:
            m["options"] = options
        if index is None:
            self.config["mounts"].append(m)
        else:
            self.config["mounts"].insert(index, m)
        return m

    def bind(self, host: Path | str, destination: str, *options: str) -> dict[str, Any]:
        return self.add_mount(destination, "bind", str(host), ["rbind", *options])

    def namespaces(self) -> list[str]:
        return [n["type"] for n in self.config["linux"]["namespaces"]]

    def set_namespace(self, kind: str, path: str | None = None) -> None:
        nss = [n for n in self.config["linux"]["namespaces"] if n["type"] != kind]
        nss.append({"type": kind, "path": path} if path else {"type": kind})
        self.config["linux"]["namespaces"] = nss

    def drop_namespace(self, kind: str) -> None:
        self.config["linux"]["namespaces"] = [n for n in self.config["linux"]["namespaces"] if n["type"] != kind]

    def hook(self, kind: str, path: str, *args: str, env: list[str] | None = None, timeout: int | None = None) -> None:
        h: dict[str, Any] = {"path": path}
        if args:
            h["args"] = list(args)
        if env is not None:
            h["env"] = env
        if timeout is not None:
            h["timeout"] = timeout
        self.config.setdefault("hooks", {}).setdefault(kind, []).append(h)


# --------------------------------------------------------------------------------------------- runtime
class Runtime:
    """The pyoci CLI with a private --root; every id it hands out is checked for leftovers after the test."""

    def __init__(self, root: Path, tmp: Path) -> None:
        self.root = root
        self.tmp = tmp
        self.ids: list[str] = []
        self.watched: list[Path] = []

    def watch(self, path: Path) -> None:
        """Also check that no mount mentions path after the test (for dirs outside tmp_path)."""
        self.watched.append(path)

    def new_id(self, prefix: str = "t") -> str:
        cid = "%s%s" % (prefix, uuid.uuid4().hex[:12])
        self.ids.append(cid)
        return cid

    def argv(self, *args: Any, root: bool = True) -> list[str]:
        return PYOCI + (["--root", str(self.root)] if root else []) + [str(a) for a in args]

    def cmd(self, *args: Any, timeout: float = 60, input: str | None = None, root: bool = True,
            **kw: Any) -> subprocess.CompletedProcess[str]:
        """Run pyoci; stdout/stderr go to files, not pipes: a created container inherits the caller's stdio
        (as with runc) and would hold a pipe open long after pyoci exits."""
        argv = self.argv(*args, root=root)
        if "stdout" in kw or "capture_output" in kw:
            return subprocess.run(argv, text=True, timeout=timeout, input=input, **kw)
        return run_to_files(argv, timeout, input, **kw)

    def ok(self, *args: Any, **kw: Any) -> subprocess.CompletedProcess[str]:
        r = self.cmd(*args, **kw)
        assert r.returncode == 0, "pyoci %s: rc=%d\nstdout=%s\nstderr=%s" % (
            " ".join(map(str, args)), r.returncode, r.stdout, r.stderr)
        return r

    def fail(self, *args: Any, **kw: Any) -> str:
        """The command fails cleanly; returns its one-line error."""
        return one_line_error(self.cmd(*args, **kw))

    # lifecycle shortcuts -----------------------------------------------------------------------
    def create(self, bundle: Bundle, cid: str | None = None, *extra: Any, **kw: Any) -> str:
        cid = cid or self.new_id()
        bundle.save()
        self.ok("create", "--bundle", bundle.path, *extra, cid, **kw)
        return cid

    def run(self, bundle: Bundle, cid: str | None = None, *extra: Any, **kw: Any) -> subprocess.CompletedProcess[str]:
        """`pyoci run` in the foreground, stdio captured (the container's own stdout/stderr)."""
        cid = cid or self.new_id()
        bundle.save()
        return self.cmd("run", "--bundle", bundle.path, *extra, cid, **kw)

    def sh(self, bundle: Bundle, script: str, **kw: Any) -> str:
        """Run `sh -c script` in the container; it must exit 0; returns its stdout."""
        bundle.sh(script)
        r = self.run(bundle, **kw)
        assert r.returncode == 0, "container failed rc=%d\nstdout=%s\nstderr=%s" % (r.returncode, r.stdout, r.stderr)
        return r.stdout

    def refuse(self, bundle: Bundle, *extra: Any, cid: str | None = None) -> str:
        """`create` must fail cleanly; returns the error line. Should it wrongly succeed, the container is
        deleted before the test fails (so one wrong answer does not leak into the next test)."""
        cid = cid or self.new_id()
        bundle.save()
        r = self.cmd("create", "--bundle", bundle.path, *extra, cid)
        if r.returncode == 0:
            self.cmd("delete", "--force", cid)
        return one_line_error(r)

    def state(self, cid: str) -> dict[str, Any]:
        return json.loads(self.ok("state", cid).stdout)

    def status(self, cid: str) -> str:
        return self.state(cid)["status"]

    def delete(self, cid: str) -> None:
        self.ok("delete", "--force", cid)

    @contextlib.contextmanager
    def container(self, bundle: Bundle, *extra: Any, cid: str | None = None, **kw: Any) -> Iterator[str]:
        """A created container, force-deleted on exit."""
        cid = self.create(bundle, cid, *extra, **kw)
        try:
            yield cid
        finally:
            self.cmd("delete", "--force", cid)

    def wait_status(self, cid: str, status: str, timeout: float = 10) -> None:
        wait_for(lambda: self.status(cid) == status, timeout, what="%s to be %s" % (cid, status))

    # leftovers ------------------------------------------------------------------------------------
    def leftovers(self, extra_paths: list[Path]) -> list[str]:
        problems = []
        if self.root.exists():
            left = sorted(os.listdir(self.root))
            if left:
                problems.append("--root still holds %s" % left)
        problems += ["cgroup left: %s" % d for d in cgroup_dirs_named(self.ids)]
        problems += ["mount left: %s" % m for m in mounts_mentioning(self.tmp, *extra_paths)]
        return problems

    def force_cleanup(self, extra_paths: list[Path]) -> None:
        for cid in list(os.listdir(self.root)) if self.root.exists() else []:
            self.cmd("delete", "--force", cid)
        for m in reversed(mounts_mentioning(self.tmp, *extra_paths)):
            subprocess.run(["umount", "-l", m.split()[4]], capture_output=True)
        for d in sorted(cgroup_dirs_named(self.ids), key=len, reverse=True):
            with contextlib.suppress(OSError):
                for pid in Path(d, "cgroup.procs").read_text().split():
                    with contextlib.suppress(OSError):
                        os.kill(int(pid), signal.SIGKILL)
            for _ in range(200):
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.01)


# --------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The busybox rootfs, built once; tests must not write into it (root.readonly is true by default)."""
    why = _runtime_available()
    if why:
        pytest.skip(why)
    dest = tmp_path_factory.mktemp("busybox") / "rootfs"
    subprocess.run(["sh", str(BUSYBOX / "build-rootfs.sh"), str(dest)], check=True, capture_output=True)
    for d in MOUNT_POINTS:  # so that mounts onto a read-only shared rootfs never mkdir in it
        (dest / d.lstrip("/")).mkdir(parents=True, exist_ok=True)
    return dest


@pytest.fixture
def rt(tmp_path: Path, rootfs: Path) -> Runtime:
    return Runtime(tmp_path / "r", tmp_path)


@pytest.fixture
def bundle(tmp_path: Path, rootfs: Path) -> Bundle:
    return Bundle(tmp_path / "b", rootfs)


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A directory with a short path (unix socket names are limited to 108 bytes)."""
    d = Path(tempfile.mkdtemp(prefix="pyoci-t", dir="/tmp"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call":
        item.stash[_CALL_FAILED] = rep.failed or hasattr(rep, "wasxfail")


_CALL_FAILED = pytest.StashKey[bool]()


def _mount_point_entries(rootfs: Path) -> set[str]:
    """What is in the rootfs's top directory and the MOUNT_POINTS: where mkdir for a mount point lands."""
    return {"/%s/%s" % (d.strip("/"), name) if d != "/" else "/" + name
            for d in ("/", *MOUNT_POINTS) for name in os.listdir(rootfs / d.lstrip("/"))}


@pytest.fixture(autouse=True)
def _nothing_left_behind(request: pytest.FixtureRequest) -> Iterator[None]:
    """After a test that uses ``rt``: nothing of its containers may remain. Leftovers are force-cleaned; they
    fail a test that passed (a test that already failed is not reported twice)."""
    if "rt" not in request.fixturenames:
        yield
        return
    runtime: Runtime = request.getfixturevalue("rt")
    shared: Path = request.getfixturevalue("rootfs")
    entries = _mount_point_entries(shared)
    yield
    watched = [shared, *runtime.watched]
    problems = runtime.leftovers(watched)
    if problems:
        runtime.force_cleanup(watched)
    written = sorted(_mount_point_entries(shared) - entries)
    if written:  # a mount point made in the shared rootfs: the next test that makes the same one would fail
        problems.append("written into the shared rootfs: %s" % " ".join(written))
        for name in written:
            path = shared / name.lstrip("/")
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    if request.node.stash.get(_CALL_FAILED, False):
        return
    assert not problems, "left behind:\n" + "\n".join(problems)


# --------------------------------------------------------------------------------------------- misc helpers
class ConsoleSocket:
    """A listening unix socket for --console-socket; ``receive()`` returns the pty master fd (SCM_RIGHTS)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(1)
        self.sock.settimeout(20)

    def receive(self) -> int:
        conn, _ = self.sock.accept()
        with conn:
            conn.settimeout(20)
            _msg, fds, _flags, _addr = socket.recv_fds(conn, 4096, 1)
        assert len(fds) == 1, "expected one fd over the console socket"
        return fds[0]

    def close(self) -> None:
        self.sock.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def read_until_eof(fd: int, timeout: float = 15) -> bytes:
    """Read a pty master until EIO/EOF (the slave side closed)."""
    import select

    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], 0.2)
        if not r:
            continue
        try:
            data = os.read(fd, 65536)
        except OSError:
            break
        if not data:
            break
        out += data
    return out


@pytest.fixture
def console(short_tmp: Path) -> Iterator[ConsoleSocket]:
    cs = ConsoleSocket(short_tmp / "console.sock")
    try:
        yield cs
    finally:
        cs.close()


__all__ = ["Bundle", "ConsoleSocket", "PYOCI", "Runtime", "base_config", "cgroup_dirs_named",
           "hierarchy_dirs", "mounts_mentioning", "one_line_error", "pid_alive", "procs_cgroup_dir", "read_until_eof", "run_to_files",
           "wait_for"]
