"""The taskqueue judges on made-up observations: each fails on what it must, and none fails a
correct server because of when its polls happened to land (the bounds are sound)."""

from __future__ import annotations

import json

import httpx

from conformance._http import Exchange
from conformance._protocol import Outcome
from conformance.specs.taskqueue._observation import (
    BATCH,
    Batch,
    Poll,
    Timed,
    Watched,
    judge_delays,
    judge_monotonic,
    judge_no_early_result,
    judge_one_at_a_time,
    judge_order,
    judge_responsive,
)

URL = "http://127.0.0.1:9/api/v1/tasks/x"


def answer(status: int = 200, body: bytes = b"{}") -> Outcome:
    ex = Exchange("GET", URL, {}, None, status, "OK", httpx.Headers(), body, 0.001, 5.0)
    values = json.loads(body)
    return Outcome("status", "ok", values, f"GET {URL}", ex.summary(), ex.curl(), ex)


def timed(at: float, took: float = 0.01) -> Timed:
    return Timed(at, at + took, answer())


def poll(at: float, status: str, took: float = 0.01) -> Poll:
    return Poll(at, at + took, answer(), status)


def watched(index: int, polls: list[tuple[float, str]], submitted_at: float = 0.0) -> Watched:
    w = Watched(index, BATCH[index], timed(submitted_at), id=str(index))
    w.polls = [poll(at, status) for at, status in polls]
    return w


def batch(*tasks: Watched, scale: float = 0.1) -> Batch:
    return Batch(scale, 0.0, list(tasks), finished=10.0)


# Task 0 is type 1 (0.2 s at scale 0.1), task 1 type 2 (0.5 s).
SEQUENTIAL = [
    watched(0, [(0.05, "running"), (0.15, "running"), (0.25, "done"), (0.35, "done")]),
    # Seen running 1 ms after task 0's last "running" poll left: a hand-over, not an overlap.
    watched(1, [(0.05, "queued"), (0.151, "running"), (0.25, "running"), (0.45, "running"),
                (0.70, "done"), (0.80, "done")]),
]


def test_a_sequential_server_passes_whatever_the_timing() -> None:
    b = batch(*SEQUENTIAL)
    for judge in (judge_delays, judge_one_at_a_time, judge_order, judge_monotonic,
                  judge_no_early_result):
        assert judge(b) is None, judge.__name__
    assert judge_responsive(b, 0.5) is None


def test_two_tasks_running_together_are_caught() -> None:
    a = watched(0, [(0.05, "running"), (0.15, "running"), (0.25, "done")])
    b = watched(1, [(0.05, "running"), (0.15, "running"), (0.55, "done")])
    failure = judge_one_at_a_time(batch(a, b))
    assert failure is not None and "were both running" in failure.message


def test_a_task_started_while_one_ahead_waits_is_caught() -> None:
    a = watched(0, [(0.05, "queued"), (0.30, "queued"), (0.40, "running"), (0.70, "done")])
    b = watched(1, [(0.05, "running"), (0.30, "done")])
    failure = judge_order(batch(a, b))
    assert failure is not None and "started before task 1" in failure.message


def test_a_task_done_before_its_delay_is_caught() -> None:
    fast = watched(1, [(0.05, "queued"), (0.10, "running"), (0.20, "done")])
    failure = judge_delays(batch(fast))
    assert failure is not None and "its delay is 0.5 s" in failure.message


def test_a_task_never_seen_running_is_told_so() -> None:
    hidden = watched(1, [(0.05, "queued"), (0.50, "queued"), (0.55, "done")])
    failure = judge_delays(batch(hidden))
    assert failure is not None and "never seen running" in failure.message


def test_a_status_going_back_is_caught() -> None:
    back = watched(0, [(0.05, "queued"), (0.10, "done"), (0.15, "running"), (0.40, "done")])
    failure = judge_monotonic(batch(back))
    assert failure is not None and "from 'done' back to 'running'" in failure.message


def test_a_result_given_while_queued_is_caught() -> None:
    w = watched(0, [(0.05, "queued"), (0.20, "queued"), (0.30, "running"), (0.60, "done")])
    w.early = [("queued", Timed(0.06, 0.07, answer(200, b'{"result": "x"}')))]
    failure = judge_no_early_result(batch(w))
    assert failure is not None and "its result came" in failure.message


def test_two_slow_answers_fail_responsiveness_and_one_is_forgiven() -> None:
    tasks = [watched(0, [(0.05, "running"), (0.15, "running"), (0.25, "done")])]
    one = batch(*tasks)
    one.others = [Timed(0.1, 0.9, answer())]
    assert judge_responsive(one, 0.5) is None
    two = batch(*tasks)
    two.others = [Timed(0.1, 0.9, answer()), Timed(0.12, 1.0, answer())]
    failure = judge_responsive(two, 0.5)
    assert failure is not None and "2 requests took over 0.5 s" in failure.message
