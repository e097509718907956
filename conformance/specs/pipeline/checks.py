"""Checks of the `pipeline` spec (openapi/pipeline.requirements.yaml) against a running set of
four services: the client at the base URL, the others at --service ROLE=URL (default: the same
host on ports 5001-5003), the writer's tables over HTTP or in --output-dir.

Each service is checked on its own first (processor, receiver, the writer's order on records
sent one by one), then the whole pipeline through the client: one run of 4 x 10 requests with
delays up to 1 s, watched from its GET until its records stop coming, judged on the lines it
added to the tables; then the client's defaults (10 x 10, up to 5 s) and its bad parameters.
A service that nothing listens for fails the requirement that asks for it (PIPE-01 the client,
RECV-01 the receiver) whatever else failed; the tables are looked for once a record exists.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from conformance._checks import CheckFailure, NotRun, requirement
from conformance._http import Exchange, Http
from conformance._options import RunOptions
from conformance._target import ServerTarget, host_port, wait_until_listening
from conformance.specs.pipeline import Options
from conformance.specs.pipeline._observation import (
    HEADERS,
    POLL,
    ROLE_PORTS,
    TABLES,
    LoadRun,
    Row,
    Tables,
    drive,
    parse_time,
    service_urls,
)

JSON = {"Content-Type": "application/json"}
RUN = {"connection_count": 4, "connection_value": 10, "delay_range": 1}
DEFAULTS = {"connection_count": 10, "connection_value": 10, "delay_range": 5}
SLACK = {"answer": 10.0, "concurrency": 2.0, "defaults": 3.0, "written": 1.0, "processor": 1.0}
HARD_LIMIT = 45.0  # seconds a watched run may take, all told
OUR_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]\d\d:\d\d)")
CLOCK = 0.005  # seconds a wait may seem short by, from timer granularity
TABLES_WAIT = 3.0  # seconds the tables have to appear once the receiver took a record
LISTEN_WAIT = 3.0  # seconds a service has to listen: the others may start after the client


def _query(params: dict[str, Any]) -> str:
    return "/?" + "&".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in params.items())


@pytest.fixture(scope="session")
def services(server: ServerTarget, options: RunOptions[Options]) -> Iterator[dict[str, Http]]:
    """An HTTP client per role; the writer's may read big tables."""
    urls = service_urls(server.base_url, options.spec.services)
    made = {role: Http(url, options.timeout, explain=server.explain,
                       max_body=(256 << 20) if role == "writer" else 1 << 20)
            for role, url in urls.items()}
    for h in made.values():
        h.__enter__()
    try:
        yield made
    finally:
        for h in made.values():
            h.__exit__(None, None, None)


@pytest.fixture(scope="session")
def tables(services: dict[str, Http], options: RunOptions[Options]) -> Tables:
    """The writer's tables."""
    return Tables(services["writer"], options.spec.output_dir)


def _post(h: Http, path: str, body: Any, *, timeout: float | None = None,
          requirement: str | None = None) -> Exchange:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return h.request("POST", path, headers=JSON, content=raw, timeout=timeout,
                     requirement=requirement)


def _fresh_id() -> int:
    """An id no run of a client is likely to have used (ids are integers >= 0)."""
    return random.SystemRandom().randrange(10**9, 2 * 10**9)


def _body(ex: Exchange) -> Any:
    try:
        return ex.json()
    except ValueError:
        return None


def _expect_400(ex: Exchange, what: str) -> None:
    body = _body(ex)
    if ex.status != 400 or not isinstance(body, dict) or not isinstance(body.get("detail"), str):
        raise CheckFailure(f"{what} was answered {ex.status}",
                           expected='400 with a JSON object whose "detail" says what is wrong',
                           actual=ex.summary(), reproduce=ex.curl())


# --- the services are there --------------------------------------------------------------------

