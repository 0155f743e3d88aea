"""Docker and Podman on the pure cgroup v2 guest, cgroupfs driver, with runc (the oracle) and pyoci as the runtime.

Every scenario runs four times, ids ``[docker-runc]``, ``[docker-pyoci]``, ``[podman-runc]``, ``[podman-pyoci]``
(``-k pyoci``, ``-k podman-runc`` pick some): the same engine commands, the same expected results, in the same
guest, so that a difference between runc and pyoci is pyoci's. The engines are Debian's docker.io 20.10 (with
its containerd 1.6) and podman 4.3, installed in the guest root by tests/guest/build-root.sh; the image is the
busybox rootfs of tests/conftest.py, imported (the guest has no network).

* Docker: one ``dockerd --exec-opt native.cgroupdriver=cgroupfs`` for both runtimes, with its own data root,
  exec root, socket, pid file and config file in this module's tmp dir (a tmpfs in the guest), no iptables, no
  bridge; pyoci is registered by the README's daemon.json snippet (``readme_snippet``), runc with
  ``--add-runtime test-runc=...``, and each is picked with ``docker run --runtime``. It is started once, stopped (SIGTERM to the pid this module started)
  before the Podman scenarios begin.
* Podman: no daemon; every command has ``--root/--runroot/--tmpdir/--network-config-dir`` in the tmp dir,
  ``--cgroup-manager cgroupfs --events-backend file`` and ``--runtime`` (a container remembers its runtime,
  so every command about it names the same one): ``pyoci``, named by the README's containers.conf snippet
  (CONTAINERS_CONF), or runc's PATH. Podman's default capabilities lack CAP_MKNOD (Docker's have
  it): the device scenario adds it with ``--cap-add MKNOD`` so that it is the same scenario.
* Each runtime is reached through a two-line wrapper script (``<tmp>/<engine>/bin/{runc,pyoci}``) that appends
  its argv to ``calls-<runtime>.log`` and execs the real one (/usr/sbin/runc, the checkout's pyoci): the tests
  check that the runtime under test really was the one called, and a failure's message shows its last calls.
  ``PYOCI_ENGINES_PYOCI`` (a command line) replaces the checkout's pyoci, e.g. to try another export of it.

The lifecycle scenarios (exec, pause/unpause, stats, update, stop, rm) share one long-running container per
engine and runtime (``box``, made with ``-m 64m --pids-limit 42 --cpus 0.5``) and run in this file's order.
Every container is checked gone afterwards: no ``state`` in the runtime, no cgroup and no mount named after it
(and, after rm, gone from the engine). When an engine stops, whatever of it is left (containers, the image,
processes or mounts mentioning its tmp dir, cgroups it created) is a failure, cleaned up by what this module
started: the parents the engines leave by design (``/docker``, ``/libpod_parent``...) are removed only when
they are empty.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

from conftest import PYOCI, RUNC, cgroup_dirs_named, mounts_mentioning, pid_alive, run_to_files, wait_for

CG = Path("/sys/fs/cgroup")
IMAGE = "pyoci-busybox"
MiB = 1024 * 1024
# PYOCI_ENGINES_PYOCI: another pyoci command to test (e.g. "env PYTHONPATH=/some/export .venv/bin/pyoci").
RUNTIMES = {"runc": [RUNC], "pyoci": shlex.split(os.environ.get("PYOCI_ENGINES_PYOCI", "")) or PYOCI}
DEFAULT_ROOTS = {"runc": "/run/runc", "pyoci": "/run/pyoci"}
COMBOS = [("docker", "runc"), ("docker", "pyoci"), ("podman", "runc"), ("podman", "pyoci")]
# An init that exits 0 on SIGTERM at once (a shell as pid 1 ignores SIGTERM without a trap).
LONG_RUNNING = ["sh", "-c", 'trap "exit 0" TERM; sleep 1000 & wait']
LIMITS = ["-m", "64m", "--pids-limit", "42", "--cpus", "0.5"]
CMD_TIMEOUT = 120
# The cgroup driver the engines use: cgroupfs in the plain guest; on the guest booted with systemd as PID 1
# (tests/systemd/test_systemd_engines.py runs these scenarios there) their default, systemd.
SYSTEMD = os.environ.get("PYOCI_GUEST_SYSTEMD") == "1"
DRIVER = "systemd" if SYSTEMD else "cgroupfs"


def run_cmd(argv: list[str], timeout: float = CMD_TIMEOUT, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
    return run_to_files(argv, timeout, env=env)


def cgroup_dirs() -> set[str]:
    return {d for d, _subdirs, _files in os.walk(CG)}


def processes_mentioning(needle: str) -> list[tuple[int, str]]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = Path("/proc", entry, "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if needle in cmdline:
            found.append((int(entry), cmdline.strip()))
    return found


def cgroup_of(pid: int) -> Path:
    """The host directory of the pid's cgroup (the '0::' line of /proc/PID/cgroup)."""
    lines = Path("/proc/%d/cgroup" % pid).read_text().splitlines()
    assert len(lines) == 1 and lines[0].startswith("0::"), lines
    return CG / lines[0][3:].lstrip("/")


