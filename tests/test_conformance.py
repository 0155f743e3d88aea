"""The conformance suite (conformance/) against pyoci, with runc as the reference.

* test_case[ID]: one test per conformance case, from a single suite run (pyoci and runc side by
  side): fails when pyoci fails a case that runc passes and conformance/expectations.toml does
  not list it. Skipped, with the reason, when runc, root or busybox-static is missing.
* test_expectations_are_current: an expected failure that pyoci now passes must be removed.
* test_selftest_mutants: every case passes on runc and fails on each of its mutants (a runc shim
  with one deliberate breakage): the proof that each case detects what it checks.
* the remaining tests cover the harness itself (TAP, probe and expectations parsing, verdicts)
  and need neither root nor a runtime.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:      # conformance/ is a top-level directory of the repo
    sys.path.insert(0, str(REPO))

from conformance.core import FAIL, MUST, PASS, SKIP, Case, Result, all_cases  # noqa: E402
from conformance.mutant import known  # noqa: E402
from conformance.probe import Probe, caps_from_mask  # noqa: E402
from conformance.report import Expectation, Report, load_expectations  # noqa: E402
from conformance.runtime_tools import TapResult, parse_tap  # noqa: E402

EXPECTATIONS = REPO / "conformance" / "expectations.toml"
RUNC = shutil.which("runc") or ("/usr/sbin/runc" if os.access("/usr/sbin/runc", os.X_OK) else None)
_SCRIPT = Path(sys.executable).with_name("pyoci")
PYOCI = str(_SCRIPT) if _SCRIPT.exists() else shutil.which("pyoci")
CASES = all_cases()


def _unavailable() -> str | None:
    if os.geteuid() != 0:
        return "the conformance suite creates containers: needs root"
    if RUNC is None:
        return "runc (the reference runtime) is not installed: apt-get install runc"
    if PYOCI is None:
        return "pyoci is not installed in this environment (pip install -e .)"
    if not Path("/bin/busybox").exists():
        return "the conformance rootfs needs busybox-static (/bin/busybox)"
    return None


@pytest.fixture(scope="module")
def report() -> Report:
    why = _unavailable()
    if why:
        pytest.skip(why)
    from conformance.suite import runtime_specs, run_suite
    specs = runtime_specs([PYOCI, RUNC])
    results = run_suite(specs, CASES, jobs=4)
    rep = Report(CASES, results, [specs[0].name], specs[1].name, load_expectations(EXPECTATIONS))
    print("\n" + rep.table())
    return rep


@pytest.mark.parametrize("case_id", [c.id for c in CASES])
def test_case(report: Report, case_id: str) -> None:
    case = next(c for c in CASES if c.id == case_id)
    cand = report.candidates[0]
    v = report.verdict(case, cand)
    if v.kind == "skip":
        pytest.skip(v.note)
    mine = report.results[cand][case_id]
    ref = report.results[report.reference][case_id]
    if v.kind in ("regression", "fail"):
        log = "\n".join(mine.log[-25:])
        pytest.fail(f"{case.level} {case.url}\n{cand}: {mine.status}: {mine.message}\n"
                    f"{report.reference}: {ref.status} {ref.message}\n--- log\n{log}", pytrace=False)
    if v.kind == "expected":
        pytest.xfail(v.note)


def test_expectations_are_current(report: Report) -> None:
    stale = [v.case for v in report.verdicts() if v.kind == "xpass"]
    assert not stale, f"pyoci passes these expected failures; remove them from {EXPECTATIONS}: {stale}"


def test_selftest_mutants() -> None:
    why = _unavailable()
    if why:
        pytest.skip(why)
    from conformance.selftest import run_selftest
    out = io.StringIO()
    rc = run_selftest(RUNC, CASES, jobs=4, out=out)
    assert rc == 0, out.getvalue()


# ------------------------------------------------------------------ the harness itself (no root)

def test_case_metadata() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    assert len(CASES) >= 50
    for c in CASES:
        assert c.level in ("MUST", "SHOULD", "CONV"), c.id
        assert c.section.split("#")[0] in ("runtime.md", "config.md", "config-linux.md", "cli"), c.id
        assert "#" in c.section and c.title, c.id
        assert c.mutants, f"{c.id} names no mutant"
        for m in c.mutants:
            assert known(m), f"{c.id}: unknown mutant {m}"


def test_expectations_file_parses() -> None:
    exps = load_expectations(EXPECTATIONS)
    ids = {c.id for c in CASES}
    import fnmatch
    for e in exps:
        assert any(fnmatch.fnmatchcase(i, e.case) for i in ids), f"expectation for unknown case {e.case}"
        assert e.reason


def test_expectations_require_reason(tmp_path: Path) -> None:
    f = tmp_path / "e.toml"
    f.write_text('[[expected-failure]]\ncase = "x"\n')
    with pytest.raises(ValueError):
        load_expectations(f)
    j = tmp_path / "e.json"
    j.write_text(json.dumps({"expected-failure": [{"case": "a.*", "runtime": "pyoci", "reason": "r"}]}))
    assert load_expectations(j) == [Expectation("a.*", "pyoci", "r")]


def _fake_report(cand: str, ref: str, exps=()) -> Report:
    case = Case("x.y", "runtime.md#state", MUST, "t", lambda t: None, ("op:start-rc0",))
    results = {"pyoci": {"x.y": Result("x.y", "pyoci", cand)},
               "runc": {"x.y": Result("x.y", "runc", ref)}}
    return Report([case], results, ["pyoci"], "runc", list(exps))


@pytest.mark.parametrize("cand,ref,exp,kind", [
    (PASS, PASS, False, "ok"),
    (FAIL, PASS, False, "regression"),
    (FAIL, PASS, True, "expected"),
    (PASS, FAIL, False, "better"),
    (FAIL, FAIL, False, "both-fail"),
    (PASS, PASS, True, "xpass"),
    (SKIP, PASS, False, "skip"),
    ("ERROR", PASS, False, "regression"),
])
def test_verdicts(cand, ref, exp, kind) -> None:
    exps = [Expectation("x.*", "py*", "because")] if exp else []
    rep = _fake_report(cand, ref, exps)
    assert rep.verdict(rep.cases[0], "pyoci").kind == kind
    assert bool(rep.gating()) == (kind == "regression")
    table = rep.table()
    assert "x.y" in table and "pyoci" in table and "runc" in table
    if kind == "better":
        assert "ref-fails" in table and "pyoci passes, runc fails" in table


def test_probe_parsing() -> None:
    text = "\n".join([
        "probe.start=1", "uid=0", "env=A=b=c", "env=EMPTY=",
        "status.CapEff=00000000000000000000000000000421",
        "limit=Max open files            321                  654                  files",
        "mount=20 1 0:5 /root / ro,relatime shared:3 - ext4 /dev/vda rw",
        "mount=21 20 0:6 / /dev rw,nosuid master:2 - tmpfs tmpfs rw,size=65536k,mode=755",
        "dev=/dev/null|character special file|1:3|666|0:0|",
        "dev=/dev/console|character special file|88:0|620|0:5|",
        "dev=/dev/fd|symbolic link|0:0|777|0:0|/proc/self/fd",
        "garbage line", "probe.done=1"])
    p = Probe.parse(text)
    assert p.complete and p.get("uid") == "0"
    assert p.env == {"A": "b=c", "EMPTY": ""}
    assert p.caps("Eff") == {"CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"}
    assert p.limits["RLIMIT_NOFILE"] == ("321", "654")
    assert p.mount_at("/").propagation == "shared" and "ro" in p.mount_at("/").options
    assert p.mount_at("/dev").propagation == "slave" and "size=65536k" in p.mount_at("/dev").super_options
    assert (p.devs["/dev/null"].major, p.devs["/dev/null"].minor) == (1, 3)
    assert p.devs["/dev/console"].major == 136
    assert p.devs["/dev/fd"].target == "/proc/self/fd"
    assert caps_from_mask("1") == {"CAP_CHOWN"}


def test_tap_parsing() -> None:
    tap = """TAP version 13
