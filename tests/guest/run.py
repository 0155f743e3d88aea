#!/usr/bin/env python3
"""Run tests inside a user-mode-Linux guest: a Linux kernel as a process, with a pure cgroup v2 hierarchy.

    python3 tests/guest/run.py [--systemd] [--timeout S] [--mem 3G] [--keep] [-- PYTEST-ARGS...]
    python3 tests/guest/run.py [--systemd] --cmd 'SHELL COMMAND'      (anything else, e.g. a look around)

(tests/guest/run-v2 is the same.) It builds the guest root if needed (tests/guest/build-root.sh, cached under
$PYOCI_GUEST_CACHE, default /var/cache/pyoci-guest), boots ``linux.uml`` (the UML 7 of tests/guest/fetch-uml.sh,
or $PYOCI_GUEST_UML) with that root over hostfs, and the
guest's init (tests/guest/init.sh) runs a job this script writes into a fresh run directory on the host: mount
the checkout, its venv and the venv interpreter's install prefix at their host paths (so the host's venv runs
unchanged), then ``python -m pytest -q -p no:cacheprovider tests/v2 tests/test_devices_bpf.py tests/test_cgroups.py tests/test_events.py`` (or the PYTEST-ARGS) with
PYOCI_IN_GUEST=1. Container state, bundles and rootfs go to pytest's tmp dir, a tmpfs inside the guest.

With --systemd the guest boots ``init=/lib/systemd/systemd`` instead (the same root): the job is run by the
unit pyoci-guest-job.service (tests/guest/systemd/, with tests/guest/systemd-job.sh) once the
system is up, with PYOCI_GUEST_SYSTEMD=1 too, and the default PYTEST-ARGS are ``tests/systemd``.

It prints the guest's kernel and cgroup.controllers and the timings, streams the guest's console (the pytest
output), and exits with pytest's status. It fails loudly (exit 3) when the guest does not boot, does not
write a result, runs past --timeout, or has not booted after --boot-timeout (the whole UML process group is
then killed). pytest's "no tests collected" (5) is turned into a failure too.
"""
from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import xstate

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
GUEST_FAIL = 3


def fail(msg: str) -> "NoReturn":  # type: ignore[name-defined]  # noqa: F821
    print("pyoci-guest: FAILED: %s" % msg, file=sys.stderr, flush=True)
    sys.exit(GUEST_FAIL)


def kernel() -> str:
    """The linux.uml to boot: $PYOCI_GUEST_UML (e.g. /usr/bin/linux.uml, Debian 12's 6.1, where the host's CPU
    lets it run: see xstate.py), else the newer UML fetch-uml.sh brings: it runs on every CPU and the guest's
    tests take a third of 6.1's time."""
    if os.environ.get("PYOCI_GUEST_UML"):
        return os.environ["PYOCI_GUEST_UML"]
    r = subprocess.run(["sh", str(HERE / "fetch-uml.sh")], stdout=subprocess.PIPE, text=True)
    if r.returncode != 0:
        fail("fetching a newer user-mode Linux failed (tests/guest/fetch-uml.sh exited %d)" % r.returncode)
    return r.stdout.strip().splitlines()[-1]


def build_root(systemd: bool, uml: str) -> Path:
    env = dict(os.environ, PYOCI_GUEST_UML=uml)
    r = subprocess.run(["sh", str(HERE / "build-root.sh")], stdout=subprocess.PIPE, text=True, env=env)
    if r.returncode != 0:
        fail("building the guest root failed (tests/guest/build-root.sh exited %d)" % r.returncode)
    root = Path(r.stdout.strip().splitlines()[-1])
    for need in ["sbin/pyoci-guest-init"] + (["lib/systemd/systemd", "sbin/pyoci-guest-job"] if systemd else []):
        if not (root / need).exists():
            fail("guest root %s has no /%s" % (root, need))
    return root


def host_mounts(venv: Path) -> list[str]:
    """Host directories the guest mounts at the same paths: the checkout, the venv, the interpreter's prefix.
    A directory inside one already listed, or under /usr (the guest has its own, with python3), is left out."""
    python = venv / "bin" / "python"
    if not python.exists():
        fail("no venv interpreter at %s (run `make install`)" % python)
    base = subprocess.run([str(python), "-c", "import sys; print(sys.base_prefix)"], stdout=subprocess.PIPE,
                          text=True, check=True).stdout.strip()
    wanted = [REPO, venv.resolve(), Path(base).resolve(), Path(os.path.realpath(python)).parent.parent]
    out: list[str] = []
    for p in wanted:
        s = str(p)
        if s == "/" or s == "/usr" or s.startswith("/usr/"):
            continue
        if any(s == o or s.startswith(o + "/") for o in out):
            continue
        out = [o for o in out if not o.startswith(s + "/")] + [s]
    return out


