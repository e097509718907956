"""`conformance batch`: a roster graded into results.json, results.csv and JUnit files, the exit
code saying whether every line passed, a stuck target stopped at its bound while the others
finish, the same verdicts on a re-run, and roster mistakes reported as usage errors by line."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from conformance import batch as _batch
from conformance import load_spec
from conformance._grades import Grade, RosterLine
from conformance._result import RequirementResult, RunResult, Verdict
from conformance._target import free_port
from conformance.batch import _grading
from conformance.reports import _csv as _report_csv
from conformance.reports import report_validator
from tests.conftest import HARD_LIMIT, PY, ROOT, _env

FAST = ("--fuzz-seconds", "1", "--fuzz-examples", "5")
BOUND = 25  # the stuck line's time bound: room for the others to finish on a busy machine (the
# tests run in parallel)
REFERENCE = f"{PY} reference/credentials.py --port {{port}}"
TWIN = f"{PY} -m fixtures credentials wrong-key --port {{port}}"
CORRECT_TWIN = f"{PY} -m fixtures credentials charset-utf8 --port {{port}}"


@dataclass
class Batch:
    """What one `conformance batch` did."""

    code: int
    stdout: str
    stderr: str
    wall: float
    out: Path

    def results(self) -> dict[str, Any]:
        return json.loads((self.out / "results.json").read_text(encoding="utf-8"))

    def students(self) -> dict[str, dict[str, Any]]:
        return {s["student"]: s for s in self.results()["students"]}


def write_roster(path: Path, rows: list[list[str]],
                 header: tuple[str, ...] = ("student", "spec", "target", "args")) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([list(header), *rows])
    return path


def batch(roster: Path, out: Path, *args: str) -> Batch:
    t0 = time.monotonic()
    done = subprocess.run([PY, "-m", "conformance", "batch", str(roster), "--out", str(out),
                           *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=HARD_LIMIT, env={**_env(), "COLUMNS": "200"})
    return Batch(done.returncode, done.stdout, done.stderr, time.monotonic() - t0, out)


@pytest.fixture(scope="module")
def class_roster(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A roster of four: our reference, a broken twin, a URL nothing answers at, and a command
    that never listens (it writes its pid, so the test can see it was stopped)."""
    tmp = tmp_path_factory.mktemp("class")
    marker = tmp / "stuck.pid"
    stuck = (f'{PY} -c "import os, pathlib, time; pathlib.Path(r\'{marker}\')'
             f'.write_text(str(os.getpid())); time.sleep(60)" {{port}}')
    roster = write_roster(tmp / "roster.csv", [
        ["Ada Reference", "credentials", REFERENCE, ""],
        ["Ben Twin", "credentials", TWIN, ""],
        ["Cy Gone", "credentials", f"http://127.0.0.1:{free_port()}/", ""],
        # Outside the sandbox: its pid file is written where the teacher's files are, which
        # a sandboxed target may not (tests/test_hostile.py shows what the sandbox keeps).
        ["Di Stuck", "credentials", stuck, "--startup-timeout 60 --no-sandbox"],
    ])
    return roster, marker


@pytest.fixture(scope="module")
def graded(class_roster: tuple[Path, Path]) -> Batch:
    roster, _ = class_roster
    return batch(roster, roster.parent / "grading", "--target-timeout", str(BOUND), *FAST)


def test_exit_1_when_one_fails_and_results_validate(graded: Batch) -> None:
    assert graded.code == 1, graded.stdout + graded.stderr
    results = graded.results()
    _batch.validate(results)
    assert results["seed"] == 0 and results["rate"] == 20 and results["jobs"] == 4
    students = graded.students()
    assert list(students) == ["Ada Reference", "Ben Twin", "Cy Gone", "Di Stuck"]
    ada, ben, cy, di = students.values()
    assert (ada["exit_code"], ada["passed"], ada["score"], ada["problem"]) == (0, True, 100.0, "")
    assert ada["report"]["rerun"].startswith("conformance run credentials --command")
    assert ben["exit_code"] == 1 and not ben["passed"] and 0 < ben["score"] < 100
    assert ben["verdicts"]["CRED-04"] == "fail"
    assert cy["exit_code"] == 1 and cy["score"] == 0 and cy["verdicts"]["CRED-01"] == "fail"
    assert di["exit_code"] is None and di["report"] is None and di["verdicts"] == {}
    assert di["problem"] == f"stopped at the time bound of {BOUND} s"
    assert [s["slug"] for s in students.values()] == ["ada-reference", "ben-twin", "cy-gone",
                                                      "di-stuck"]
    for name in ("Ada Reference", "Ben Twin", "Cy Gone", "Di Stuck"):
        assert name in graded.stdout  # the summary table


