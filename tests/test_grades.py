"""The score rule and the students' page names: weights count, MAY never does, a bonus is
scored apart, a missing report scores 0, and every student gets a name of their own."""

from __future__ import annotations

import dataclasses

from conformance import load_spec
from conformance._grades import bonus_score, points, score, slugs
from conformance._result import RequirementResult, RunResult, Verdict
from conformance._spec import Requirement


def report_of(verdicts: dict[str, Verdict]) -> RunResult:
    """A run's result with these verdicts (the requirements' texts do not matter to a score)."""
    results = [RequirementResult(Requirement(rid, "MUST", "", ""), v)
               for rid, v in verdicts.items()]
    return RunResult(spec=load_spec("credentials"), target="t", strict=False, seed=0,
                     started_at="", duration_s=0.0, results=results)


def test_score_is_the_weighted_share_of_must_and_should_passed() -> None:
    spec = load_spec("credentials")
    scored = [r for r in spec.requirements if r.level in ("MUST", "SHOULD")]
    heavy = scored[0].id
    weighted = dataclasses.replace(spec, requirements=tuple(
        dataclasses.replace(r, weight=3.0) if r.id == heavy else r for r in spec.requirements),
        by_id={})
    everything: dict[str, Verdict] = {r.id: "pass" for r in spec.requirements}
    assert score(report_of(everything), weighted) == 100.0
    only_heavy_failed = everything | {heavy: "fail"}
    total = len(scored) - 1 + 3.0
    assert score(report_of(only_heavy_failed), weighted) == round(100 * (total - 3) / total, 1)
    assert score(report_of(only_heavy_failed), spec) == round(
        100 * (len(scored) - 1) / len(scored), 1)


def test_may_never_counts_and_unreported_is_not_passed() -> None:
    spec = load_spec("crawler")
    mays = [r.id for r in spec.requirements if r.level == "MAY"]
    assert mays, "crawler has MAY requirements"
    everything: dict[str, Verdict] = {r.id: "pass" for r in spec.requirements}
    assert score(report_of(everything | {m: "fail" for m in mays}), spec) == 100.0
    first = spec.requirements[0].id
    assert score(report_of({k: v for k, v in everything.items() if k != first}), spec) < 100
    assert score(None, spec) == 0.0


def test_every_student_gets_a_page_name_of_their_own() -> None:
    names = ["Ada Lovelace", "ada lovelace", "Ада", "<script>", "", "A/B"]
    got = slugs(names)
    assert len(set(got)) == len(got)
    assert got[0] == "ada-lovelace" and got[1] == "ada-lovelace-2"
    assert all(s and all(c.isalnum() or c == "-" for c in s) for s in got)
    assert slugs(names) == got


def test_the_bonus_is_scored_apart_and_never_moves_the_score() -> None:
    fight = load_spec("fight")
    bonus = [r.id for r in fight.requirements if r.bonus]
    everything: dict[str, Verdict] = {r.id: "pass" for r in fight.requirements}
    assert (score(report_of(everything), fight), bonus_score(report_of(everything), fight)) == (
        100.0, 100.0)
    absent = everything | dict.fromkeys(bonus, "not_implemented")
    assert (score(report_of(absent), fight), bonus_score(report_of(absent), fight)) == (
        100.0, 0.0)
    one_failed = everything | {bonus[-1]: "fail"}
    assert bonus_score(report_of(one_failed), fight) == 75.0
    assert score(report_of(one_failed), fight) == 100.0
    assert (score(None, fight), bonus_score(None, fight)) == (0.0, 0.0)
    assert bonus_score(report_of({}), load_spec("credentials")) is None  # no bonus at all


def test_points_share_a_total_by_weight_in_whole_points() -> None:
    spec = load_spec("uptime")  # 15 MUSTs and SHOULDs of weight 1: 100 does not divide
    got = points(spec, 100)
    scored = [r.id for r in spec.requirements if r.level in ("MUST", "SHOULD")]
    assert list(got) == scored and sum(got.values()) == 100
    assert set(got.values()) == {6, 7}  # the largest remainders got the odd points
    weighted = dataclasses.replace(spec, requirements=tuple(
        dataclasses.replace(r, weight=3.0) if r.id == "UP-01" else r for r in spec.requirements))
    heavy = points(weighted, 100)
    assert heavy["UP-01"] == max(heavy.values()) and sum(heavy.values()) == 100
    assert points(load_spec("fight"), 8, bonus=True) == {
        r.id: 2 for r in load_spec("fight").requirements if r.bonus}
    assert points(spec, 0) == dict.fromkeys(scored, 0)