README = Path(__file__).resolve().parents[2] / "README.md"
README_PYOCI = "/path/to/.venv/bin/pyoci"  # what the README's snippets call pyoci's path


def readme_snippet(name: str, pyoci: Path) -> str:
    """A configuration snippet of the README's engine guide, with pyoci's path put in: the engines here are
    configured with what the README tells users to write, so the guide cannot go stale."""
    m = re.search(r"<!-- engine snippet: %s -->\n\s*```\w*\n(.*?)```" % re.escape(name), README.read_text(), re.S)
    assert m, "README.md has no engine snippet %r" % name
    text = "\n".join(line.strip() for line in m.group(1).splitlines())  # the snippet is indented in a list
    assert README_PYOCI in text, "the README's %s snippet does not name %s" % (name, README_PYOCI)
    return text.replace(README_PYOCI, str(pyoci))


def logging_wrapper(path: Path, real: list[str], log: Path) -> Path:
    """A two-line script at path that appends its argv to log, then execs the real runtime: an engine given it
    in place of the runtime's path works as before, and the test sees that the runtime under test was called,
    and how."""
    path.write_text("#!/bin/sh\nprintf '%%s\\n' \"$*\" >> %s\nexec %s \"$@\"\n" % (
        shlex.quote(str(log)), " ".join(shlex.quote(a) for a in real)))
    path.chmod(0o755)
    return path


def leftovers(name: str, needle: str, cgroups_before: set[str], run_before: set[str]) -> list[str]:
    """What an engine left once stopped, each a problem, cleaned up by this process: processes and mounts that
    mention needle (its state directory), cgroups made since cgroups_before (removed when empty, as the parents
    the engines keep by design), state directories made in /run since run_before (removed when empty).
    A directory below /sys/fs/cgroup that is no cgroup (no cgroup.procs: podman's mkdir -p, and the `tasks` file
    it writes there, for a v1 controller a hybrid host has a directory for but does not mount) is the engine's
    own doing, not the runtime's: removed with what it holds, not a problem."""
    problems: list[str] = []
    for pid, cmdline in processes_mentioning(needle):
        problems.append("%s: process left: %d %s" % (name, pid, cmdline))
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for m in reversed(mounts_mentioning(needle)):
        problems.append("%s: mount left: %s" % (name, m))
        subprocess.run(["umount", "-l", m.split()[4]], capture_output=True)
    for d in sorted(cgroup_dirs() - cgroups_before, key=len, reverse=True):
        if SYSTEMD and d.endswith(".slice"):
            continue  # a slice systemd made for the engine's units (machine.slice): systemd's to keep
        if not os.path.exists(os.path.join(d, "cgroup.procs")):  # a plain directory: everything in it is new
            for entry in os.scandir(d):
                if not entry.is_dir(follow_symlinks=False):
                    os.unlink(entry.path)
        try:
            os.rmdir(d)
        except FileNotFoundError:
            continue  # the engine removed it meanwhile
        except OSError as e:
            try:
                procs = Path(d, "cgroup.procs").read_text().split()
            except OSError:
                procs = ["?"]
            problems.append("%s: cgroup left: %s (%s; procs %s)" % (name, d, e.strerror, procs))
    for entry in sorted(set(os.listdir("/run")) - run_before):
        top = Path("/run", entry)
        if top.is_dir() and not top.is_symlink():
            for d, _subdirs, _files in sorted(os.walk(top), key=lambda t: len(t[0]), reverse=True):
                try:
                    os.rmdir(d)
                except OSError:
                    pass
        if top.exists():
            problems.append("%s: left in /run: %s" % (name, sorted(str(p) for p in top.rglob("*"))))
    return problems


