"""The loadtest suite's pieces that no twin run pins down alone: the lenient reading of a
summary (the seed's own example, other layouts, JSON), the command line a tester is given, and
the scripted target's plans."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conformance._target import ProgramTarget
from conformance.specs.loadtest._runs import command_line
from conformance.specs.loadtest._summary import classify, parse
from conformance.specs.loadtest._target import PLANS, STEADY_DELAYS, Fault, Reply
from conformance.specs.loadtest.checks import script_stats

SEED = Path(__file__).resolve().parent.parent.parent / "shared" / "seeds"

SEED_EXAMPLE = """\
Target URL: https://www.bitrix24.ru/prices/
Test duration: 10s, RPS: 100 (total 1000 requests)
Timeout for responses: 5s

=== Request Summary ===
Total requests sent:    1000
Completed successfully:  845
Failed requests:      155
- Timeout errors:     112
- Connection errors:  31
- HTTP errors (5xx):  12

=== Response Time (ms) ===
Min:     48
Max:   4012
Mean:   523.7
Median: 217
p75:    312
p90:    743
p95:   1031
p99:   2561

=== Status Code Distribution ===
200 OK:         832
301 Redirect:    13
500 Server Err:  10
Timeouts:       112
"""


def test_the_seeds_example_reads_whole() -> None:
    seeds = list(SEED.glob("002_*.txt"))
    if seeds:  # the example above is the seed's, character for character
        assert SEED_EXAMPLE.strip().splitlines()[5] in seeds[0].read_text(encoding="utf-8")
    summary = parse(SEED_EXAMPLE)
    assert summary.counts == {"sent": 1000, "completed": 845, "failed": 155, "timeouts": 112,
                              "connection": 31, "http_5xx": 12}
    assert {k: v[0] for k, v in summary.latency.items()} == {
        "min": 48, "max": 4012, "mean": 523.7, "median": 217, "p75": 312, "p90": 743,
        "p95": 1031, "p99": 2561}
    assert summary.codes == {200: 832, 301: 13, 500: 10}


def test_another_layout_reads_by_its_labels() -> None:
    text = """--- Results ---
[1s] 100 requests sent, ok 95
Requests sent:         1,200
Successful:            1,162
Failed:                38 (3.2%)
  Timeouts:            10
  Connection errors:   8
  Server errors (5xx): 20
Requests per second: 99.6
Max concurrency: 50
--- Latency, ms ---
min: 7.28 | avg: 30.5 | p50: 25.3 | 75th percentile: 43.6
p90 0.0539s   p95=55.2   p99: 58.8   max: 61.4  (62.0 from send)
--- Status codes ---
HTTP 200: 1154
[404] 4
500 Internal Server Error: 20 (1.7%)
"""
    summary = parse(text)
    assert summary.counts == {"sent": 1200, "completed": 1162, "failed": 38, "timeouts": 10,
                              "connection": 8, "http_5xx": 20}
    assert {k: v[0] for k, v in summary.latency.items()} == pytest.approx({
        "min": 7.28, "mean": 30.5, "median": 25.3, "p75": 43.6, "p90": 53.9, "p95": 55.2,
        "p99": 58.8, "max": 61.4})
    assert summary.codes == {200: 1154, 404: 4, 500: 20}


def test_json_reads_by_its_keys() -> None:
    data = {"url": "http://x/", "rps": 20, "test_time": 1, "wait_timeout": 1, "sent": 20,
            "completed": 19, "failed": 1, "timeouts": 1, "connection_errors": 0,
            "http_5xx": 0, "interrupted": False,
            "latency_ms": {"measured_from": "scheduled start", "min": 1.5, "p99": 9.0},
            "latency_from_send_ms": {"min": 1.25}, "status_codes": {"200": 19}}
    summary = parse(json.dumps(data))
    assert summary.json
    assert summary.counts == {"sent": 20, "completed": 19, "failed": 1, "timeouts": 1,
                              "connection": 0, "http_5xx": 0}
    assert summary.latency == {"min": [1.5, 1.25], "p99": [9.0]}
    assert summary.codes == {200: 19}


@pytest.mark.parametrize(("label", "kind"), [
    ("Timeout for responses:", None), ("wait_timeout", None), ("Test duration:", None),
    ("Requests per second:", None), ("Max concurrency:", None), ("Total time:", None),
    ("HTTP errors (4xx):", None), ("Errors:", "failed"), ("- HTTP errors (5xx):", "http_5xx"),
    ("Timed out:", "timeouts"), ("Response time p95 (ms):", "latency:p95"),
    ("Average latency:", "latency:mean"), ("Total:", "sent"), ("Start lag p99:", None),
    ("start_lag_ms.max", None),
])
def test_labels(label: str, kind: str | None) -> None:
    assert classify(label) == kind


def test_parameters_go_where_the_placeholders_put_them(tmp_path: Path) -> None:
    plan = PLANS["json"]
    plain = ProgramTarget(["python", "lt.py"], 0, "lt")
    assert command_line(plain, plan, "http://h/x") == [
        "python", "lt.py", "http://h/x", "20", "1", "1", "--json"]
    flags = ProgramTarget(["python", "lt.py", "-u", "{url}", "--rate={rps}", "-t",
                           "{test_time}", "-w", "{wait_timeout}"], 0, "lt")
    assert command_line(flags, PLANS["usage"], "http://h/x") == [
        "python", "lt.py", "-u", "http://h/x", "--rate=fast", "-t", "1", "-w", "1"]
    config = ProgramTarget(["python", "lt.py", "--config", "{config}"], 0, "lt")
    assert command_line(config, PLANS["steady"], "u") == [
        "python", "lt.py", "--config", "loadtest.json"]


def test_plans_answer_by_arrival_order() -> None:
    assert len(STEADY_DELAYS) == PLANS["steady"].count == 200
    assert min(STEADY_DELAYS) == pytest.approx(0.005) and max(STEADY_DELAYS) == \
        pytest.approx(0.5)
    holds = [PLANS["holds"].answer(i) for i in range(PLANS["holds"].count)]
    assert holds.count(Fault.HOLD) == 10
    resets = [PLANS["resets"].answer(i) for i in range(PLANS["resets"].count)]
    assert resets.count(Fault.RESET) == 10
    statuses = [a.status for a in (PLANS["errors"].answer(i) for i in range(100))
                if isinstance(a, Reply)]
    assert (statuses.count(200), statuses.count(404), statuses.count(500)) == (70, 10, 20)


def test_script_stats_allow_either_percentile_rule() -> None:
    from conformance._servers import Seen
    from conformance.specs.loadtest._runs import Run

    plan = PLANS["steady"]
    seen = [Seen("GET", "/", float(i), status=200) for i in range(plan.count)]
    stats = script_stats(Run(plan, [], "u", requests=seen))
    ordered = sorted(d * 1000 for d in STEADY_DELAYS)
    assert stats["min"] == (ordered[0], ordered[0])
    # nearest rank: the 100th value; interpolated: halfway to the 101st
    assert stats["median"] == pytest.approx((ordered[99], (ordered[99] + ordered[100]) / 2))
    assert stats["p99"] == pytest.approx((ordered[197], ordered[197] + 0.01 * (
        ordered[198] - ordered[197])))
