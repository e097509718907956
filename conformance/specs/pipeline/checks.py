"""Checks of the `pipeline` spec (openapi/pipeline.requirements.yaml) against a running set of
four services: the client at the base URL, the others at --service ROLE=URL (default: the same
host on ports 5001-5003), the writer's tables over HTTP or in --output-dir.

The receiver, the processor and the tables are spoken to through a protocol description
(conformance/_protocol.py): ours, openapi/pipeline.protocol.yaml, unless --protocol FILE gives
the student's, since the assignment leaves every format open but the client's URL parameters, the
processor's answer and the tables' columns. WRITE-01 is the one "speaks the described protocol"
MUST, which everything but the processor's own checks rests on; a processor that does not take a
job as described (a 4xx) leaves its checks not run, for WRITE-01 to judge. The SHOULDs about our
formats (the client's report and errors, the receiver's answer, refusing bad bodies, the tables'
layout) are judged only when the description is ours.

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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest

from conformance._checks import CheckFailure, NotRun, requirement
from conformance._http import Exchange, Http
from conformance._options import RunOptions
from conformance._protocol import Outcome, Protocol, Speaker
from conformance._target import ServerTarget, host_port, wait_until_listening
from conformance.specs.pipeline import Options
from conformance.specs.pipeline._observation import (
    HEADERS,
    POLL,
    ROLE_PORTS,
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
OPEN = ("the assignment leaves every message format open (routes, the bodies the services "
        "send, the tables' file names); if this pipeline speaks its own, describe it: "
        "`conformance protocol pipeline > mine.protocol.yaml`, edit it, then `conformance run "
        "pipeline ... --protocol mine.protocol.yaml`")


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
def protocol(options: RunOptions[Options]) -> Protocol:
    """The run's protocol description: --protocol's, or ours."""
    return options.spec.described()


@pytest.fixture(scope="session")
def speaker(protocol: Protocol, services: dict[str, Http],
            options: RunOptions[Options]) -> Speaker:
    """Performs the description's operations, each on the service it names."""
    return Speaker(protocol, services["client"], services=services,
                   folder=options.spec.output_dir)


@pytest.fixture(scope="session")
def tables(speaker: Speaker) -> Tables:
    """The writer's tables, where the description says."""
    return Tables(speaker)


def ours_only(protocol: Protocol) -> None:
    """Not run unless the run speaks our protocol: the requirement is about our formats."""
    if not protocol.is_default:
        raise NotRun(f"it is about our formats (openapi/pipeline.yaml); this run speaks the "
                     f"protocol described in {protocol.source}")


@dataclass
class Sent:
    """One operation: what it got, and the seconds from sending to its answer (or giving up)."""

    outcome: Outcome
    elapsed: float

    @property
    def status(self) -> int | None:
        """The HTTP status, when an answer came over HTTP."""
        return self.outcome.exchange.status if self.outcome.exchange is not None else None

    @property
    def spoken(self) -> bool:
        """Answered, and not with a 4xx: the service took the request as described (what it
        then did is behaviour, judged elsewhere; a 4xx says the route or body is not its own)."""
        return self.outcome.kind != "no_answer" and not (
            self.status is not None and 400 <= self.status < 500)

    def body(self) -> Any:
        """The answer's JSON, or None."""
        return _body(self.outcome.exchange) if self.outcome.exchange is not None else None


def _call(speaker: Speaker, operation: str, **args: Any) -> Sent:
    started = time.monotonic()
    outcome = speaker.call(operation, **args)
    took = time.monotonic() - started
    # The exchange's own time leaves out the wait for a thread of the pool.
    return Sent(outcome, outcome.exchange.elapsed if outcome.exchange is not None else took)


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


# --- the described protocol --------------------------------------------------------------------

def _described(protocol: Protocol) -> str:
    """The run's description, as a message names it."""
    if protocol.is_default:
        return f"openapi/{protocol.source.name} (ours)"
    return str(protocol.source)


def _expect_spoken(role: str, operation: str, sent: Sent, protocol: Protocol) -> None:
    """Fail unless `role` took the operation as the description says (any answer but a 4xx)."""
    if sent.spoken:
        return
    out = sent.outcome
    if out.kind == "no_answer":
        raise CheckFailure(
            f"the {role} gave no answer to {out.request}, its operation `{operation}` as "
            f"{_described(protocol)} describes it: {out.answer}",
            expected=f"an answer from the {role} (is it at the URL --service {role}=URL gives?)",
            actual=out.answer, reproduce=out.reproduce)
    raise CheckFailure(
        f"the {role} answered {sent.status} to {out.request}, its operation `{operation}` as "
        f"{_described(protocol)} describes it: it does not speak that protocol; {OPEN}",
        expected=f"the {role} taking {operation} as {protocol.source.name} says (not a 4xx)",
        actual=out.describe(), reproduce=out.reproduce)


