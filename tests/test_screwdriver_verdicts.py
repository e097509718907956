"""The suite's verdicts on screwdriver clients: our reference passes everything, each broken twin
fails exactly what it breaks, correct clients that chose differently pass without --strict (their
failed SHOULDs gate only with it), and a client that crashes or hangs is one failure, with its
reason, in bounded time.

A suite run spends most of its time starting the client over and over, so the runs of this
module start together in a few threads (each `conformance` is a process of its own, on a free
port); the two that need 127.0.0.1:8888 run one after the other.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from conformance import load_spec
from fixtures.screwdriver import MUST_IDS, VARIANTS
from tests._parallel_runs import Started, need_default_port
from tests.conftest import PY, ROOT

SPEC = "screwdriver"
REFERENCE = ROOT / "reference" / "screwdriver.py"
STUDENT = ROOT / "fixtures" / "screwdriver" / "student_screwdriver.py"
WORKERS = 6
# The student trusts the path to exist and the server to answer JSON: tracebacks.
STUDENT_FAILS = {"SCR-12", "SCR-14"}
# {port}, though it asks nothing, so that the suite plays its server on a free port, not 8888.
HUNG = f"{PY} -c 'import time; time.sleep(600)' --server http://127.0.0.1:{{port}}"


def variant_command(name: str) -> str:
    """The variant's command; a free port for the server unless it is judged on 8888."""
    if VARIANTS[name].default_address:
        return f"{PY} -m fixtures.screwdriver {name}"
    return f"{PY} -m fixtures.screwdriver {name} --server http://127.0.0.1:{{port}}"


def correct() -> list[str]:
    """The correct variants' names."""
    return [n for n, v in sorted(VARIANTS.items()) if not v.broken]


def _runs() -> dict[str, tuple[str, ...]]:
    """Every run this module judges, by name: the arguments of `conformance`."""
    runs: dict[str, tuple[str, ...]] = {
        "reference": ("run", SPEC, "--strict"),
        "hung": ("run", SPEC, "--timeout", "1", "--command", HUNG),
        # --strict changes which verdicts gate, never the verdicts: the student's client shows
        # it for every correct client.
        "student strict": ("run", SPEC, "--strict", "--command",
                           f"{PY} {STUDENT} --port {{port}}"),
    }
    for name in VARIANTS:
        runs[f"variant {name}"] = ("run", SPEC, "--command", variant_command(name))
    return runs


# Runs that need 127.0.0.1:8888 free, where the suite plays the server of a client that is
# given no address.
DEFAULT_PORT_RUNS: dict[str, tuple[str, ...]] = {
    "reference at 8888": ("run", SPEC, "--strict", "--command", f"{PY} {REFERENCE}"),
    **{f"variant {n}": ("run", SPEC, "--command", variant_command(n))
       for n, v in VARIANTS.items() if v.default_address},
}


@pytest.fixture(scope="module")
def started(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Started]:
    """Every run of this module, started on first use."""
    runs = Started(tmp_path_factory.mktemp("screwdriver-verdicts"), _runs(), DEFAULT_PORT_RUNS,
                   WORKERS)
    yield runs
    runs.close()


def test_reference_passes_everything(started: Started) -> None:
    run = started.get("reference")
    assert run.code == 0, run.stdout
    assert set(run.verdicts().values()) == {"pass"}, run.verdicts()
    assert run.report["passed"] is True
    assert any("{port}" in n for n in run.requirement("SCR-01")["notes"])


