"""Checks of the `taskqueue` spec (openapi/taskqueue.requirements.yaml) against any server by URL.

The suite speaks to the server through a protocol description (conformance/_protocol.py): ours,
openapi/taskqueue.protocol.yaml, unless --protocol FILE gives the student's, since the assignment
leaves the protocol open. The behaviour MUSTs are judged through it whatever it says; the times
(TQ-16) and the not-ready answer naming the status (TQ-18) wherever the description locates them
(optional values), not run where it does not; the SHOULDs about our protocol's own choices (201,
refusing bad bodies, fuzzing against openapi/taskqueue.yaml) only when the description is ours.

Most requirements are judged on one observation (_observation.py): eight tasks, the
seed's examples and any-Unicode ones, submitted back to back and watched from outside until done,
which takes the sum of their delays (35 s at the real scale; --time-scale F for a server started
with its delays multiplied by F). The checks that send other requests come after it, so nothing
they might queue disturbs it; fuzzing sends no valid task, each of which would hold the queue.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from conformance._checks import CheckFailure, NotRun, requirement
from conformance._fuzz import fuzz_check
from conformance._http import Http
from conformance._options import RunOptions, SpecOptions
from conformance._protocol import Protocol, Speaker, default_path, load
from conformance._spec import Spec
from conformance.specs.taskqueue import OPERATIONS, Options
from conformance.specs.taskqueue._observation import (
    DELAYS,
    STATUSES,
    TIMES,
    Batch,
    Watched,
    expected_seconds,
    judge_delays,
    judge_monotonic,
    judge_no_early_result,
    judge_one_at_a_time,
    judge_order,
    judge_responsive,
    judge_times,
    observe,
    status_of,
)

JSON = {"Content-Type": "application/json"}
TASKS = "/api/v1/tasks"  # our protocol's, for the checks of its own choices
OPEN = ("the assignment leaves the protocol to the developer; if this server speaks one of its "
        "own, describe it: `conformance protocol taskqueue > mine.protocol.yaml`, edit it, then "
        "`conformance run taskqueue ... --protocol mine.protocol.yaml`")


@pytest.fixture(scope="session")
def protocol(options: RunOptions[Options]) -> Protocol:
    """The run's protocol description: --protocol's, or ours."""
    return load(options.spec.protocol or default_path("taskqueue"), spec="taskqueue",
                operations=OPERATIONS)


@pytest.fixture(scope="session")
def speaker(http: Http, protocol: Protocol) -> Speaker:
    """Performs the description's operations on the target."""
    return Speaker(protocol, http)


@pytest.fixture(scope="session")
def batch(speaker: Speaker, options: RunOptions[Options]) -> Batch:
    """The batch, submitted and watched once per run."""
    return observe(speaker, options.spec.time_scale)


def ours_only(protocol: Protocol) -> None:
    """Not run unless the run speaks our protocol: the requirement is about its choices."""
    if not protocol.is_default:
        raise NotRun(f"it is about our protocol's own choices (openapi/taskqueue.yaml); this "
                     f"run speaks the one described in {protocol.source}")


def located(protocol: Protocol, operation: str, names: tuple[str, ...]) -> None:
    """Not run unless the description says where `operation`'s answer has `names` (optional
    values a server of its own protocol may not show)."""
    answer = protocol.operations[operation]["answer"]
    missing = [n for n in names if n not in answer]
    if missing:
        raise NotRun(f"the description ({protocol.source.name}) does not locate "
                     f"{', '.join(missing)} in the {operation} answer (optional values: "
                     f"`conformance protocol taskqueue` shows how)")


def _shown(condition: dict[str, Any]) -> str:
    """A description's condition or locator as one line of YAML-like text."""
    return ", ".join(f"{k}: {v}" for k, v in condition.items())


def raise_if(failure: CheckFailure | None) -> None:
    """Raise a judge's failure, if it found one."""
    if failure is not None:
        raise failure


