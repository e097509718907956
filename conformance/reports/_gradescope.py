"""The Gradescope results format (results.json of an autograder): a test per requirement, shaped
as `schemas/gradescope.schema.json` says (Gradescope's documented format).

Rules: the points are whole and shared as `conformance batch` weighs them
(conformance/_grades.py `points`): `points_total` over the MUST and SHOULD requirements by
weight; a MAY has max_score 0. A bonus's requirements are extra credit: max_score 0 and, when
passed, a score of their share of the bonus's points, which are worth what the same weight of
the other requirements is worth (fight: 10 requirements share 100 points, so its 4 bonus
requirements give up to 40 more). A test scores its max_score (or its bonus points) when its
verdict is "pass", else 0; the top-level score is the sum of the tests'. A failure reads as
the JUnit report writes it (message, expected, actual, reproducer), with the re-run line; a run
whose suite broke is one failed test saying why. Several runs (`run all`) each share
`points_total`, their tests' names led by the spec's.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from conformance._grades import SCORED_LEVELS, points
from conformance._result import WORDS, RequirementResult, RunResult
from conformance._spec import Spec
from conformance.reports._junit import _details
from conformance.reports._terminal import summary_line

NAME_LENGTH = 100  # a test's name is a line of Gradescope's list; the output says the rest


def bonus_points(spec: Spec, points_total: int = 100) -> int:
    """The extra credit a spec's bonus is worth: what the same weight of its MUST and SHOULD
    requirements is worth out of `points_total` (0 without a bonus)."""
    weights = {b: sum(r.weight for r in spec.requirements
                      if r.level in SCORED_LEVELS and r.bonus == b) for b in (False, True)}
    if not weights[True] or not weights[False]:
        return 0
    return round(points_total * weights[True] / weights[False])


def _shorten(text: str, length: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= length else text[:length - 3].rstrip() + "..."


def _output(result: RunResult, r: RequirementResult) -> str:
    gate = "" if r.verdict not in ("fail", "not_run") or r.gating(result.strict) else \
        " (does not gate)"
    lines = [f"verdict: {WORDS[r.verdict]}{gate}", "", r.requirement.statement]
    if r.reason and r.verdict != "fail":
        lines += ["", f"{WORDS[r.verdict]}: {r.reason}"]
    if r.failures:
        lines += ["", _details(r)]
        if result.rerun:
            lines += ["", f"re-run: {result.rerun} --only {shlex.quote(r.requirement.id)}"]
    if r.notes:
        lines += ["", *r.notes]
    return "\n".join(lines)


def _tests(result: RunResult, points_total: int, prefix: str) -> list[dict[str, Any]]:
    spec = result.spec
    if result.error:
        output = result.error + (f"\n\nthe target's own output: {result.target_output}"
                                 if result.target_output else "")
        return [{"name": f"{prefix}{spec.name}: the suite could not run", "score": 0,
                 "max_score": points_total, "status": "failed", "output": output,
                 "output_format": "text", "visibility": "visible", "tags": [spec.name]}]
    base = points(spec, points_total)
    extra = points(spec, bonus_points(spec, points_total), bonus=True)
    tests = []
    for r in result.results:
        req = r.requirement
        passed = r.verdict == "pass"
        if req.bonus:
            max_score, won = 0, extra.get(req.id, 0) if passed else 0
        else:
            max_score = base.get(req.id, 0)
            won = max_score if passed else 0
        label = f"bonus {req.level}" if req.bonus else req.level
        head = f"{prefix}{req.id} {label}: "
        tests.append({
            "name": head + _shorten(req.statement, max(20, NAME_LENGTH - len(head))),
            "score": won,
            "max_score": max_score,
            "status": "passed" if passed else "failed",
            "output": _output(result, r),
            "output_format": "text",
            "visibility": "visible",
            "tags": [spec.name, req.level.lower(), r.verdict] + (["bonus"] if req.bonus else []),
        })
    return tests


def to_results(results: list[RunResult], points_total: int = 100) -> dict[str, Any]:
    """Gradescope's results.json of these runs, as plain data."""
    tests: list[dict[str, Any]] = []
    for result in results:
        tests += _tests(result, points_total, f"{result.spec.name} " if len(results) > 1 else "")
    for number, test in enumerate(tests, start=1):
        test["number"] = str(number)
    lines = [summary_line(result) for result in results]
    if any(t["score"] and not t["max_score"] for t in tests):
        lines.append("Bonus requirements are extra credit: they add to the score when passed.")
    return {
        "score": sum(t["score"] for t in tests),
        "execution_time": round(sum(r.duration_s for r in results)),
        "output": "\n".join(lines),
        "output_format": "text",
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": tests,
    }


def write(results: list[RunResult], path: Path, points_total: int = 100) -> None:
    """Write Gradescope's results.json."""
    path.write_text(json.dumps(to_results(results, points_total), indent=2, ensure_ascii=False)
                    + "\n", encoding="utf-8")
