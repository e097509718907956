"""The reference load tester (reference/loadtest.py) against the conformance suite's target on
127.0.0.1, which records when each request arrives and answers it by a script keyed to its
arrival order (a status after a delay, a reset, or no answer at all): the counts, the schedule
(open model, even spacing), the summary's layout and JSON, the command line, --config, and
Ctrl+C. (Its conformance is in the verdict tests.)"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from conformance.specs.loadtest._target import Answer, Fault, Plan, Reply, Target
from reference import loadtest
from reference.loadtest import (
    Outcome,
    fire,
    lag_warning,
    main,
    offsets,
    percentile,
    render_json,
    render_text,
    summarize,
)
from tests.conftest import ROOT

SCRIPT = ROOT / "reference" / "loadtest.py"
RESET, HANG = Fault.RESET, Fault.HOLD  # an RST as the request came; no answer until the end


def scripted_target(script: Callable[[int], Answer]) -> Target:
    """The conformance suite's target (its `_target.py`, the one the verdicts are judged by),
    answering the i-th request to arrive by `script(i)`; a `with` starts and stops it."""
    return Target(Plan("test", 1, 1, 0, script, "the test's script"))


def arrivals(target: Target) -> list[float]:
    """When each request arrived (time.monotonic()), in order."""
    return [seen.at for seen in target.requests()]


def run(*args: str, limit: float) -> subprocess.CompletedProcess[str]:
    """Run the reference with `args`; it must end within `limit` seconds."""
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=limit, cwd=ROOT)


# -- a scripted run: what counts as what ---------------------------------------------------------

SCRIPTED: dict[int, Answer] = {3: Reply(500, 0.01), 7: RESET, 11: HANG, 15: Reply(404, 0.01),
            19: Reply(301, 0.01), 25: Reply(200, 0.3)}


@pytest.fixture(scope="module")
def scripted() -> tuple[Target, dict[str, Any], float]:
    """50 RPS for 1 s, wait 0.5 s, answers by SCRIPTED (else 200 after 10 ms): the target, the
    JSON summary and the run's seconds."""
    with scripted_target(lambda i: SCRIPTED.get(i, Reply(200, 0.01))) as target:
        started = time.monotonic()
        done = run(target.url, "50", "1", "0.5", "--json", limit=15)
        took = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    # Nothing on stderr but, on a very busy machine, the warning that the tester fell behind.
    assert done.stderr == "" or done.stderr.startswith("loadtest.py: warning: requests started")
    return target, json.loads(done.stdout), took


def test_every_outcome_is_counted_as_its_kind(scripted: tuple[Target, dict[str, Any],
                                                               float]) -> None:
    target, summary, took = scripted
    # The reset was not retried behind our back: the target saw exactly what was sent.
    assert len(arrivals(target)) == 50
    assert {k: summary[k] for k in ("sent", "completed", "failed", "timeouts",
                                    "connection_errors", "http_5xx")} == {
        "sent": 50, "completed": 47, "failed": 3, "timeouts": 1, "connection_errors": 1,
        "http_5xx": 1}
    assert summary["status_codes"] == {"200": 45, "301": 1, "404": 1, "500": 1}
    # The request never answered was given up at the deadline (1.5 s), not waited for until the
    # run's limit (15 s); the rest is Python's start on a busy machine (4.6 s seen under load).
    assert took < 1.5 + 8.0


def test_latencies_are_the_targets_delays(scripted: tuple[Target, dict[str, Any],
                                                           float]) -> None:
    _, summary, _ = scripted
    latency, from_send = summary["latency_ms"], summary["latency_from_send_ms"]
    assert 10 <= from_send["min"] <= latency["min"] < 100
    assert 300 <= from_send["max"] <= latency["max"] < 300 + 150
    # 48 answers: the median (rank 24) and p95 (rank 46) are 10 ms ones, p99 (rank 48) the 300 ms
    assert latency["median"] < 100 and latency["p95"] < 100
    assert latency["p99"] == latency["max"]
    for name in ("min", "max", "mean", "median", "p75", "p90", "p95", "p99"):
        assert from_send[name] <= latency[name]


