"""pyoci against runc, measured in one run on the same bundle (the figures of issue 13): wall time of `run` of
`true`, of a create/start/state/delete cycle and of each lifecycle command alone (and `exec` of `true`), the
peak RSS of each command, and many containers at once (N created, started, killed and deleted J at a time;
N `run -d` then `delete --force`). Prints medians and the ratio pyoci/runc. Both keep their state (--root)
on a tmpfs, as /run is on the hosts engines run them on. Run as root: `make bench` or `.venv/bin/python
bench/bench.py [-n 30] [--many 100] [--jobs 10]`.

Peak RSS is GNU time's %M for the command (wait4's ru_maxrss, measured from a small parent: a child forked
from this benchmark would report the benchmark's own size): the largest resident set of the process and of the
children it waited for (for runc that includes `runc init`, for pyoci its forked set-up stages)."""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.environ.get("PYOCI_TOP") or os.path.dirname(HERE)


def bundle(tmp: str, name: str, args: list[str]) -> str:
    path = os.path.join(tmp, "bundle-" + name)
    os.makedirs(path)
    with open(os.path.join(TOP, "bundles", "busybox", "config.json")) as f:
        config = json.load(f)
    config["process"]["args"] = args
    config["process"]["terminal"] = False
    config["root"] = {"path": os.path.join(TOP, "bundles", "busybox", "rootfs"), "readonly": True}
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config, f)
    return path


