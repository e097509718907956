"""The suite's verdicts on taskqueue clients: our reference passes everything, each broken twin
fails exactly what it breaks, correct clients that chose differently pass without --strict (their
failed SHOULDs gate only with it), and a client that crashes or hangs is one failure, with its
reason, in bounded time.

A suite run spends most of its time waiting for the client and the scaled task delays, so the
runs of this module start together in a few threads (each `conformance` is a process of its
own, on a free port); the two that need 127.0.0.1:8888 run one after the other.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from conformance import load_spec
from fixtures.taskqueue_client import MUST_IDS, VARIANTS
from tests._parallel_runs import Started, need_default_port
from tests.conftest import PY, ROOT

SPEC = "taskqueue-client"
REFERENCE = ROOT / "reference" / "taskqueue_client.py"
STUDENT = ROOT / "fixtures" / "taskqueue_client" / "student_client.py"
WORKERS = 4
# The student labels its answers ("Task id: ...") and trusts the server to answer JSON.
STUDENT_FAILS = {"TQC-12", "TQC-17"}
# {port}, though it asks nothing, so that the suite plays its server on a free port, not 8888.
HUNG = f"{PY} -c 'import time; time.sleep(600)' --server http://127.0.0.1:{{port}}"


def variant_command(name: str) -> str:
    """The variant's command; a free port for the server unless it is judged on 8888."""
    if VARIANTS[name].default_address:
        return f"{PY} -m fixtures.taskqueue_client {name}"
    return f"{PY} -m fixtures.taskqueue_client {name} --server http://127.0.0.1:{{port}}"


def correct() -> list[str]:
    """The correct variants' names."""
    return [n for n, v in sorted(VARIANTS.items()) if not v.broken]


def _runs() -> dict[str, tuple[str, ...]]:
    """Every run this module judges, by name: the arguments of `conformance`."""
    runs: dict[str, tuple[str, ...]] = {
        "reference": ("run", SPEC, "--strict"),
        "student": ("run", SPEC, "--command", f"{PY} {STUDENT} --port {{port}}"),
        "hung": ("run", SPEC, "--timeout", "1", "--command", HUNG),
    }
    for name in VARIANTS:
        runs[f"variant {name}"] = ("run", SPEC, "--command", variant_command(name))
    # --strict changes which verdicts gate, never the verdicts: the student's client, correct
    # and quick to run, shows it for every correct client.
    runs["student strict"] = ("run", SPEC, "--strict", "--command",
                              f"{PY} {STUDENT} --port {{port}}")
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
    runs = Started(tmp_path_factory.mktemp("taskqueue-client-verdicts"), _runs(), DEFAULT_PORT_RUNS,
                   WORKERS)
    yield runs
    runs.close()


def test_reference_passes_everything(started: Started) -> None:
    run = started.get("reference")
    assert run.code == 0, run.stdout
    assert set(run.verdicts().values()) == {"pass"}, run.verdicts()
    assert run.report["passed"] is True
    assert any("{port}" in n for n in run.requirement("TQC-01")["notes"])


def test_reference_finds_its_server_at_8888_by_default(started: Started) -> None:
    need_default_port()
    run = started.get("reference at 8888")
    assert run.code == 0, run.stdout
    assert set(run.verdicts().values()) == {"pass"}, run.verdicts()
    assert "default address, 127.0.0.1:8888" in run.requirement("TQC-01")["notes"][0]


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
        assert f"fixtures.taskqueue_client {name}" in failure["reproduce"], failure
        if rid not in ("TQC-09", "TQC-13"):  # the Ctrl+C reproducer starts the server too
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


def test_correct_client_fails_strict_only_on_its_shoulds(started: Started) -> None:
    run = started.get("student strict")
    assert run.failed() == STUDENT_FAILS, run.stdout
    assert all(run.requirement(rid)["gating"] for rid in STUDENT_FAILS)
    assert run.code == 1 and run.report["passed"] is False, run.stdout


def test_failures_say_how_to_start_our_server_again(started: Started) -> None:
    failure = started.get("variant status-prints-http-code").requirement("TQC-06")["failures"][0]
    assert "taskqueue_server.py --port" in failure["reproduce"], failure
    assert "--time-scale 100" in failure["reproduce"] and "curl" in failure["reproduce"]
    assert "stdout: '200'" in failure["actual"], failure


def test_crash_at_once_is_one_failure_and_everything_else_not_run(started: Started) -> None:
    run = started.get("variant crashes-at-once")
    entry = run.requirement("TQC-01")
    assert entry["verdict"] == "fail"
    assert "RuntimeError: this client crashes" in entry["failures"][0]["actual"]
    for rid, verdict in run.verdicts().items():
        if rid != "TQC-01":
            assert verdict == "not_run", (rid, verdict)
    assert "neither reached the server" in run.requirement("TQC-02")["reason"]


def test_wrong_subcommand_names_fail_tqc_02_alone(started: Started) -> None:
    run = started.get("variant add-not-task")
    assert run.verdicts()["TQC-01"] == "not_run"
    assert "refused" in run.requirement("TQC-01")["reason"]
    message = run.requirement("TQC-02")["failures"][0]["message"]
    assert "`task 2 'hello world'`" in message and "invalid choice" in message, message


def test_hanging_client_is_stopped_and_fails_with_the_reason(started: Started) -> None:
    run = started.get("hung")
    assert run.code == 1, run.stdout
    assert run.failed() == {"TQC-01"}
    actual = run.requirement("TQC-01")["failures"][0]["actual"]
    assert "did not end within 4 s and was stopped" in actual, actual


def test_independent_student_client_passes(started: Started) -> None:
    run = started.get("student")
    assert run.code == 0, run.stdout
    assert run.failed() == STUDENT_FAILS, run.stdout
    assert "Task id:" in run.requirement("TQC-12")["failures"][0]["actual"]


def test_every_must_has_a_broken_twin() -> None:
    musts = {r.id for r in load_spec(SPEC).requirements if r.level == "MUST"}
    assert musts == MUST_IDS
    covered = {rid for v in VARIANTS.values() if v.broken for rid in v.fails}
    assert musts <= covered, f"MUSTs with no broken twin: {sorted(musts - covered)}"
    for variant in VARIANTS.values():
        if variant.broken:
            assert len(variant.fails & musts) == 1, f"{variant.name} breaks several MUSTs"
    # TQC-01 has a twin that can be judged anywhere, not only when 8888 is free.
    assert any("TQC-01" in v.fails and not v.default_address for v in VARIANTS.values())