@requirement("WRITE-01")
def test_the_pipeline_speaks_the_described_protocol(speaker: Speaker, tables: Tables,
                                                    protocol: Protocol) -> None:
    """The processor and the receiver take a job as described (no 4xx), and the two tables are
    where it says once a record was written: a writer may make them when its first record
    comes, so the receiver's job is waited for when they are not there yet."""
    _expect_spoken("processor", "process", _call(speaker, "process", id=_fresh_id(), delay=0),
                   protocol)
    snap = tables.snapshot()
    sent = _call(speaker, "receive", id=_fresh_id(), delay=0)
    _expect_spoken("receiver", "receive", sent, protocol)
    if not snap.missing:
        return
    names = " and ".join(tables.label(t) for t in snap.missing)
    if sent.outcome.kind != "ok":
        raise NotRun(f"{tables.where} has no {names} before any record, and the receiver did "
                     f"not take one to have them made: {sent.outcome.request} answered "
                     f"{sent.outcome.describe()}")
    deadline = time.monotonic() + TABLES_WAIT
    while snap.missing and time.monotonic() < deadline:
        time.sleep(POLL)
        snap = tables.snapshot()
    if snap.missing:
        table = snap.missing[0]
        absent = getattr(snap, table).absent
        raise CheckFailure(
            f"{tables.where} has no {tables.label(table)}, {TABLES_WAIT:g} s after the receiver "
            f"took a record ({sent.outcome.request} answered {sent.status}), where "
            f"{_described(protocol)} says it is; {OPEN}", expected=tables.expected(table),
            actual=absent, reproduce=f"{sent.outcome.reproduce}; sleep {TABLES_WAIT:g}; "
                                     f"{tables.show(table)}")


# --- the processor -----------------------------------------------------------------------------

def _processed(speaker: Speaker, protocol: Protocol, delay: float) -> Sent:
    """One job sent to the processor as described; not run when it does not take it so (the
    pipeline does not speak the described protocol, which is WRITE-01's to judge)."""
    sent = _call(speaker, "process", id=_fresh_id(), delay=delay)
    out = sent.outcome
    if out.kind == "no_answer":
        raise CheckFailure(f"{out.request}: {out.answer}", expected="an answer",
                           actual=out.answer, reproduce=out.reproduce)
    if not sent.spoken:
        raise NotRun(f"the processor answered {sent.status} to {out.request}: it does not take "
                     f"a job as {_described(protocol)} describes it (WRITE-01 judges whether "
                     f"the pipeline speaks that protocol); {OPEN}")
    return sent


@requirement("PROC-01")
def test_processor_answers_ok(speaker: Speaker, protocol: Protocol) -> None:
    """A job sent as described is answered with a good status and {"asyncAnswer": "Ok"}."""
    sent = _processed(speaker, protocol, 0)
    out = sent.outcome
    if out.kind != "ok" or sent.body() != {"asyncAnswer": "Ok"}:
        raise CheckFailure(f"{out.request} answered {sent.status}",
                           expected='a good answer (ours: 200) and exactly the JSON object '
                                    '{"asyncAnswer": "Ok"}',
                           actual=out.describe(), reproduce=out.reproduce)


@requirement("PROC-02")
def test_processor_waits_the_delay(speaker: Speaker, protocol: Protocol) -> None:
    """A delay of 0.5 s is answered after 0.5 s and within 1.5 s."""
    delay = 0.5
    sent = _processed(speaker, protocol, delay)
    if not delay - CLOCK <= sent.elapsed <= delay + SLACK["processor"]:
        raise CheckFailure(f"a delay of {delay:g} s was answered after {sent.elapsed:.3f} s",
                           expected=f"an answer after {delay:g} to "
                                    f"{delay + SLACK['processor']:g} s",
                           actual=f"{sent.elapsed:.3f} s: {sent.outcome.describe()}",
                           reproduce=sent.outcome.reproduce)