def _expect_listening(role: str, h: Http, server: ServerTarget) -> None:
    """Fail unless something listens where `role` is expected (waiting a little: the services
    need not start together)."""
    host, port = host_port(h.base_url)
    # A client the run started and waited for already had its time to listen.
    waited = role == "client" and bool(server.startup_problem)
    if wait_until_listening(host, port, 0.5 if waited else LISTEN_WAIT):
        return
    why = server.explain() if role == "client" else ""
    told = ("the run's base URL: --base-url, or {port} of --command" if role == "client"
            else f"--service {role}=URL, else the client's host on port {ROLE_PORTS[role]}")
    raise CheckFailure(
        f"nothing listens at {h.base_url}, where the {role} service is expected ({told})",
        expected=f"the {role} service listening at {h.base_url}",
        actual="no connection accepted" + (f"; {why}" if why else ""),
        reproduce=f"nc -zv {host} {port}")


# The rest of PIPE-01 (and RECV-01) needs the tables; that the service is there needs nothing.
@requirement("PIPE-01", needs=())
def test_the_client_service_is_there(services: dict[str, Http], server: ServerTarget) -> None:
    """Something listens at the client's address."""
    _expect_listening("client", services["client"], server)


@requirement("RECV-01", needs=())
def test_the_receiver_service_is_there(services: dict[str, Http], server: ServerTarget) -> None:
    """Something listens at the receiver's address."""
    _expect_listening("receiver", services["receiver"], server)


# --- the writer's tables -----------------------------------------------------------------------

@requirement("WRITE-01")
def test_the_writers_tables_can_be_read(tables: Tables, services: dict[str, Http]) -> None:
    """The two tables are there to read, at the writer or in --output-dir, once a record was
    written: a writer may make them when its first record comes, so when they are not there
    yet the receiver is sent one first."""
    snap = tables.snapshot()
    if not snap.missing:
        return
    names = " and ".join(TABLES[t] for t in snap.missing)
    try:
        ex = _post(services["receiver"], "/requests", {"id": _fresh_id(), "delay": 0}, timeout=5)
    except CheckFailure as failure:
        raise NotRun(f"{tables.where} has no {names} before any record, and no record could be "
                     f"sent to have them made: {failure.message}") from None
    if ex.status != 200:
        raise NotRun(f"{tables.where} has no {names} before any record, and the receiver did "
                     f"not take one to have them made: {ex.request_line} answered {ex.status}")
    deadline = time.monotonic() + TABLES_WAIT
    while snap.missing and time.monotonic() < deadline:
        time.sleep(POLL)
        snap = tables.snapshot()
    if snap.missing:
        table = snap.missing[0]
        absent = getattr(snap, table).absent
        raise CheckFailure(
            f"{tables.where} has no {TABLES[table]}, {TABLES_WAIT:g} s after the receiver took "
            f"a record ({ex.request_line} answered 200)", expected=tables.expected(table),
            actual=absent, reproduce=f"{ex.curl()}; sleep {TABLES_WAIT:g}; {tables.show(table)}")


# --- the processor -----------------------------------------------------------------------------

@requirement("PROC-01")
def test_processor_answers_ok(services: dict[str, Http]) -> None:
    """POST /process answers 200 {"asyncAnswer": "Ok"}."""
    ex = _post(services["processor"], "/process", {"id": _fresh_id(), "delay": 0})
    if ex.status != 200 or _body(ex) != {"asyncAnswer": "Ok"}:
        raise CheckFailure(f"{ex.request_line} answered {ex.status}",
                           expected='200 and the JSON object {"asyncAnswer": "Ok"}',
                           actual=ex.summary(), reproduce=ex.curl())


@requirement("PROC-02")
def test_processor_waits_the_delay(services: dict[str, Http]) -> None:
    """A delay of 0.5 s is answered after 0.5 s and within 1.5 s."""
    delay = 0.5
    ex = _post(services["processor"], "/process", {"id": _fresh_id(), "delay": delay},
               timeout=delay + 5)
    if not delay - CLOCK <= ex.elapsed <= delay + SLACK["processor"]:
        raise CheckFailure(f"a delay of {delay:g} s was answered after {ex.elapsed:.3f} s",
                           expected=f"an answer after {delay:g} to "
                                    f"{delay + SLACK['processor']:g} s",
                           actual=f"{ex.elapsed:.3f} s: {ex.summary()}", reproduce=ex.curl())