ok 1 - has expected hostname
  ---
  {"actual": "a"}
  ...
not ok 2 - mounts in order
  ---
  {"error": "bad"}
  ...
ok 3 # SKIP linux.sysctl not set
not ok 4 - todo thing # TODO later
1..4
"""
    a, planned, bail, orphans = parse_tap(tap)
    assert planned == 4 and bail is None and not orphans
    assert [x.ok for x in a] == [True, False, True, False]
    assert a[1].diagnostic == ['  {"error": "bad"}'] and a[1].failed
    assert a[2].skipped and not a[3].failed
    r = TapResult("t", "rt", 0, a, planned, bail, "", 0.1)
    assert r.status == "FAIL" and r.cell() == "FAIL 1/3 (1 skip)"
    # runtime-tools lifecycle tests: plan 1..0 and a bare YAML error block
    a, planned, bail, orphans = parse_tap('TAP version 13\n  ---\n  {\n    "error": "x"\n  }\n  ...\n1..0\n')
    assert a == [] and planned == 0 and any('"error"' in o for o in orphans)
    assert TapResult("t", "rt", 0, a, planned, bail, "", 0.1, orphans=orphans).status == "FAIL"
    # exited early: fewer assertions than planned
    a, planned, bail, orphans = parse_tap("1..3\nok 1 - a\n")
    assert TapResult("t", "rt", 1, a, planned, bail, "", 0.1).status == "ERROR"