def test_reference_finds_its_server_at_8888_by_default(started: Started) -> None:
    need_default_port()
    run = started.get("reference at 8888")
    assert run.code == 0, run.stdout
    assert set(run.verdicts().values()) == {"pass"}, run.verdicts()
    assert "default address, 127.0.0.1:8888" in run.requirement("SCR-01")["notes"][0]


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_variant_fails_exactly_what_it_breaks(started: Started, name: str) -> None:
    variant = VARIANTS[name]
    if variant.default_address:
        need_default_port()
    run = started.get(f"variant {name}")
    assert run.failed() == set(variant.fails), run.stdout
    assert run.code == (1 if variant.broken else 0), run.stdout
    for rid in variant.fails:
        failure = run.requirement(rid)["failures"][0]
        assert failure["message"] and failure["expected"] and failure["actual"], failure
        assert f"fixtures.screwdriver {name}" in failure["reproduce"], failure
        assert "# then run:" in failure["reproduce"], failure


@pytest.mark.parametrize("name", correct())
def test_correct_variant_fails_only_shoulds_which_do_not_gate(started: Started,
                                                              name: str) -> None:
    run = started.get(f"variant {name}")
    assert run.failed() == set(VARIANTS[name].fails), run.stdout
    for rid in run.failed():
        assert (run.requirement(rid)["level"], run.requirement(rid)["gating"]) == ("SHOULD",
                                                                                   False)
    assert run.code == 0 and run.report["passed"] is True, run.stdout


def test_independent_student_client_fails_strict_only_on_its_shoulds(started: Started) -> None:
    run = started.get("student strict")
    assert run.failed() == STUDENT_FAILS, run.stdout
    assert all(run.requirement(rid)["gating"] for rid in STUDENT_FAILS)
    assert run.code == 1 and run.report["passed"] is False, run.stdout
    assert "FileNotFoundError" in run.requirement("SCR-12")["failures"][0]["actual"]


def test_failures_say_how_to_start_our_server_again(started: Started) -> None:
    failure = started.get("variant list-prints-count").requirement("SCR-04")["failures"][0]
    assert "audio.py --port" in failure["reproduce"], failure
    assert "curl -s -F file=@alpha.wav" in failure["reproduce"], failure
    assert "4 files on the server" in failure["actual"], failure


def test_refusal_taken_for_success_names_the_415(started: Started) -> None:
    failure = started.get("variant refusal-as-success").requirement("SCR-05")["failures"][0]
    assert "POST /api/files -> 415" in failure["message"], failure
    assert "exited with status 0" in failure["message"], failure


def test_crash_at_once_is_one_failure_and_everything_else_not_run(started: Started) -> None:
    run = started.get("variant crashes-at-once")
    entry = run.requirement("SCR-01")
    assert entry["verdict"] == "fail"
    assert "RuntimeError: this client crashes" in entry["failures"][0]["actual"]
    for rid, verdict in run.verdicts().items():
        if rid != "SCR-01":
            assert verdict == "not_run", (rid, verdict)
    assert "neither" in run.requirement("SCR-02")["reason"]


def test_wrong_subcommand_name_fails_scr_02_alone(started: Started) -> None:
    run = started.get("variant put-not-upload")
    message = run.requirement("SCR-02")["failures"][0]["message"]
    assert "`upload " in message and "invalid choice" in message, message


def test_hanging_client_is_stopped_and_fails_with_the_reason(started: Started) -> None:
    run = started.get("hung")
    assert run.code == 1, run.stdout
    assert run.failed() == {"SCR-01"}
    actual = run.requirement("SCR-01")["failures"][0]["actual"]
    assert "did not end within 3 s and was stopped" in actual, actual


def test_every_must_has_a_broken_twin() -> None:
    musts = {r.id for r in load_spec(SPEC).requirements if r.level == "MUST"}
    assert musts == MUST_IDS
    covered = {rid for v in VARIANTS.values() if v.broken for rid in v.fails}
    assert musts <= covered, f"MUSTs with no broken twin: {sorted(musts - covered)}"
    for variant in VARIANTS.values():
        if variant.broken:
            assert len(variant.fails & musts) == 1, f"{variant.name} breaks several MUSTs"
    # SCR-01 has a twin that can be judged anywhere, not only when 8888 is free.
    assert any("SCR-01" in v.fails and not v.default_address for v in VARIANTS.values())