@requirement("PROC-03")
def test_processor_waits_without_blocking(services: dict[str, Http]) -> None:
    """Ten requests of 1 s at once are all answered within 2 s."""
    processor = services["processor"]
    count, delay, limit = 10, 1.0, 2.0
    started = time.monotonic()
    pending = [processor.request_soon("POST", "/process", headers=JSON, timeout=limit + 2,
                                      content=json.dumps({"id": _fresh_id(),
                                                          "delay": delay}).encode())
               for _ in range(count)]
    answers: list[Exchange] = []
    for p in pending:
        try:
            answers.append(p.result())
        except CheckFailure as failure:
            raise CheckFailure(f"of {count} requests of {delay:g} s sent at once, one got no "
                               f"answer within {limit + 2:g} s: the processor waits one at a "
                               f"time", expected=f"all answered within {limit:g} s",
                               actual=failure.actual,
                               reproduce=_parallel_curl(processor)) from None
    took = time.monotonic() - started
    if took > limit or any(a.status != 200 for a in answers):
        statuses = sorted(a.status for a in answers)
        raise CheckFailure(f"{count} requests of {delay:g} s sent at once took {took:.2f} s",
                           expected=f"all answered 200 within {limit:g} s",
                           actual=f"{took:.2f} s; statuses {statuses}; slowest "
                                  f"{max(a.elapsed for a in answers):.2f} s",
                           reproduce=_parallel_curl(processor))


def _parallel_curl(processor: Http) -> str:
    url = processor.url("/process")
    return ("time (for i in $(seq 10); do curl -sS -H 'Content-Type: application/json' "
            f"--data-binary '{{\"id\": '$i', \"delay\": 1}}' '{url}' & done; wait)")


@requirement("PROC-04")
def test_processor_refuses_what_is_not_a_job(services: dict[str, Http]) -> None:
    """Bodies that are not a job get 400 with a detail, at once."""
    processor = services["processor"]
    for body in ({"id": 1}, {"id": 1, "delay": -1}, {"id": 1, "delay": "soon"},
                 {"id": 1, "delay": 61}, [1, 0.5], b"not json"):
        ex = _post(processor, "/process", body, timeout=3)
        _expect_400(ex, f"the body {ex.request_content!r}")


# --- the receiver, and the writer's order on records sent one by one ---------------------------

@pytest.fixture(scope="session")
def one_by_one(services: dict[str, Http], tables: Tables) -> dict[str, Any]:
    """Records sent to the receiver directly: X alone (delay 0), then A (1.5 s) and, 0.2 s
    later, B (0 s), which must wait for A. What came back, and when each was in the table."""
    receiver = services["receiver"]
    before = len(tables.snapshot().records.rows)
    x = _fresh_id()
    seen: dict[str, Any] = {}
    started = time.monotonic()
    ex = _post(receiver, "/requests", {"id": x, "delay": 0.3}, timeout=5, requirement="RECV-01")
    seen["x"] = (x, 0.3, ex)
    snap, at = tables.wait_for({str(x)}, before, 3.0)
    seen["x_written"] = None if at is None else at - (started + ex.elapsed)
    a, b = _fresh_id(), _fresh_id()
    since = len(snap.records.rows)
    sent_a = time.monotonic()
    pa = receiver.request_soon("POST", "/requests", headers=JSON, timeout=6,
                               content=json.dumps({"id": a, "delay": 1.5}).encode())
    time.sleep(0.2)
    pb = receiver.request_soon("POST", "/requests", headers=JSON, timeout=6,
                               content=json.dumps({"id": b, "delay": 0}).encode())
    ea, eb = pa.result(), pb.result()
    answered_a = sent_a + ea.elapsed
    snap, at = tables.wait_for({str(a), str(b)}, since, 3.0)
    seen.update(a=(a, ea), b=(b, eb), ab_written=None if at is None else at - answered_a,
                ab_rows=[r for r in snap.records.rows[since:] if r.id in (str(a), str(b))])
    return seen


