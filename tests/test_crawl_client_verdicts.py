"""The suite's verdicts on crawl clients: our reference passes everything, each broken twin fails
exactly what it breaks, correct clients that chose differently pass without --strict, and a
client that crashes or hangs is one failure, with its reason, in bounded time."""

from __future__ import annotations

import os

import pytest

from conformance import load_spec
from conformance._target import is_listening
from fixtures.crawl_client import MUST_IDS, VARIANTS
from tests.conftest import PY, ROOT

SPEC = "crawl-client"
REFERENCE = ROOT / "reference" / "crawl.py"
STUDENT = ROOT / "fixtures" / "crawl_client" / "student_aiohttp.py"


def variant_command(name: str) -> str:
    """The variant's command; a free port for the fake server unless it is judged on 8888."""
    if VARIANTS[name].default_address:
        return f"{PY} -m fixtures.crawl_client {name}"
    return f"{PY} -m fixtures.crawl_client {name} --server http://127.0.0.1:{{port}}"


def need_default_port(name: str | None = None) -> None:
    """Skip when something listens on 8888, where the suite must play the server (never in
    CI, where the port is ours and a skip would hide the default-address check)."""
    if (name is None or VARIANTS[name].default_address) and is_listening("127.0.0.1", 8888):
        why = "127.0.0.1:8888 is taken, so a client's default address cannot be judged"
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)


def test_reference_passes_everything(run_conformance) -> None:
    run = run_conformance("run", SPEC, "--strict")
    assert run.code == 0, run.stdout
    assert set(run.verdicts().values()) == {"pass"}, run.verdicts()
    assert run.report["passed"] is True
    assert any("{port}" in n for n in run.requirement("CC-01")["notes"])


def test_reference_finds_its_server_at_8888_by_default(run_conformance) -> None:
    need_default_port()
    run = run_conformance("run", SPEC, "--strict", "--command", f"{PY} {REFERENCE}")
    assert run.code == 0, run.stdout
    assert set(run.verdicts().values()) == {"pass"}, run.verdicts()
    assert "default address, 127.0.0.1:8888" in run.requirement("CC-01")["notes"][0]


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_variant_fails_exactly_what_it_breaks(run_conformance, name: str) -> None:
    need_default_port(name)
    variant = VARIANTS[name]
    run = run_conformance("run", SPEC, "--command", variant_command(name))
    assert run.failed() == set(variant.fails), run.stdout
    assert run.code == (1 if variant.broken else 0), run.stdout
    for rid in variant.fails:
        failure = run.requirement(rid)["failures"][0]
        assert failure["message"] and failure["actual"], failure
        assert f"fixtures.crawl_client {name}" in failure["reproduce"], failure


@pytest.mark.parametrize("name", [n for n, v in sorted(VARIANTS.items()) if not v.broken])
def test_correct_variant_fails_strict_only_on_its_shoulds(run_conformance, name: str) -> None:
    variant = VARIANTS[name]
    run = run_conformance("run", SPEC, "--strict", "--command", variant_command(name))
    assert run.failed() == set(variant.fails), run.stdout
    assert run.code == (1 if variant.fails else 0), run.stdout


def test_crash_at_once_is_one_failure_and_everything_else_not_run(run_conformance) -> None:
    run = run_conformance("run", SPEC, "--command", variant_command("crashes-at-once"))
    entry = run.requirement("CC-01")
    assert entry["verdict"] == "fail"
    assert "RuntimeError: this client crashes" in entry["failures"][0]["actual"]
    for rid, verdict in run.verdicts().items():
        if rid != "CC-01":
            assert verdict == "not_run", (rid, verdict)
            assert "needs CC-0" in run.requirement(rid)["reason"]


def test_hanging_client_is_stopped_and_fails_with_the_reason(run_conformance) -> None:
    command = f"{PY} -c 'import time; time.sleep(600)'"
    run = run_conformance("run", SPEC, "--timeout", "1", "--command", command, timeout=90)
    assert run.code == 1, run.stdout
    assert run.failed() == {"CC-01"}
    actual = run.requirement("CC-01")["failures"][0]["actual"]
    assert "did not end within 4 s and was stopped" in actual, actual


def test_independent_student_client_passes(run_conformance) -> None:
    run = run_conformance("run", SPEC, "--command", f"{PY} {STUDENT} --port {{port}}")
    assert run.code == 0, run.stdout
    assert run.failed() == {"CC-08", "CC-09", "CC-11", "CC-12"}, run.stdout
    assert "a null code is printed as 'None'" in run.requirement("CC-07")["notes"]


def test_every_must_has_a_broken_twin() -> None:
    musts = {r.id for r in load_spec(SPEC).requirements if r.level == "MUST"}
    assert musts == MUST_IDS
    covered = {rid for v in VARIANTS.values() if v.broken for rid in v.fails}
    assert musts <= covered, f"MUSTs with no broken twin: {sorted(musts - covered)}"
    for variant in VARIANTS.values():
        if variant.broken:
            assert len(variant.fails & musts) == 1, f"{variant.name} breaks several MUSTs"
    # CC-01 has a twin that can be judged anywhere, not only when 8888 is free.
    assert any("CC-01" in v.fails and not v.default_address for v in VARIANTS.values())
