"""The suite's verdicts on fight.py scripts: our reference passes everything, each broken twin
fails exactly what it breaks, correct scripts that chose differently pass without --strict, and a
script that hangs, crashes or prints garbage is judged with its reason, in bounded time."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from conformance import load_spec
from fixtures.fight import MUST_IDS, VARIANTS, write_all
from tests.conftest import PY, ROOT

SPEC = "fight"
STUDENT = ROOT / "fixtures" / "fight" / "student_fight.py"


@pytest.fixture(scope="module")
def variants(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every variant written out as a file, as the suite needs to import it."""
    return write_all(tmp_path_factory.mktemp("fight-variants"))


def command(path: Path) -> str:
    return f"{shlex.quote(PY)} {shlex.quote(str(path))}"


def test_reference_passes_everything(run_conformance) -> None:
    run = run_conformance("run", SPEC, "--strict")
    assert run.code == 0, run.stdout
    assert set(run.verdicts().values()) == {"pass"}, run.verdicts()


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_variant_fails_exactly_what_it_breaks(run_conformance, variants, name: str) -> None:
    variant = VARIANTS[name]
    run = run_conformance("run", SPEC, "--strict", "--command", command(variants[name]))
    assert run.failed() == set(variant.fails), run.stdout
    assert run.code == (1 if variant.fails else 0), run.stdout
    for rid in variant.fails:
        failure = run.requirement(rid)["failures"][0]
        assert failure["message"] and failure["expected"] and failure["actual"], failure
        assert str(variants[name]) in failure["reproduce"], failure


@pytest.mark.parametrize("name", [n for n, v in sorted(VARIANTS.items()) if not v.broken])
def test_correct_variant_passes_without_strict(run_conformance, variants, name: str) -> None:
    run = run_conformance("run", SPEC, "--command", command(variants[name]))
    assert run.code == 0, run.stdout


def test_independent_student_script_passes(run_conformance) -> None:
    run = run_conformance("run", SPEC, "--strict", "--command", command(STUDENT))
    assert run.code == 0, run.stdout
    assert set(run.verdicts().values()) == {"pass"}, run.verdicts()


def test_every_must_has_a_broken_twin() -> None:
    musts = {r.id for r in load_spec(SPEC).requirements if r.level == "MUST"}
    assert musts == MUST_IDS
    covered = {rid for v in VARIANTS.values() if v.broken for rid in v.fails}
    assert musts <= covered, f"MUSTs with no broken twin: {sorted(musts - covered)}"
    for variant in VARIANTS.values():
        assert len(variant.fails & musts) <= 1, f"{variant.name} breaks several MUSTs"


def test_a_variant_edit_that_no_longer_matches_is_an_error() -> None:
    broken = VARIANTS["wrong-answer"].__class__("x", "x", (("no such text", ""),), frozenset())
    with pytest.raises(ValueError, match="occurs 0 times"):
        broken.source()


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
    assert run.failed() == {"FIGHT-04", "FIGHT-11"}, run.stdout
    failure = run.requirement("FIGHT-04")["failures"][0]
    assert "no line in the format" in failure["message"]
    assert "garbage" in failure["actual"]


def test_runaway_fight_is_cut_short(run_conformance, tmp_path: Path) -> None:
    script = tmp_path / "fight.py"
    script.write_text(VARIANTS["stops-at-one"].source().replace(
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
