"""Optional features and bonuses in every report: "not implemented" is a verdict of its own
(never gating, never counted as failed), and a bonus's requirements are a group of their own,
in the summary line ("bonus: attempted, 3/4 passed"), JSON (validated), JUnit, CSV and the
batch's results, scored apart from the score, never gating."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from conformance import load_spec
from conformance._grades import Grade, RosterLine, bonus_score, score
from conformance._result import Bonus, Failure, RequirementResult, RunResult, Verdict
from conformance.batch import _grading
from conformance.reports import _csv, from_dict, report_validator, summary_line, to_dict
from conformance.reports._junit import to_element

FIGHT = load_spec("fight")
BONUS = [r.id for r in FIGHT.requirements if r.bonus]


def run_of(spec_name: str, verdicts: dict[str, Verdict], strict: bool = False) -> RunResult:
    """A run of `spec_name` where every requirement passed unless `verdicts` says."""
    spec = load_spec(spec_name)
    results = []
    for r in spec.requirements:
        v = verdicts.get(r.id, "pass")
        failures = [Failure(f"{r.id} wrong", "a", "b", "again")] if v == "fail" else []
        reason = {"not_implemented": f"no {r.id}", "not_run": "needs more"}.get(v, "")
        results.append(RequirementResult(r, v, reason, failures))
    return RunResult(spec, "target", strict, 0, "2026-01-01T00:00:00+00:00", 1.0, results,
                     rerun=f"conformance run {spec_name}")


def test_fight_marks_its_bonus_and_the_bonus_keeps_a_level() -> None:
    assert BONUS == ["FIGHT-11", "FIGHT-12", "FIGHT-13", "FIGHT-14"]
    assert all(FIGHT.by_id[r].level == "MUST" and FIGHT.by_id[r].optional for r in BONUS)
    assert FIGHT.by_id["FIGHT-11"].label == "MUST, bonus"
    assert load_spec("crawler-cached").by_id["CACHE-05"].optional  # a MAY
    assert not FIGHT.by_id["FIGHT-09"].optional  # a SHOULD is not optional


def test_bonus_group_and_summary_line() -> None:
    run = run_of("fight", {"FIGHT-14": "fail"})
    assert run.counts()["MUST"]["pass"] == 8  # the bonus's MUSTs are counted apart
    assert run.bonus() == Bonus("attempted", 3, 4, {
        "pass": 3, "fail": 1, "not_run": 0, "skipped": 0, "not_implemented": 0})
    line = summary_line(run)
    assert line.startswith("fight: PASS - MUST 8/8 passed; SHOULD 2/2 passed; "
                           "bonus: attempted, 3/4 passed (1 fail) ["), line
    assert run.passed and run.exit_code == 0
    assert run_of("fight", {"FIGHT-14": "fail"}, strict=True).exit_code == 0
    absent = run_of("fight", dict.fromkeys(BONUS, "not_implemented"))
    assert "; bonus: not attempted [" in summary_line(absent)
    unjudged = run_of("fight", dict.fromkeys(BONUS, "not_run"))
    assert "bonus: not judged, 0/4 passed (4 not run)" in summary_line(unjudged)
    assert run_of("credentials", {}).bonus() is None
    assert "bonus" not in summary_line(run_of("credentials", {}))


def test_not_implemented_in_the_summary_line_and_never_gating() -> None:
    run = run_of("crawler-cached", {"CACHE-05": "not_implemented"}, strict=True)
    assert run.passed
    assert "MAY 1/2 passed (1 not implemented)" in summary_line(run), summary_line(run)


def test_json_report_validates_and_reads_back() -> None:
    run = run_of("fight", {"FIGHT-11": "not_implemented", "FIGHT-12": "not_implemented",
                           "FIGHT-13": "not_implemented", "FIGHT-14": "not_implemented"})
    doc = to_dict(run)
    report_validator().validate(doc)
    assert doc["bonus"] == {"status": "not attempted", "passed": 0, "total": 4,
                            "counts": {"pass": 0, "fail": 0, "not_run": 0, "skipped": 0,
                                       "not_implemented": 4},
                            "summary": "not attempted"}
    entry = next(r for r in doc["requirements"] if r["id"] == "FIGHT-11")
    assert (entry["verdict"], entry["bonus"], entry["gating"], entry["reason"]) == (
        "not_implemented", True, False, "no FIGHT-11")
    again = from_dict(doc)
    assert [(r.requirement.id, r.verdict) for r in again.results] == [
        (r.requirement.id, r.verdict) for r in run.results]
    assert again.bonus() == run.bonus()
    plain = to_dict(run_of("credentials", {}))
    report_validator().validate(plain)
    assert plain["bonus"] is None


def test_junit_skips_what_is_not_implemented_and_groups_the_bonus() -> None:
    run = run_of("fight", {"FIGHT-14": "fail"}, strict=True)
    crawler = run_of("crawler-cached", {"CACHE-05": "not_implemented"}, strict=True)
    root = to_element([run, crawler])
    fight, cached = root.findall("testsuite")
    props = {p.get("name"): p.get("value") for p in fight.iter("property")}
    assert props["bonus"] == "attempted, 3/4 passed (1 fail)"
    assert fight.get("failures") == "0" and fight.get("errors") == "0"
    cases = {c.get("name", "").split()[0]: c for c in fight.iter("testcase")}
    assert cases["FIGHT-14"].get("classname") == "fight.bonus.MUST"
    assert cases["FIGHT-01"].get("classname") == "fight.MUST"
    skipped = cases["FIGHT-14"].find("skipped")
    assert skipped is not None and "MUST, bonus not met (does not gate)" in skipped.get(
        "message", "")
    case = next(c for c in cached.iter("testcase") if c.get("name", "").startswith("CACHE-05"))
    skipped = case.find("skipped")
    assert skipped is not None and skipped.get("message") == "not implemented: no CACHE-05"
    assert cached.get("failures") == "0"
    # crawler-cached's bonus is its cache expiry (CACHE-03), which passed here.
    assert {p.get("name"): p.get("value") for p in cached.iter("property")}["bonus"] == \
        "attempted, 1/1 passed"


def grade_of(student: str, run: RunResult | None, spec_name: str = "fight") -> Grade:
    spec = load_spec(spec_name)
    return Grade(RosterLine(2, student, spec_name, "cmd", "command"),
                 exit_code=None if run is None else run.exit_code, duration_s=1.0, report=run,
                 score=score(run, spec), bonus_score=bonus_score(run, spec), slug=student)


def test_batch_csv_and_results_carry_the_bonus_apart() -> None:
    grades = [grade_of("all", run_of("fight", {})),
              grade_of("none", run_of("fight", dict.fromkeys(BONUS, "not_implemented"))),
              grade_of("most", run_of("fight", {"FIGHT-13": "fail"})),
              grade_of("gone", None),
              grade_of("cred", run_of("credentials", {}), "credentials")]
    assert [g.score for g in grades] == [100.0, 100.0, 100.0, 0.0, 100.0]
    assert [g.bonus_score for g in grades] == [100.0, 0.0, 75.0, 0.0, None]
    table = _csv.rows(grades)
    head = table[0]
    assert head[:9] == ["student", "spec", "target", "score", "passed", "exit_code", "problem",
                        "bonus_score", "bonus"]
    assert [row[7:9] for row in table[1:]] == [
        ["100.0", "attempted, 4/4 passed"], ["0.0", "not attempted"],
        ["75.0", "attempted, 3/4 passed (1 fail)"], ["0.0", ""], ["", ""]]
    assert table[2][head.index("FIGHT-11")] == "not_implemented"
    doc = {"schema_version": 1, "roster": "r.csv", "seed": 0, "strict": False, "rate": 20,
           "jobs": 4, "started_at": "2026-01-01T00:00:00+00:00", "duration_s": 1.0,
           "students": [_grading.student_dict(g) for g in grades]}
    _grading.validate(doc)
    entries = {s["student"]: s for s in doc["students"]}
    assert (entries["none"]["bonus_score"], entries["none"]["bonus"]) == (0.0, "not attempted")
    assert entries["none"]["verdicts"]["FIGHT-12"] == "not_implemented"
    assert (entries["cred"]["bonus_score"], entries["cred"]["bonus"]) == (None, None)
    cells = [_grading._bonus_cell(g) for g in grades]
    assert cells == ["100.0", "0.0 (not attempted)", "75.0", "0.0", ""]


def test_a_junit_file_written_for_the_batch_parses(tmp_path: Path) -> None:
    from conformance.reports import write_junit

    path = tmp_path / "r.xml"
    write_junit([run_of("fight", dict.fromkeys(BONUS, "not_implemented"))], path)
    suite = ET.parse(path).getroot().find("testsuite")
    assert suite is not None and suite.get("skipped") == "4"