@requirement("RECV-01")
def test_receiver_answers_once_processed_and_hands_the_record_on(
        one_by_one: dict[str, Any], tables: Tables) -> None:
    """POST /requests answers 200 naming the id after the delay, and the record is written."""
    x, delay, ex = one_by_one["x"]
    body = _body(ex)
    if ex.status != 200 or not isinstance(body, dict) or str(body.get("id")) != str(x):
        raise CheckFailure(f"{ex.request_line} answered {ex.status}",
                           expected=f'200 and a JSON object with "id": {x}',
                           actual=ex.summary(), reproduce=ex.curl())
    if ex.elapsed < delay - CLOCK:
        raise CheckFailure(f"a request with a delay of {delay:g} s was answered after "
                           f"{ex.elapsed:.3f} s, before it could have been processed",
                           expected=f"an answer after at least {delay:g} s",
                           actual=f"{ex.elapsed:.3f} s", reproduce=ex.curl())
    if one_by_one["x_written"] is None:
        raise CheckFailure(f"the record of id {x} was not in the table 3 s after the "
                           f"receiver's answer", expected=f"a line for id {x}",
                           actual=f"no such line in {tables.where}",
                           reproduce=f"{ex.curl()}; sleep 3; {tables.show('records', 5)}")


@requirement("RECV-02")
def test_receivers_answer_and_errors_are_ours(one_by_one: dict[str, Any],
                                              services: dict[str, Http]) -> None:
    """The answer gives receive_time and asyncAnswer; a body that is not a job gets 400."""
    _, _, ex = one_by_one["x"]
    body = _body(ex)
    if not (isinstance(body, dict) and body.get("asyncAnswer") == "Ok"
            and isinstance(body.get("receive_time"), str)
            and parse_time(body["receive_time"]) is not None):
        raise CheckFailure(f"{ex.request_line}: the answer is not ours",
                           expected='{"id": ..., "receive_time": an ISO 8601 time, '
                                    '"asyncAnswer": "Ok"}',
                           actual=ex.summary(), reproduce=ex.curl())
    for bad in ({"delay": 0}, {"id": 1, "delay": -1}, {"id": "one", "delay": 0}, b"not json"):
        _expect_400(_post(services["receiver"], "/requests", bad, timeout=3),
                    f"the body {bad!r}")


@requirement("PIPE-06")
def test_each_record_is_written_as_soon_as_its_turn_comes(one_by_one: dict[str, Any],
                                                          tables: Tables) -> None:
    """A record alone is written within 1 s; one behind a slower one, within 1 s of it."""
    x, _, ex = one_by_one["x"]
    limit = SLACK["written"]
    took = one_by_one["x_written"]
    if took is None or took > limit:
        raise CheckFailure(
            f"id {x}, sent to the receiver alone, was not in the table within {limit:g} s of "
            f"the receiver's answer (a writer that waits for the end of a run, or sorts later)",
            expected=f"the line within {limit:g} s",
            actual="not within 3 s" if took is None else f"after {took:.2f} s",
            reproduce=f"{ex.curl()}; sleep {limit:g}; {tables.show('records', 3)}")
    (a, ea), (b, eb) = one_by_one["a"], one_by_one["b"]
    took = one_by_one["ab_written"]
    if ea.status != 200 or eb.status != 200:
        raise NotRun(f"the receiver answered {ea.status} and {eb.status} to ids {a} and {b}")
    if took is None or took > limit:
        raise CheckFailure(
            f"id {b} (no delay), which waited behind id {a} (1.5 s), was not written within "
            f"{limit:g} s of id {a}'s answer", expected=f"both lines within {limit:g} s",
            actual="not within 3 s" if took is None else f"after {took:.2f} s",
            reproduce=_ab_reproducer(ea, eb, tables))


def _ab_reproducer(ea: Exchange, eb: Exchange, tables: Tables) -> str:
    return f"({ea.curl()} &); sleep 0.2; {eb.curl()}; sleep 2; {tables.show('records', 3)}"


