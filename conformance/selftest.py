"""Prove the cases: each must pass on the reference runtime and fail on every mutant it lists.

    python -m conformance.selftest [--real /usr/sbin/runc] [-k PATTERN] [-j N]

A mutant is the real runtime behind conformance.mutant with one deliberate breakage
(a config property ignored or misapplied, an operation that reports or does the wrong thing).
Cases that the real runtime itself fails cannot be proven this way and are listed as such.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import sys
import tempfile
from pathlib import Path

from .core import ERROR, FAIL, PASS, Case
from .mutant import known
from .suite import RuntimeSpec, run_pairs, select_cases

REPO = Path(__file__).resolve().parent.parent


def mutant_wrapper(dirpath: Path, mutant: str, real: str, leaks: Path) -> RuntimeSpec:
    name = "mutant-" + re.sub(r"[^A-Za-z0-9_.-]", "_", mutant)
    path = dirpath / name
    path.write_text(
        "#!/bin/sh\n"
        f"CONFORMANCE_MUTANT={shlex.quote(mutant)} CONFORMANCE_REAL={shlex.quote(real)} "
        f"CONFORMANCE_MUTANT_LEAKS={shlex.quote(str(leaks))} "
        f"PYTHONPATH={shlex.quote(str(REPO))} "
        f"exec {shlex.quote(sys.executable)} -m conformance.mutant \"$@\"\n")
    os.chmod(path, 0o755)
    dirpath.chmod(0o755)
    return RuntimeSpec(f"mutant {mutant}", str(path), cleanup_path=real)


def run_selftest(real: str, cases: list[Case], jobs: int = 4, out=sys.stdout) -> int:
    bad_names = sorted({m for c in cases for m in c.mutants if not known(m)})
    if bad_names:
        print(f"cases name unknown mutants: {bad_names}", file=out)
        return 2
    realspec = RuntimeSpec(os.path.basename(real), real)
    baseline = dict(zip([c.id for c in cases], run_pairs([(c, realspec) for c in cases], jobs=jobs)))
    tmp = Path(tempfile.mkdtemp(prefix="ocicf-mutants-"))
    leaks = tmp / "leaked-cgroups"
    specs: dict[str, RuntimeSpec] = {}
    pairs = []
    for c in cases:
        if baseline[c.id].status != PASS:
            continue
        for m in c.mutants:
            if m not in specs:
                specs[m] = mutant_wrapper(tmp, m, real, leaks)
            pairs.append((c, specs[m]))
    try:
        results = run_pairs(pairs, jobs=jobs)
    finally:
        if leaks.exists():
            for d in leaks.read_text().split():
                if "conformance-" in d:
                    try:
                        os.rmdir(d)
                    except OSError:
                        pass
        for f in tmp.iterdir():
            f.unlink()
        tmp.rmdir()

    rows, undetected, unproven, noref = [], [], [], []
    by_case: dict[str, list] = {}
    for (c, spec), r in zip(pairs, results):
        by_case.setdefault(c.id, []).append((spec.name.removeprefix("mutant "), r))
    for c in cases:
        b = baseline[c.id]
        if b.status != PASS:
            rows.append((c.id, "-", f"n/a: {realspec.name} {b.status}"))
            noref.append(c.id)
            continue
        if not c.mutants:
            rows.append((c.id, "-", "NO MUTANT"))
            unproven.append(c.id)
            continue
        for m, r in by_case.get(c.id, []):
            if r.status == FAIL:
                verdict = "detected"
            else:
                verdict = f"NOT DETECTED ({r.status})" if r.status != ERROR else f"ERROR: {r.message}"
                undetected.append(f"{c.id} / {m}: {r.status} {r.message[:200]}")
            rows.append((c.id, m, verdict))
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    for r in rows:
        print(f"{r[0]:{w0}}  {r[1]:{w1}}  {r[2]}", file=out)
    print(file=out)
    print(f"{len(pairs)} mutant runs over {len(cases) - len(noref)} cases that pass on "
          f"{realspec.name}; {len(noref)} cases {realspec.name} fails (not provable with it)",
          file=out)
    if undetected:
        print("mutants not detected:", file=out)
        for u in undetected:
            print("  " + u, file=out)
    if unproven:
        print(f"cases without a mutant: {unproven}", file=out)
    ok = not undetected and not unproven
    print(f"{len(pairs) - len(undetected)} passed, {len(undetected)} failed", file=out)
    return 0 if ok else 1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m conformance.selftest", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--real", default="/usr/sbin/runc", help="runtime the mutants wrap")
    ap.add_argument("-k", dest="patterns", action="append", metavar="PATTERN")
    ap.add_argument("-j", "--jobs", type=int, default=4)
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("must run as root", file=sys.stderr)
        return 2
    return run_selftest(os.path.abspath(args.real), select_cases(args.patterns), args.jobs)


if __name__ == "__main__":
    sys.exit(main())