# --------------------------------------------------------------------------------------------- engines
class Engine:
    """One engine, its state in ``dir``; ``cli(runtime, ...)`` runs its command line."""

    name = ""

    def __init__(self, dir: Path) -> None:
        self.dir = dir
        dir.mkdir(parents=True, exist_ok=True)
        self.env = dict(os.environ)
        self.wrappers: dict[str, Path] = {}
        bindir = dir / "bin"
        bindir.mkdir(exist_ok=True)
        for rt, real in RUNTIMES.items():
            self.wrappers[rt] = logging_wrapper(bindir / rt, real, self.calls_log(rt))
        self.cgroups_before: set[str] = set()
        self.run_before: set[str] = set()

    def calls_log(self, runtime: str) -> Path:
        return self.dir / ("calls-%s.log" % runtime)

    def calls(self, runtime: str) -> list[str]:
        try:
            return self.calls_log(runtime).read_text().splitlines()
        except FileNotFoundError:
            return []

    def argv(self, runtime: str, *args: Any) -> list[str]:
        raise NotImplementedError

    def run_flags(self, runtime: str) -> list[str]:
        """What `run` needs to use this runtime (beyond argv's)."""
        return []

    def cli(self, runtime: str, *args: Any, timeout: float = CMD_TIMEOUT) -> subprocess.CompletedProcess[str]:
        return run_cmd(self.argv(runtime, *args), timeout=timeout, env=self.env)

    def start(self) -> None:
        self.cgroups_before = cgroup_dirs()
        self.run_before = set(os.listdir("/run"))

    def stop_daemon(self) -> list[str]:
        return []

    def stop(self) -> list[str]:
        """Remove what is left, stop the daemon; return the problems found (each a failure)."""
        problems: list[str] = []
        r = self.cli("runc", "ps", "-a", "-q", "--no-trunc")
        left = r.stdout.split()
        if left:
            problems.append("%s: containers left: %s" % (self.name, left))
            for rt in RUNTIMES:  # podman acts on a container only with the runtime it was made with
                self.cli(rt, "rm", "-f", *left)
        self.cli("runc", "rmi", "-f", IMAGE)
        r = self.cli("runc", "images", "-q")
        if r.stdout.strip():
            problems.append("%s: images left: %s" % (self.name, r.stdout.split()))
        problems += self.stop_daemon()
        # the parents the engines keep by design (/docker, /libpod_parent...) go when empty; in /run likewise
        problems += leftovers(self.name, str(self.dir), self.cgroups_before, self.run_before)
        return problems