def done_with_result(batch: Batch, task_type: int | None = None) -> list[tuple[Watched, str]]:
    """The tasks seen done whose first result fetch gave a string, with that result."""
    out = []
    for w in batch.live():
        if task_type is not None and w.planned.type != task_type:
            continue
        reads = w.results_once_done()
        result = reads[0].value("result") if reads else None
        if isinstance(result, str):
            out.append((w, result))
    return out


def check_transform(batch: Batch, task_type: int) -> None:
    """Every done task of `task_type` gave what its rule says."""
    judged = done_with_result(batch, task_type)
    if not judged:
        raise NotRun(f"no task of type {task_type} was seen done with a result")
    for w, result in judged:
        if result != w.planned.expected:
            read = w.results_once_done()[0]
            raise CheckFailure(f"{w.label} gave {result!r}", expected=repr(w.planned.expected),
                               actual=read.describe(), reproduce=read.reproduce())


# MUST ---------------------------------------------------------------------------------------

def offer_draft(http: Http) -> str:
    """The draft command, for a server that answers HTTP and publishes its OpenAPI document at
    /openapi.json (FastAPI does); "" otherwise."""
    from conformance._draft import publishes

    if not publishes(http):
        return ""
    return (f"; it publishes its OpenAPI document, from which `conformance protocol taskqueue "
            f"--from-url {http.base_url} > mine.protocol.yaml` drafts a description (check the "
            f"lines marked as guesses)")


@requirement("TQ-01")
def test_speaks_the_described_protocol(batch: Batch, protocol: Protocol, http: Http) -> None:
    """The first task of the batch, submitted as the description says, gets an id."""
    first = batch.watched[0]
    sub = first.submitted
    if first.id is not None:
        return
    described = f"the protocol of {protocol.source.name}"
    draft = offer_draft(http) if sub.exchange is not None else ""
    if not sub.answered:
        raise CheckFailure(f"submitting {first.label} got no answer: {sub.describe()}; "
                           f"if it speaks a protocol of its own, {OPEN}",
                           expected=f"an answer in {described}", actual=sub.describe(),
                           reproduce=sub.reproduce())
    raise CheckFailure(f"submitting {first.label} as {described} says ({sub.outcome.request}) "
                       f"gave no task id; {OPEN}{draft}",
                       expected=f"a task id where {protocol.source.name} says",
                       actual=sub.describe(), reproduce=sub.reproduce())


@requirement("TQ-02")
def test_submitting_queues_a_task_with_an_id(batch: Batch, note: Callable[[str], None]) -> None:
    """Each submission answers with an id; ids differ."""
    seen: dict[str, Watched] = {}
    for w in batch.watched:
        sub = w.submitted
        if w.planned.optional and w.id is None:
            continue  # refusing empty data is allowed (TQ-23)
        if w.id is None:
            raise CheckFailure(f"submitting {w.label} gave no task id",
                               expected="a task id, where the description says",
                               actual=sub.describe(), reproduce=sub.reproduce())
        if w.id in seen:
            raise CheckFailure(f"{w.label} got the id {w.id!r} of {seen[w.id].label}",
                               expected="an id of its own", actual=sub.describe(),
                               reproduce=sub.reproduce())
        seen[w.id] = w
    took = batch.finished - batch.t0
    note(f"the batch of {len(batch.watched)} tasks took {took:.1f} s (delays "
         f"{expected_seconds(batch.scale):g} s at time scale {batch.scale:g}); "
         f"{len(batch.requests())} requests")