@requirement("PIPE-03", needs=("RECV-01",))  # records sent to the receiver: no load run
def test_a_slow_record_stays_above_a_fast_one_received_after_it(
        one_by_one: dict[str, Any], tables: Tables) -> None:
    """A (1.5 s) then B (0 s) 0.2 s later: A's line is above B's."""
    (a, ea), (b, eb) = one_by_one["a"], one_by_one["b"]
    order = [r.id for r in one_by_one["ab_rows"]]
    if sorted(order) != sorted([str(a), str(b)]):
        raise NotRun(f"ids {a} and {b} were not both written once: {order}")
    if order != [str(a), str(b)]:
        raise CheckFailure(
            f"id {b} was received 0.2 s after id {a} but written above it (in the order "
            f"processing ended, not the order received)",
            expected=f"{a} above {b}",
            actual="\n".join(r.text for r in one_by_one["ab_rows"]),
            reproduce=_ab_reproducer(ea, eb, tables))


# --- the whole pipeline, through the client ----------------------------------------------------

@pytest.fixture(scope="session")
def load(services: dict[str, Http], tables: Tables) -> LoadRun:
    """One run of 4 x 10 requests with delays up to 1 s, watched until it is over."""
    return drive(services["client"], tables, _query(RUN),
                 RUN["connection_count"] * RUN["connection_value"], RUN["delay_range"],
                 HARD_LIMIT)


@requirement("PIPE-01")
def test_client_answers_a_run(load: LoadRun, tables: Tables) -> None:
    """GET /?connection_count=4&connection_value=10&delay_range=1 answers 2xx."""
    if load.no_answer is not None:
        raise load.no_answer
    assert load.answer is not None
    limit = load.delay_range + SLACK["answer"]
    if not 200 <= load.answer.status < 300 or load.answer.elapsed > limit:
        raise CheckFailure(f"{load.answer.request_line} answered {load.answer.status} after "
                           f"{load.answer.elapsed:.1f} s",
                           expected=f"a 2xx status within {limit:g} s",
                           actual=load.answer.summary(), reproduce=load.reproduce(tables))


@requirement("PIPE-02")
def test_a_run_writes_each_request_once(load: LoadRun, tables: Tables) -> None:
    """The run adds exactly N x M records, each id once."""
    rows = load.records
    twice = load.duplicates()
    if len(rows) != load.requests or twice:
        what = f"{len(rows)} records" + (f", ids written twice: {twice[:10]}" if twice else "")
        raise CheckFailure(f"a run of {load.requests} requests added {what} to "
                           f"{tables.where}'s records table",
                           expected=f"{load.requests} new lines, each id once",
                           actual=f"{what}; new lines over time: {load.timeline()}",
                           reproduce=load.reproduce(tables))


def _times(rows: tuple[Row, ...] | list[Row], which: str) -> list[float]:
    values = [getattr(r, which) for r in rows]
    if any(v is None for v in values):
        bad = next(r for r, v in zip(rows, values, strict=True) if v is None)
        raise NotRun(f"line {bad.number} has no {which} that can be read: {bad.text!r}")
    return values


@requirement("PIPE-03", needs=("PIPE-02",))  # the load run: not the receiver on its own
def test_a_runs_records_are_in_the_order_received(load: LoadRun, tables: Tables) -> None:
    """Down the table, receive_time never decreases."""
    rows = load.records
    times = _times(rows, "receive_time")
    for i in range(1, len(rows)):
        if times[i] < times[i - 1]:
            raise CheckFailure(
                f"line {rows[i].number} was received before line {rows[i - 1].number} but "
                f"written after it", expected="receive_time never decreasing down the table",
                actual=f"{rows[i - 1].text}\n{rows[i].text}", reproduce=load.reproduce(tables))


