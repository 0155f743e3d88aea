"""Case registry, runtime CLI driver and the per-case context handed to every case."""

from __future__ import annotations

import array
import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from .probe import Probe

MUST = "MUST"
SHOULD = "SHOULD"
# Not a runtime-spec requirement but a convention every runc-compatible runtime follows
# (the command-line interface of opencontainers/runtime-tools, libcontainer's /dev symlinks).
CONV = "CONV"

PASS, FAIL, SKIP, ERROR = "PASS", "FAIL", "SKIP", "ERROR"

SPEC_URL = "https://github.com/opencontainers/runtime-spec/blob/v1.3.0/"
CLI_URL = "https://github.com/opencontainers/runtime-tools/blob/master/docs/command-line-interface.md"


# --------------------------------------------------------------------------- registry

@dataclass(frozen=True)
class Case:
    id: str
    section: str            # e.g. "runtime.md#state"
    level: str              # MUST / SHOULD / CONV
    title: str              # the requirement, in a few words
    func: Callable[["T"], None]
    mutants: tuple[str, ...] = ()   # conformance.mutant names that must make this case fail

    @property
    def url(self) -> str:
        if self.section.startswith("cli#"):
            return CLI_URL
        return SPEC_URL + self.section


REGISTRY: dict[str, Case] = {}


def case(id: str, section: str, level: str, title: str, *, mutants: Iterable[str] = ()):
    """Declare a conformance case. ``mutants`` name conformance.mutant breakages that the
    case must detect (checked by ``python -m conformance.selftest``)."""
    assert level in (MUST, SHOULD, CONV), level

    def deco(func):
        if id in REGISTRY:
            raise ValueError(f"duplicate case id {id}")
        REGISTRY[id] = Case(id, section, level, title, func, tuple(mutants))
        return func
    return deco


def all_cases() -> list[Case]:
    from . import cases  # noqa: F401  (registers every case)
    return list(REGISTRY.values())


# --------------------------------------------------------------------------- results

class CaseFailed(Exception):
    pass


class CaseSkipped(Exception):
    pass


@dataclass
class Result:
    case: str
    runtime: str
    status: str
    message: str = ""
    log: list[str] = field(default_factory=list)
    duration: float = 0.0


# --------------------------------------------------------------------------- runtime CLI

@dataclass
class CmdResult:
    argv: list[str]
    rc: int
    out: str
    err: str
    duration: float

    @property
    def ok(self) -> bool:
        return self.rc == 0

    def brief(self) -> str:
        tail = (self.err or self.out).strip().splitlines()[-3:]
        i = self.argv.index("--root") if "--root" in self.argv else 1
        return f"`{' '.join(self.argv[i:])}` -> rc={self.rc}" + (f" ({' | '.join(tail)})" if tail else "")


class RuntimeCLI:
    """A runc-compatible runtime binary used with a private --root."""

    def __init__(self, path: str, root: Path, log: Callable[[str], None]):
        self.path = path
        self.root = root
        self.log = log

    def run(self, *args: str, timeout: float = 30.0, stdout=None, stderr=None, cwd=None,
            prefix: list[str] | None = None) -> CmdResult:
        """Run the runtime; ``prefix`` is a command that execs it (e.g. to change an inherited
        process attribute first)."""
        argv = [self.path, "--root", str(self.root), *args]
        if prefix:
            argv = [*prefix, *argv]
        t0 = time.monotonic()
        capture_out = stdout is None
        capture_err = stderr is None
        try:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE if capture_out else stdout,
                                 stderr=subprocess.PIPE if capture_err else stderr,
                                 cwd=cwd, start_new_session=True)
        except OSError as e:
            res = CmdResult(argv, 127, "", f"cannot execute: {e}", 0.0)
            self.log(res.brief())
            return res
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            # only the runtime process we started (and its process group) is killed
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            out, err = p.communicate()
            res = CmdResult(argv, 124, (out or b"").decode(errors="replace"),
                            f"timed out after {timeout}s", time.monotonic() - t0)
            self.log(res.brief())
            return res
        res = CmdResult(argv, p.returncode, (out or b"").decode(errors="replace"),
                        (err or b"").decode(errors="replace"), time.monotonic() - t0)
        self.log(res.brief())
        return res


# --------------------------------------------------------------------------- bundles

def base_config() -> dict:
    """The config every case starts from: close to `runc spec`, terminal off, root writable,
    running /probe."""
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": ["/probe"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "TERM=xterm"],
            "cwd": "/",
            "capabilities": {k: ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
                             for k in ("bounding", "effective", "permitted")},
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": False},
        "hostname": "conformance",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
        ],
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            "maskedPaths": ["/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                            "/proc/timer_list", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                              "/proc/sysrq-trigger"],
        },
    }