@requirement("TQ-03")
def test_status_is_shown(batch: Batch) -> None:
    """Asking a task's status answers a known status word (after the description's words)."""
    for w in batch.live():
        answered = [p for p in w.polls if p.answered]
        for poll in answered:
            if poll.status not in STATUSES:
                what = (f"shows the status {poll.status!r}" if poll.status is not None
                        else "gives no status")
                raise CheckFailure(f"{poll.outcome.request} ({w.label}) {what}; words of its "
                                   f"own are described with --protocol "
                                   f"(`conformance protocol taskqueue` shows how)",
                                   expected=f"a status: one of {', '.join(STATUSES)}",
                                   actual=poll.describe(), reproduce=poll.reproduce())
        if not answered and w.polls:
            poll = w.polls[0]
            raise CheckFailure(f"no status request of {w.label} got an answer",
                               expected="200 and the task's status", actual=poll.describe(),
                               reproduce=poll.reproduce())


@requirement("TQ-04")
def test_result_of_a_done_task(batch: Batch) -> None:
    """Asking the result of a done task gives a string result."""
    done = [w for w in batch.live() if w.results_once_done()]
    if not done:
        raise NotRun("no task of the batch was seen done")
    for w in done:
        first = w.results_once_done()[0]
        if not isinstance(first.value("result"), str):
            raise CheckFailure(f"the result of {w.label}, which is done, did not come",
                               expected="a result (a string), where the description says",
                               actual=first.describe(), reproduce=first.reproduce())


@requirement("TQ-05")
def test_type_1_reverses(batch: Batch) -> None:
    """Type 1 reverses: пример -> ремирп, and any Unicode string."""
    check_transform(batch, 1)


@requirement("TQ-06")
def test_type_2_swaps_pairs(batch: Batch) -> None:
    """Type 2 swaps pairs: пример -> рпмире, кот -> окт."""
    check_transform(batch, 2)


@requirement("TQ-07")
def test_type_3_repeats_by_position(batch: Batch) -> None:
    """Type 3 repeats by position: пример -> прриииммммееееерррррр."""
    check_transform(batch, 3)


@requirement("TQ-08")
def test_delays(batch: Batch, note: Callable[[str], None]) -> None:
    """Each task runs its type's delay: 2, 5 or 7 s (times the run's time scale)."""
    if batch.scale != 1.0:
        scaled = ", ".join(f"{d * batch.scale:g}" for d in DELAYS.values())
        note(f"delays expected scaled by {batch.scale:g}: {scaled} s")
    raise_if(judge_delays(batch))


@requirement("TQ-09")
def test_one_task_at_a_time(batch: Batch) -> None:
    """No two tasks are seen running at the same moment."""
    raise_if(judge_one_at_a_time(batch))


@requirement("TQ-10")
def test_tasks_run_in_submission_order(batch: Batch) -> None:
    """No task starts, or is done, before one submitted ahead of it."""
    raise_if(judge_order(batch))


@requirement("TQ-11")
def test_requests_are_answered_while_a_task_runs(batch: Batch,
                                                 note: Callable[[str], None]) -> None:
    """Status requests and submissions answer quickly while a task runs."""
    limit = max(batch.scale, 0.5)  # a second at the real scale
    took = sorted(t.took for t in batch.requests() if t.answered)
    if took:
        note(f"{len(took)} answers during the batch; the slowest took {took[-1]:.3f} s, the "
             f"median {took[len(took) // 2]:.3f} s")
    raise_if(judge_responsive(batch, limit))


@requirement("TQ-12")
def test_result_can_be_fetched_again(batch: Batch) -> None:
    """Every fetch of a done task's result gives the same result."""
    judged = done_with_result(batch)
    if not judged:
        raise NotRun("no task of the batch was seen done with a result")
    for w, first in judged:
        for again in w.results_once_done()[1:]:
            if again.value("result") != first:
                raise CheckFailure(f"asked again, the result of {w.label} did not come back",
                                   expected=f"the result {first!r}, as the first time",
                                   actual=again.describe(), reproduce=again.reproduce())


@requirement("TQ-13")
def test_statuses_only_go_forward(batch: Batch) -> None:
    """queued -> running -> done, never back; done stays done."""
    raise_if(judge_monotonic(batch))