def test_the_json_summary_has_the_agreed_keys(scripted: tuple[Target, dict[str, Any],
                                                               float]) -> None:
    target, summary, _ = scripted
    assert list(summary) == ["url", "rps", "test_time", "wait_timeout", "sent", "completed",
                             "failed", "timeouts", "connection_errors", "http_5xx", "latency_ms",
                             "latency_from_send_ms", "status_codes", "start_lag_ms",
                             "interrupted"]
    assert (summary["url"], summary["rps"], summary["test_time"], summary["wait_timeout"],
            summary["interrupted"]) == (target.url, 50, 1, 0.5, False)
    stats = ["min", "max", "mean", "median", "p75", "p90", "p95", "p99"]
    assert summary["latency_ms"] == {"measured_from": "scheduled start",
                                     "percentiles": "nearest-rank",
                                     **{k: summary["latency_ms"][k] for k in stats}}
    assert summary["latency_from_send_ms"]["measured_from"] == "actual send"
    assert all(isinstance(summary["latency_ms"][k], float) for k in stats)


# -- the schedule: open model, evenly spaced -----------------------------------------------------


@pytest.mark.slow(3)
def test_the_rate_holds_while_every_answer_takes_a_second() -> None:
    # 150 in flight at once: a closed loop, or aiohttp's default pool of 100 connections, would
    # start the 101st only when the first answer came (1 s in, a third of a second late).
    rps = 150
    with scripted_target(lambda i: Reply(200, 1.0)) as target:
        done = run(target.url, str(rps), "1", "1.5", "--json", limit=15)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["completed"] == rps
    arrived_at = arrivals(target)
    assert len(arrived_at) == rps
    first = arrived_at[0]
    lateness = [at - (first + i / rps) for i, at in enumerate(arrived_at)]
    # A closed loop's last 50 all start a third of a second late; a busy machine (eight test
    # workers on two cores) makes the odd one late too, never most of them.
    assert statistics.median(lateness[100:]) < 0.15, "the requests after the 100th were late"
    assert max(lateness) < 0.75, f"the {lateness.index(max(lateness))}th request was late"
    assert min(lateness) > -0.05, "a request came before its time: a burst"
    # Spread over the second, not sent at once (a burst's later requests come before their
    # time, which the bound above catches too); how evenly is the machine's load's to decide:
    # a tester that wakes late sends what is due at once.
    assert arrived_at[-1] - first > 0.5


def test_offsets_are_evenly_spaced() -> None:
    assert offsets(100, 2) == [i / 100 for i in range(200)]
    assert offsets(2.5, 2) == [0, 0.4, 0.8, 1.2, 1.6]
    assert len(offsets(3, 0.5)) == 2  # round(1.5): half to even


# -- percentiles ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("values", "p", "expected"), [
    ([15, 20, 35, 40, 50], 5, 15), ([15, 20, 35, 40, 50], 30, 20),
    ([15, 20, 35, 40, 50], 40, 20), ([15, 20, 35, 40, 50], 50, 35),
    ([15, 20, 35, 40, 50], 100, 50),
    (list(range(1, 11)), 0, 1), (list(range(1, 11)), 50, 5), (list(range(1, 11)), 75, 8),
    (list(range(1, 11)), 90, 9), (list(range(1, 11)), 95, 10),
    (list(range(1, 101)), 99, 99), (list(range(1, 101)), 95, 95), (list(range(1, 201)), 99, 198),
    ([7.5], 99, 7.5),
])
def test_percentile_is_nearest_rank(values: list[float], p: float, expected: float) -> None:
    assert percentile(values, p) == expected


def test_percentile_refuses_nothing_and_out_of_range() -> None:
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


# -- the summary's layout ------------------------------------------------------------------------