class Bundle:
    def __init__(self, path: Path, base_rootfs: Path):
        self.path = path
        self.rootfs = path / "rootfs"
        path.mkdir(parents=True)
        # symlinks=True keeps busybox's applet links; a full copy keeps every case independent
        shutil.copytree(base_rootfs, self.rootfs, symlinks=True)
        self.config = base_config()

    @property
    def process(self) -> dict:
        return self.config["process"]

    @property
    def linux(self) -> dict:
        return self.config.setdefault("linux", {})

    def set_args(self, *args: str) -> None:
        self.process["args"] = list(args)

    def probe(self, *snippets: str) -> None:
        """Run /probe with extra shell snippets (evaluated after the standard report)."""
        self.set_args("/probe", *snippets)

    def sleeper(self, seconds: int = 60) -> None:
        """A long-running process (pid 1 in its pid namespace ignores unhandled TERM/INT)."""
        self.set_args("/bin/sh", "-c", f"trap 'exit 0' TERM INT; i=0; while [ $i -lt {seconds * 10} ]; "
                      "do sleep 0.1; i=$((i+1)); done")

    def add_mount(self, destination: str, type: str | None, source: str, options=None,
                  index: int | None = None) -> dict:
        m = {"destination": destination, "source": source}
        if type is not None:
            m["type"] = type
        if options is not None:
            m["options"] = list(options)
        mounts = self.config.setdefault("mounts", [])
        mounts.insert(len(mounts) if index is None else index, m)
        return m

    def namespaces(self) -> list[dict]:
        return self.linux.setdefault("namespaces", [])

    def set_namespaces(self, *types: str) -> None:
        self.linux["namespaces"] = [{"type": t} for t in types]

    def write(self) -> None:
        (self.path / "config.json").write_text(json.dumps(self.config, indent=2))


# --------------------------------------------------------------------------- containers

