"""Fuzzing (conformance/_fuzz.py) against a small loopback API of two operations: every operation
gets its share of the time, and the time bound stops generation as well as sending."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from conformance._fuzz import _Clock, fuzz
from conformance._http import Http

DOCUMENT = {
    "openapi": "3.1.0",
    "info": {"title": "things", "version": "1"},
    "paths": {
        "/things": {"post": {
            "operationId": "createThing",
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["name"],
                "properties": {"name": {"type": "string", "maxLength": 5}}}}}},
            "responses": {"201": {"description": "made", "content": {"application/json": {
                "schema": {"type": "object"}}}}},
        }},
        "/things/{thing}": {"get": {
            "operationId": "getThing",
            "parameters": [{"name": "thing", "in": "path", "required": True,
                            "schema": {"type": "string", "maxLength": 5}}],
            "responses": {"200": {"description": "found", "content": {"application/json": {
                "schema": {"type": "object"}}}}},
        }},
    },
}


class _Things(BaseHTTPRequestHandler):
    hits: Counter[str]

    def _answer(self, status: int) -> None:
        body = json.dumps({"ok": True}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.hits["POST"] += 1
        self._answer(201)

    def do_GET(self) -> None:
        self.hits["GET"] += 1
        self._answer(200)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def things(tmp_path: Path) -> Iterator[tuple[str, Path, Counter[str]]]:
    """The API's base URL, its OpenAPI file, and the requests it got by method."""
    hits: Counter[str] = Counter()
    handler = type("Things", (_Things,), {"hits": hits})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    openapi = tmp_path / "things.yaml"
    openapi.write_text(yaml.safe_dump(DOCUMENT), encoding="utf-8")
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", openapi, hits
    finally:
        server.shutdown()
        server.server_close()


def test_a_paced_first_operation_leaves_time_for_the_second(things) -> None:
    base, openapi, hits = things
    with Http(base, timeout=5) as http:
        report = fuzz(http, openapi, no_server_error="X-1", matches_spec="X-2", seed=0,
                      max_examples=100, seconds=8.0, max_rate=5)
    assert report.failures == {}
    # 5 a second for 8 s, in halves: neither operation has all the time, both get some, and
    # never more than the rate allows. (How many depends on how busy the machine is: a first
    # example can take seconds to generate when the tests run in parallel.)
    assert hits["POST"] >= 1 and hits["GET"] >= 1, hits
    assert hits["POST"] + hits["GET"] <= 5 * 8 + 2, hits
    assert report.sent == hits["POST"] + hits["GET"]


def test_an_operation_started_after_the_end_still_sends_one() -> None:
    # A busy machine spent the whole time on the operations before: the last still gets its
    # one request, or it would go unjudged.
    clock = _Clock(ends=time.monotonic() - 1.0, left=1)
    clock.next_operation(1)
    clock.first_example()
    assert not clock.over()
    clock.sent = True
    assert clock.over()


def test_the_time_bound_stops_generation_too(things) -> None:
    base, openapi, _ = things
    # This process's CPU, not the clock: generating the 9,960 examples nobody would send costs
    # tens of CPU-seconds, stopping costs none; and eight busy test workers on two cores
    # stretch the clock, not this process's CPU.
    started = time.process_time()
    with Http(base, timeout=5) as http:
        report = fuzz(http, openapi, no_server_error="X-1", matches_spec="X-2", seed=0,
                      max_examples=5000, seconds=1.0, max_rate=20)
    took = time.process_time() - started
    assert took < 10, f"fuzzing for 1 s took {took:.1f} CPU-s"
    # At 20 a second for 1 s; none at all when a busy machine took the second to make the
    # first example.
    assert report.sent <= 25


def test_an_operations_share_starts_at_its_first_example() -> None:
    # Hypothesis sets itself up before the first example (seconds on a busy machine): that
    # time is nobody's share, or the first operation would get none of its own.
    clock = _Clock(ends=time.monotonic() + 10.0, left=2)
    clock.next_operation(2)
    assert clock.deadline == float("inf") and not clock.over()
    time.sleep(0.2)
    clock.first_example()
    share = clock.deadline - time.monotonic()
    assert 4.5 < share <= 4.9, share  # half of the 9.8 s left, counted from now
    clock.next_operation(1)
    clock.first_example()
    assert 4.5 < clock.deadline - time.monotonic() <= 9.8
