"""The verdict model: what a run found, per requirement, and the exit code it implies.

Rules: a requirement fails when any of its checks failed; else it is "not run" when a check could
not run because something it needs failed; else it passes when a check passed; else it is
skipped. MUST always gates the exit code, SHOULD gates with --strict, MAY never does; a gating
requirement that failed or was not run makes the run fail.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from conformance._options import RunOptions, SpecOptions
from conformance._spec import Requirement, Spec

Verdict = Literal["pass", "fail", "not_run", "skipped"]
VERDICTS: tuple[Verdict, ...] = ("pass", "fail", "not_run", "skipped")

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3


@dataclass
class Failure:
    """One failed observation: what was expected, what came, and how to see it again."""

    message: str
    expected: str = ""
    actual: str = ""
    reproduce: str = ""
    check: str = ""


@dataclass
class RequirementResult:
    """The verdict on one requirement and the evidence behind it."""

    requirement: Requirement
    verdict: Verdict
    reason: str = ""
    failures: list[Failure] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def gating(self, strict: bool) -> bool:
        """Whether this requirement decides the exit code."""
        level = self.requirement.level
        return level == "MUST" or (strict and level == "SHOULD")


@dataclass
class RunResult:
    """Everything one `conformance run` of one spec against one target found."""

    spec: Spec
    target: str
    strict: bool
    seed: int
    started_at: str
    duration_s: float
    results: list[RequirementResult]
    rerun: str = ""
    error: str = ""
    options: RunOptions[SpecOptions] | None = None  # what the checks were given
    # How the target was kept apart from other runs and programs, in words ('' unknown).
    isolation: str = ""

    @property
    def passed(self) -> bool:
        """True when no gating requirement failed or went unchecked."""
        if self.error:
            return False
        return not any(
            r.gating(self.strict) and r.verdict in ("fail", "not_run") for r in self.results
        )

    @property
    def exit_code(self) -> int:
        """0 when passed, 1 when a gating requirement failed, 3 when the suite itself broke."""
        if self.error:
            return EXIT_INTERNAL
        return EXIT_OK if self.passed else EXIT_FAILED

    def counts(self) -> dict[str, dict[str, int]]:
        """Verdict counts per level."""
        table: dict[str, dict[str, int]] = {lvl: {v: 0 for v in VERDICTS}
                                            for lvl in ("MUST", "SHOULD", "MAY")}
        for r in self.results:
            table[r.requirement.level][r.verdict] += 1
        return table

    def failed_ids(self, levels: tuple[str, ...] = ("MUST", "SHOULD", "MAY")) -> set[str]:
        """Ids of the failed requirements of the given levels."""
        return {
            r.requirement.id for r in self.results
            if r.verdict == "fail" and r.requirement.level in levels
        }