@requirement("PROC-03")
def test_processor_waits_without_blocking(speaker: Speaker) -> None:
    """Ten requests of 1 s at once are all answered within 2 s."""
    count, delay, limit = 10, 1.0, 2.0
    started = time.monotonic()
    with ThreadPoolExecutor(count) as pool:
        answers = list(pool.map(lambda _: _call(speaker, "process", id=_fresh_id(),
                                                delay=delay), range(count)))
    took = time.monotonic() - started
    reproduce = _parallel(answers[0].outcome.reproduce, count)
    silent = [a for a in answers if a.outcome.kind == "no_answer"]
    if silent:
        raise CheckFailure(f"of {count} requests of {delay:g} s sent at once, one got no "
                           f"answer: the processor waits one at a time",
                           expected=f"all answered within {limit:g} s",
                           actual=silent[0].outcome.answer, reproduce=reproduce)
    if took > limit or any(a.outcome.kind != "ok" for a in answers):
        statuses = sorted(a.status or 0 for a in answers)
        raise CheckFailure(f"{count} requests of {delay:g} s sent at once took {took:.2f} s",
                           expected=f"all answered as described within {limit:g} s",
                           actual=f"{took:.2f} s; statuses {statuses}; slowest "
                                  f"{max(a.elapsed for a in answers):.2f} s",
                           reproduce=reproduce)


def _parallel(line: str, count: int) -> str:
    return f"time (for i in $(seq {count}); do {line} & done; wait)"


@requirement("PROC-04")
def test_processor_refuses_what_is_not_a_job(services: dict[str, Http],
                                             protocol: Protocol) -> None:
    """Bodies that are not a job get 400 with a detail, at once."""
    ours_only(protocol)
    processor = services["processor"]
    for body in ({"id": 1}, {"id": 1, "delay": -1}, {"id": 1, "delay": "soon"},
                 {"id": 1, "delay": 61}, [1, 0.5], b"not json"):
        ex = _post(processor, "/process", body, timeout=3)
        _expect_400(ex, f"the body {ex.request_content!r}")


# --- the receiver, and the writer's order on records sent one by one ---------------------------

@pytest.fixture(scope="session")
def one_by_one(speaker: Speaker, tables: Tables) -> dict[str, Any]:
    """Records sent to the receiver directly: X alone (delay 0.3 s), then A (1.5 s) and, 0.2 s
    later, B (0 s), which must wait for A. What came back, and when each was in the table."""
    before = len(tables.snapshot().records.rows)
    x = _fresh_id()
    seen: dict[str, Any] = {}
    started = time.monotonic()
    sent = _call(speaker, "receive", id=x, delay=0.3)
    if sent.outcome.kind == "no_answer":
        raise CheckFailure(f"{sent.outcome.request}: {sent.outcome.answer}", expected="an answer",
                           actual=sent.outcome.answer, reproduce=sent.outcome.reproduce,
                           requirement="RECV-01")
    seen["x"] = (x, 0.3, sent)
    snap, at = tables.wait_for({str(x)}, before, 3.0)
    seen["x_written"] = None if at is None else at - (started + sent.elapsed)
    a, b = _fresh_id(), _fresh_id()
    since = len(snap.records.rows)
    with ThreadPoolExecutor(2) as pool:
        sent_a = time.monotonic()
        pa = pool.submit(_call, speaker, "receive", id=a, delay=1.5)
        time.sleep(0.2)
        pb = pool.submit(_call, speaker, "receive", id=b, delay=0)
        ea, eb = pa.result(), pb.result()
    answered_a = sent_a + ea.elapsed
    snap, at = tables.wait_for({str(a), str(b)}, since, 3.0)
    seen.update(a=(a, ea), b=(b, eb), ab_written=None if at is None else at - answered_a,
                ab_rows=[r for r in snap.records.rows[since:] if r.id in (str(a), str(b))])
    return seen


