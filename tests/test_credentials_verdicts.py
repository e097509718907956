"""The suite's verdicts on credentials servers: our reference passes everything, each broken twin
fails exactly what it breaks, and correct servers that chose differently pass without --strict."""

from __future__ import annotations

import pytest

from fixtures.credentials import VARIANTS
from tests.conftest import PY, ROOT, fixture_command

FAST = ("--fuzz-seconds", "5")


def test_reference_passes_everything(run_conformance) -> None:
    run = run_conformance("run", "credentials", "--strict")
    assert run.code == 0, run.stdout
    assert set(run.verdicts().values()) == {"pass"}, run.verdicts()
    assert run.report["passed"] is True


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_variant_fails_exactly_what_it_breaks(run_conformance, name: str) -> None:
    variant = VARIANTS[name]
    run = run_conformance("run", "credentials", "--command",
                          fixture_command("fixtures.credentials", name), *FAST)
    assert run.failed() == set(variant.fails), run.stdout
    assert run.code == (1 if variant.broken else 0), run.stdout
    for rid in variant.fails:
        failure = run.requirement(rid)["failures"][0]
        assert failure["message"] and failure["actual"], failure


@pytest.mark.parametrize("name", [n for n, v in sorted(VARIANTS.items()) if not v.broken])
def test_correct_variant_fails_strict_only_on_its_shoulds(run_conformance, name: str) -> None:
    variant = VARIANTS[name]
    run = run_conformance("run", "credentials", "--strict", "--command",
                          fixture_command("fixtures.credentials", name), *FAST)
    assert run.failed() == set(variant.fails), run.stdout
    assert run.code == (1 if variant.fails else 0), run.stdout


def test_wrong_key_leaves_what_needs_the_body_not_run(run_conformance) -> None:
    run = run_conformance("run", "credentials", "--command",
                          fixture_command("fixtures.credentials", "wrong-key"), *FAST)
    verdicts = run.verdicts()
    for rid in ("CRED-05", "CRED-06", "CRED-08", "CRED-10", "CRED-14"):
        assert verdicts[rid] == "not_run", (rid, verdicts)
        assert "needs CRED-04" in run.requirement(rid)["reason"]


@pytest.mark.parametrize(("script", "fails"), [
    ("student_httpserver.py", {"CRED-09", "CRED-11"}),
    ("student_wsgi.py", {"CRED-11"}),
])
def test_independent_student_servers_pass(run_conformance, script: str, fails: set[str]) -> None:
    path = ROOT / "fixtures" / "credentials" / script
    run = run_conformance("run", "credentials", "--command", f"{PY} {path} {{port}}", *FAST)
    assert run.code == 0, run.stdout
    assert run.failed() == fails, run.stdout


def test_every_must_has_a_broken_twin() -> None:
    from conformance import load_spec

    musts = {r.id for r in load_spec("credentials").requirements if r.level == "MUST"}
    # CRED-01 (the server answers) is broken by the servers of fixtures/misbehaving.py,
    # checked in tests/test_robustness.py.
    covered = {"CRED-01"} | {rid for v in VARIANTS.values() if v.broken for rid in v.fails}
    assert musts <= covered, f"MUSTs with no broken twin: {sorted(musts - covered)}"
    for variant in VARIANTS.values():
        if variant.broken:
            assert len(variant.fails & musts) == 1, f"{variant.name} breaks several MUSTs"
