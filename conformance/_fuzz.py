"""Fuzzing with schemathesis: requests generated from `openapi/SPEC.yaml`, answers judged by its
checks, findings mapped onto two requirements ("no server errors", "answers match the spec");
an answer the document links to another operation (POST -> GET) is followed and judged too.

Rules: generation is seeded and bounded in examples and seconds, each operation getting its
share of the seconds left from its first example on (generation's one-time start, seconds on a
busy machine, is nobody's share), and it stops when they run out (nothing generated goes
unsent); the document's own examples of an operation are sent first, each once; no
shrinking, so a failure is the first one found (its curl line reproduces it); requests go
through our `Http`, so each has the run's deadline; a request that gets no answer counts
against "no server errors".
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import schemathesis
import yaml
from hypothesis import HealthCheck, Phase
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.errors import InvalidSchema
from schemathesis.core.result import Err, Ok
from schemathesis.errors import FailureGroup
from schemathesis.schemas import APIOperation

from conformance._checks import CheckFailure, CheckFailures
from conformance._http import Exchange, Http

Case = schemathesis.Case[Any]
CheckFunction = Callable[[Any, Any, Case], bool | None]
_SPEC_CHECKS: list[CheckFunction] = [status_code_conformance, content_type_conformance,
                                     response_schema_conformance]
# Headers schemathesis adds for itself; the target sees only what the operation defines.
_OWN_HEADERS = {
    "user-agent", "accept-encoding", "accept", "connection", "x-schemathesis-testcaseid",
}


class _Enough(BaseException):
    """Stops hypothesis's generation once the time is up (a BaseException, so hypothesis does
    not take it for a failure of the test and re-run it)."""


@dataclass
class FuzzReport:
    """How much was sent, and the first failure found for each requirement."""

    sent: int = 0
    seconds: float = 0.0
    failures: dict[str, CheckFailure] = field(default_factory=dict)


def _response(ex: Exchange) -> httpx.Response:
    headers = [(k, v) for k, v in ex.headers.multi_items() if k.lower() != "content-encoding"]
    response = httpx.Response(ex.status, headers=headers, content=ex.body,
                              request=httpx.Request(ex.method, ex.url))
    response.elapsed = timedelta(seconds=ex.elapsed)
    return response


def _describe(exc: BaseException) -> str:
    parts = getattr(exc, "exceptions", None) or [exc]
    texts = []
    for part in parts:
        title = getattr(part, "title", "") or type(part).__name__
        message = (getattr(part, "message", "") or str(part)).strip()
        texts.append(f"{title}: {message}" if message else title)
    return "; ".join(texts)


def _linked(document: dict[str, Any], method: str, path: str, status: int,
            body: Any) -> list[tuple[str, dict[str, Any]]]:
    """(operationId, path parameters) of each link the document gives for this answer."""
    try:
        links = document["paths"][path][method.lower()]["responses"][str(status)]["links"]
    except (KeyError, TypeError):
        return []
    out = []
    for link in links.values():
        params = {}
        for name, expr in link.get("parameters", {}).items():
            if not (isinstance(expr, str) and expr.startswith("$response.body#")):
                break
            value: Any = body
            for part in [p for p in expr.split("#", 1)[1].split("/") if p]:
                value = value.get(part) if isinstance(value, dict) else None
            if value is None:
                break
            params[name] = value
        else:
            out.append((link["operationId"], params))
    return out


def without_extensions(document: dict[str, Any]) -> None:
    """Drop the operations marked `x-extension: true`: our reference documents them, but the
    assignment does not ask for them, so a student's server is never fuzzed on them."""
    for path, item in list(document.get("paths", {}).items()):
        for method in [m for m, op in item.items() if isinstance(op, dict)
                       and op.get("x-extension") is True]:
            del item[method]
        if not any(isinstance(op, dict) and "responses" in op for op in item.values()):
            del document["paths"][path]


def _operation(result: Ok[APIOperation[Any, Any, Any, Any]] | Err[InvalidSchema]
               ) -> APIOperation[Any, Any, Any, Any]:
    """The operation of a schema's listing; our own OpenAPI documents are valid, so an invalid
    one is a bug of ours and raises."""
    if isinstance(result, Err):
        raise result.err()
    return result.ok()


@dataclass
class _Clock:
    """The fuzzing time: each operation gets its share of what is left, counted from its first
    example on, so generation's one-time start (seconds on a busy machine) is nobody's share;
    and each sends one request at least, however late it starts (a busy machine can spend the
    whole time on the operations before: the last one would go unjudged)."""

    ends: float  # when all fuzzing must be over
    left: int  # operations still to fuzz, the current one included
    deadline: float = math.inf  # the current operation's; inf until its first example
    sent: bool = False  # the current operation has sent a request

    def next_operation(self, left: int) -> None:
        """A new operation starts; `left` operations are still to fuzz, itself included."""
        self.left, self.deadline, self.sent = left, math.inf, False

    def first_example(self) -> None:
        """The current operation's first example came: its share starts now."""
        now = time.monotonic()
        self.deadline = now + max(0.0, self.ends - now) / self.left

    def over(self) -> bool:
        """Whether the current operation's time is up (never before its first request)."""
        return self.sent and time.monotonic() > self.deadline


def _documented(operation: APIOperation[Any, Any, Any, Any], seed: int) -> list[Case]:
    """A case for each example the document gives the operation (its parameters' and bodies'
    `examples`), drawn once, seeded."""
    return [_drawn(strategy, seed) for strategy in operation.get_strategies_from_examples()]


