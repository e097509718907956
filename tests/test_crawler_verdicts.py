"""The suite's verdicts on crawler servers: each broken twin fails exactly what it breaks, each
shape real submissions take fails its one MUST and is judged on the rest, correct servers that
chose differently pass without --strict, and what needs a task is "not run" when none can be
made."""

from __future__ import annotations

import pytest

from conformance import load_spec
from fixtures.crawler import VARIANTS
from tests.conftest import fixture_command

FAST = ("--fuzz-seconds", "4", "--fuzz-examples", "30")


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_variant_fails_exactly_what_it_breaks(run_conformance, name: str) -> None:
    variant = VARIANTS[name]
    run = run_conformance("run", "crawler", "--command",
                          fixture_command("fixtures.crawler", name), *FAST)
    assert run.failed() == set(variant.fails), run.stdout
    assert run.code == (1 if variant.broken else 0), run.stdout
    for rid in variant.fails:
        failure = run.requirement(rid)["failures"][0]
        assert failure["message"] and failure["expected"], failure


def test_deviating_shape_is_named_precisely(run_conformance) -> None:
    run = run_conformance("run", "crawler", "--only", "CRAWL-02", "--command",
                          fixture_command("fixtures.crawler", "urls-object"))
    message = run.requirement("CRAWL-02")["failures"][0]["message"]
    assert "the assignment asks for a bare JSON list" in message
    assert '422 to a bare JSON list to POST /api/v1/tasks/' in message
    assert '201 to {"urls": [...]}' in message


def test_server_that_creates_no_task_is_one_failure(run_conformance) -> None:
    # The credentials reference answers 404 to every POST: reachable, but no task API at all.
    run = run_conformance("run", "crawler", *FAST, "--command",
                          fixture_command("fixtures.credentials", "case-insensitive"))
    assert run.code == 1
    musts = [r.id for r in load_spec("crawler").requirements if r.level == "MUST"]
    verdicts = run.verdicts()
    assert verdicts["CRAWL-01"] == "pass"
    assert verdicts["CRAWL-02"] == "fail"
    assert "no way of creating a task worked" in run.requirement("CRAWL-02")["reason"]
    for rid in musts[2:]:
        assert verdicts[rid] == "not_run", (rid, verdicts[rid])


def test_every_must_has_a_broken_twin() -> None:
    musts = {r.id for r in load_spec("crawler").requirements if r.level == "MUST"}
    # CRAWL-01 (the server answers) is broken by fixtures/misbehaving.py, as for credentials.
    covered = {"CRAWL-01"} | {rid for v in VARIANTS.values() if v.broken for rid in v.fails}
    assert musts <= covered, f"MUSTs with no broken twin: {sorted(musts - covered)}"
    for variant in VARIANTS.values():
        assert len(variant.fails & musts) <= 1, f"{variant.name} breaks several MUSTs"
