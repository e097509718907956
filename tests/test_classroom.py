"""`conformance classroom`: the GitHub Classroom workflow it writes is valid YAML whose steps and
reporter agree, whose points add up, and whose grader steps, really run against a broken twin,
exit 1 exactly for the requirement the twin breaks (conformance/graders/_classroom.py)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from conformance._cli import main
from conformance._spec import load_spec, spec_names
from conformance.graders import classroom_workflow
from conformance.graders._classroom import COMMAND_GRADER, REPORTER, default_command

BIN = Path(sys.executable).parent  # where `conformance` and `python` are, as on the runner


def _steps(text: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The grader steps and the reporter step of a workflow's text."""
    data = yaml.safe_load(text)
    assert set(data) >= {"name", "on", "permissions", "jobs"}  # 'on' stays a key, not True
    steps = data["jobs"]["run-autograding-tests"]["steps"]
    graders = [s for s in steps if s.get("uses") == COMMAND_GRADER]
    (reporter,) = [s for s in steps if s.get("uses") == REPORTER]
    assert steps[-1] is reporter
    return graders, reporter


def _only(command: str) -> tuple[list[str], bool]:
    """The ids a step's `conformance run` names with --only, and whether it runs --strict."""
    words = shlex.split(command.split(";")[0])
    start = words.index("--only") + 1
    ids = []
    for word in words[start:]:
        if word.startswith("--"):
            break
        ids.append(word)
    return ids, "--strict" in words


@pytest.mark.parametrize("group", ["requirement", "level"])
@pytest.mark.parametrize("name", spec_names())
def test_every_spec_gives_a_consistent_workflow(name: str, group: str) -> None:
    spec = load_spec(name)
    has_bonus = any(r.bonus for r in spec.requirements)
    text = classroom_workflow(spec, command="python main.py", total=37,
                              bonus_points=5 if has_bonus else 0, group=group)  # type: ignore[arg-type]
    assert text.startswith(f"# GitHub Classroom autograding for spec {name}")
    assert re.fullmatch(r"python [\w-]+\.py", default_command(spec))  # the guess, e.g. fight.py
    graders, reporter = _steps(text)
    ids = [g["id"] for g in graders]
    assert len(set(ids)) == len(ids) and all(re.fullmatch(r"[a-z0-9-]+", i) for i in ids)
    assert reporter["with"]["runners"].split(",") == ids
    assert reporter["env"] == {f"{i.upper()}_RESULTS": f"${{{{steps.{i}.outputs.result}}}}"
                               for i in ids}
    main = bonus = 0
    for g in graders:
        only, strict = _only(g["with"]["command"])
        reqs = [spec.by_id[i] for i in only]  # every id exists
        assert {r.level for r in reqs} <= {"MUST", "SHOULD"}  # MAY: no step
        assert len({(r.level, r.bonus) for r in reqs}) == 1  # one level per step
        assert strict == (reqs[0].level == "SHOULD" and not reqs[0].bonus)
        assert g["with"]["test-name"] == g["name"] and g["with"]["timeout"] == 10
        assert ("--json" in g["with"]["command"]) == reqs[0].bonus
        if reqs[0].bonus:
            bonus += g["with"]["max-score"]
        else:
            main += g["with"]["max-score"]
        if group == "level":
            assert g["id"] == ("bonus" if reqs[0].bonus else reqs[0].level.lower())
            assert len(only) == sum(1 for r in spec.requirements if r.level == reqs[0].level
                                    and r.bonus == reqs[0].bonus)
        else:
            assert len(only) == 1 and g["id"] == only[0].lower()
    assert main == 37 and bonus == (5 if has_bonus else 0)


def test_bonus_steps_only_when_given_points() -> None:
    spec = load_spec("fight")
    graders, _ = _steps(classroom_workflow(spec))
    assert [g["id"] for g in graders] == [f"fight-{n:02}" for n in range(1, 11)]
    assert all(g["with"]["max-score"] == 10 for g in graders)  # ten of weight 1: 100 points
    text = classroom_workflow(spec, bonus_points=8)
    assert "python fight.py (a guess from the reference's file name" in text
    graders, _ = _steps(text)
    assert [g["id"] for g in graders][10:] == ["fight-11", "fight-12", "fight-13", "fight-14"]
    assert [g["with"]["max-score"] for g in graders][10:] == [2, 2, 2, 2]


