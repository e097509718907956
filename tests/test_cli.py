"""The command line: usage errors exit 2, `list` shows every requirement, `--only` narrows a
run, and every report format says the same as the exit code."""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import xml.etree.ElementTree as ET
from pathlib import Path

import httpx
import jsonschema
import pytest

from conformance import load_spec, spec_names
from conformance._target import free_port, wait_until_listening
from conformance.reports import report_schema
from tests.conftest import PY, twin_command


@pytest.mark.parametrize("args", [
    ["run"],
    ["run", "no-such-spec"],
    ["list", "no-such-spec"],
    ["run", "credentials", "--only", "CRED-99"],
    ["run", "credentials", "--base-url", "ftp://127.0.0.1/"],
    ["run", "credentials", "--base-url", "http://127.0.0.1:99999/"],
    ["run", "all", "--base-url", "http://127.0.0.1:8888/"],
    ["run", "credentials", "--timeout", "0"],
    ["run", "credentials", "--json", "/no/such/folder/report.json"],
    ["run", "credentials", "--command", "'unbalanced"],
    ["run", "credentials", "--command", "/no/such/program --port {port}"],
    ["run", "pipeline", "--service", "writer"],
    ["run", "pipeline", "--service", "writer=ftp://127.0.0.1/"],
    ["run", "pipeline", "--output-dir", "/no/such/folder"],
])
def test_usage_errors_exit_2(run_conformance, args: list[str]) -> None:
    run = run_conformance(*args, json_report=False)
    assert run.code == 2, (run.stdout, run.stderr)
    assert "error" in run.stderr.lower()


def test_busy_port_on_a_shared_network_is_a_usage_error_not_a_verdict(run_conformance) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        run = run_conformance("run", "credentials", "--shared-network", "--base-url",
                              f"http://127.0.0.1:{port}/", "--command",
                              f"{PY} reference/credentials.py --port {port}", json_report=False)
    assert run.code == 2
    assert "already listens" in run.stderr


def test_list_shows_every_requirement_with_level_and_source(run_conformance) -> None:
    run = run_conformance("list", "credentials", json_report=False)
    assert run.code == 0
    for req in load_spec("credentials").requirements:
        assert req.id in run.stdout
    assert "MUST" in run.stdout and "SHOULD" in run.stdout and "MAY" in run.stdout
    assert "local port 8888" in run.stdout


def test_only_runs_what_is_asked_and_reports_only_that(run_conformance) -> None:
    run = run_conformance("run", "credentials", "--only", "CRED-05", "CRED-07")
    assert run.code == 0, run.stdout
    assert run.verdicts() == {"CRED-05": "pass", "CRED-07": "pass"}


def test_failing_run_shows_expected_actual_and_reproducers(run_conformance) -> None:
    run = run_conformance("run", "credentials", "--fuzz-seconds", "3", "--command",
                          twin_command("credentials", "unknown-gets-200"))
    assert run.code == 1
    out = run.stdout
    for text in ("CRED-07 MUST", "expected", "actual", "reproduce: curl",
                 "re-run:", "--only CRED-07", "FAIL"):
        assert text in out, text
    failure = run.requirement("CRED-07")["failures"][0]
    # The curl line sends the very request that failed: replay it and see the same status.
    words = shlex.split(failure["reproduce"])
    assert words[0] == "curl"
    replay_url = words[-1]
    assert replay_url.startswith("http://127.0.0.1:")
    assert "species=" in replay_url


def test_reproducer_replays_the_failure(run_conformance, tmp_path: Path) -> None:
    import subprocess
    import sys

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "fixtures", "credentials", "misspelled-name",
                               "--port", str(port)])
    try:
        assert wait_until_listening("127.0.0.1", port, 10)
        run = run_conformance("run", "credentials", "--only", "CRED-05", "--base-url",
                              f"http://127.0.0.1:{port}/")
        failure = run.requirement("CRED-05")["failures"][0]
        url = shlex.split(failure["reproduce"])[-1]
        answer = httpx.get(url, timeout=5, trust_env=False)
        assert answer.json() == {"credentials": "Davross"}
        assert "Davross" in failure["actual"]
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_json_report_validates_on_pass_and_fail(run_conformance, tmp_path: Path) -> None:
    passing = run_conformance("run", "credentials", "--fuzz-seconds", "3")
    jsonschema.validate(passing.report, report_schema())
    assert passing.report["passed"] is True and passing.report["exit_code"] == 0
    failing = run_conformance("run", "credentials", "--fuzz-seconds", "3", "--command",
                              twin_command("credentials", "wrong-key"))
    jsonschema.validate(failing.report, report_schema())
    assert failing.report["passed"] is False and failing.report["exit_code"] == 1
    assert failing.report["counts"]["MUST"]["fail"] == 1
    # CRED-05 and -08 need the JSON member; CRED-02 and -06 are judged on status and body.
    assert failing.report["counts"]["MUST"]["not_run"] == 2


def test_junit_agrees_with_the_exit_code(run_conformance, tmp_path: Path) -> None:
    junit = tmp_path / "junit.xml"
    run = run_conformance("run", "credentials", "--fuzz-seconds", "3", "--junit", str(junit),
                          "--command", twin_command("credentials", "charset-utf8"))
    assert run.code == 0
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    cases = suite.findall("testcase")
    assert len(cases) == len(load_spec("credentials").requirements)
    assert suite.get("failures") == "0" and suite.get("errors") == "0"
    should = next(c for c in cases if c.get("name", "").startswith("CRED-09"))
    skipped = should.find("skipped")
    assert skipped is not None and "does not gate" in skipped.get("message", "")

    strict = run_conformance("run", "credentials", "--strict", "--fuzz-seconds", "3",
                             "--junit", str(junit), "--command",
                             twin_command("credentials", "charset-utf8"))
    assert strict.code == 1
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "1"