def proc_starttime(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


class Container:
    def __init__(self, t: "T", bundle: Bundle, cid: str):
        self.t = t
        self.bundle = bundle
        self.id = cid
        self.dir = bundle.path.parent / f"{cid}.io"
        self.dir.mkdir(exist_ok=True)
        self.stdout_path = self.dir / "stdout"
        self.stderr_path = self.dir / "stderr"
        self.pid_file = self.dir / "pid"
        self.pid: int | None = None
        self.console: ConsoleReceiver | None = None

    # -- operations
    def create(self, *, check: bool = True, pid_file: bool = True, console: bool = False,
               bundle_arg: str | None = None, cwd: str | None = None, write_config: bool = True,
               prefix: list[str] | None = None, timeout: float = 30.0) -> CmdResult:
        if write_config:
            self.bundle.write()
        args = ["create", "--bundle", bundle_arg or str(self.bundle.path)]
        if pid_file:
            args += ["--pid-file", str(self.pid_file)]
        if console:
            self.console = ConsoleReceiver(self.dir / "console.sock")
            args += ["--console-socket", str(self.console.path)]
        args.append(self.id)
        self.t._containers.append(self)
        with open(self.stdout_path, "ab") as out, open(self.stderr_path, "ab") as err:
            res = self.t.rt.run(*args, stdout=out, stderr=err, cwd=cwd, prefix=prefix,
                                timeout=timeout)
        res.err = self.stderr_path.read_text(errors="replace")
        if res.ok:
            self._learn_pid()
        if check and not res.ok:
            raise CaseFailed(f"create failed: {res.brief()}")
        return res

    def _learn_pid(self) -> None:
        pid = None
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            try:
                pid = int(self.state().get("pid") or 0) or None
            except CaseFailed:
                pid = None
        if pid:
            self.pid = pid
            self.t._pids.append((pid, proc_starttime(pid)))

    def start(self, *, check: bool = True) -> CmdResult:
        res = self.t.rt.run("start", self.id)
        if check and not res.ok:
            raise CaseFailed(f"start failed: {res.brief()}")
        return res

    def state_cmd(self) -> CmdResult:
        return self.t.rt.run("state", self.id)

    def state(self) -> dict:
        res = self.state_cmd()
        if not res.ok:
            raise CaseFailed(f"state failed: {res.brief()}")
        try:
            st = json.loads(res.out)
        except ValueError:
            raise CaseFailed(f"state output is not JSON: {res.out[:200]!r}")
        if not isinstance(st, dict):
            raise CaseFailed(f"state output is not a JSON object: {res.out[:200]!r}")
        return st

    def status(self) -> str:
        return self.state().get("status")

    def wait(self, status: str = "stopped", timeout: float = 10.0) -> dict:
        deadline = time.monotonic() + timeout
        st = {}
        while True:
            st = self.state()
            if st.get("status") == status:
                return st
            if time.monotonic() > deadline:
                raise CaseFailed(f"container {self.id} did not reach status {status!r} within "
                                 f"{timeout}s (last: {st.get('status')!r})")
            time.sleep(0.05)

    def kill(self, sig: str = "KILL", *, check: bool = True) -> CmdResult:
        res = self.t.rt.run("kill", self.id, sig)
        if check and not res.ok:
            raise CaseFailed(f"kill failed: {res.brief()}")
        return res

    def delete(self, *, force: bool = False, check: bool = True) -> CmdResult:
        res = self.t.rt.run("delete", *(["--force"] if force else []), self.id)
        if check and not res.ok:
            raise CaseFailed(f"delete failed: {res.brief()}")
        return res

    # -- observation
    def stdout(self) -> str:
        if self.console is not None:
            return self.console.output()
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def probe(self) -> Probe:
        out = self.stdout()
        if self.console is not None:
            (self.dir / "console.out").write_text(out)
        return Probe.parse(out, self.stderr())

    def run_to_exit(self, timeout: float = 15.0) -> Probe:
        """start, wait until stopped, return the probe report (container is left stopped)."""
        self.start()
        self.wait("stopped", timeout)
        if self.console is not None:
            self.console.wait_eof(5)
        return self.probe()

    def host_ns(self, ns: str) -> str:
        if not self.pid:
            raise CaseFailed("no container pid known")
        try:
            return os.readlink(f"/proc/{self.pid}/ns/{ns}")
        except OSError as e:
            raise CaseFailed(f"cannot read /proc/{self.pid}/ns/{ns}: {e}")


class ConsoleReceiver:
    """Listens on --console-socket, receives the pty master via SCM_RIGHTS, reads it to EOF."""

    def __init__(self, path: Path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(1)
        self.sock.settimeout(30)
        self.master: int | None = None
        self.error: str | None = None
        self.buf = bytearray()
        self.got_fd = threading.Event()
        self.eof = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            conn, _ = self.sock.accept()
            with conn:
                fds = array.array("i")
                msg, anc, _flags, _addr = conn.recvmsg(4096, socket.CMSG_SPACE(16 * fds.itemsize))
                for level, typ, data in anc:
                    if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
                        fds.frombytes(data[:len(data) - (len(data) % fds.itemsize)])
                if not fds:
                    self.error = "no file descriptor received on the console socket"
                    return
                self.master = fds[0]
                for extra in fds[1:]:
                    os.close(extra)
        except OSError as e:
            self.error = f"console socket: {e}"
            return
        finally:
            self.got_fd.set()
            self.sock.close()
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError as e:
                if e.errno != errno.EIO:
                    self.error = f"reading pty master: {e}"
                break
            if not data:
                break
            self.buf += data
        self.eof.set()

    def wait_fd(self, timeout=10) -> int:
        self.got_fd.wait(timeout)
        if self.master is None:
            raise CaseFailed(self.error or "runtime did not connect to the console socket")
        return self.master

    def wait_eof(self, timeout=5):
        self.eof.wait(timeout)

    def output(self) -> str:
        return self.buf.decode(errors="replace").replace("\r\n", "\n")

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
        if self.master is not None:
            try:
                os.close(self.master)
            except OSError:
                pass
            self.master = None


# --------------------------------------------------------------------------- per-case context

class T:
    """Everything a case gets: a runtime bound to a private --root, a tmp dir, bundles,
    containers, checks. Cleanup force-deletes every container the case created."""

    def __init__(self, case: Case, runtime_path: str, root: Path, workdir: Path,
                 base_rootfs: Path, cleanup_runtime: str | None = None):
        self.case = case
        self.runtime_path = runtime_path
        self.tmp = workdir
        self.base_rootfs = base_rootfs
        self.lines: list[str] = []
        self.rt = RuntimeCLI(runtime_path, root, self.log)
        # cleanup normally uses the runtime under test; the selftest's deliberately broken
        # runtimes are cleaned up with the real runtime they wrap
        self._cleanup_rt = RuntimeCLI(cleanup_runtime, root, self.log) if cleanup_runtime else self.rt
        self._containers: list[Container] = []
        self._pids: list[tuple[int, str | None]] = []
        self._cleanups: list[Callable[[], None]] = []
        self._nbundles = 0
        self._ncont = 0
        self._uid = uuid.uuid4().hex[:6]
        self.bundle = self.new_bundle()

    # -- building blocks
    def log(self, msg: str) -> None:
        self.lines.append(msg)

    def new_bundle(self, parent: Path | None = None) -> Bundle:
        self._nbundles += 1
        return Bundle((parent or self.tmp) / f"b{self._nbundles}", self.base_rootfs)

    def new_id(self) -> str:
        self._ncont += 1
        return f"cf-{self._uid}-{self._ncont}"

    def container(self, bundle: Bundle | None = None, cid: str | None = None) -> Container:
        return Container(self, bundle or self.bundle, cid or self.new_id())

    def run_probe(self, bundle: Bundle | None = None, *, console: bool = False,
                  timeout: float = 15.0) -> Probe:
        """create + start + wait for exit + delete; returns what the probe printed."""
        c = self.container(bundle)
        c.create(console=console)
        if console:
            c.console.wait_fd()
        p = c.run_to_exit(timeout)
        c.delete()
        p.container = c
        return p

    def on_cleanup(self, fn: Callable[[], None]) -> None:
        self._cleanups.append(fn)

    def host_dir(self, name: str) -> Path:
        d = self.tmp / name
        d.mkdir(parents=True, exist_ok=True)
        return d

    def spawn(self, argv: list[str]) -> subprocess.Popen:
        """Start a helper process (e.g. `unshare`) that is killed (by pid) at cleanup."""
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)

        def stop():
            if p.poll() is None:
                p.kill()
            p.wait()
        self.on_cleanup(stop)
        return p

    # -- checks
    def check(self, cond, msg: str) -> None:
        if not cond:
            raise CaseFailed(msg)
        self.log(f"ok: {msg}")

    def eq(self, actual, expected, what: str) -> None:
        if actual != expected:
            raise CaseFailed(f"{what}: expected {expected!r}, got {actual!r}")
        self.log(f"ok: {what} == {expected!r}")

    def fails(self, res: CmdResult, what: str) -> None:
        if res.ok:
            raise CaseFailed(f"{what}: expected an error, but {res.brief()}")
        self.log(f"ok: {what} failed as required ({res.brief()})")

    def skip(self, reason: str):
        raise CaseSkipped(reason)

    def require_path(self, path: str, why: str) -> None:
        if not os.path.exists(path):
            self.skip(f"{path} not present on this host ({why})")

    # -- cleanup
    def cleanup(self) -> list[str]:
        problems: list[str] = []
        for fn in reversed(self._cleanups):
            try:
                fn()
            except Exception as e:  # noqa: BLE001
                problems.append(f"cleanup: {e}")
        for c in self._containers:
            if c.console is not None:
                c.console.close()
            rt = self._cleanup_rt
            res = rt.run("state", c.id, timeout=10)
            if res.ok:
                rt.run("delete", "--force", c.id, timeout=20)
                if rt.run("state", c.id, timeout=10).ok:
                    problems.append(f"container {c.id} still exists after delete --force")
        # container processes the case caused: kill only those still alive with the same
        # start time as recorded (never a reused pid)
        for pid, start in self._pids:
            if start is not None and proc_starttime(pid) == start and _alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                    problems.append(f"container process {pid} survived delete --force; killed")
                except ProcessLookupError:
                    pass
            _reap(pid)
        problems += release_mounts_under(self.tmp)
        return problems


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def mountpoints_under(path: Path) -> list[str]:
    prefix = str(path).rstrip("/") + "/"
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].replace("\\040", " ")
            if mp.startswith(prefix) or mp == prefix[:-1]:
                out.append(mp)
    return out


