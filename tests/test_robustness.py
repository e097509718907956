"""A target that is down, hangs, resets, answers garbage or never stops talking fails CRED-01 with
a reason, everything after it is "not run" with that cause, and the suite finishes by itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance._target import free_port
from tests.conftest import PY, fixture_command

MUSTS_AFTER_REACH = ["CRED-02", "CRED-03", "CRED-04", "CRED-05", "CRED-06", "CRED-07", "CRED-08"]


def assert_unreachable(run, reason: str) -> None:
    assert run.code == 1, run.stdout + run.stderr
    entry = run.requirement("CRED-01")
    assert entry["verdict"] == "fail", entry
    assert reason in entry["reason"], entry["reason"]
    assert entry["failures"][0]["reproduce"].startswith("curl ")
    for rid in MUSTS_AFTER_REACH:
        assert run.requirement(rid)["verdict"] == "not_run", rid
        assert "needs CRED-01" in run.requirement(rid)["reason"] or "needs CRED-0" in \
            run.requirement(rid)["reason"]
    assert run.failed() == {"CRED-01"}


def test_nothing_listening_fails_with_connection_refused(run_conformance) -> None:
    run = run_conformance("run", "credentials", "--base-url", f"http://127.0.0.1:{free_port()}/")
    assert_unreachable(run, "connection refused")


@pytest.mark.parametrize(("kind", "reason"), [
    ("hang", "no complete answer within 1 s"),
    ("close", "closed the connection without answering"),
    ("reset", "reset"),
    ("garbage", "not a valid HTTP answer"),
    ("trickle", "no complete answer within 1 s"),
    ("endless", "the body goes on past"),
])
def test_misbehaving_server_fails_reachability_with_reason(run_conformance, kind: str,
                                                            reason: str) -> None:
    run = run_conformance("run", "credentials", "--timeout", "1", "--command",
                          fixture_command("fixtures.misbehaving", kind), timeout=90)
    assert_unreachable(run, reason)


def test_command_that_exits_is_explained(run_conformance) -> None:
    port = free_port()
    command = f"{PY} -c \"import sys; print('boom: no such module'); sys.exit(3)\""
    run = run_conformance("run", "credentials", "--base-url", f"http://127.0.0.1:{port}/",
                          "--command", command)
    assert_unreachable(run, "exited with status 3")
    assert "boom: no such module" in run.requirement("CRED-01")["reason"]


def test_command_that_never_listens_is_explained(run_conformance) -> None:
    port = free_port()
    run = run_conformance("run", "credentials", "--base-url", f"http://127.0.0.1:{port}/",
                          "--startup-timeout", "1", "--command",
                          f'{PY} -c "import time; time.sleep(60)"')
    assert_unreachable(run, "nothing listened")


def test_a_server_that_fails_to_start_shows_its_traceback_once(run_conformance,
                                                               tmp_path: Path) -> None:
    # A student's server whose import fails: the traceback is the run's (at the top of the
    # report), each failure and not-run row says its last line and points there.
    server = tmp_path / "server.py"
    server.write_text("import sys\nimport no_such_module_for_this_test  # noqa\n")
    run = run_conformance("run", "credentials", "--command", f"{PY} {server} --port {{port}}")
    assert_unreachable(run, "exited with status 1 before it listened")
    output = run.report["target_output"]
    assert output.startswith("the server command ended before it listened (exit status 1)")
    assert "Traceback (most recent call last)" in output and str(server) in output
    assert run.stdout.count("Traceback (most recent call last)") == 1, run.stdout
    last = "ModuleNotFoundError: No module named 'no_such_module_for_this_test'"
    for entry in run.report["requirements"]:
        texts = [entry["reason"] or "", *(f[k] for f in entry["failures"]
                                         for k in ("message", "actual"))]
        assert not any("Traceback" in t for t in texts), entry
        assert last in entry["reason"], entry
    # One line per requirement and its reason, not a traceback each: before, 221 lines.
    assert len(run.stdout.splitlines()) < 120, run.stdout