class Runtime:
    """One runtime's command line with a private --root."""

    def __init__(self, name: str, binary: str, tmp: str, state: str) -> None:
        self.name, self.root = name, os.path.join(state, "root-" + name)
        self.base = [binary, "--root", self.root]
        self.rss_file = os.path.join(tmp, "rss-" + name)

    def rss(self, args: list[str], cwd: str | None = None) -> int:
        """Peak RSS in KiB of one command, through GNU time."""
        subprocess.run(["/usr/bin/time", "-q", "-f", "%M", "-o", self.rss_file, *self.base, *args], cwd=cwd,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(self.rss_file) as f:
            return int(f.read().split()[-1])

    def call(self, args: list[str], cwd: str | None = None, capture: bool = False,
             check: bool = True) -> tuple[float, bytes, int]:
        """(seconds, stdout, exit status) of one command. stdout is a pipe only when captured: a container's
        stdio is the runtime's, and a detached one would hold the pipe open."""
        with tempfile.TemporaryFile() as err:
            start = time.perf_counter()
            proc = subprocess.Popen(self.base + args, cwd=cwd, stdout=subprocess.PIPE if capture else
                                    subprocess.DEVNULL, stderr=err)
            out = proc.stdout.read() if proc.stdout else b""
            code = proc.wait()
            elapsed = time.perf_counter() - start
            if proc.stdout:
                proc.stdout.close()
            if check and code:
                err.seek(0)
                raise SystemExit("%s %s failed: %s" % (self.name, " ".join(args), err.read().decode().strip()))
        return elapsed, out, code

    def status(self, cid: str) -> str:
        return json.loads(self.call(["state", cid], capture=True)[1])["status"]

    def wait_stopped(self, cid: str) -> None:
        while self.status(cid) != "stopped":
            time.sleep(0.001)


class Figures:
    """Per figure a list of seconds; per command the peak RSS."""

    def __init__(self) -> None:
        self.times: dict[str, list[float]] = {}
        self.rss: dict[str, int] = {}

    def timed(self, rt: Runtime, key: str, args: list[str], cwd: str | None = None, capture: bool = False,
              check: bool = True) -> bytes:
        seconds, out, _ = rt.call(args, cwd, capture, check)
        self.add(key, seconds)
        return out

    def add(self, key: str, seconds: float) -> None:
        self.times.setdefault(key, []).append(seconds)


def sequential(rt: Runtime, fig: Figures, true_bundle: str, sleep_bundle: str, n: int) -> None:
    for _ in range(n):
        fig.timed(rt, "run", ["run", "b" + uuid.uuid4().hex[:12]], true_bundle)
    for _ in range(n):
        cid = "c" + uuid.uuid4().hex[:12]
        start = time.perf_counter()
        fig.timed(rt, "create", ["create", cid], true_bundle)
        fig.timed(rt, "start", ["start", cid])
        while json.loads(fig.timed(rt, "state", ["state", cid], capture=True))["status"] != "stopped":
            time.sleep(0.001)
        fig.timed(rt, "delete", ["delete", cid])
        fig.add("create/start/state/delete", time.perf_counter() - start)
    for _ in range(n):  # kill of a running container, delete of a killed one, state of a missing one
        cid = "k" + uuid.uuid4().hex[:12]
        rt.call(["create", cid], sleep_bundle)
        rt.call(["start", cid])
        fig.timed(rt, "state (running)", ["state", cid], capture=True)
        fig.timed(rt, "exec", ["exec", cid, "true"])
        fig.timed(rt, "kill", ["kill", cid, "KILL"])
        rt.wait_stopped(cid)
        fig.timed(rt, "delete (killed)", ["delete", cid])
        fig.timed(rt, "state (missing)", ["state", "missing-" + cid], check=False)


def peak_rss(rt: Runtime, fig: Figures, true_bundle: str, sleep_bundle: str) -> None:
    """The largest of three runs of each command."""
    for _ in range(3):
        cid = "r" + uuid.uuid4().hex[:12]
        for cmd, args, cwd in (("run", ["run", "r" + cid], true_bundle), ("create", ["create", cid], sleep_bundle),
                               ("state", ["state", cid], None), ("start", ["start", cid], None),
                               ("kill", ["kill", cid, "KILL"], None), ("delete", ["delete", "--force", cid], None)):
            fig.rss[cmd] = max(fig.rss.get(cmd, 0), rt.rss(args, cwd))


def many(rt: Runtime, fig: Figures, sleep_bundle: str, count: int, jobs: int) -> int:
    """count containers, jobs commands at a time, each phase timed as a whole; returns the failures (commands
    that failed and state directories left behind)."""
    ids = ["m%03d%s" % (i, uuid.uuid4().hex[:8]) for i in range(count)]
    failures = 0

    def phase(name: str, args: list[str], cwd: str | None = None, after: tuple[str, ...] = ()) -> None:
        nonlocal failures
        start = time.perf_counter()
        with ThreadPoolExecutor(jobs) as pool:
            codes = list(pool.map(lambda cid: rt.call([*args, cid, *after], cwd, check=False)[2], ids))
        fig.add("many: " + name, time.perf_counter() - start)
        failures += sum(1 for code in codes if code)

    start = time.perf_counter()
    phase("create", ["create"], sleep_bundle)
    phase("start", ["start"])
    phase("kill", ["kill"], after=("KILL",))
    for cid in ids:
        rt.wait_stopped(cid)
    phase("delete", ["delete"])
    fig.add("many: create/start/kill/delete", time.perf_counter() - start)
    start = time.perf_counter()
    phase("run -d", ["run", "-d"], sleep_bundle)
    phase("delete --force", ["delete", "--force"])
    fig.add("many: run -d + delete --force", time.perf_counter() - start)
    return failures + len(os.listdir(rt.root))


def state_parent() -> str:
    """Where the runtimes' --root goes: a tmpfs, as /run is on the hosts engines run on (runc's /run/runc, the
    containerd shim's /run/containerd/runc); /dev/shm where /run is not one (a sandbox's disk)."""
    for d in ("/run", "/dev/shm"):
        with open("/proc/self/mounts") as f:
            if any(line.split()[1] == d and line.split()[2] == "tmpfs" for line in f):
                return d
    return tempfile.gettempdir()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("-n", type=int, default=20, help="iterations per sequential measurement")
    ap.add_argument("--many", type=int, default=100, help="containers in the concurrent measurement (0: skip)")
    ap.add_argument("--jobs", type=int, default=10, help="concurrent commands in the concurrent measurement")
    ap.add_argument("--pyoci", default=shutil.which("pyoci", path=os.path.dirname(sys.executable)) or "pyoci")
    ap.add_argument("--runc", default=shutil.which("runc") or "runc")
    opts = ap.parse_args()
    figures = {"runc": Figures(), "pyoci": Figures()}
    failures = {"runc": 0, "pyoci": 0}
    with tempfile.TemporaryDirectory(prefix="pyoci-bench-") as tmp, \
            tempfile.TemporaryDirectory(prefix="pyoci-bench-", dir=state_parent()) as state:
        true_bundle = bundle(tmp, "true", ["true"])
        sleep_bundle = bundle(tmp, "sleep", ["sleep", "1000"])
        runtimes = [Runtime("runc", opts.runc, tmp, state), Runtime("pyoci", opts.pyoci, tmp, state)]
        for rt in runtimes:  # warm caches
            rt.call(["run", "w" + uuid.uuid4().hex[:12]], true_bundle)
        for rt in runtimes:
            sequential(rt, figures[rt.name], true_bundle, sleep_bundle, opts.n)
            if os.path.exists("/usr/bin/time"):
                peak_rss(rt, figures[rt.name], true_bundle, sleep_bundle)
        if opts.many:
            for rt in runtimes:
                failures[rt.name] = many(rt, figures[rt.name], sleep_bundle, opts.many, opts.jobs)
    r, p = figures["runc"], figures["pyoci"]
    print("%-34s %10s %10s %8s" % ("wall time (median)", "runc ms", "pyoci ms", "ratio"))
    for key in r.times:
        a, b = statistics.median(r.times[key]), statistics.median(p.times[key])
        print("%-34s %10.1f %10.1f %7.2fx" % (key, a * 1000, b * 1000, b / a))
    if opts.many:
        print("%-34s %10d %10d" % ("many: failures", failures["runc"], failures["pyoci"]))
    if not r.rss:
        print("peak RSS: not measured (no GNU time at /usr/bin/time)")
        return 0
    print("%-34s %10s %10s %8s" % ("peak RSS (largest)", "runc MiB", "pyoci MiB", "ratio"))
    for cmd in r.rss:
        print("%-34s %10.1f %10.1f %7.2fx" % (cmd, r.rss[cmd] / 1024, p.rss[cmd] / 1024, p.rss[cmd] / r.rss[cmd]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