def test_csv_has_a_column_per_requirement_and_the_verdicts(graded: Batch) -> None:
    with (graded.out / "results.csv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    ids = [r.id for r in load_spec("credentials").requirements]
    assert rows[0] == [*_report_csv.FIXED_COLUMNS, *ids]
    students = graded.students()
    assert [r[0] for r in rows[1:]] == list(students)
    for row in rows[1:]:
        entry = students[row[0]]
        assert row[3] == f"{entry['score']:.1f}"
        assert row[4] == str(entry["passed"]).lower()
        fixed = len(_report_csv.FIXED_COLUMNS)
        assert row[fixed:] == [entry["verdicts"].get(rid, "") for rid in ids]
        # credentials has no bonus: its bonus columns stay empty
        assert row[fixed - 2:fixed] == ["", ""]
    fixed = len(_report_csv.FIXED_COLUMNS)
    assert rows[4][5] == "" and rows[4][fixed:] == [""] * len(ids)  # stopped: no exit code/report


def test_junit_per_student_parses_and_says_why(graded: Batch) -> None:
    for slug in ("ada-reference", "ben-twin", "cy-gone", "di-stuck"):
        root = ET.parse(graded.out / "junit" / f"{slug}.xml").getroot()
        assert root.tag == "testsuites"
    ada = ET.parse(graded.out / "junit" / "ada-reference.xml").getroot().find("testsuite")
    assert ada is not None and ada.get("failures") == "0"
    ben = ET.parse(graded.out / "junit" / "ben-twin.xml").getroot().find("testsuite")
    assert ben is not None and ben.get("failures") != "0"
    stuck = ET.parse(graded.out / "junit" / "di-stuck.xml").getroot()
    failure = stuck.find("testsuite/testcase/failure")
    assert failure is not None and "time bound" in failure.get("message", "")


def test_each_runs_own_report_is_kept_with_the_results(graded: Batch) -> None:
    # Its reproducers may name request bodies beside it (SLUG.bodies/): it outlives the batch.
    for slug in ("ada-reference", "ben-twin", "cy-gone"):
        report = json.loads((graded.out / "reports" / f"{slug}.json").read_text())
        report_validator().validate(report)
    assert not (graded.out / "reports" / "di-stuck.json").exists()  # stopped: no report


def test_html_index_is_written(graded: Batch) -> None:
    try:
        import conformance.reports._html  # noqa: F401
    except ModuleNotFoundError:
        pytest.skip("conformance.reports._html is not there yet")
    assert (graded.out / "index.html").is_file()


def test_stuck_target_is_stopped_at_its_bound_while_the_others_finish(
        graded: Batch, class_roster: tuple[Path, Path]) -> None:
    results = graded.results()
    durations = [s["duration_s"] for s in results["students"]]
    stuck = graded.students()["Di Stuck"]
    assert BOUND <= stuck["duration_s"] < BOUND + _grading.STOP_GRACE + 5
    assert all(s["report"] is not None for s in results["students"] if s["student"] != "Di Stuck")
    # They ran side by side: one after another, the batch would take the sum of their times
    # at least; side by side, the others' time hides under the stuck one's (a share of the
    # sum would not do: the others take seconds, the stuck one its whole bound).
    others = sum(durations) - stuck["duration_s"]
    assert results["duration_s"] < sum(durations) - others / 2
    # The command the stopped run had started is gone too.
    _, marker = class_roster
    pid = int(marker.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_rerun_gives_the_same_verdicts(graded: Batch, class_roster: tuple[Path, Path]) -> None:
    roster, _ = class_roster
    again = batch(roster, roster.parent / "again", "--target-timeout", str(BOUND), *FAST)
    assert again.code == graded.code

    def matrix(b: Batch) -> list[tuple[str, float, dict[str, str]]]:
        return [(s["student"], s["score"], s["verdicts"]) for s in b.results()["students"]]
    assert matrix(again) == matrix(graded)


def test_exit_0_when_every_line_passes(tmp_path: Path) -> None:
    roster = write_roster(tmp_path / "roster.csv", [  # the columns in another order
        [REFERENCE, "credentials", "Ada", ""],
        [CORRECT_TWIN, "credentials", "Eve", "--timeout 5"],
    ], header=("target", "spec", "student", "args"))
    done = batch(roster, tmp_path / "out", "--jobs", "2", "--seed", "7", *FAST)
    assert done.code == 0, done.stdout + done.stderr
    results = done.results()
    assert results["seed"] == 7
    ada, eve = results["students"]
    assert (ada["student"], ada["score"], ada["passed"]) == ("Ada", 100.0, True)
    # Eve misses a SHOULD (CRED-09): it costs score, but only --strict makes it gate.
    assert (eve["student"], eve["passed"], eve["verdicts"]["CRED-09"]) == ("Eve", True, "fail")
    assert 0 < eve["score"] < 100
    assert all(s["report"]["seed"] == 7 for s in results["students"])


@pytest.mark.parametrize(("rows", "header", "message"), [
    ([["Ada", "credentials", REFERENCE], ["Ben", "no-such-spec", REFERENCE]],
     ("student", "spec", "target"), "roster line 3: unknown spec 'no-such-spec'"),
    ([["Ada", REFERENCE]], ("student", "target"), "roster line 1: the header has no column spec"),
    ([["Ada", "credentials", REFERENCE], ["Ada", "credentials", TWIN]],
     ("student", "spec", "target"), "roster line 3: Ada / credentials is already on line 2"),
])
def test_roster_mistakes_exit_2_with_the_line(tmp_path: Path, rows: list[list[str]],
                                              header: tuple[str, ...], message: str) -> None:
    roster = write_roster(tmp_path / "roster.csv", rows, header=header)
    done = batch(roster, tmp_path / "out")
    assert done.code == 2, done.stdout + done.stderr
    assert message in " ".join(done.stderr.split())
    assert not (tmp_path / "out").exists()


def test_missing_roster_exits_2(tmp_path: Path) -> None:
    done = batch(tmp_path / "nowhere.csv", tmp_path / "out")
    assert done.code == 2 and "no such file" in done.stderr


# -- in-process: the roster rules and the CSV columns ---------------------------------------


def test_roster_skips_blanks_and_comments_and_splits_args(tmp_path: Path) -> None:
    roster = tmp_path / "roster.csv"
    roster.write_text(
        "# grading week 3\n"
        "\n"
        "Target,Student,Spec,Args\n"
        f"http://127.0.0.1:5000/,Ada,pipeline,--service writer=http://127.0.0.1:5003/\n"
        "# Ben is ill\n"
        "\n"
        f"\"{PY} client.py --port {{port}}\",Ben,crawl-client,\n", encoding="utf-8")
    ada, ben = _batch.read_roster(roster)
    assert (ada.line, ada.student, ada.spec, ada.kind) == (4, "Ada", "pipeline", "url")
    assert ada.args == ("--service", "writer=http://127.0.0.1:5003/")
    assert (ben.line, ben.kind, ben.args) == (7, "command", ())
    assert ben.target == f"{PY} client.py --port {{port}}"


@pytest.mark.parametrize(("row", "message"), [
    (["", "credentials", REFERENCE, ""], "roster line 2: student is empty"),
    (["Ada", "credentials", "", ""], "roster line 2: target is empty"),
    (["Ada", "crawl-client", "http://127.0.0.1:8000/", ""], "roster line 2: crawl-client checks"),
    (["Ada", "credentials", REFERENCE, "--only 'CRED-01"], "roster line 2: cannot parse args"),
    (["Ada", "credentials", REFERENCE, "--no-such-option"], "roster line 2: args: unrecognized"),
    (["Ada", "credentials", REFERENCE, "--json x.json"], "roster line 2: args: --json is set"),
    (["Ada", "credentials", "http://127.0.0.1:99999/", ""], "roster line 2: target: bad port"),
])
def test_roster_line_problems(tmp_path: Path, row: list[str], message: str) -> None:
    roster = write_roster(tmp_path / "roster.csv", [row])
    with pytest.raises(_batch.RosterError, match=message):
        _batch.read_roster(roster)


def test_roster_without_students_is_a_usage_error(tmp_path: Path) -> None:
    roster = tmp_path / "roster.csv"
    roster.write_text("# only a comment\n\n", encoding="utf-8")
    with pytest.raises(_batch.RosterError, match="no header"):
        _batch.read_roster(roster)
    roster.write_text("student,spec,target\n", encoding="utf-8")
    with pytest.raises(_batch.RosterError, match="no students"):
        _batch.read_roster(roster)


def test_csv_columns_are_the_union_in_order_of_first_appearance() -> None:
    def grade(student: str, spec: str, verdicts: dict[str, Verdict] | None) -> Grade:
        known = load_spec(spec).by_id
        report = None if verdicts is None else RunResult(
            spec=load_spec(spec), target="t", strict=False, seed=0, started_at="",
            duration_s=0.0, results=[RequirementResult(known[k], v) for k, v in verdicts.items()])
        line = RosterLine(1, student, spec, "cmd", "command")
        return Grade(entry=line, exit_code=1, duration_s=1.0, report=report)

    grades = [grade("a", "crawler", {"CRAWL-01": "pass"}), grade("b", "credentials", None),
              grade("c", "crawler-cached", {"CRAWL-01": "fail"})]
    ids = _report_csv.requirement_columns(grades)
    crawler = [r.id for r in load_spec("crawler").requirements]
    cached = [r.id for r in load_spec("crawler-cached").requirements]
    creds = [r.id for r in load_spec("credentials").requirements]
    assert ids == crawler + creds + [i for i in cached if i not in crawler]
    table = _report_csv.rows(grades)
    first = table[0].index("CRAWL-01")
    assert [row[first] for row in table[1:]] == ["pass", "", "fail"]
    assert table[2][5] == "1" and table[2][table[0].index("CRED-01")] == ""


def test_results_schema_rejects_a_bad_entry() -> None:
    doc = {"schema_version": 1, "roster": "r.csv", "seed": 0, "strict": False, "rate": 20,
           "jobs": 4, "started_at": "2026-01-01T00:00:00+00:00", "duration_s": 1.0,
           "students": [{"student": "a", "spec": "credentials", "target": "x", "args": [],
                         "slug": "a", "exit_code": None, "duration_s": 1.0, "score": 0.0,
                         "bonus_score": None, "bonus": None,
                         "passed": False, "problem": "stopped", "verdicts": {},
                         "report": None}]}
    _batch.validate(doc)
    doc["students"][0]["report"] = {"spec": "credentials"}
    with pytest.raises(jsonschema.ValidationError):
        _batch.validate(doc)


def test_the_fork_servers_preload_only_imports() -> None:
    # Imported in the fork server that every run is forked from: no thread may be running
    # there, no `__main__` may have run, and what a run needs must be in; the in-process
    # servers of the client suites (FastAPI) stay out: every run of a batch waits for this.
    probe = ("import sys, threading, conformance.batch._preload as p; "
             "print(threading.active_count(), 'conformance.__main__' in sys.modules, "
             "all(m in sys.modules for m in ('conformance._cli', 'schemathesis', "
             "'_pytest.python', 'hypothesis.strategies')), 'fastapi' in sys.modules)")
    done = subprocess.run([PY, "-c", probe], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)
    assert done.stdout.split() == ["1", "False", "True", "False"], done.stdout + done.stderr


@pytest.mark.slow(10)
def test_runs_that_start_and_end_at_once_keep_their_exit_status(tmp_path: Path) -> None:
    # Starting a forked run polls every earlier one (multiprocessing's _cleanup): it raced
    # another thread's wait for a run's status, and the loser read status 255 for a run that
    # passed. Many short runs started and waited for from many threads at once.
    from concurrent.futures import ThreadPoolExecutor

    if "forkserver" not in _grading.multiprocessing.get_all_start_methods():
        pytest.skip("runs are forked from a fork server only where there is one")

    def one(i: int) -> int:
        with (tmp_path / f"{i}.log").open("ab") as out:
            # The shortest run there is: the race is in starting and waiting, not in the work.
            run = _grading._Forked(["--version"], out, "")
            deadline = time.monotonic() + 120
            while True:  # as grade_line waits: in short slices, between which others start
                try:
                    return run.wait(timeout=0.01)
                except subprocess.TimeoutExpired:
                    assert time.monotonic() < deadline, f"run {i} did not end"

    # Before the fix, 200 such runs 20 at a time gave 3 of them status 255; 120 (a CI run's
    # CPU is counted) find it about five times in six.
    with ThreadPoolExecutor(20) as pool:
        codes = list(pool.map(one, range(120)))
    assert codes == [0] * 120