def _drawn(strategy: Any, seed: int) -> Case:
    """One case of `strategy`, the same for the same seed."""
    drawn: list[Case] = []

    @hypothesis.settings(max_examples=1, deadline=None, database=None, phases=[Phase.generate],
                         print_blob=False, suppress_health_check=list(HealthCheck))
    @hypothesis.seed(seed)
    @hypothesis.given(strategy)
    def take(case: Case) -> None:
        drawn.append(case)

    take()
    return drawn[0]


def fuzz(http: Http, openapi: Path, *, no_server_error: str, matches_spec: str, seed: int,
         max_examples: int, seconds: float,
         adjust: Callable[[dict[str, Any]], None] | None = None,
         max_rate: float | None = None) -> FuzzReport:
    """Fuzz every operation of `openapi` and follow its links; failures keyed by requirement.

    `adjust` may change the loaded document first (e.g. so a crawler is only ever given URLs of
    the fixture web, never a random host). `max_rate` paces the requests (per second), so a
    teacher grading many servers at once stays polite to each.
    """
    document = yaml.safe_load(openapi.read_text(encoding="utf-8"))
    without_extensions(document)
    if adjust is not None:
        adjust(document)
    schema = schemathesis.openapi.from_dict(document)
    report = FuzzReport()
    started = time.monotonic()
    clock = _Clock(ends=started + seconds, left=1)
    gap = 1.0 / max_rate if max_rate else 0.0
    next_at = started

    def pace() -> None:
        nonlocal next_at
        now = time.monotonic()
        if next_at > now:
            time.sleep(min(next_at - now, max(0.0, clock.deadline - now)))
        next_at = max(now, next_at) + gap

    def judge(case: Case, ex: Exchange) -> None:
        plan: tuple[tuple[str, list[CheckFunction]], ...] = (
            (no_server_error, [not_a_server_error]), (matches_spec, _SPEC_CHECKS))
        for rid, checks in plan:
            if rid in report.failures:
                continue
            try:
                case.validate_response(_response(ex), checks=checks)
            except (AssertionError, FailureGroup) as exc:  # schemathesis's failures; a bug of
                # ours raises anything else and so stops the run as an error, not a verdict
                report.failures[rid] = CheckFailure(
                    f"fuzzing: {ex.request_line}: {_describe(exc)}",
                    expected="an answer as openapi/" + openapi.name + " documents it"
                    if rid == matches_spec else "a status below 500",
                    actual=ex.summary(), reproduce=ex.curl(), requirement=rid)

    def done() -> bool:
        """Whether the operation's time is up, or both requirements already failed."""
        return clock.over() or len(report.failures) == 2

    def send(case: Case, depth: int = 0) -> None:
        if done():
            return
        kw = case.as_transport_kwargs(base_url=http.base_url)
        headers = {k: str(v) for k, v in (kw.get("headers") or {}).items()
                   if k.lower() not in _OWN_HEADERS}
        built = httpx.Request(kw["method"], kw["url"], params=kw.get("params"),
                              json=kw.get("json"), content=kw.get("data"), headers=headers)
        content = built.read() or None
        if gap:
            pace()
            if clock.over():
                return
        report.sent += 1
        clock.sent = True
        try:
            ex = http.request(built.method, str(built.url), headers=headers, content=content)
        except CheckFailure as exc:
            report.failures.setdefault(no_server_error, CheckFailure(
                f"fuzzing: {exc.message}", expected="an answer", actual=exc.actual,
                reproduce=exc.reproduce, requirement=no_server_error))
            return
        judge(case, ex)
        if depth:
            return
        try:
            body = ex.json()
        except ValueError:
            return
        for operation_id, params in _linked(document, case.method, case.operation.path,
                                            ex.status, body):
            linked = schema.find_operation_by_id(operation_id)
            send(linked.Case(path_parameters=params), depth + 1)

    operations = [_operation(result) for result in schema.get_all_operations()]
    for left, operation in zip(range(len(operations), 0, -1), operations, strict=True):
        # Each operation gets its share of the time still left, so a slow or paced first
        # operation cannot starve the others of fuzzing.
        clock.next_operation(left)

        @hypothesis.settings(max_examples=max_examples, deadline=None, database=None,
                             phases=[Phase.explicit, Phase.generate], print_blob=False,
                             suppress_health_check=list(HealthCheck))
        @hypothesis.seed(seed)
        @hypothesis.given(operation.as_strategy())
        def run(case: Case) -> None:
            if clock.deadline == math.inf:
                clock.first_example()
            if done():
                raise _Enough  # generating more would only cost CPU: nothing more is sent
            send(case)

        # The examples the document gives are sent first, each once: whether fuzzing tries
        # `Dalek` must not rest on what 20 generated values happen to hold.
        for case in _documented(operation, seed):
            if clock.deadline == math.inf:
                clock.first_example()
            send(case)
        with contextlib.suppress(_Enough):
            run()
        if len(report.failures) == 2:
            break
    report.seconds = time.monotonic() - started
    return report


def fuzz_check(http: Http, openapi: Path, *, no_server_error: str, matches_spec: str, seed: int,
               max_examples: int, seconds: float,
               adjust: Callable[[dict[str, Any]], None] | None = None,
               max_rate: float | None = None) -> FuzzReport:
    """Fuzz, then raise CheckFailures naming the failed requirements; return the report if none."""
    report = fuzz(http, openapi, no_server_error=no_server_error, matches_spec=matches_spec,
                  seed=seed, max_examples=max_examples, seconds=seconds, adjust=adjust,
                  max_rate=max_rate)
    if report.failures:
        raise CheckFailures(list(report.failures.values()))
    return report