def release_mounts_under(path: Path) -> list[str]:
    """Detach mounts that a runtime leaked under our own tmp dir (so rmtree cannot walk into
    them). Returns a description of each leak."""
    leaks = mountpoints_under(path)
    for mp in sorted(leaks, key=len, reverse=True):
        subprocess.run(["umount", "-l", mp], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return [f"mount leaked on the host: {mp}" for mp in leaks]


def run_case(case: Case, runtime_path: str, root: Path, workdir: Path, base_rootfs: Path,
             runtime_name: str, keep: bool = False, cleanup_runtime: str | None = None) -> Result:
    t0 = time.monotonic()
    workdir.mkdir(parents=True)
    t = None
    try:
        t = T(case, runtime_path, root, workdir, base_rootfs, cleanup_runtime)
        case.func(t)
        res = Result(case.id, runtime_name, PASS)
    except CaseFailed as e:
        res = Result(case.id, runtime_name, FAIL, str(e))
    except CaseSkipped as e:
        res = Result(case.id, runtime_name, SKIP, str(e))
    except Exception as e:  # noqa: BLE001  (a bug in the case or the harness)
        res = Result(case.id, runtime_name, ERROR, f"{type(e).__name__}: {e}")
        res.log.append(traceback.format_exc())
    finally:
        problems = t.cleanup() if t is not None else []
    if t is not None:
        res.log = t.lines + res.log
    for p in problems:
        res.log.append(f"cleanup: {p}")
    if not keep and not mountpoints_under(workdir):
        shutil.rmtree(workdir, ignore_errors=True)
    res.duration = time.monotonic() - t0
    return res