class Docker(Engine):
    name = "docker"

    def __init__(self, dir: Path) -> None:
        super().__init__(dir)
        self.sock = dir / "docker.sock"
        self.env["DOCKER_CONFIG"] = str(dir / "client")
        self.proc: subprocess.Popen[bytes] | None = None

    def argv(self, runtime: str, *args: Any) -> list[str]:
        return ["docker", "-H", "unix://%s" % self.sock, *map(str, args)]

    def run_flags(self, runtime: str) -> list[str]:
        return ["--runtime", "pyoci" if runtime == "pyoci" else "test-%s" % runtime]

    def start(self) -> None:
        super().start()
        d = self.dir
        # pyoci registered as the README says (daemon.json); the oracle on the command line
        (d / "daemon.json").write_text(readme_snippet("docker daemon.json", self.wrappers["pyoci"]) + "\n")
        argv = ["dockerd", "--config-file", str(d / "daemon.json"), "--data-root", str(d / "data"),
                "--exec-root", str(d / "exec"), "--pidfile", str(d / "dockerd.pid"), "-H", "unix://%s" % self.sock,
                "--iptables=false", "--bridge=none", "--storage-driver", "overlay2",
                "--exec-opt", "native.cgroupdriver=%s" % DRIVER]
        for rt, w in self.wrappers.items():
            if rt != "pyoci":
                argv += ["--add-runtime", "test-%s=%s" % (rt, w)]
        with open(d / "dockerd.log", "ab") as log:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         env=self.env)
        proc = self.proc

        def ready() -> bool:
            if proc.poll() is not None:
                return True
            return self.sock.exists() and self.cli("runc", "version", timeout=30).returncode == 0

        wait_for(ready, 90, interval=0.5, what="dockerd to answer")
        if proc.poll() is not None:
            raise AssertionError("dockerd exited %s:\n%s" % (proc.returncode, self.log_tail()))

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join((self.dir / "dockerd.log").read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop_daemon(self) -> list[str]:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return []
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
            return []
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return ["docker: dockerd (pid %d) ignored SIGTERM for 60 s; killed:\n%s" % (proc.pid, self.log_tail())]


class Podman(Engine):
    name = "podman"

    def __init__(self, dir: Path) -> None:
        super().__init__(dir)
        # pyoci named as the README says (containers.conf); the oracle by its path
        conf = dir / "containers.conf"
        conf.write_text(readme_snippet("podman containers.conf", self.wrappers["pyoci"]) + "\n")
        self.env["CONTAINERS_CONF"] = str(conf)

    def argv(self, runtime: str, *args: Any) -> list[str]:
        d = self.dir
        return ["podman", "--root", str(d / "root"), "--runroot", str(d / "run"), "--tmpdir", str(d / "tmp"),
                "--network-config-dir", str(d / "net"), "--storage-driver", "overlay",
                "--cgroup-manager", DRIVER, "--events-backend", "file",
                "--runtime", "pyoci" if runtime == "pyoci" else str(self.wrappers[runtime]), *map(str, args)]


class Engines:
    """At most one engine up at a time: asking for the other stops the current one (and checks what it left)."""

    def __init__(self, tmp: Path, rootfs: Path) -> None:
        self.tmp = tmp
        self.rootfs = rootfs
        self.current: Engine | None = None
        self.problems: list[str] = []
        self.tarball = tmp / "busybox.tar"
        subprocess.run(["tar", "-C", str(rootfs), "-cf", str(self.tarball), "."], check=True)

    def get(self, name: str) -> Engine:
        if self.current is not None and self.current.name == name:
            return self.current
        self.close()
        engine: Engine = {"docker": Docker, "podman": Podman}[name](self.tmp / name)
        self.current = engine
        engine.start()
        r = engine.cli("runc", "import", str(self.tarball), IMAGE)
        assert r.returncode == 0, "%s import: rc=%d\n%s" % (name, r.returncode, r.stderr)
        return engine

    def close(self) -> None:
        engine, self.current = self.current, None
        if engine is not None:
            self.problems += engine.stop()


# --------------------------------------------------------------------------------------------- fixtures
@dataclass
class Ctx:
    """One engine with one runtime."""

    engine: Engine
    runtime: str

    @property
    def podman(self) -> bool:
        return self.engine.name == "podman"

    def cli(self, *args: Any, timeout: float = CMD_TIMEOUT) -> subprocess.CompletedProcess[str]:
        return self.engine.cli(self.runtime, *args, timeout=timeout)

    def run(self, *args: Any) -> subprocess.CompletedProcess[str]:
        return self.cli("run", "--network", "none", *self.engine.run_flags(self.runtime), *args)

    def explain(self, r: subprocess.CompletedProcess[str]) -> str:
        """A failed command for the assertion message: its argv, status, output and the runtime's last calls
        (the engine's directory shortened to $E)."""
        d = str(self.engine.dir)
        calls = [c.replace(d, "$E")[:240] for c in self.engine.calls(self.runtime)[-4:]]
        return "%s\nrc=%d\nstdout=%s\nstderr=%s\nlast calls of %s (E=%s):\n  %s" % (
            " ".join(r.args).replace(d, "$E"), r.returncode, r.stdout.strip(), r.stderr.strip(), self.runtime, d,
            "\n  ".join(calls))

    def ok(self, *args: Any) -> subprocess.CompletedProcess[str]:
        r = self.cli(*args)
        assert r.returncode == 0, self.explain(r)
        return r

    def inspect(self, name: str, fmt: str) -> str:
        return self.ok("inspect", "--format", fmt, name).stdout.strip()

    def called(self, subcommand: str, cid: str) -> list[str]:
        """The runtime's calls `SUBCOMMAND ... <cid>` (its argv, as the wrapper logged it)."""
        return [c for c in self.engine.calls(self.runtime) if subcommand in c.split() and cid in c.split()]

    def runtime_root(self, cid: str) -> str:
        for c in self.engine.calls(self.runtime):
            words = c.split()
            if cid in words and "--root" in words:
                return words[words.index("--root") + 1]
        return DEFAULT_ROOTS[self.runtime]

    def assert_gone(self, cid: str) -> None:
        """Nothing of the container is left below the engine: no state in the runtime, no cgroup, no mount.
        (The engine's own list is checked by test_rm and when the engine stops.)"""
        state = run_cmd([*RUNTIMES[self.runtime], "--root", self.runtime_root(cid), "state", cid])
        assert state.returncode != 0, "%s still has state for %s: %s" % (self.runtime, cid, state.stdout)
        assert not cgroup_dirs_named([cid]), cgroup_dirs_named([cid])
        assert not mounts_mentioning(cid), mounts_mentioning(cid)


def managed_engines(tmp: Path, rootfs: Path, missing: str) -> Iterator[Engines]:
    """A module's Engines, closed at its end: whatever an engine left fails the module. missing: what to say
    when an engine's binary is not installed."""
    for tool in ("dockerd", "docker", "containerd", "podman", "conmon", RUNC):
        if not shutil.which(tool):
            pytest.fail("%s is missing: %s" % (tool, missing))
    mgr = Engines(tmp, rootfs)
    yield mgr
    mgr.close()
    assert not mgr.problems, "left behind:\n" + "\n".join(mgr.problems)


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory, rootfs: Path) -> Iterator[Engines]:
    yield from managed_engines(tmp_path_factory.mktemp("engines"), rootfs,
                               "the guest's root predates the engines (tests/guest/build-root.sh)")


