"""Run the upstream opencontainers/runtime-tools validation executables against runtimes.

    python -m conformance.runtime_tools --tests-dir DIR --runtime PATH [--runtime PATH ...]
                                        [--reference PATH | --no-reference] [-k PATTERN]

DIR is a runtime-tools checkout in which `make runtimetest validation-executables` was run
(see conformance/README.md). Each validation/**/*.t executable is run with its working
directory set to DIR (it needs ./runtimetest and ./rootfs-<goarch>.tar.gz there) and with
RUNTIME pointing at a small wrapper that adds a private `--root` to every runtime call, so
nothing lands in the runtime's default state directory. The executables print TAP; this runner
prints, per executable, pass/fail/skip counts for each runtime and the failing assertions with
their diagnostics.
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

GOARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
          "i386": "386", "i686": "386", "ppc64le": "ppc64le", "s390x": "s390x",
          "riscv64": "riscv64"}

TAP_LINE = re.compile(r"^(not ok|ok)\b\s*(\d+)?\s*(?:-\s*)?(.*?)\s*(?:#\s*(SKIP|TODO)\b\s*(.*))?$",
                      re.IGNORECASE)


@dataclass
class Assertion:
    ok: bool
    number: int | None
    description: str
    directive: str | None = None      # SKIP / TODO
    reason: str = ""
    diagnostic: list[str] = field(default_factory=list)

    @property
    def skipped(self) -> bool:
        return (self.directive or "").upper() == "SKIP"

    @property
    def failed(self) -> bool:
        return not self.ok and (self.directive or "").upper() != "TODO"


@dataclass
class TapResult:
    test: str
    runtime: str
    rc: int
    assertions: list[Assertion]
    planned: int | None
    bail_out: str | None
    stderr: str
    duration: float
    timed_out: bool = False
    orphans: list[str] = field(default_factory=list)   # YAML diagnostics outside any assertion

    @property
    def orphan_error(self) -> bool:
        # runtime-tools' lifecycle tests (plan 1..0) report a failed check as a bare YAML
        # block with an "error" key
        return any('"error"' in line for line in self.orphans)

    @property
    def passed(self) -> int:
        return sum(1 for a in self.assertions if a.ok and not a.skipped)

    @property
    def failed(self) -> list[Assertion]:
        return [a for a in self.assertions if a.failed]

    @property
    def skipped(self) -> int:
        return sum(1 for a in self.assertions if a.skipped)

    @property
    def status(self) -> str:
        if self.timed_out:
            return "TIMEOUT"
        if self.bail_out is not None:
            return "BAIL"
        if self.failed or self.orphan_error:
            return "FAIL"
        if not self.assertions:
            return "ERROR" if self.rc != 0 else "EMPTY"
        if self.planned is not None and self.planned != len(self.assertions):
            return "ERROR"      # exited before running every planned assertion
        if self.rc != 0:
            return "ERROR"
        if self.skipped == len(self.assertions):
            return "SKIP"
        return "PASS"

    def cell(self) -> str:
        total = len(self.assertions)
        if self.status in ("PASS", "FAIL") and total:
            s = f"{self.status} {self.passed}/{total - self.skipped}"
            return s + (f" ({self.skipped} skip)" if self.skipped else "")
        return self.status


def parse_tap(text: str) -> tuple[list[Assertion], int | None, str | None, list[str]]:
    """-> (assertions, planned count, bail-out reason, diagnostics attached to no assertion)"""
    assertions: list[Assertion] = []
    orphans: list[str] = []
    planned = None
    bail = None
    in_yaml = False
    for raw in text.splitlines():
        line = raw.rstrip()
        if in_yaml:
            if line.strip() == "...":
                in_yaml = False
            elif assertions:
                assertions[-1].diagnostic.append(line)
            else:
                orphans.append(line)
            continue
        if line.strip() == "---":
            in_yaml = True
            continue
        m = re.match(r"^1\.\.(\d+)", line)
        if m:
            planned = int(m.group(1))
            continue
        if line.startswith("Bail out!"):
            bail = line[len("Bail out!"):].strip()
            continue
        m = TAP_LINE.match(line)
        if m:
            assertions.append(Assertion(m.group(1).lower() == "ok",
                                        int(m.group(2)) if m.group(2) else None,
                                        m.group(3) or "", m.group(4), (m.group(5) or "").strip()))
        elif line.startswith("#") and assertions:
            assertions[-1].diagnostic.append(line)
    return assertions, planned, bail, orphans


def find_tests(tests_dir: Path) -> list[Path]:
    return sorted(p for p in (tests_dir / "validation").rglob("*.t") if p.is_file() and os.access(p, os.X_OK))


def check_tests_dir(tests_dir: Path) -> list[str]:
    problems = []
    arch = GOARCH.get(platform.machine(), platform.machine())
    if not (tests_dir / "runtimetest").is_file():
        problems.append(f"{tests_dir}/runtimetest missing: run `make runtimetest` there")
    if not (tests_dir / f"rootfs-{arch}.tar.gz").is_file():
        problems.append(f"{tests_dir}/rootfs-{arch}.tar.gz missing (it comes with the runtime-tools checkout)")
    if not find_tests(tests_dir):
        problems.append(f"no validation/**/*.t executables under {tests_dir}: "
                        "run `make validation-executables` there")
    return problems


def make_wrapper(runtime: str, workdir: Path, name: str) -> tuple[Path, Path]:
    """A RUNTIME for the validation executables: the real runtime with a private --root."""
    root = workdir / f"root-{name}"
    root.mkdir(parents=True, exist_ok=True)
    wrapper = workdir / f"runtime-{name}"
    wrapper.write_text(f"#!/bin/sh\nexec {shlex.quote(runtime)} --root {shlex.quote(str(root))} \"$@\"\n")
    os.chmod(wrapper, 0o755)
    return wrapper, root


def cleanup_root(runtime: str, root: Path) -> list[str]:
    """Force-delete containers a (possibly killed) validation executable left in our root."""
    left = [p.name for p in root.iterdir() if p.is_dir()] if root.exists() else []
    for cid in left:
        subprocess.run([runtime, "--root", str(root), "delete", "--force", cid],
                       capture_output=True, timeout=30)
    return left


# runtime-tools' cgroup tests all use the fixed cgroupsPath "/cgrouptest" (or
# "testdir/cgrouptest"): run them one at a time, and remove what they leave behind.
CGROUP_LOCK = threading.Lock()
FIXED_CGROUPS = ("testdir/cgrouptest", "testdir", "cgrouptest")


def fixed_cgroup_dirs() -> set[str]:
    """The fixed-name cgroups at each hierarchy's root and below our own cgroup (where a relative
    cgroupsPath such as "testdir/cgrouptest" lands)."""
    out = set()
    base = Path("/sys/fs/cgroup")
    hierarchies = [base, *(p for p in base.iterdir() if p.is_dir())] if base.is_dir() else []
    with open("/proc/self/cgroup") as f:
        ours = {line.rstrip("\n").split(":", 2)[2].lstrip("/") for line in f}
    for h in hierarchies:
        for own in ours:
            for name in FIXED_CGROUPS:
                if (h / own / name / "cgroup.procs").exists():
                    out.add(str(h / own / name))
    return out


def remove_new_cgroups(before: set[str]) -> list[str]:
    """rmdir the fixed-name cgroups that did not exist before this run (empty ones only)."""
    removed = []
    for d in sorted(fixed_cgroup_dirs() - before, key=len, reverse=True):
        try:
            os.rmdir(d)
            removed.append(d)
        except OSError:
            pass
    return removed


def run_one(test: Path, tests_dir: Path, runtime_name: str, runtime: str, workdir: Path,
            timeout: float) -> TapResult:
    if "cgroups" in test.name:
        with CGROUP_LOCK:
            return _run_one(test, tests_dir, runtime_name, runtime, workdir, timeout)
    return _run_one(test, tests_dir, runtime_name, runtime, workdir, timeout)


def _run_one(test: Path, tests_dir: Path, runtime_name: str, runtime: str, workdir: Path,
             timeout: float) -> TapResult:
    key = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{runtime_name}-{test.stem}")
    wrapper, root = make_wrapper(runtime, workdir, key)
    env = dict(os.environ, RUNTIME=str(wrapper))
    t0 = time.monotonic()
    timed_out = False
    p = subprocess.Popen([str(test)], cwd=str(tests_dir), env=env, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(p.pid, signal.SIGKILL)   # the process group of the executable we started
        out, err = p.communicate()
    leftovers = cleanup_root(runtime, root)
    assertions, planned, bail, orphans = parse_tap(out.decode(errors="replace"))
    err_text = err.decode(errors="replace")
    if leftovers:
        err_text += f"\n[runner] force-deleted containers left behind: {', '.join(leftovers)}"
    return TapResult(str(test.relative_to(tests_dir)), runtime_name, p.returncode, assertions,
                     planned, bail, err_text, time.monotonic() - t0, timed_out, orphans)


def _clip(line: str, verbose: bool, width: int = 300) -> str:
    return line if verbose or len(line) <= width else line[:width] + f" ...[{len(line) - width} more]"


def report(tests: list[str], names: list[str], results: dict, out=sys.stdout, verbose=False) -> None:
    width = max([len(t) for t in tests] + [4])
    cols = [max(14, len(n)) for n in names]
    print("test".ljust(width) + "  " + "  ".join(n.ljust(w) for n, w in zip(names, cols)), file=out)
    print("-" * width + "  " + "  ".join("-" * w for w in cols), file=out)
    for t in tests:
        print(t.ljust(width) + "  " + "  ".join(results[(t, n)].cell().ljust(w)
                                                  for n, w in zip(names, cols)), file=out)
    print(file=out)
    for n in names:
        rs = [results[(t, n)] for t in tests]
        a_pass = sum(r.passed for r in rs)
        a_fail = sum(len(r.failed) for r in rs)
        a_skip = sum(r.skipped for r in rs)
        t_pass = sum(1 for r in rs if r.status in ("PASS", "SKIP"))
        print(f"{n}: {t_pass}/{len(rs)} executables clean; assertions: {a_pass} passed, "
              f"{a_fail} failed, {a_skip} skipped", file=out)
    print(file=out)
    for t in tests:
        for n in names:
            r = results[(t, n)]
            if r.status in ("PASS", "SKIP", "EMPTY"):
                continue
            print(f"== {t} [{n}] {r.status} (exit {r.rc}, {r.duration:.1f}s)", file=out)
            if r.bail_out is not None:
                print(f"   Bail out! {r.bail_out}", file=out)
            if r.orphan_error:
                for d in r.orphans[: (None if verbose else 12)]:
                    print(f"      {_clip(d, verbose)}", file=out)
            for a in r.failed:
                print(f"   not ok {a.number or ''} - {a.description}", file=out)
                for d in a.diagnostic[: (None if verbose else 12)]:
                    print(f"      {_clip(d, verbose)}", file=out)
            if r.status in ("ERROR", "TIMEOUT", "BAIL") or verbose:
                tail = [x for x in r.stderr.strip().splitlines() if x.strip()][-8:]
                for x in tail:
                    print(f"   stderr: {x}", file=out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m conformance.runtime_tools", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tests-dir", type=Path, required=True,
                    help="runtime-tools checkout with runtimetest and validation/**/*.t built")
    ap.add_argument("--runtime", action="append", default=[], metavar="PATH")
    ap.add_argument("--reference", metavar="PATH", help="also run this runtime (default: runc)")
    ap.add_argument("--no-reference", action="store_true")
    ap.add_argument("-k", dest="patterns", action="append", metavar="PATTERN",
                    help="only executables whose path contains PATTERN (or matches the glob)")
    ap.add_argument("-j", "--jobs", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=180, help="seconds per executable")
    ap.add_argument("-v", "--verbose", action="store_true", help="full diagnostics and stderr")
    args = ap.parse_args(argv)

    tests_dir = args.tests_dir.resolve()
    problems = check_tests_dir(tests_dir)
    if problems:
        for p in problems:
            print(p, file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("the validation executables create containers: run as root", file=sys.stderr)
        return 2
    from .cli import default_reference
    from .suite import runtime_specs
    paths = list(args.runtime)
    ref = None if args.no_reference else (args.reference or default_reference())
    if ref and os.path.realpath(ref) not in map(os.path.realpath, paths):
        paths.append(ref)
    if not paths:
        print("give --runtime PATH", file=sys.stderr)
        return 2
    specs = runtime_specs(paths)
    tests = find_tests(tests_dir)
    if args.patterns:
        tests = [t for t in tests if any(
            fnmatch.fnmatch(str(t.relative_to(tests_dir)), p) or p in str(t.relative_to(tests_dir))
            for p in args.patterns)]
    names = [s.name for s in specs]
    work = Path(tempfile.mkdtemp(prefix="ocicf-rt-"))
    results: dict = {}
    cgroups_before = fixed_cgroup_dirs()
    try:
        jobs = [(t, s) for t in tests for s in specs]
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            for (t, s), r in zip(jobs, pool.map(lambda j: run_one(j[0], tests_dir, j[1].name, j[1].path,
                                                                   work, args.timeout), jobs)):
                results[(str(t.relative_to(tests_dir)), s.name)] = r
    finally:
        shutil.rmtree(work, ignore_errors=True)
        removed = remove_new_cgroups(cgroups_before)
    if removed:
        print(f"[runner] removed cgroups the runtimes left behind: {' '.join(removed)}", file=sys.stderr)
    report([str(t.relative_to(tests_dir)) for t in tests], names, results, verbose=args.verbose)
    # exit status: 1 when a candidate (not the reference) fails an executable the reference passes
    cand = names[:len(args.runtime)] if args.runtime else names
    refname = names[-1] if ref and len(names) > len(cand) else None
    worse = []
    for t in tests:
        key = str(t.relative_to(tests_dir))
        for n in cand:
            r = results[(key, n)]
            if r.status in ("PASS", "SKIP", "EMPTY"):
                continue
            if refname is None or results[(key, refname)].status in ("PASS", "SKIP", "EMPTY"):
                worse.append(f"{n} {key}")
    if worse:
        print("\nfailing where the reference passes:" if refname else "\nfailing:")
        for w in worse:
            print("  " + w)
    return 1 if worse else 0


if __name__ == "__main__":
    sys.exit(main())