@requirement("TQ-14")
def test_no_result_before_done(batch: Batch) -> None:
    """A result asked for before the task is done does not come."""
    if not any(w.early for w in batch.live()):
        raise NotRun("no task was seen queued or running, so no result was asked for early")
    raise_if(judge_no_early_result(batch))


# SHOULD -------------------------------------------------------------------------------------

@requirement("TQ-15")
def test_submitting_answers_201_with_the_task(batch: Batch, protocol: Protocol) -> None:
    """A submission answers 201 with the task, queued or running."""
    ours_only(protocol)
    for w in batch.live():
        sub = w.submitted
        assert sub.exchange is not None
        status = status_of(sub.body())
        if sub.exchange.status != 201 or status not in ("queued", "running"):
            raise CheckFailure(f"submitting {w.label} answered {sub.exchange.status} with the "
                               f"status {status!r}",
                               expected='201 and the task with "status": "queued" (or '
                                        '"running")', actual=sub.describe(),
                               reproduce=sub.reproduce())


@requirement("TQ-16")
def test_times_tell_the_same_story(batch: Batch, protocol: Protocol) -> None:
    """queued_at, started_at, finished_at: RFC 3339, in order, one task after another (where
    the description locates them in the status answer)."""
    located(protocol, "status", TIMES)
    raise_if(judge_times(batch))


@requirement("TQ-17")
def test_unknown_id_is_not_found(speaker: Speaker, protocol: Protocol) -> None:
    """An id that names no task is answered "not found" (404 in ours), status and result."""
    for operation in ("status", "result"):
        if "not_found" not in protocol.operations[operation]:
            raise NotRun(f"{protocol.source.name} does not say how {operation} answers an id "
                         f"that names no task (not_found)")
    for task_id in (str(uuid.uuid4()), "no-such-task"):
        for operation in ("status", "result"):
            got = speaker.call(operation, id=task_id)
            if got.kind != "not_found":
                mark = protocol.operations[operation]["not_found"]
                raise CheckFailure(f"{got.request} (an id that names no task) answered "
                                   f"{got.describe()}",
                                   expected=f"not found, as the description says: {mark}",
                                   actual=got.describe(), reproduce=got.reproduce)


@requirement("TQ-18")
def test_result_before_done_is_409(batch: Batch, protocol: Protocol) -> None:
    """The result of a task not done yet answers "not ready" with its status (409 and "status"
    in ours), where the description says what marks it and where the status is."""
    located(protocol, "result", ("status",))
    mark = protocol.operations["result"].get("not_ready")
    if mark is None:
        raise NotRun(f"{protocol.source.name} does not say what marks a result that is not "
                     f"ready (not_ready)")
    early = [(w, status, asked) for w in batch.live() for status, asked in w.early]
    if not early:
        raise NotRun("no task was seen queued or running, so no result was asked for early")
    where = protocol.operations["result"]["answer"]["status"]
    for w, status, asked in early:
        later = [p for p in w.polls if p.sent >= asked.received and p.status == status]
        if not later:
            continue  # it may have moved on meanwhile: then the answer could rightly differ
        named = asked.outcome.values.get("status")
        if asked.outcome.kind != "not_ready" or named != status:
            expected = (f'409 and a JSON object with "status": "{status}"' if protocol.is_default
                        else f"not ready ({_shown(mark)}) with the status {status!r} at "
                             f"{_shown(where)}")
            raise CheckFailure(f"asked while {w.label} was {status}, the result request "
                               f"answered {asked.describe()}", expected=expected,
                               actual=asked.describe(), reproduce=asked.reproduce())