@pytest.fixture(scope="module", params=COMBOS, ids=["%s-%s" % c for c in COMBOS])
def ctx(request: pytest.FixtureRequest, engines: Engines) -> Ctx:
    engine, runtime = request.param
    return Ctx(engines.get(engine), runtime)


@dataclass
class Box:
    name: str
    cid: str
    pid: int
    cgroup: Path
    removed: bool = False


@pytest.fixture(scope="module")
def box(ctx: Ctx) -> Iterator[Box]:
    """A long-running container with limits, for the lifecycle scenarios; removed (if still there) at the end."""
    name = "pyoci-box-%s-%s" % (ctx.runtime, uuid.uuid4().hex[:8])
    r = ctx.run("-d", "--name", name, *LIMITS, IMAGE, *LONG_RUNNING)
    b: Box | None = None
    try:
        assert r.returncode == 0, ctx.explain(r)
        pid = int(ctx.inspect(name, "{{.State.Pid}}"))
        b = Box(name, r.stdout.split()[-1], pid, cgroup_of(pid))
        yield b
    finally:
        if b is None or not b.removed:
            ctx.cli("rm", "-f", name)


def run_rm(ctx: Ctx, tmp_path: Path, *args: Any) -> tuple[subprocess.CompletedProcess[str], str]:
    """`run --rm ARGS`; returns its result and the container's id (from --cidfile; the tests check it gone)."""
    cidfile = tmp_path / "cid"
    r = ctx.run("--rm", "--cidfile", cidfile, *args)
    return r, cidfile.read_text().strip() if cidfile.exists() else ""


# --------------------------------------------------------------------------------------------- scenarios
def test_run_with_limits(ctx: Ctx, tmp_path: Path) -> None:
    """A container runs, its output and exit status come back, the runtime under test made it, and
    -m/--pids-limit/--cpus read back inside, in its own cgroup (a cgroup namespace: 0::/ at /sys/fs/cgroup)."""
    r, cid = run_rm(ctx, tmp_path, *LIMITS, IMAGE, "sh", "-c", "cat /proc/self/cgroup /sys/fs/cgroup/memory.max "
                    "/sys/fs/cgroup/pids.max /sys/fs/cgroup/cpu.max; exit 3")
    assert r.returncode == 3, ctx.explain(r)
    assert r.stdout.splitlines() == ["0::/", str(64 * MiB), "42", "50000 100000"], ctx.explain(r)
    assert ctx.called("create", cid), "the %s wrapper was never asked to create %s" % (ctx.runtime, cid)
    ctx.assert_gone(cid)