@requirement("PIPE-04")
def test_a_runs_requests_overlap(load: LoadRun, tables: Tables) -> None:
    """Every record of the run is written within D + 2 s of the GET."""
    limit = load.delay_range + SLACK["concurrency"]
    took = None if load.all_written_at is None else load.all_written_at - load.sent_at
    if took is None or took > limit:
        raise CheckFailure(
            f"the {load.requests} records of a run with delays up to {load.delay_range:g} s "
            f"took {'too long' if took is None else f'{took:.1f} s'} to be written: the "
            f"requests did not overlap",
            expected=f"all written within {limit:g} s of the GET (one after another they "
                     f"would take about {load.requests * load.delay_range / 2:g} s)",
            actual=f"new lines over time: {load.timeline()}", reproduce=load.reproduce(tables))


@requirement("PIPE-05")
def test_both_tables_hold_the_run_in_the_same_order(load: LoadRun, tables: Tables,
                                                    note: Callable[[str], None]) -> None:
    """records: id | receive_time | write_time; received: id | receive_time; same order."""
    assert load.after is not None
    # What was read is only as good as how: say it, for a format the suite guessed at.
    note(load.after.records.describe())
    note(load.after.received.describe())
    for row in load.records:
        if len(row.fields) != 3 or row.receive_time is None or row.write_time is None:
            raise CheckFailure(f"records line {row.number} is not id | receive_time | "
                               f"write_time", expected="three columns, two of them times",
                               actual=repr(row.text), reproduce=tables.show("records", 5))
        if row.write_time < row.receive_time - 0.001:
            raise CheckFailure(f"records line {row.number} was written before it was received",
                               expected="write_time >= receive_time", actual=repr(row.text),
                               reproduce=tables.show("records", 5))
    for row in load.received:
        if len(row.fields) != 2 or row.receive_time is None:
            raise CheckFailure(f"received line {row.number} is not id | receive_time",
                               expected="two columns, the second a time",
                               actual=repr(row.text), reproduce=tables.show("received", 5))
    ids = [r.id for r in load.records]
    got = [r.id for r in load.received]
    if got != ids:
        first = next((i for i, (x, y) in enumerate(zip(ids, got, strict=False)) if x != y),
                     min(len(ids), len(got)))
        raise CheckFailure(
            f"the received table does not list the run's {len(ids)} records as the records "
            f"table does ({len(got)} new lines; they part at the {first + 1}th)",
            expected=f"ids {ids[first:first + 5]}...", actual=f"ids {got[first:first + 5]}...",
            reproduce=f"{tables.show('records', len(ids))}; {tables.show('received', len(ids))}")


@requirement("LOAD-02")
def test_client_reports_the_run(load: LoadRun) -> None:
    """The answer is our JSON report, agreeing with the records."""
    assert load.answer is not None
    body = _body(load.answer)
    want = {"connection_count": RUN["connection_count"],
            "connection_value": RUN["connection_value"], "requests": load.requests,
            "ok": load.requests, "failed": 0}
    problems = []
    if not isinstance(body, dict):
        problems.append("not a JSON object")
    else:
        problems += [f"{k} is {body.get(k)!r}, expected {v!r}" for k, v in want.items()
                     if body.get(k) != v]
        if not isinstance(body.get("elapsed_s"), int | float):
            problems.append("no elapsed_s")
        if body.get("delay_range") != RUN["delay_range"]:
            problems.append(f"delay_range is {body.get('delay_range')!r}")
        first, last = body.get("first_id"), body.get("last_id")
        if isinstance(first, int) and isinstance(last, int):
            ids = {r.id for r in load.records}
            if ids != {str(i) for i in range(first, last + 1)}:
                problems.append(f"first_id..last_id ({first}..{last}) are not the ids written")
    if problems:
        raise CheckFailure("the client's answer is not our report: " + "; ".join(problems),
                           expected=f"a JSON object with {want}, delay_range and elapsed_s",
                           actual=load.answer.summary(), reproduce=load.answer.curl())


