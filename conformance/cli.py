"""python -m conformance --runtime PATH [--runtime PATH ...] [--reference PATH] ..."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

from .core import PASS
from .report import Report, load_expectations
from .suite import runtime_specs, run_suite, select_cases

DEFAULT_EXPECTATIONS = Path(__file__).with_name("expectations.toml")


def default_reference() -> str | None:
    for p in ("/usr/sbin/runc", "/usr/bin/runc"):
        if os.access(p, os.X_OK):
            return p
    return shutil.which("runc")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m conformance",
        description="OCI runtime-spec conformance suite: runs every case against each --runtime "
                    "and the --reference runtime and prints a table of results.")
    ap.add_argument("--runtime", action="append", default=[], metavar="PATH",
                    help="runtime binary under test (repeatable)")
    ap.add_argument("--reference", metavar="PATH", default=None,
                    help="reference runtime (default: runc from /usr/sbin or PATH)")
    ap.add_argument("--no-reference", action="store_true", help="do not run a reference runtime")
    ap.add_argument("--expectations", type=Path, default=DEFAULT_EXPECTATIONS, metavar="FILE",
                    help=f"expected failures (TOML or JSON; default {DEFAULT_EXPECTATIONS.name})")
    ap.add_argument("-k", dest="patterns", action="append", metavar="PATTERN",
                    help="only cases whose id (or section) contains PATTERN or matches the glob; repeatable")
    ap.add_argument("-j", "--jobs", type=int, default=4, help="cases run in parallel (default 4)")
    ap.add_argument("--format", choices=("table", "json"), default="table")
    ap.add_argument("-o", "--output", type=Path, help="also write the JSON report to this file")
    ap.add_argument("--rootfs", type=Path, help="busybox rootfs to copy instead of building one "
                    "with bundles/busybox/build-rootfs.sh")
    ap.add_argument("--workdir", type=Path, help="parent directory for the temporary work tree")
    ap.add_argument("--keep", action="store_true", help="keep the work tree (bundles, logs)")
    ap.add_argument("-v", "--verbose", action="store_true", help="print each failing case's log")
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cases = select_cases(args.patterns)
    if args.list:
        for c in cases:
            print(f"{c.id:34} {c.level:6} {c.section:38} {c.title}")
        print(f"{len(cases)} cases")
        return 0
    if not cases:
        print("no case matches", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("the conformance suite must run as root (it creates containers)", file=sys.stderr)
        return 2
    reference = None if args.no_reference else (args.reference or default_reference())
    if not args.runtime and reference is None:
        print("give --runtime PATH (and/or a --reference)", file=sys.stderr)
        return 2
    paths = list(args.runtime)
    if reference is not None and os.path.realpath(reference) in map(os.path.realpath, paths):
        paths.remove(next(p for p in paths if os.path.realpath(p) == os.path.realpath(reference)))
    specs = runtime_specs(paths + ([reference] if reference else []))
    for s in specs:
        if not os.access(s.path, os.X_OK):
            print(f"runtime {s.path} is not executable", file=sys.stderr)
            return 2
    candidates = [s.name for s in specs[:len(paths)]]
    ref_name = specs[-1].name if reference else None
    if not candidates:          # only a reference given: report on it alone
        candidates, ref_name = [ref_name], None
    try:
        expectations = load_expectations(args.expectations)
    except (ValueError, OSError) as e:
        print(f"bad expectations file: {e}", file=sys.stderr)
        return 2

    t0 = time.monotonic()
    done = [0]
    total = len(cases) * len(specs)

    def progress(res):
        done[0] += 1
        if args.format == "table" and sys.stderr.isatty():
            mark = "." if res.status == PASS else res.status[0]
            print(f"\r[{done[0]}/{total}] {res.runtime} {res.case} {mark}".ljust(70), end="",
                  file=sys.stderr, flush=True)

    results = run_suite(specs, cases, jobs=args.jobs, rootfs=args.rootfs, keep=args.keep,
                        progress=progress, workdir=args.workdir)
    if args.format == "table" and sys.stderr.isatty():
        print("\r".ljust(72) + "\r", end="", file=sys.stderr)
    report = Report(cases, results, candidates, ref_name, expectations)
    if args.format == "json":
        print(report.as_json())
    else:
        print("runtimes: " + ", ".join(f"{s.name}={s.path}" for s in specs)
              + (f" (reference: {ref_name})" if ref_name else ""))
        print(report.table(verbose=args.verbose))
        print(f"{len(cases)} cases x {len(specs)} runtimes in {time.monotonic() - t0:.1f}s")
    if args.output:
        args.output.write_text(report.as_json())
    return 1 if report.gating() else 0