def outcomes() -> list[Outcome]:
    """Ten answers 10..100 ms (from the send 1 ms less), a 404, a 500, two timeouts, a reset."""
    answers = [Outcome(200, ms, ms - 1) for ms in range(10, 101, 10)]
    return [*answers, Outcome(404, 5.25, 5.0), Outcome(500, 200.0, 150.0), Outcome("timeout"),
            Outcome("connection"), Outcome("timeout")]


def test_the_text_summary_is_laid_out_as_the_seeds() -> None:
    summary = summarize(outcomes(), "http://127.0.0.1:8080/path?q=1", 7.5, 2, 1.5)
    assert render_text(summary) == """\
Target URL: http://127.0.0.1:8080/path?q=1
Test duration: 2s, RPS: 7.5 (total 15 requests)
Timeout for responses: 1.5s

=== Request Summary ===
Total requests sent:    15
Completed successfully: 11
Failed requests:        4
- Timeout errors:       2
- Connection errors:    1
- HTTP errors (5xx):    1

=== Response Time (ms) ===
from each request's scheduled start (from its actual send in brackets); nearest-rank percentiles
Min:       5.2  (5.0)
Max:     200.0  (150.0)
Mean:     62.9  (57.9)
Median:   50.0  (49.0)
p75:      80.0  (79.0)
p90:     100.0  (99.0)
p95:     200.0  (150.0)
p99:     200.0  (150.0)
Start lag p99: 50.0 ms (max 50.0 ms), how late the tester itself started them

=== Status Code Distribution ===
200 OK:              10
404 Not Found:        1
500 Internal Server Error: 1
Timeouts:             2
Connection errors:    1"""


def test_a_tester_behind_its_schedule_says_so() -> None:
    on_time = summarize(outcomes(), "http://h/", 7.5, 2, 1.5)
    assert on_time.start_lag_p99 == 50.0 and lag_warning(on_time) == ""
    behind = dataclasses.replace(on_time, start_lag_p99=250.0, start_lag_max=900.0)
    assert lag_warning(behind) == (
        "loadtest.py: warning: requests started up to 250 ms late (p99; max 900 ms): this "
        "machine could not keep 7.5 requests a second, so the numbers measure the tester as "
        "much as the target")
    assert json.loads(render_json(behind))["start_lag_ms"] == {"p99": 250.0, "max": 900.0}


def test_a_summary_with_no_answer_says_n_a_and_null() -> None:
    summary = summarize([Outcome("timeout")] * 3, "http://h/", 3, 1, 0, interrupted=True,
                        elapsed=0.84)
    text = render_text(summary)
    assert "Interrupted after 0.8 s" in text.splitlines()[3]
    assert re.search(r"^Min: +n/a  \(n/a\)$", text, re.MULTILINE)
    assert re.search(r"^p99: +n/a  \(n/a\)$", text, re.MULTILINE)
    assert "Timeouts:             3" in text
    data = json.loads(render_json(summary))
    assert data["latency_ms"]["p99"] is None and data["latency_from_send_ms"]["min"] is None
    assert (data["sent"], data["failed"], data["timeouts"], data["interrupted"]) == (3, 3, 3, True)
    assert data["status_codes"] == {}


# -- one request ---------------------------------------------------------------------------------


def test_latency_counts_from_the_scheduled_start_and_from_the_send() -> None:
    async def go(url: str) -> tuple[Outcome, Outcome]:
        async with aiohttp.ClientSession() as session:
            late = await fire(session, url, asyncio.get_running_loop().time() - 0.5)
            refused = await fire(session, f"http://127.0.0.1:{closed}/", 0.0)
        return late, refused

    with socket.socket() as spare:  # a port nobody listens on: bound, never listening
        spare.bind(("127.0.0.1", 0))
        closed = spare.getsockname()[1]
        with scripted_target(lambda i: Reply(201, 0.05)) as target:
            late, refused = asyncio.run(go(target.url))
    assert late.result == 201
    assert late.latency_ms is not None and late.send_latency_ms is not None
    assert 50 <= late.send_latency_ms < 150
    assert 499 <= late.latency_ms - late.send_latency_ms < 520
    assert refused == Outcome("connection")