def test_device_must_not_open(ctx: Ctx, tmp_path: Path) -> None:
    """With CAP_MKNOD (Docker's default; Podman's needs --cap-add) mknod of a block device succeeds, but the
    device cgroup does not allow opening it; /dev/zero, in the allowed list, opens."""
    caps = ["--cap-add", "MKNOD"] if ctx.podman else []
    r, cid = run_rm(ctx, tmp_path, *caps, IMAGE, "sh", "-c",
                    "mknod /tmp/sda b 8 0 && echo made; head -c1 /tmp/sda; echo head=$?; head -c1 /dev/zero | wc -c")
    assert r.returncode == 0, ctx.explain(r)
    assert r.stdout.split() == ["made", "head=1", "1"], ctx.explain(r)
    assert "/tmp/sda: Operation not permitted" in r.stderr, ctx.explain(r)
    ctx.assert_gone(cid)


# what the engines ask for regardless of the cgroup driver: on the plain v2 guest only (the suite's time budget)
driver_independent = pytest.mark.skipif(SYSTEMD, reason="driver-independent: run on the plain v2 guest")


@driver_independent
def test_read_only_with_tmpfs(ctx: Ctx, tmp_path: Path) -> None:
    """--read-only and --tmpfs: Podman asks for tmpcopyup on /run, /tmp, /var/tmp and on every --tmpfs."""
    r, cid = run_rm(ctx, tmp_path, "--read-only", "--tmpfs", "/data", IMAGE, "sh", "-c",
                    "echo x > /data/f && cat /data/f; touch /etc/x 2>/dev/null || echo ro; "
                    "echo y > /tmp/f 2>/dev/null && cat /tmp/f")
    assert r.stdout.split() == ["x", "ro"] + (["y"] if ctx.podman else []), ctx.explain(r)  # Docker: no /tmp
    ctx.assert_gone(cid)


@driver_independent
def test_privileged(ctx: Ctx, tmp_path: Path) -> None:
    """--privileged asks for every capability: one the runtime itself lacks is dropped, not a failure."""
    r, cid = run_rm(ctx, tmp_path, "--privileged", IMAGE, "sh", "-c", "grep -c CapEff /proc/self/status")
    assert r.returncode == 0, ctx.explain(r)
    assert r.stdout.split() == ["1"], ctx.explain(r)
    ctx.assert_gone(cid)


@driver_independent
@pytest.mark.parametrize("program, code", [("/no/such/program", 127), ("/etc/passwd", 126)])
def test_program_not_found_or_not_executable(ctx: Ctx, tmp_path: Path, program: str, code: int) -> None:
    """The engines map the runtime's words to 127 (no such file) and 126 (permission denied)."""
    r, cid = run_rm(ctx, tmp_path, IMAGE, program)
    assert r.returncode == code, ctx.explain(r)
    if cid:
        ctx.assert_gone(cid)


def test_exec(ctx: Ctx, box: Box) -> None:
    """exec runs in the container (its cgroup namespace, its limits), and its exit status comes back."""
    r = ctx.cli("exec", box.name, "sh", "-c", "cat /proc/self/cgroup /sys/fs/cgroup/memory.max "
                "/sys/fs/cgroup/pids.max /sys/fs/cgroup/cpu.max; exit 7")
    assert r.returncode == 7, ctx.explain(r)
    assert r.stdout.splitlines() == ["0::/", str(64 * MiB), "42", "50000 100000"], ctx.explain(r)
    assert ctx.called("exec", box.cid), "the %s wrapper was never asked to exec in %s" % (ctx.runtime, box.cid)
    # The container's own cgroup on the host side, with the limits.
    assert (box.cgroup / "memory.max").read_text().strip() == str(64 * MiB)
    assert (box.cgroup / "pids.max").read_text().strip() == "42"


def unit_of(box: Box) -> str:
    return box.cgroup.name


def systemctl_show(unit: str, *props: str) -> dict[str, str]:
    out = run_cmd(["systemctl", "show", unit, "-p", ",".join(props)]).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