@requirement("WRITE-02")
def test_tables_are_in_our_format(load: LoadRun, tables: Tables,
                                  services: dict[str, Http]) -> None:
    """Our headers, " | " between columns, ISO times with offset and microseconds, and
    GET /records listing the same records."""
    assert load.after is not None
    for name in ("records", "received"):
        table = getattr(load.after, name)
        if table.header != HEADERS[name]:
            raise CheckFailure(f"the {name} table's header is {table.header!r}",
                               expected=repr(HEADERS[name]), actual=repr(table.header),
                               reproduce=tables.show(name, 0) + " | head -n 1")
    for row in (*load.records, *load.received):
        for value in row.fields[1:]:
            if len(row.text.split(" | ")) != len(row.fields) or not _our_time(value):
                raise CheckFailure(f"line {row.number} is not in our format",
                                   expected="id | 2026-11-23T17:30:00.000412+00:00 | ...",
                                   actual=repr(row.text), reproduce=tables.show("records", 3))
    ex = services["writer"].get("/records")
    body = _body(ex)
    listed = body.get("records") if isinstance(body, dict) else None
    if ex.status != 200 or not isinstance(listed, list):
        raise CheckFailure(f"GET /records on the writer answered {ex.status}",
                           expected='200 and {"records": [...], ...}', actual=ex.summary(),
                           reproduce=ex.curl())
    ids = [str(r.get("id")) if isinstance(r, dict) else None for r in listed]
    if not _appended_since(ids, load):
        raise CheckFailure("GET /records does not list the run's records as the table does",
                           expected=f"... {[r.id for r in load.records][-3:]}",
                           actual=f"... {ids[-3:]}", reproduce=ex.curl())


def _appended_since(ids: list[str | None], load: LoadRun) -> bool:
    """The run's ids appear, in order, as one block of the listing (later checks add more)."""
    want = [r.id for r in load.records]
    return any(ids[i:i + len(want)] == want for i in range(len(ids) - len(want) + 1))


def _our_time(value: str) -> bool:
    """ISO 8601 with microseconds and a UTC offset, as our writer writes it."""
    return OUR_TIME.fullmatch(value) is not None


@requirement("LOAD-01")
def test_client_runs_the_defaults(services: dict[str, Http], tables: Tables) -> None:
    """GET / runs 10 x 10 requests with delays up to 5 s."""
    requests = DEFAULTS["connection_count"] * DEFAULTS["connection_value"]
    run = drive(services["client"], tables, "/", requests, DEFAULTS["delay_range"], HARD_LIMIT)
    new = len(run.records)
    limit = DEFAULTS["delay_range"] + SLACK["defaults"]
    took = None if run.all_written_at is None else run.all_written_at - run.sent_at
    if new != requests or took is None or took > limit:
        raise CheckFailure(
            f"GET / (the defaults, 10 x 10 with delays up to 5 s) added {new} records"
            + ("" if took is None else f", all there {took:.1f} s after the GET"),
            expected=f"{requests} records within {limit:g} s",
            actual=f"new lines over time: {run.timeline()}", reproduce=run.reproduce(tables))


def _refused_runs_write(services: dict[str, Http], tables: Tables) -> tuple[Row, ...]:
    """Send the bad parameters (each must get 400); the records written meanwhile."""
    before = len(tables.snapshot().records.rows)
    for query in ("/?connection_count=0", "/?connection_count=-1",
                  "/?connection_value=abc", "/?connection_count=2.5",
                  "/?delay_range=-1", "/?delay_range=abc"):
        _expect_400(services["client"].get(query, timeout=3), f"GET {query}")
    time.sleep(0.5)
    return tuple(tables.snapshot().records.rows[before:])


@requirement("LOAD-03")
def test_client_refuses_bad_parameters(services: dict[str, Http], tables: Tables) -> None:
    """Bad parameters get 400 with a detail, and nothing is sent."""
    after = _refused_runs_write(services, tables)
    if after:
        # An earlier run's last records may still be coming (a slow client's): once the table
        # has been still for longer than a delay can be, ask again; only what comes again is
        # this requirement's evidence.
        tables.wait_still(quiet=DEFAULTS["delay_range"] + 1, limit=HARD_LIMIT)
        after = _refused_runs_write(services, tables)
    if after:
        raise CheckFailure(f"refused runs still wrote {len(after)} records",
                           expected="no new record", actual=after[0].text,
                           reproduce=tables.show("records", len(after)))
