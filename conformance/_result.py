"""The verdict model: what a run found, per requirement, and the exit code it implies.

Rules: a requirement fails when any of its checks failed; else an optional one (a MAY, or a
bonus's) is "not implemented" when a check found its feature absent, or it needs one that is;
else it is "not run" when a check could not run because something it needs failed; else it
passes when a check passed; else it is skipped. MUST always gates the exit code, SHOULD gates
with --strict, MAY never does, nor does any bonus requirement, whatever its level; a gating
requirement that failed or was not run makes the run fail ("not implemented" never gates: only
an optional requirement gets it). Bonus requirements are counted as a group of their own, not
with their level.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from conformance._options import RunOptions, SpecOptions
from conformance._spec import Requirement, Spec

Verdict = Literal["pass", "fail", "not_run", "skipped", "not_implemented"]
VERDICTS: tuple[Verdict, ...] = ("pass", "fail", "not_run", "skipped", "not_implemented")
# A verdict in words, as every report spells it.
WORDS: dict[Verdict, str] = {"pass": "pass", "fail": "fail", "not_run": "not run",
                             "skipped": "skipped", "not_implemented": "not implemented"}
BonusStatus = Literal["attempted", "not attempted", "not judged"]

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
        """Whether this requirement decides the exit code (a bonus's never does)."""
        if self.requirement.bonus:
            return False
        level = self.requirement.level
        return level == "MUST" or (strict and level == "SHOULD")


@dataclass(frozen=True)
class Bonus:
    """How a run did on the bonus requirements of its spec: whether the bonus was attempted,
    and how many of its requirements passed."""

    status: BonusStatus
    passed: int
    total: int
    counts: dict[Verdict, int]

    @staticmethod
    def of(results: list[RequirementResult]) -> Bonus | None:
        """The bonus of these results; None when none of them is a bonus's.

        Attempted: something of it was judged (passed or failed). Not attempted: its feature
        was found absent (every verdict of it that says anything is "not implemented"). Not
        judged: neither, as when what it needs failed or it was skipped.
        """
        mine = [r for r in results if r.requirement.bonus]
        if not mine:
            return None
        counts: dict[Verdict, int] = {v: 0 for v in VERDICTS}
        for r in mine:
            counts[r.verdict] += 1
        status: BonusStatus = (
            "attempted" if counts["pass"] or counts["fail"]
            else "not attempted" if counts["not_implemented"] else "not judged")
        return Bonus(status, counts["pass"], len(mine), counts)

    def words(self) -> str:
        """`attempted, 2/3 passed (1 fail)`, `not attempted`, `not judged, 0/4 passed (4 not
        run)`."""
        if self.status == "not attempted":
            return self.status
        others = ", ".join(f"{n} {WORDS[v]}" for v, n in self.counts.items()
                           if v != "pass" and n)
        return (f"{self.status}, {self.passed}/{self.total} passed"
                + (f" ({others})" if others else ""))


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
    # A started server that did not start or did not last: how it ended and its output (a
    # traceback), shown once at the top of a report; failures and reasons say it in a line.
    target_output: str = ""
    # What the sandbox's limits stopped during the run, each once ('stopped: memory limit
    # (1024 MB)'): shown at the top of a report and in the batch's matrix.
    stopped: list[str] = field(default_factory=list)

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

    def counts(self) -> dict[str, dict[Verdict, int]]:
        """Verdict counts per level, bonus requirements apart (`bonus()`)."""
        table: dict[str, dict[Verdict, int]] = {lvl: {v: 0 for v in VERDICTS}
                                            for lvl in ("MUST", "SHOULD", "MAY")}
        for r in self.results:
            if not r.requirement.bonus:
                table[r.requirement.level][r.verdict] += 1
        return table

    def bonus(self) -> Bonus | None:
        """How the run did on the bonus; None when it judged no bonus requirement."""
        return Bonus.of(self.results)

    def failed_ids(self, levels: tuple[str, ...] = ("MUST", "SHOULD", "MAY")) -> set[str]:
        """Ids of the failed requirements of the given levels."""
        return {
            r.requirement.id for r in self.results
            if r.verdict == "fail" and r.requirement.level in levels
        }