def test_zero_point_requirements_have_no_step_and_are_named() -> None:
    spec = load_spec("fight")
    text = classroom_workflow(spec, total=5)  # ten requirements of weight 1: five get a point
    graders, _ = _steps(text)
    assert len(graders) == 5 and sum(g["with"]["max-score"] for g in graders) == 5
    skipped = sorted({f"FIGHT-{n:02}" for n in range(1, 11)} -
                     {_only(g["with"]["command"])[0][0] for g in graders})
    assert f"# No step for {', '.join(skipped)}" in text


def _cli(*argv: str) -> int:
    """`conformance ARGV` in this process; its exit code (argparse's own errors exit 2)."""
    try:
        return main(list(argv))
    except SystemExit as exc:
        return int(exc.code or 0)


def test_cli_writes_the_file_and_refuses_bad_usage(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "repo" / ".github" / "workflows" / "classroom.yml"
    assert _cli("classroom", "fight", "--group", "level", "--points", "50",
                "--kit", "git+https://example.org/kit.git", "--out", str(out)) == 0
    text = out.read_text()
    assert "pip install git+https://example.org/kit.git" in text
    assert "# Regenerate with: conformance classroom fight --points 50 --group level" in text
    graders, _ = _steps(text)
    assert [(g["id"], g["with"]["max-score"]) for g in graders] == [("must", 40), ("should", 10)]
    capsys.readouterr()
    assert _cli("classroom", "fight", "--out", "-") == 0
    assert capsys.readouterr().out == classroom_workflow(
        load_spec("fight"), regenerate="conformance classroom fight --out -")
    for bad in (["nosuchspec"], ["fight", "--points", "0"], ["fight", "--group", "x"],
                ["fight", "--bonus-points", "-1"]):
        assert _cli("classroom", *bad, "--out", "-") == 2, bad
        assert "nosuchspec" in capsys.readouterr().err or bad[0] != "nosuchspec"


def _twin(name: str, folder: Path) -> Path:
    """The fight twin NAME written as folder/fight.py, as a student's repository holds it."""
    from fixtures._twins import twin
    from fixtures.fight import source

    folder.mkdir(parents=True)
    path = folder / "fight.py"
    path.write_text(source(name, twin("fight", name).recipe), encoding="utf-8")
    return path


def _steps_run(graders: list[dict[str, Any]],
               runs: list[tuple[str, Path]]) -> list[subprocess.CompletedProcess[str]]:
    """Run grader steps' commands at once, each as the command grader does: a shell line in
    the student's repository, `conformance` and `python` on the PATH."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           "COLUMNS": "200"}
    env.pop("PYTEST_ADDOPTS", None)
    commands = {g["id"]: g["with"]["command"] for g in graders}
    procs = [subprocess.Popen(commands[step], shell=True, cwd=cwd, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for step, cwd in runs]
    done = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return done


@pytest.mark.slow(8)
def test_steps_exit_1_exactly_for_the_broken_requirement(tmp_path: Path) -> None:
    graders, _ = _steps(classroom_workflow(load_spec("fight"), bonus_points=4))
    wrong = _twin("wrong-answer", tmp_path / "wrong").parent  # breaks FIGHT-05 (bonus FIGHT-12)
    banner = _twin("banner", tmp_path / "banner").parent  # correct; fails SHOULD FIGHT-09
    failed, passed, bonus, should, bonus_kept = _steps_run(graders, [
        ("fight-05", wrong), ("fight-04", wrong), ("fight-12", wrong), ("fight-09", banner),
        ("fight-11", banner)])
    assert failed.returncode == 1, failed.stdout + failed.stderr
    out = failed.stdout
    assert "Neo answers LOWBLOCK with LOWKICK" in out
    assert "expected: Neo: Action.HIGHKICK" in out and "actual:" in out
    assert "reproduce: " in out
    # A MUST the twin keeps passes, FIGHT-05 failing beside it.
    assert passed.returncode == 0, passed.stdout + passed.stderr
    # A bonus never moves a run's exit code: its step reads the verdict from the report.
    assert bonus.returncode == 1 and "not passed: FIGHT-12 (fail)" in bonus.stdout
    assert bonus_kept.returncode == 0 and "passed: FIGHT-11" in bonus_kept.stdout
    assert should.returncode == 1, should.stdout + should.stderr  # --strict: a SHOULD counts
