"""What grading one roster line gave, as every batch report reads it, and the score rule.

Rules: a roster line names a student, a spec and a target (a base URL, or a command that
starts the server or is the program), with extra `conformance run` options; its grade holds the
run's own report, read back from its JSON (conformance/schemas/report.schema.json) into a
`RunResult`, or the reason there is none (the run was stopped at the time bound, or broke). The
score is the weighted share of the spec's MUST and SHOULD requirements that passed (MAY never
counts, nor does a bonus's), 0 to 100; a line with no report scores 0. The bonus score is the
same share of the bonus's MUST and SHOULD requirements, apart: a spec with no bonus has none
(None), a bonus not attempted scores 0, and it never moves the score.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from conformance._result import Failure, RequirementResult, RunResult, Verdict
from conformance._spec import Spec

SCORED_LEVELS = ("MUST", "SHOULD")


@dataclass(frozen=True)
class RosterLine:
    """One line of the roster: who, which spec, what to check."""

    line: int  # its line number in the CSV file, for messages
    student: str
    spec: str
    target: str  # a base URL, or a command line
    kind: Literal["url", "command"]
    args: tuple[str, ...] = ()  # extra `conformance run` options, e.g. ("--service", "w=URL")


@dataclass
class Grade:
    """The outcome of one roster line."""

    entry: RosterLine
    exit_code: int | None  # the run's exit code; None when it was stopped at the time bound
    duration_s: float
    report: RunResult | None  # the run's report; None when it gave none
    problem: str = ""  # why there is no report, or what went wrong around the run
    junit: Path | None = None  # the run's JUnit file, when written
    score: float = 0.0
    bonus_score: float | None = None  # None when the spec has no bonus
    slug: str = ""  # a file-name-safe, unique name for the student's page
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """Every gating requirement passed (the run's exit code was 0)."""
        return self.exit_code == 0 and self.report is not None

    def verdicts(self) -> dict[str, Verdict]:
        """Requirement id -> verdict ("pass", "fail", "not_run", "skipped", "not_implemented");
        {} without report."""
        if self.report is None:
            return {}
        return {r.requirement.id: r.verdict for r in self.report.results}

    def failures(self) -> list[tuple[RequirementResult, Failure]]:
        """(requirement result, failure) for every failure of the report, in spec order."""
        if self.report is None:
            return []
        return [(r, f) for r in self.report.results for f in r.failures]


def _share(report: RunResult | None, spec: Spec, bonus: bool) -> float | None:
    """The weighted share (0-100) of the spec's MUST and SHOULD requirements, the bonus's or
    the others, the report passed; None when the spec has no such requirement."""
    scored = [r for r in spec.requirements if r.level in SCORED_LEVELS and r.bonus == bonus]
    total = sum(r.weight for r in scored)
    if not total:
        return None
    if report is None:
        return 0.0
    verdicts = {r.requirement.id: r.verdict for r in report.results}
    won = sum(r.weight for r in scored if verdicts.get(r.id) == "pass")
    return round(100.0 * won / total, 1)


def score(report: RunResult | None, spec: Spec) -> float:
    """The weighted share (0-100) of the spec's MUST and SHOULD requirements the report passed,
    bonus requirements left out.

    A requirement the run did not report (a run limited with --only) counts as not passed.
    """
    return _share(report, spec, bonus=False) or 0.0


def bonus_score(report: RunResult | None, spec: Spec) -> float | None:
    """The weighted share (0-100) of the spec's bonus MUST and SHOULD requirements the report
    passed, as `score` counts them; None when the spec has no bonus. A bonus not attempted
    scores 0."""
    return _share(report, spec, bonus=True)


def points(spec: Spec, total: int = 100, *, bonus: bool = False) -> dict[str, int]:
    """Whole points for each scored requirement (MUST and SHOULD; a bonus's apart, with
    `bonus`), `total` shared by weight, as `score` weighs them (largest remainders round up, so
    they add up to `total` exactly); a requirement whose share rounds to 0 gets 0. MAY none."""
    scored = [r for r in spec.requirements if r.level in SCORED_LEVELS and r.bonus == bonus]
    weights = sum(r.weight for r in scored)
    if not scored or not weights or total <= 0:
        return {r.id: 0 for r in scored}
    exact = {r.id: total * r.weight / weights for r in scored}
    out = {rid: int(share) for rid, share in exact.items()}
    left = total - sum(out.values())
    for rid in sorted(exact, key=lambda i: exact[i] - out[i], reverse=True)[:left]:
        out[rid] += 1
    return out


def slugs(students: list[str]) -> list[str]:
    """A file-name-safe name per student, unique in the list, stable for the same list."""
    out: list[str] = []
    seen: dict[str, int] = {}
    for name in students:
        ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
        base = re.sub(r"[^A-Za-z0-9]+", "-", ascii_name).strip("-").lower() or "student"
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.append(base if n == 0 else f"{base}-{n + 1}")
    return out
