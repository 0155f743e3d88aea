"""Expectations file, verdicts (candidate vs reference), table and JSON output."""

from __future__ import annotations

import fnmatch
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .core import ERROR, FAIL, PASS, SKIP, Case, Result

BAD = (FAIL, ERROR)


@dataclass
class Expectation:
    case: str
    runtime: str
    reason: str


def load_expectations(path: Path | None) -> list[Expectation]:
    """TOML (or JSON) list of expected failures:

        [[expected-failure]]
        case = "linux.seccomp"       # case id (fnmatch pattern allowed)
        runtime = "pyoci"            # optional fnmatch on the runtime name, default "*"
        reason = "why this is acceptable for now"
    """
    if path is None or not path.exists():
        return []
    text = path.read_text()
    data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    out = []
    for i, e in enumerate(data.get("expected-failure", [])):
        if not isinstance(e, dict) or not e.get("case") or not str(e.get("reason", "")).strip():
            raise ValueError(f"{path}: expected-failure #{i + 1} needs `case` and a non-empty `reason`")
        out.append(Expectation(str(e["case"]), str(e.get("runtime", "*")), str(e["reason"]).strip()))
    return out


def find_expectation(exps: list[Expectation], case_id: str, runtime: str) -> Expectation | None:
    for e in exps:
        if fnmatch.fnmatchcase(case_id, e.case) and fnmatch.fnmatchcase(runtime, e.runtime):
            return e
    return None


@dataclass
class Verdict:
    case: str
    runtime: str
    kind: str      # ok, regression, expected, better, both-fail, xpass, skip, fail (no reference)
    note: str = ""


@dataclass
class Report:
    cases: list[Case]
    results: dict[str, dict[str, Result]]
    candidates: list[str]
    reference: str | None
    expectations: list[Expectation] = field(default_factory=list)

    def verdict(self, case: Case, rt: str) -> Verdict:
        r = self.results[rt].get(case.id)
        ref = self.results[self.reference].get(case.id) if self.reference else None
        exp = find_expectation(self.expectations, case.id, rt)
        if r is None:
            return Verdict(case.id, rt, "skip", "not run")
        if r.status == SKIP:
            return Verdict(case.id, rt, "skip", r.message)
        if r.status == PASS:
            if exp is not None:
                return Verdict(case.id, rt, "xpass", "passes: remove it from the expectations file")
            if ref is not None and ref.status in BAD:
                return Verdict(case.id, rt, "better", f"{rt} passes, {self.reference} fails")
            return Verdict(case.id, rt, "ok")
        # candidate fails
        if exp is not None:
            return Verdict(case.id, rt, "expected", f"expected: {exp.reason}")
        if ref is None:
            return Verdict(case.id, rt, "fail", "fails")
        if ref.status == PASS:
            return Verdict(case.id, rt, "regression", f"{rt} fails, {self.reference} passes")
        if ref.status == SKIP:
            return Verdict(case.id, rt, "fail", f"{self.reference} skipped it")
        return Verdict(case.id, rt, "both-fail", f"{self.reference} fails too")

    def verdicts(self) -> list[Verdict]:
        return [self.verdict(c, rt) for c in self.cases for rt in self.candidates]

    def gating(self) -> list[Verdict]:
        """Verdicts that make the run fail: a candidate fails where the reference passes
        (or, without a reference, fails at all) and no expectation covers it."""
        return [v for v in self.verdicts() if v.kind in ("regression", "fail")]

    # ------------------------------------------------------------------ output
    def table(self, verbose: bool = False, width_title: int = 58) -> str:
        names = self.candidates + ([self.reference] if self.reference else [])
        rows = []
        for c in self.cases:
            cells = [self.results[n][c.id].status if c.id in self.results[n] else "-" for n in names]
            notes = []
            for rt in self.candidates:
                v = self.verdict(c, rt)
                if v.kind in ("regression", "expected", "better", "xpass", "fail"):
                    tag = {"regression": "REGRESSION", "expected": "xfail", "better": "ref-fails",
                           "xpass": "XPASS", "fail": "FAIL"}[v.kind]
                    notes.append(f"{tag}" + (f"({rt})" if len(self.candidates) > 1 else ""))
            title = c.title if len(c.title) <= width_title else c.title[:width_title - 1] + "…"
            rows.append([c.id, c.level, c.section, title, *cells, " ".join(notes)])
        header = ["case", "level", "section", "requirement", *names, "note"]
        widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
        lines = ["  ".join(str(h).ljust(w) for h, w in zip(header, widths)).rstrip(),
                 "  ".join("-" * w for w in widths)]
        for r in rows:
            lines.append("  ".join(str(x).ljust(w) for x, w in zip(r, widths)).rstrip())
        lines.append("")
        for n in names:
            counts = {s: 0 for s in (PASS, FAIL, ERROR, SKIP)}
            for res in self.results[n].values():
                counts[res.status] += 1
            lines.append(f"{n}: {counts[PASS]} passed, {counts[FAIL]} failed, {counts[ERROR]} errors, "
                         f"{counts[SKIP]} skipped" + (" (reference)" if n == self.reference else ""))
        # details of every non-pass
        details = []
        for n in names:
            for c in self.cases:
                r = self.results[n].get(c.id)
                if r is None or r.status == PASS:
                    continue
                details.append(f"[{n}] {c.id} {r.status}: {r.message}")
                details.append(f"    {c.level} {c.url}")
                if verbose and r.log:
                    details += ["    | " + line for entry in r.log for line in entry.splitlines()]
        if details:
            lines += ["", "Details:"] + details
        notes = [v for v in self.verdicts() if v.kind in ("better", "xpass", "expected")]
        if notes:
            lines += ["", "Notes:"] + [f"  {v.runtime} {v.case}: {v.note}" for v in notes]
        gate = self.gating()
        lines.append("")
        if gate:
            lines.append("UNEXPECTED FAILURES (fail here, pass on the reference, not in the expectations file):")
            lines += [f"  {v.runtime} {v.case}: {v.note}" for v in gate]
        else:
            lines.append("OK: no unexpected failures")
        return "\n".join(lines)

    def as_json(self) -> str:
        out = {
            "candidates": self.candidates,
            "reference": self.reference,
            "cases": [],
            "unexpected_failures": [v.__dict__ for v in self.gating()],
        }
        for c in self.cases:
            entry = {"id": c.id, "section": c.section, "level": c.level, "title": c.title,
                     "url": c.url, "results": {}, "verdicts": {}}
            for n, res in self.results.items():
                r = res.get(c.id)
                if r is not None:
                    entry["results"][n] = {"status": r.status, "message": r.message,
                                           "duration": round(r.duration, 3), "log": r.log}
            for rt in self.candidates:
                v = self.verdict(c, rt)
                entry["verdicts"][rt] = {"kind": v.kind, "note": v.note}
            out["cases"].append(entry)
        return json.dumps(out, indent=2)