@requirement("RECV-01")
def test_receiver_answers_once_processed_and_hands_the_record_on(
        one_by_one: dict[str, Any], tables: Tables, protocol: Protocol) -> None:
    """A job sent as described is answered well (naming the id, where the description says it
    does) after the delay, and the record is written."""
    x, delay, sent = one_by_one["x"]
    out = sent.outcome
    named = out.values.get("id")
    if out.kind != "ok" or (named is not None and str(named) != str(x)):
        said = ("" if "id" not in protocol.operations["receive"]["answer"]
                else f", naming the id {x} where {protocol.source.name} says")
        raise CheckFailure(f"{out.request} answered {sent.status}",
                           expected=f"a good answer (ours: 200){said}",
                           actual=out.describe(), reproduce=out.reproduce)
    if sent.elapsed < delay - CLOCK:
        raise CheckFailure(f"a request with a delay of {delay:g} s was answered after "
                           f"{sent.elapsed:.3f} s, before it could have been processed",
                           expected=f"an answer after at least {delay:g} s",
                           actual=f"{sent.elapsed:.3f} s", reproduce=out.reproduce)
    if one_by_one["x_written"] is None:
        raise CheckFailure(f"the record of id {x} was not in the table 3 s after the "
                           f"receiver's answer", expected=f"a line for id {x}",
                           actual=f"no such line in {tables.where}",
                           reproduce=f"{out.reproduce}; sleep 3; {tables.show('records', 5)}")


@requirement("RECV-02")
def test_receivers_answer_and_errors_are_ours(one_by_one: dict[str, Any],
                                              services: dict[str, Http],
                                              protocol: Protocol) -> None:
    """The answer gives receive_time and asyncAnswer; a body that is not a job gets 400."""
    ours_only(protocol)
    _, _, sent = one_by_one["x"]
    body = sent.body()
    if not (isinstance(body, dict) and body.get("asyncAnswer") == "Ok"
            and isinstance(body.get("receive_time"), str)
            and parse_time(body["receive_time"]) is not None):
        raise CheckFailure(f"{sent.outcome.request}: the answer is not ours",
                           expected='{"id": ..., "receive_time": an ISO 8601 time, '
                                    '"asyncAnswer": "Ok"}',
                           actual=sent.outcome.describe(), reproduce=sent.outcome.reproduce)
    for bad in ({"delay": 0}, {"id": 1, "delay": -1}, {"id": "one", "delay": 0}, b"not json"):
        _expect_400(_post(services["receiver"], "/requests", bad, timeout=3),
                    f"the body {bad!r}")


@requirement("PIPE-06")
def test_each_record_is_written_as_soon_as_its_turn_comes(one_by_one: dict[str, Any],
                                                          tables: Tables) -> None:
    """A record alone is written within 1 s; one behind a slower one, within 1 s of it."""
    x, _, sent = one_by_one["x"]
    limit = SLACK["written"]
    took = one_by_one["x_written"]
    if took is None or took > limit:
        raise CheckFailure(
            f"id {x}, sent to the receiver alone, was not in the table within {limit:g} s of "
            f"the receiver's answer (a writer that waits for the end of a run, or sorts later)",
            expected=f"the line within {limit:g} s",
            actual="not within 3 s" if took is None else f"after {took:.2f} s",
            reproduce=f"{sent.outcome.reproduce}; sleep {limit:g}; "
                      f"{tables.show('records', 3)}")
    (a, ea), (b, eb) = one_by_one["a"], one_by_one["b"]
    took = one_by_one["ab_written"]
    if ea.outcome.kind != "ok" or eb.outcome.kind != "ok":
        raise NotRun(f"the receiver answered {ea.outcome.describe()} and "
                     f"{eb.outcome.describe()} to ids {a} and {b}")
    if took is None or took > limit:
        raise CheckFailure(
            f"id {b} (no delay), which waited behind id {a} (1.5 s), was not written within "
            f"{limit:g} s of id {a}'s answer", expected=f"both lines within {limit:g} s",
            actual="not within 3 s" if took is None else f"after {took:.2f} s",
            reproduce=_ab_reproducer(ea, eb, tables))


def _ab_reproducer(ea: Sent, eb: Sent, tables: Tables) -> str:
    return (f"({ea.outcome.reproduce} &); sleep 0.2; {eb.outcome.reproduce}; sleep 2; "
            f"{tables.show('records', 3)}")


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
def test_client_reports_the_run(load: LoadRun, protocol: Protocol) -> None:
    """The answer is our JSON report, agreeing with the records."""
    ours_only(protocol)
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
                                  services: dict[str, Http], protocol: Protocol) -> None:
    """Our headers, " | " between columns, ISO times with offset and microseconds, and
    GET /records listing the same records."""
    ours_only(protocol)
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
def test_client_refuses_bad_parameters(services: dict[str, Http], tables: Tables,
                                       protocol: Protocol) -> None:
    """Bad parameters get 400 with a detail, and nothing is sent."""
    ours_only(protocol)
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
