"""Gradescope: `conformance run --gradescope FILE` writes Gradescope's results format (checked
against conformance/schemas/gradescope.schema.json, the documented format), and the folder
`conformance gradescope` writes grades a submission when its run_autograder runs in a folder
standing in for /autograder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import zipfile
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from conformance import load_spec
from conformance._grades import points
from conformance._result import RunResult
from conformance.reports import gradescope_results
from conformance.reports._gradescope import bonus_points
from fixtures._twins import twin
from fixtures.fight import source
from tests.conftest import PY, ROOT, conformance

SPEC = "fight"
CONFORMANCE = str(Path(PY).parent / "conformance")


@cache
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads((ROOT / "conformance/schemas/gradescope.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def by_id(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["name"].split()[0]: t for t in results["tests"]}


def test_a_broken_twin_gets_a_test_per_requirement_its_failure_and_its_points(
        tmp_path: Path) -> None:
    broken = tmp_path / "fight.py"
    broken.write_text(source("wrong-answer", twin(SPEC, "wrong-answer").recipe))
    gradescope = tmp_path / "results.json"
    run = conformance("run", SPEC, "--command", f"{PY} {broken}", "--gradescope",
                      str(gradescope), tmp=tmp_path)
    assert run.code == 1, run.stdout
    results = json.loads(gradescope.read_text())
    validator().validate(results)
    spec = load_spec(SPEC)
    tests = by_id(results)
    # In spec order, one per requirement, each as the JSON report judged it.
    assert list(tests) == [r.id for r in spec.requirements]
    assert {rid: t["status"] for rid, t in tests.items()} == {
        rid: "passed" if v == "pass" else "failed" for rid, v in run.verdicts().items()}
    share, extra = points(spec), points(spec, bonus_points(spec), bonus=True)
    assert sum(t["max_score"] for t in tests.values()) == 100
    wrong = tests["FIGHT-05"]
    assert (wrong["score"], wrong["max_score"]) == (0, share["FIGHT-05"])
    assert wrong["name"].startswith("FIGHT-05 MUST: ")
    for word in ("verdict: fail", "expected: ", "actual:   ", "Neo answers",
                 "re-run: ", "--only FIGHT-05"):
        assert word in wrong["output"], wrong["output"]
    # The bonus is extra credit: no max_score, its points when passed (FIGHT-12 failed).
    assert tests["FIGHT-12"]["score"] == 0 and tests["FIGHT-12"]["status"] == "failed"
    assert (tests["FIGHT-11"]["score"], tests["FIGHT-11"]["max_score"]) == \
        (extra["FIGHT-11"], 0)
    passed = {rid for rid, v in run.verdicts().items() if v == "pass"}
    assert "FIGHT-11" in passed and "FIGHT-05" not in passed
    assert results["score"] == sum(t["score"] for t in tests.values()) == \
        sum(share.get(r, 0) + extra.get(r, 0) for r in passed) < 100 + bonus_points(spec)
    assert results["output"].startswith("fight: FAIL - MUST 7/8 passed")


def test_a_run_whose_suite_broke_is_one_failed_test_saying_why() -> None:
    result = RunResult(load_spec(SPEC), "python fight.py", False, 0, "", 0.4, [],
                       error="the suite broke: KeyError 'x'")
    results = gradescope_results([result], points_total=20)
    validator().validate(results)
    assert results["score"] == 0
    [test] = results["tests"]
    assert (test["score"], test["max_score"], test["status"]) == (0, 20, "failed")
    assert "KeyError 'x'" in test["output"]
    assert "ERROR" in results["output"]


@pytest.mark.parametrize("wrong", [
    {"score": 1, "tests": [{"name": "a", "score": 1, "max_score": 1, "status": "ok"}]},
    {"score": 1, "tests": [{"score": 1, "max_score": 1, "status": "passed"}]},
    {"score": 1, "tests": [{"name": "a", "score": "1", "max_score": 1}]},
    {"score": "10"},
    {"score": 1, "visibility": "public"},
    {"score": 1, "tests": [{"name": "a", "score": 1, "max_score": 1, "output_format": "rtf"}]},
    {"score": 1, "grade": "A"},
    {"output": "no score anywhere"},
])
def test_the_schema_refuses_what_gradescope_does_not_read(wrong: dict[str, Any]) -> None:
    assert not validator().is_valid(wrong)


def make_autograder(tmp_path: Path, *args: str) -> Path:
    out = tmp_path / "gradescope-fight"
    done = subprocess.run([CONFORMANCE, "gradescope", SPEC, "--command", "python fight.py",
                           "--out", str(out), *args], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return out


def run_autograder(folder: Path, root: Path, conformance_exe: str = CONFORMANCE) -> \
        dict[str, Any]:
    env = {**os.environ, "AUTOGRADER_ROOT": str(root), "CONFORMANCE": conformance_exe,
           "PATH": f"{Path(PY).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("PYTEST_ADDOPTS", None)
    done = subprocess.run([str(folder / "run_autograder")], capture_output=True, text=True,
                          timeout=150, cwd=root, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    results: dict[str, Any] = json.loads((root / "results" / "results.json").read_text())
    validator().validate(results)
    return results


def test_the_autograder_folder_grades_a_submission_as_gradescope_would(tmp_path: Path) -> None:
    folder = make_autograder(tmp_path, "--zip")
    for name in ("setup.sh", "run_autograder"):
        script = folder / name
        assert os.access(script, os.X_OK), name
        syntax = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True,
                                timeout=30)
        assert syntax.returncode == 0, f"{name}: {syntax.stderr}"
    [wheel] = (folder / "kit").glob("*.whl")
    assert '"$SOURCE"/kit/*.whl' in (folder / "setup.sh").read_text()
    with zipfile.ZipFile(tmp_path / "gradescope-fight.zip") as archive:
        names = set(archive.namelist())
        mode = archive.getinfo("run_autograder").external_attr >> 16
    assert {"setup.sh", "run_autograder", "README.txt", f"kit/{wheel.name}"} <= names
    assert mode & 0o111
    # /autograder as Gradescope lays it out: the zip's files in source/, the student's in
    # submission/ (our reference, as a student's fight.py).
    root = tmp_path / "autograder"
    (root / "submission").mkdir(parents=True)
    shutil.copy(ROOT / "reference" / "fight.py", root / "submission" / "fight.py")
    # Its requirements are installed first (none here but a comment: nothing to fetch).
    (root / "submission" / "requirements.txt").write_text("# the standard library only\n")
    results = run_autograder(folder, root)
    spec = load_spec(SPEC)
    assert results["score"] == 100 + bonus_points(spec), results["output"]
    assert all(t["status"] == "passed" for t in results["tests"])
    assert (root / "results" / "report.json").is_file()


def test_without_results_the_autograder_still_leaves_one_failed_test(tmp_path: Path) -> None:
    folder = make_autograder(tmp_path, "--kit", "assignments-conformance-kit", "--points", "30")
    assert not (folder / "kit").exists()
    assert "install assignments-conformance-kit" in (folder / "setup.sh").read_text()
    root = tmp_path / "autograder"
    root.mkdir()
    # No submission folder at all; then a kit that fails before it writes anything.
    results = run_autograder(folder, root)
    assert "no submission folder" in results["output"]
    (root / "submission").mkdir()
    # What was at results.json (the student's program could have put it there) is replaced.
    (root / "results" / "results.json").write_text('{"score": 999}')
    results = run_autograder(folder, root, conformance_exe="false")
    [test] = results["tests"]
    assert (results["score"], test["score"], test["max_score"]) == (0, 0, 30)
    assert "exit code 1" in test["output"]


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    unknown = conformance("gradescope", "no-such-spec", "--command", "python x.py",
                          "--out", str(tmp_path / "out"), tmp=tmp_path, json_report=False)
    assert unknown.code == 2, unknown.stderr
    assert not (tmp_path / "out").exists()
    nowhere = conformance("run", SPEC, "--gradescope", str(tmp_path / "nope" / "r.json"),
                          tmp=tmp_path, json_report=False)
    assert nowhere.code == 2
    assert "--gradescope: folder" in nowhere.stderr