# `conformance run all` with each spec's run narrowed to its first requirement: what is tested is
# `all` (every spec, one after another, one list of reports, the worst exit status); every
# reference's whole strict run is tests/test_twins.py's, and repeating them here cost a CI run
# 40 CPU-seconds. The specs of FAILING judge, instead of our reference, a program that ends at
# once with status 3: each of their checks waits on one observation of fixed length (the uptime
# monitor's 27 s, the probe's 20), which cost this test 50 of its 70 s; and a failing run shows
# that `all` exits with the worst status of its runs, not the last's or the first's.
FAILING = ("probe", "uptime")
NARROWED_ALL = f"""
import sys
import conformance._cli as cli
from conformance._run import run_spec

def first_requirement_only(spec, **how):
    how["only"] = {{spec.requirements[0].id}}
    if spec.name in {FAILING!r}:
        how["command"] = "{{}} -c 'raise SystemExit(3)'".format(sys.executable)
    return run_spec(spec, **how)

cli.run_spec = first_requirement_only
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.mark.slow(25)
def test_run_all_checks_every_reference(tmp_path: Path) -> None:
    import subprocess
    import sys

    report = tmp_path / "report.json"
    done = subprocess.run([sys.executable, "-c", NARROWED_ALL, "run", "all", "--json",
                           str(report), "--fuzz-examples", "5", "--fuzz-seconds", "3",
                           "--time-scale", "0.1"], cwd=Path(__file__).resolve().parent.parent,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr
    reports = json.loads(report.read_text(encoding="utf-8"))
    assert isinstance(reports, list)
    assert [r["spec"] for r in reports] == spec_names()
    for one in reports:
        jsonschema.validate(one, report_schema())
        verdicts = [r["verdict"] for r in one["requirements"]]
        if one["spec"] in FAILING:
            assert verdicts == ["fail"] and one["exit_code"] == 1, one
        else:
            assert verdicts == ["pass"] and one["exit_code"] == 0, one


def test_report_json_is_written_with_unicode_intact(run_conformance, tmp_path: Path) -> None:
    run = run_conformance("run", "credentials", "--only", "CRED-01")
    text = (tmp_path / "report.json").read_text(encoding="utf-8")
    assert json.loads(text) == run.report


def test_run_leaves_nothing_in_the_folder_it_ran_in(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    folder, cache = tmp_path / "here", tmp_path / "cache"
    folder.mkdir()
    for _ in range(2):
        done = subprocess.run([sys.executable, "-m", "conformance", "run", "credentials",
                               "--only", "CRED-12", "--fuzz-seconds", "2"], cwd=folder,
                              capture_output=True, text=True, timeout=120,
                              env={**os.environ, "XDG_CACHE_HOME": str(cache)})
        assert done.returncode == 0, done.stdout + done.stderr
        assert list(folder.iterdir()) == []
    # What hypothesis computes from fixed inputs is kept in the user's cache folder, whole
    # (its table of constants only when it got that far in two seconds: a loaded CI machine
    # may not).
    kept = cache / "assignments-conformance" / "hypothesis"
    assert {"unicode_data"} <= {p.name for p in kept.iterdir()} <= {"unicode_data", "constants"}
    assert not [p for p in kept.rglob(".*")]


def test_base_url_path_prefix_is_kept() -> None:
    from conformance import Http

    with Http("http://127.0.0.1:1/app") as http:
        assert http.url("/?species=Dalek") == "http://127.0.0.1:1/app/?species=Dalek"
        assert http.url("/elsewhere") == "http://127.0.0.1:1/app/elsewhere"
    with Http("http://127.0.0.1:1") as http:
        assert http.url("/") == "http://127.0.0.1:1/"


def test_ctrl_c_stops_the_run_and_the_server_it_started(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    marker = tmp_path / "server.pid"
    server = (f"{sys.executable} -c \"import os, time, pathlib; "
              f"pathlib.Path(r'{marker}').write_text(str(os.getpid())); time.sleep(60)\"")
    port = free_port()
    # Outside the sandbox, whose process namespace would give the server a pid of its own
    # and hide the test's folder from it (tests/test_sandbox.py shows a sandbox's processes
    # end with it).
    proc = subprocess.Popen([sys.executable, "-m", "conformance", "run", "credentials",
                             "--base-url", f"http://127.0.0.1:{port}/", "--startup-timeout",
                             "30", "--no-sandbox", "--command", server], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    pid = int(marker.read_text())
    time.sleep(0.2)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_max_rate_paces_fuzzing(run_conformance) -> None:
    # 8 s, not 2: the first generated example alone may take seconds on a busy machine (tests
    # run in parallel; 2 s sent as few as 2 requests, 4 s once 1, with or without pacing).
    run = run_conformance("run", "credentials", "--only", "CRED-12", "--max-rate", "5",
                          "--fuzz-seconds", "8", "--fuzz-examples", "80")
    assert run.code == 0, run.stdout
    note = run.requirement("CRED-12")["notes"][0]
    sent, seconds = re.search(r"sent (\d+) requests in ([\d.]+) s", note).groups()
    # Pacing caps the rate; how many were sent at all depends on how busy the machine is.
    assert 1 <= int(sent) <= 5 * float(seconds) + 2, note