# -- the command line ----------------------------------------------------------------------------


def test_a_bad_rate_is_a_usage_error_without_traceback() -> None:
    done = run("http://127.0.0.1:9/", "fast", "1", "1", limit=15)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith("usage: loadtest.py")
    assert "RPS" in done.stderr and "'fast' is not a number" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("argv", [
    ["http://h/", "0", "1", "1"], ["http://h/", "10", "-1", "1"], ["http://h/", "10", "1", "-0.5"],
    ["http://h/", "nan", "1", "1"], ["ftp://h/", "10", "1", "1"], ["h", "10", "1", "1"],
    ["http://h/", "10", "1"], ["http://h/", "0.1", "1", "1"], ["--config", "/nonexistent.json"],
])
def test_bad_parameters_are_usage_errors(argv: list[str],
                                         capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert capsys.readouterr().err.startswith("usage: loadtest.py")


def test_a_config_file_gives_the_parameters(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    with scripted_target(lambda i: Reply(200)) as target:
        config = tmp_path / "lt.json"
        config.write_text(json.dumps({"url": target.url, "rps": 10, "test_time": 0.3,
                                      "wait_timeout": 0.5}))
        assert main(["--config", str(config), "--json"]) == 0
        first = json.loads(capsys.readouterr().out)
        # TOML too, and a value on the command line wins over the file's.
        toml = tmp_path / "lt.toml"
        toml.write_text('url = "http://127.0.0.1:9/"\nrps = 20\ntest_time = 0.2\n'
                        'wait_timeout = 0.5\n')
        assert main([target.url, "--config", str(toml), "--json"]) == 0
        second = json.loads(capsys.readouterr().out)
    assert (first["url"], first["rps"], first["test_time"], first["sent"],
            first["completed"]) == (target.url, 10, 0.3, 3, 3)
    assert (second["url"], second["rps"], second["sent"], second["completed"]) == (
        target.url, 20, 4, 4)
    assert len(arrivals(target)) == 7


def test_a_config_with_an_unknown_key_is_refused(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "lt.json"
    config.write_text(json.dumps({"url": "http://h/", "rps": 1, "test_time": 1,
                                  "wait_timeout": 1, "rsp": 5}))
    with pytest.raises(SystemExit) as exited:
        main(["--config", str(config)])
    assert exited.value.code == 2
    assert "unknown keys rsp" in capsys.readouterr().err


@pytest.mark.slow(2)
def test_ctrl_c_prints_the_summary_so_far() -> None:
    # Every fourth request is never answered: in flight at Ctrl+C, it must count as a timeout.
    with scripted_target(lambda i: HANG if i % 4 == 3 else Reply(200)) as target:
        process = subprocess.Popen([sys.executable, str(SCRIPT), target.url, "20", "30", "1"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   cwd=ROOT, start_new_session=True)
        try:
            limit = time.monotonic() + 10
            while len(arrivals(target)) < 16 and time.monotonic() < limit:
                time.sleep(0.05)  # the run has started: about 0.8 s of requests
            os.killpg(process.pid, signal.SIGINT)  # as a terminal's Ctrl+C: the whole group
            pressed = time.monotonic()
            stdout, stderr = process.communicate(timeout=5)
            took = time.monotonic() - pressed
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        arrived = len(arrivals(target))
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert took < 2
    assert re.search(r"^Interrupted after \d+\.\d s", stdout, re.MULTILINE), stdout
    numbers = {label: int(n) for label, n in re.findall(r"^([-\w ()]+?): +(\d+)$", stdout,
                                                        re.MULTILINE)}
    assert abs(numbers["Total requests sent"] - arrived) <= 1
    assert numbers["Total requests sent"] < 40  # not the whole 600
    hung = sum(1 for i in range(arrived) if i % 4 == 3)
    assert abs(numbers["- Timeout errors"] - hung) <= 1
    assert numbers["200 OK"] >= arrived - hung - 1


def test_connection_limit_is_no_cap() -> None:
    assert loadtest.CONNECTION_LIMIT == 0