JOB = r"""#!/bin/sh
# Written by tests/guest/run.py; run by the guest's init with the run directory mounted at /pyoci-run.
R=/pyoci-run
uname -r > $R/kernel
cat /sys/fs/cgroup/cgroup.controllers > $R/controllers
cat /sys/fs/cgroup/cgroup.subtree_control > $R/subtree_control
for d in {mounts}; do
    mkdir -p "$d" && mount -t hostfs -o "$d" none "$d" || {{ echo "cannot hostfs-mount $d" > $R/error; exit 1; }}
done
modprobe -q overlay 2>/dev/null
cd {repo} || {{ echo "no checkout at {repo}" > $R/error; exit 1; }}
export PYOCI_IN_GUEST=1 PYOCI_GUEST_SYSTEMD={systemd} PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 TMPDIR=/tmp
export PATH={venv}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
: > $R/tests-start
{{ {command} 2>&1; echo $? > $R/rc; }} | tee $R/output > /dev/console
: > $R/tests-end
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--timeout", type=float, default=float(os.environ.get("PYOCI_GUEST_TIMEOUT", 1200)),
                    help="wall-clock limit for the whole guest run, seconds (default 1200)")
    ap.add_argument("--mem", default=os.environ.get("PYOCI_GUEST_MEM", "3G"))
    ap.add_argument("--venv", default=os.environ.get("PYOCI_GUEST_VENV", str(REPO / ".venv")))
    ap.add_argument("--keep", action="store_true", help="keep the run directory (console log, results)")
    ap.add_argument("--boot-timeout", type=float, default=float(os.environ.get("PYOCI_GUEST_BOOT_TIMEOUT", 180)),
                    help="fail if the guest has not booted (started its job) after this many seconds (default 180)")
    ap.add_argument("--systemd", action="store_true", help="boot with systemd as PID 1 (the job runs as the unit "
                    "pyoci-guest-job.service); default pytest arguments: tests/systemd")
    ap.add_argument("--cmd", help="run this shell command in the guest (at the checkout, venv on PATH) instead of "
                    "pytest; its exit status is the result")
    ap.add_argument("pytest_args", nargs="*", help="after --: arguments to pytest (default: tests/v2 "
                    "tests/test_devices_bpf.py tests/test_cgroups.py tests/test_events.py; with --systemd: tests/systemd)")
    ns = ap.parse_args()

    if os.geteuid() != 0:
        fail("must run as root")
    t0 = time.monotonic()
    uml = kernel()
    root = build_root(ns.systemd, uml)
    t_build = time.monotonic() - t0

    venv = Path(ns.venv).absolute()
    mounts = host_mounts(venv)
    default = ["tests/systemd"] if ns.systemd else ["tests/v2", "tests/test_devices_bpf.py", "tests/test_cgroups.py",
                                                         "tests/test_events.py"]
    args = ns.pytest_args or default
    if ns.cmd:
        command = "sh -c %s" % shlex.quote(ns.cmd)
    else:
        command = " ".join(shlex.quote(a) for a in [str(venv / "bin" / "python"), "-m", "pytest", "-q",
                                                     "-p", "no:cacheprovider", *args])
    run = Path(tempfile.mkdtemp(prefix="pyoci-guest-run."))
    (run / "job.sh").write_text(JOB.format(
        mounts=" ".join(shlex.quote(m) for m in mounts), repo=shlex.quote(str(REPO)),
        venv=shlex.quote(str(venv)), command=command, systemd=int(ns.systemd)))
    (run / "uml").mkdir()

    argv = [uml, "mem=%s" % ns.mem, "rootfstype=hostfs", "rootflags=%s" % root, "rw",
            "init=/lib/systemd/systemd" if ns.systemd else "init=/sbin/pyoci-guest-init", "con=null",
            "con0=null,fd:1", "quiet", "umid=pyoci-guest-%d" % os.getpid(), "uml_dir=%s" % (run / "uml"),
            "pyoci_run=%s" % run]
    if ns.systemd:
        argv += ["systemd.show_status=0", "systemd.unified_cgroup_hierarchy=1"]
    print("pyoci-guest: kernel %s, root %s, run dir %s" % (uml, root, run), flush=True)
    print("pyoci-guest: host paths mounted in the guest: %s" % " ".join(mounts), flush=True)
    print("pyoci-guest: %s" % (command if ns.cmd else "pytest " + " ".join(args)), flush=True)

    console = open(run / "console.log", "wb")
    t_boot0 = time.time()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True, cwd=str(run))

    def pump() -> None:
        assert proc.stdout is not None
        for line in iter(proc.stdout.readline, b""):
            console.write(line)
            console.flush()
            sys.stdout.buffer.write(line.replace(b"\r\n", b"\n"))
            sys.stdout.buffer.flush()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    # Wait without reaping (WNOWAIT): while the exited leader is a zombie its pid is still its process group's
    # id, so the group can be killed (UML's helper processes, should any remain) with no risk of hitting a
    # reused pid; then reap it.
    timed_out = boot_timed_out = False
    t_start = time.monotonic()
    deadline = t_start + ns.timeout
    try:
        while os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
            now = time.monotonic()
            if now > deadline:
                timed_out = True
                break
            if now > t_start + ns.boot_timeout and not (run / "booted").exists():
                boot_timed_out = True
                break
            time.sleep(0.2)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the UML process group this script started
        except ProcessLookupError:
            pass
        proc.wait()
    reader.join(5)
    console.close()
    t_end = time.time()

    def read(name: str) -> str | None:
        try:
            return (run / name).read_text().strip()
        except OSError:
            return None

    def mtime(name: str) -> float | None:
        try:
            return (run / name).stat().st_mtime
        except OSError:
            return None

    print("pyoci-guest: kernel %s; cgroup.controllers: %s; subtree_control: %s" % (
        read("kernel") or "?", read("controllers") or "?", read("subtree_control") or "?"), flush=True)
    booted, started, ended = mtime("booted"), mtime("tests-start"), mtime("tests-end")
    timing = ["root %.1fs" % t_build]
    if booted:
        timing.append("boot %.1fs" % (booted - t_boot0))
    if started and ended:
        timing.append("tests %.1fs" % (ended - started))
    timing.append("guest total %.1fs" % (t_end - t_boot0))
    print("pyoci-guest: timings: %s" % ", ".join(timing), flush=True)
    if ns.systemd:
        analyze = (read("systemd-analyze") or "?").splitlines()
        print("pyoci-guest: systemd: %s; state %s; failed units: %s" % (
            " ".join(line.strip() for line in analyze), read("system-state") or "?",
            ", ".join(line.split()[0] for line in (read("failed-units") or "").splitlines() if line.split())
            or "none"), flush=True)

    def tail() -> str:
        try:
            lines = (run / "console.log").read_text(errors="replace").splitlines()[-40:]
        except OSError:
            lines = []
        job = read("job.log")
        return "\n--- console (last lines) ---\n%s%s" % (
            "\n".join(lines), "\n--- job.log ---\n%s" % job if job else "")

    keep = ns.keep
    try:
        if boot_timed_out:
            keep = True
            fail("the guest had not booted (no %s/booted) after --boot-timeout %.0fs and was killed (run dir kept)%s"
                 % (run, ns.boot_timeout, tail()))
        if timed_out:
            keep = True
            fail("the guest ran past --timeout %.0fs and was killed (run dir kept: %s)%s" % (ns.timeout, run, tail()))
        if booted is None:
            keep = True
            fail("the guest did not boot: its init never wrote %s/booted (linux.uml exited %s; run dir kept)%s%s"
                 % (run, proc.returncode, tail(), "" if not os.environ.get("PYOCI_GUEST_UML") or
                    xstate.uml_fpu_requests_work() else
                    "\n--- cause? ---\nthis host refuses the FPU register requests of UML 6.1 and 6.12 (its CPU's "
                    "XSAVE state is larger: AVX-512 or AMX); if $PYOCI_GUEST_UML is one of those, unset it "
                    "(see tests/guest/xstate.py)"))
        rc_text = read("rc")
        if rc_text is None or not rc_text.isdigit():
            keep = True
            fail("the guest booted but wrote no pytest result (%s: %s; run dir kept: %s)%s" % (
                "error", read("error") or "none", run, tail()))
        rc = int(rc_text)
        if rc == 5 and not ns.cmd:
            print("pyoci-guest: pytest collected no tests: failing", file=sys.stderr)
            return 1
        print("pyoci-guest: %s exited %d" % ("the command" if ns.cmd else "pytest", rc), flush=True)
        return rc
    finally:
        if keep:
            print("pyoci-guest: run dir kept: %s" % run, file=sys.stderr)
        else:
            shutil.rmtree(run, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