BAD_BODIES: list[tuple[str, bytes]] = [
    ("type 0", b'{"type": 0, "data": "x"}'),
    ("type 4", b'{"type": 4, "data": "x"}'),
    ('type "reverse"', b'{"type": "reverse", "data": "x"}'),
    ("type null", b'{"type": null, "data": "x"}'),
    ("data a number", b'{"type": 1, "data": 123}'),
    ("data a list", b'{"type": 1, "data": ["x"]}'),
    ("no data", b'{"type": 1}'),
    ("no type", b'{"data": "x"}'),
    ("a JSON list", b'[1, "x"]'),
    ("not JSON", b"type=1&data=x"),
]


@requirement("TQ-19")
def test_bad_bodies_are_refused(http: Http, protocol: Protocol) -> None:
    """Bodies that are not a task get 422 (or 400)."""
    ours_only(protocol)
    for what, raw in BAD_BODIES:
        ex = http.request("POST", TASKS, content=raw, headers=JSON)
        if ex.status not in (400, 422):
            raise CheckFailure(f"a body with {what} ({raw.decode()}) answered {ex.status}",
                               expected="422 (or 400)", actual=ex.summary(), reproduce=ex.curl())


@requirement("TQ-20")
def test_huge_data_is_refused(http: Http, protocol: Protocol) -> None:
    """Data of 100,000 characters gets 413 or 422."""
    ours_only(protocol)
    raw = b'{"type": 1, "data": "' + b"a" * 100_000 + b'"}'
    ex = http.request("POST", TASKS, content=raw, headers=JSON)
    if ex.status not in (413, 422):
        raise CheckFailure(f"a task with 100,000 characters of data answered {ex.status}",
                           expected="413 or 422", actual=ex.summary(), reproduce=ex.curl())


@requirement("TQ-21", "TQ-22")
def test_fuzzed_requests(http: Http, spec: Spec, options: RunOptions[SpecOptions],
                         protocol: Protocol, note: Callable[[str], None]) -> None:
    """Generated requests get no 5xx and answers as openapi/taskqueue.yaml documents."""
    ours_only(protocol)

    def no_valid_task(document: dict[str, Any]) -> None:
        # A valid task holds the queue for seconds: only types that are not one are generated.
        new_task = document["components"]["schemas"]["NewTask"]
        new_task["properties"]["type"] = {"enum": [0, 4, -1, 99]}
        new_task.pop("examples", None)

    assert spec.openapi is not None
    report = fuzz_check(http, spec.openapi, no_server_error="TQ-21", matches_spec="TQ-22",
                        seed=options.seed, max_examples=options.fuzz_examples,
                        seconds=options.fuzz_seconds, adjust=no_valid_task,
                        max_rate=options.max_rate)
    note(f"fuzzing sent {report.sent} requests in {report.seconds:.1f} s (seed {options.seed})")


# MAY ----------------------------------------------------------------------------------------

@requirement("TQ-23")
def test_empty_data(batch: Batch, note: Callable[[str], None]) -> None:
    """Empty data is done with an empty result, or refused with a 4xx."""
    w = next(w for w in batch.watched if w.planned.optional)
    sub = w.submitted
    if w.id is None and sub.answered and (sub.exchange is None
                                          or 400 <= sub.exchange.status < 500):
        note(f"empty data is refused ({sub.describe()})")
        return
    if w.id is None:
        raise CheckFailure("submitting empty data was neither taken nor refused",
                           expected="an id, or a refusal (a 4xx over HTTP)",
                           actual=sub.describe(),
                           reproduce=sub.reproduce())
    result = next((r for v, r in done_with_result(batch) if v is w), None)
    if result is None:
        raise CheckFailure(f"{w.label} was taken but gave no result",
                           expected='done, with "result": ""',
                           actual=f"last seen {w.final() or 'with no valid answer'}",
                           reproduce=batch.reproducer())
    if result != "":
        read = w.results_once_done()[0]
        raise CheckFailure(f"{w.label} gave {result!r}", expected='""', actual=read.describe(),
                           reproduce=read.reproduce())
    note("empty data is taken and gives an empty result")

