"""The suite's verdicts on fight.py scripts beyond the twins (tests/test_twins.py): a script that
hangs, runs away or prints garbage is judged with its reason, in bounded time; a command with no
.py file is "not run" with the reason; a module given with -m is imported."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from conformance import load_spec
from fixtures._twins import twin
from fixtures.fight import source
from tests.conftest import PY

SPEC = "fight"


def command(path: Path) -> str:
    return f"{shlex.quote(PY)} {shlex.quote(str(path))}"


def test_a_twin_edit_that_no_longer_matches_is_an_error() -> None:
    with pytest.raises(ValueError, match="occurs 0 times"):
        source("x", (("no such text", ""),))


def test_hanging_script_is_stopped_and_fails_with_the_reason(run_conformance,
                                                             tmp_path: Path) -> None:
    script = tmp_path / "fight.py"
    script.write_text("import time\ntime.sleep(600)\n")
    run = run_conformance("run", SPEC, "--timeout", "1", "--command", command(script),
                          timeout=90)
    assert run.code == 1, run.stdout
    assert "did not end within 6 s and was stopped" in \
        run.requirement("FIGHT-01")["failures"][0]["actual"]
    assert "did not end within 6 s" in run.requirement("FIGHT-03")["failures"][0]["actual"]
    assert run.report["duration_s"] < 40


def test_garbage_output_fails_the_format_with_what_was_printed(run_conformance,
                                                                tmp_path: Path) -> None:
    given = load_spec(SPEC).given
    script = tmp_path / "fight.py"
    script.write_text(given + "\n\nasync def fight():\n    print('%PDF-1.4 \\x00 garbage')\n\n\n"
                      "if __name__ == '__main__':\n    asyncio.run(fight())\n")
    run = run_conformance("run", SPEC, "--command", command(script))
    assert run.code == 1
    # The garbage is extra output too (FIGHT-09, judged on its own since issue 16).
    assert run.failed() == {"FIGHT-04", "FIGHT-09"}, run.stdout
    # No fightmany: the bonus is not attempted, which is no failure.
    assert run.verdicts()["FIGHT-11"] == "not_implemented", run.stdout
    failure = run.requirement("FIGHT-04")["failures"][0]
    assert "no line in the format" in failure["message"]
    assert "garbage" in failure["actual"]
    # The rules of a fight are not run only because no line at all could be read as a turn.
    for rid in ("FIGHT-05", "FIGHT-06", "FIGHT-07", "FIGHT-08"):
        assert run.requirement(rid)["verdict"] == "not_run"
        assert "could be read as a turn" in run.requirement(rid)["reason"], rid


def test_runaway_fight_is_cut_short(run_conformance, tmp_path: Path) -> None:
    script = tmp_path / "fight.py"
    script.write_text(source("stops-at-one", twin(SPEC, "stops-at-one").recipe).replace(
        "if agent.health == 1:", "if agent.health == -10**9:"))
    run = run_conformance("run", SPEC, "--timeout", "2", "--command", command(script))
    assert run.code == 1
    assert "without ending" in run.requirement("FIGHT-04")["failures"][0]["message"]
    assert run.report["duration_s"] < 40


def test_command_without_a_python_file_is_not_run_and_fails(run_conformance) -> None:
    run = run_conformance("run", SPEC, "--command", f"{PY} -c 'print(1)'")
    assert run.code == 1
    assert run.requirement("FIGHT-03")["verdict"] == "not_run"
    assert "names no .py file" in run.requirement("FIGHT-03")["reason"]


def test_module_named_with_dash_m_is_imported(run_conformance) -> None:
    run = run_conformance("run", SPEC, "--strict", "--command", f"{PY} -m reference.fight")
    assert run.code == 0, run.stdout