@pytest.mark.skipif(not SYSTEMD, reason="the systemd cgroup driver: on the guest with systemd as PID 1")
def test_systemd_unit(ctx: Ctx, box: Box) -> None:
    """With its default driver the engine asks for --systemd-cgroup and a slice:prefix:name path; the container is
    a transient scope (docker-ID.scope, libpod-ID.scope) whose properties carry the limits."""
    if not ctx.podman:
        info = ctx.ok("info", "--format", "{{.CgroupDriver}}").stdout.strip()
        assert info == "systemd", info
    created = ctx.called("create", box.cid)
    assert created and "--systemd-cgroup" in created[0].split(), created
    unit = unit_of(box)
    assert unit == "%s-%s.scope" % ("libpod" if ctx.podman else "docker", box.cid), box.cgroup
    p = systemctl_show(unit, "ActiveState", "MemoryMax", "TasksMax", "CPUQuotaPerSecUSec", "Delegate")
    assert p == {"ActiveState": "active", "MemoryMax": str(64 * MiB), "TasksMax": "42",
                 "CPUQuotaPerSecUSec": "500ms", "Delegate": "yes"}, p


def test_pause_unpause(ctx: Ctx, box: Box) -> None:
    """The container's cgroup is frozen once pause returns, thawed once unpause does (the next scenarios exec
    in it)."""
    ctx.ok("pause", box.name)
    try:
        assert "frozen 1" in (box.cgroup / "cgroup.events").read_text().splitlines()
    finally:
        ctx.ok("unpause", box.name)
    assert "frozen 0" in (box.cgroup / "cgroup.events").read_text().splitlines()
    assert ctx.called("pause", box.cid) and ctx.called("resume", box.cid), ctx.engine.calls(ctx.runtime)[-3:]


def test_stats(ctx: Ctx, box: Box) -> None:
    """The engine's stats: the memory limit, two pids (the shell and its sleep)."""
    if ctx.podman:
        r = ctx.ok("stats", "--no-stream", "--format", "json", box.name)
        (s,) = json.loads(r.stdout)
        limit, pids, expected = s["mem_usage"].split(" / ")[1], s["pids"], "67.11MB"
    else:
        r = ctx.ok("stats", "--no-stream", "--format", "{{json .}}", box.name)
        s = json.loads(r.stdout)
        limit, pids, expected = s["MemUsage"].split(" / ")[1], s["PIDs"], "64MiB"
    assert (limit, pids) == (expected, "2"), r.stdout


def test_update(ctx: Ctx, box: Box) -> None:
    """update goes through the runtime (`update --resources`); the new limits read back inside and on the host.
    (Podman 4.3's update has no --pids-limit.)"""
    args = ["--memory", "96m", "--cpus", "0.25"] + ([] if ctx.podman else ["--pids-limit", "50"])
    ctx.ok("update", *args, box.name)
    assert ctx.called("update", box.cid), "the %s wrapper was never asked to update %s" % (ctx.runtime, box.cid)
    pids = "42" if ctx.podman else "50"
    r = ctx.ok("exec", box.name, "cat", "/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/pids.max",
               "/sys/fs/cgroup/cpu.max")
    assert r.stdout.splitlines() == [str(96 * MiB), pids, "25000 100000"], ctx.explain(r)
    assert (box.cgroup / "memory.max").read_text().strip() == str(96 * MiB)
    assert (box.cgroup / "cpu.max").read_text().strip() == "25000 100000"
    if SYSTEMD:  # the unit's properties follow (SetUnitProperties)
        p = systemctl_show(unit_of(box), "MemoryMax", "CPUQuotaPerSecUSec")
        assert p == {"MemoryMax": str(96 * MiB), "CPUQuotaPerSecUSec": "250ms"}, p


def test_stop(ctx: Ctx, box: Box) -> None:
    """stop delivers SIGTERM (the init's trap exits 0; a SIGKILL after the timeout would be 137)."""
    t0 = time.monotonic()
    ctx.ok("stop", "-t", "20", box.name)
    took = time.monotonic() - t0
    assert ctx.inspect(box.name, "{{.State.Status}} {{.State.ExitCode}}") == "exited 0"
    assert took < 20, "stop took %.1fs: SIGTERM was not delivered" % took
    wait_for(lambda: not pid_alive(box.pid), 10, what="the init %d to be gone" % box.pid)


def test_rm(ctx: Ctx, box: Box) -> None:
    ctx.ok("rm", box.name)
    box.removed = True
    r = ctx.cli("inspect", box.name)
    assert r.returncode != 0, r.stdout
    ctx.assert_gone(box.cid)
    assert not box.cgroup.exists(), box.cgroup
    if SYSTEMD:
        assert systemctl_show(unit_of(box), "LoadState") == {"LoadState": "not-found"}
