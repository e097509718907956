"""The reference crawler.py, run as a subprocess against a small web of our own (an aiohttp app
on a loopback port, in a thread of this test process): codes in submission order, null for what
gives no answer, no redirects followed, concurrency and its limit, timeouts, retention, bad
input, and a clean stop. (Its conformance to the whole spec is the suite's business.)"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from conformance._target import free_port, wait_until_listening
from reference import crawler as reference
from tests.conftest import ROOT

SCRIPT = ROOT / "reference" / "crawler.py"
API = "/api/v1/tasks/"


# --- the web the crawler crawls ---------------------------------------------------------------

@dataclass
class Web:
    """The fixture web: its base URL and every request it has seen, as (method, path?query)."""

    base: str = ""
    seen: list[tuple[str, str]] = field(default_factory=list)
    endless_closed: threading.Event = field(default_factory=threading.Event)

    def url(self, path: str) -> str:
        """An absolute URL on the fixture web."""
        return self.base + path

    def requests_to(self, marker: str) -> list[tuple[str, str]]:
        """The requests whose path or query contains `marker`."""
        return [r for r in list(self.seen) if marker in r[1]]


def _web_app(web_state: Web) -> web.Application:
    @web.middleware
    async def record(request: web.Request, handler: Any) -> web.StreamResponse:
        web_state.seen.append((request.method, request.path_qs))
        return await handler(request)

    async def status(request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["code"]))

    async def delay(request: web.Request) -> web.Response:
        await asyncio.sleep(float(request.match_info["seconds"]))
        return web.Response(status=int(request.match_info["code"]))

    async def redirect(request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": f"/status/200?{request.query_string}"
                                                             "&followed=1"})

    async def reset(request: web.Request) -> web.Response:
        sock = request.transport.get_extra_info("socket")  # type: ignore[union-attr]
        # SO_LINGER with a zero timeout makes the close a TCP reset instead of a FIN.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        request.transport.abort()  # type: ignore[union-attr]
        raise asyncio.CancelledError  # nothing to answer on a connection that is gone

    async def endless(request: web.Request) -> web.StreamResponse:
        answer = web.StreamResponse(status=200)
        await answer.prepare(request)
        chunk = b"x" * 65536
        deadline = time.monotonic() + 30
        try:
            for _ in range(200_000):  # bounded: at most ~13 GB or 30 s, whichever comes first
                if time.monotonic() > deadline:
                    return answer
                await answer.write(chunk)
        finally:
            # Reached by a failed write or by cancellation: the crawler hung up, as it should.
            if time.monotonic() <= deadline:
                web_state.endless_closed.set()
        return answer

    app = web.Application(middlewares=[record])
    app.router.add_get("/status/{code}", status)
    app.router.add_get("/delay/{seconds}/status/{code}", delay)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/reset", reset)
    app.router.add_get("/endless", endless)
    return app


@pytest.fixture(scope="module")
def fixture_web() -> Iterator[Web]:
    """The fixture web, served from a thread with its own event loop for the whole module."""
    state = Web()
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(_web_app(state), access_log=None, handler_cancellation=True)

    async def start() -> None:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=10)
    host, port = runner.addresses[0][:2]
    state.base = f"http://{host}:{port}"
    try:
        yield state
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


# --- the server under test --------------------------------------------------------------------

@dataclass
class Server:
    """A running reference crawler: its process, its port, a client for it and its output."""

    proc: subprocess.Popen[bytes]
    port: int
    client: httpx.Client
    log: Path

    def output(self) -> str:
        """What the server printed so far (stdout and stderr)."""
        return self.log.read_text(encoding="utf-8", errors="replace")

    def create(self, urls: Any) -> str:
        """POST a list of URLs; assert 201 and return the task id."""
        answer = self.client.post(API, json=urls)
        assert answer.status_code == 201, answer.text
        return answer.json()["id"]

    def task(self, task_id: str) -> httpx.Response:
        """GET the task."""
        return self.client.get(API + task_id)

    def wait_ready(self, task_id: str, limit: float) -> list[int | None]:
        """Poll until the task is ready (its result) or `limit` seconds pass (fail)."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            answer = self.task(task_id)
            assert answer.status_code == 200, answer.text
            body = answer.json()
            if body["status"] == "ready":
                return body["result"]
            assert body == {"id": task_id, "status": "running", "result": None}
            time.sleep(0.02)
        pytest.fail(f"task {task_id} not ready within {limit} s")

    def crawl(self, urls: list[str], limit: float = 5) -> list[int | None]:
        """Create a task and wait for its result."""
        return self.wait_ready(self.create(urls), limit)


@contextmanager
def started(*args: str, quiet: bool = True) -> Iterator[Server]:
    """The reference on a free port with `args`; stopped (Ctrl+C, then harder) afterwards."""
    port = free_port()
    fd, name = tempfile.mkstemp(prefix="crawler-test-", suffix=".log")
    argv = [sys.executable, str(SCRIPT), "--port", str(port), *args]
    proc = subprocess.Popen(argv + (["--quiet"] if quiet else []), stdin=subprocess.DEVNULL,
                            stdout=fd, stderr=subprocess.STDOUT)
    os.close(fd)  # the child has its own copy
    log = Path(name)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5, trust_env=False)
    try:
        # 30 s: eight test workers on two cores can hold a start up for long.
        assert wait_until_listening("127.0.0.1", port, 30, lambda: proc.poll() is not None), \
            log.read_text()
        yield Server(proc, port, client, log)
    finally:
        client.close()
        for sig in (signal.SIGINT, signal.SIGKILL):
            if proc.poll() is not None:
                break
            proc.send_signal(sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        log.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def ref() -> Iterator[Server]:
    """One reference server for the tests that need no settings of their own."""
    with started("--timeout", "5", "--max-urls", "8") as server:
        yield server


def marker() -> str:
    """A query string no other request carries, to find this test's requests in the log."""
    return "t=" + uuid.uuid4().hex


# --- creating a task --------------------------------------------------------------------------

def test_create_answers_201_running_uuid4_at_once(ref: Server, fixture_web: Web) -> None:
    t0 = time.monotonic()
    answer = ref.client.post(API, json=[fixture_web.url("/delay/2/status/200")])
    assert time.monotonic() - t0 < 1, "the POST waited for the fetch"
    assert answer.status_code == 201
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert body == {"id": body["id"], "status": "running", "result": None}
    parsed = uuid.UUID(body["id"])
    assert parsed.version == 4 and str(parsed) == body["id"]
    shown = ref.task(body["id"])
    assert shown.status_code == 200
    assert shown.json() == body  # running: result null, not a partial list


def test_ready_with_codes_in_submission_order(ref: Server, fixture_web: Web) -> None:
    m = marker()
    # The first URL answers last and the third second-to-last: completion order != submission.
    paths = ["/delay/1/status/201", "/status/404", "/delay/0.4/status/500", "/status/200",
             "/status/418"]
    result = ref.crawl([fixture_web.url(f"{p}?{m}") for p in paths])
    assert result == [201, 404, 500, 200, 418]
    # One GET per URL, nothing else (no HEAD first, no second try).
    assert sorted(fixture_web.requests_to(m)) == sorted(("GET", f"{p}?{m}") for p in paths)


def test_urls_without_an_http_answer_give_null(ref: Server, fixture_web: Web) -> None:
    m = marker()
    urls = [f"http://127.0.0.1:{free_port()}/refused",  # nothing listens there
            fixture_web.url(f"/reset?{m}"),
            fixture_web.url("/status/200").replace("http://", "ftp://"),
            "http://",
            "http://[::1",
            "http://127.0.0.1:99999/",
            fixture_web.url("/status/200")]
    assert ref.crawl(urls) == [None, None, None, None, None, None, 200]
    # Exactly once: a connection that fails before an answer is not a reason to ask again.
    assert fixture_web.requests_to(m) == [("GET", f"/reset?{m}")]
    assert "unexpected" not in ref.output(), "an ordinary failure was treated as a bug"


def test_redirect_is_reported_not_followed(ref: Server, fixture_web: Web) -> None:
    m = marker()
    assert ref.crawl([fixture_web.url(f"/redirect?{m}")]) == [302]
    assert fixture_web.requests_to(m) == [("GET", f"/redirect?{m}")]


def test_url_without_scheme_is_fetched_as_http(ref: Server, fixture_web: Web) -> None:
    m = marker()
    bare = fixture_web.url(f"/status/203?{m}").removeprefix("http://")
    assert ref.crawl([bare]) == [203]
    assert fixture_web.requests_to(m) == [("GET", f"/status/203?{m}")]


def test_endless_body_is_not_read(ref: Server, fixture_web: Web) -> None:
    # The timeout is 5 s: a crawler that read the body would take that long and report null.
    t0 = time.monotonic()
    assert ref.crawl([fixture_web.url("/endless"), fixture_web.url("/status/200")], 2) \
        == [200, 200]
    assert time.monotonic() - t0 < 2
    assert fixture_web.endless_closed.wait(2), "the crawler kept the endless connection open"


# --- bad input --------------------------------------------------------------------------------

def _bad_bodies(url: str) -> dict[str, dict[str, Any]]:
    return {
        "object": {"json": {"urls": [url]}},
        "string": {"json": url},
        "numbers": {"json": [1, 2]},
        "empty list": {"json": []},
        "empty string": {"json": [url, ""]},
        "null entry": {"json": [url, None]},
        "nested list": {"json": [[url]]},
        "invalid JSON": {"content": f'["{url}"', "headers": {"content-type": "application/json"}},
        "no body": {"headers": {"content-type": "application/json"}},
    }


@pytest.mark.parametrize("kind", list(_bad_bodies("")))
def test_bad_body_answers_422(ref: Server, kind: str) -> None:
    answer = ref.client.post(API, **_bad_bodies("http://127.0.0.1:9/x")[kind])
    assert answer.status_code == 422, answer.text
    assert isinstance(answer.json(), dict)
    assert "id" not in answer.json()


def test_bad_bodies_create_no_task(ref: Server, fixture_web: Web) -> None:
    m = marker()
    for kind, request in _bad_bodies(fixture_web.url(f"/status/200?{m}")).items():
        assert ref.client.post(API, **request).status_code == 422, kind
    assert ref.client.post(API, json=[fixture_web.url(f"/status/200?{m}")] * 9).status_code \
        == 422  # one more than --max-urls
    time.sleep(0.5)
    assert fixture_web.requests_to(m) == [], "a rejected body was crawled"


def test_max_urls_is_the_largest_task(ref: Server, fixture_web: Web) -> None:
    url = fixture_web.url("/status/200")
    assert ref.client.post(API, json=[url] * 9).status_code == 422
    assert ref.crawl([url] * 8) == [200] * 8


def test_only_the_documented_path_creates_tasks(ref: Server, fixture_web: Web) -> None:
    answer = ref.client.post(API.rstrip("/"), json=[fixture_web.url("/status/200")])
    assert answer.status_code in (404, 405), "POST without the slash must not work or redirect"


@pytest.mark.parametrize("task_id", [str(uuid.uuid4()), "not-a-uuid", "12345",
                                     uuid.uuid4().hex, str(uuid.uuid4()) + "0", "%20"],
                         ids=["unknown", "word", "number", "no-dashes", "too-long", "space"])
def test_unknown_and_malformed_ids_answer_404(ref: Server, task_id: str) -> None:
    answer = ref.task(task_id)
    assert answer.status_code == 404
    assert answer.json() == {"detail": "task not found"}


# --- concurrency and timeouts -----------------------------------------------------------------

def test_urls_are_fetched_concurrently(ref: Server, fixture_web: Web) -> None:
    t0 = time.monotonic()
    urls = [fixture_web.url(f"/delay/1/status/200?i={i}") for i in range(5)]
    assert ref.crawl(urls) == [200] * 5
    assert time.monotonic() - t0 < 3, "five one-second URLs were not fetched at the same time"


def test_status_answers_fast_while_a_slow_url_is_in_flight(ref: Server,
                                                         fixture_web: Web) -> None:
    task_id = ref.create([fixture_web.url("/delay/3/status/200")])
    for _ in range(5):
        t0 = time.monotonic()
        answer = ref.task(task_id)
        assert time.monotonic() - t0 < 0.5
        assert answer.json()["status"] == "running"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def narrow() -> Iterator[Server]:
    """A reference with room for two fetches at a time and a short timeout."""
    with started("--concurrency", "2", "--timeout", "1.5") as server:
        yield server


def test_timeout_turns_a_hang_into_null(narrow: Server, fixture_web: Web) -> None:
    t0 = time.monotonic()
    assert narrow.crawl([fixture_web.url("/delay/20/status/200"),
                         fixture_web.url("/status/200")], 4) == [None, 200]
    assert 1.3 < time.monotonic() - t0 < 3


def test_concurrency_is_a_limit(narrow: Server, fixture_web: Web) -> None:
    t0 = time.monotonic()
    urls = [fixture_web.url(f"/delay/0.5/status/200?i={i}") for i in range(4)]
    assert narrow.crawl(urls) == [200] * 4
    assert time.monotonic() - t0 >= 1.0, "more than --concurrency 2 fetches were in flight"


def test_tasks_share_the_fetchers_in_turn(narrow: Server, fixture_web: Web) -> None:
    # Six 0.8 s URLs take 2.4 s two at a time; a one-URL task created just after must not
    # wait behind all of them, only for the next free fetcher.
    big = narrow.create([fixture_web.url(f"/delay/0.8/status/200?i={i}") for i in range(6)])
    time.sleep(0.1)
    t0 = time.monotonic()
    assert narrow.crawl([fixture_web.url("/status/204")], 3) == [204]
    assert time.monotonic() - t0 < 1.5, "a small task waited for a big one to finish"
    assert narrow.wait_ready(big, 5) == [200] * 6


# --- retention --------------------------------------------------------------------------------

def test_finished_tasks_are_dropped_by_age_and_count(fixture_web: Web) -> None:
    with started("--retention", "1", "--max-tasks", "2") as server:
        slow = server.create([fixture_web.url("/delay/2.5/status/200")])
        done = []
        for _ in range(3):
            done.append(server.create([fixture_web.url("/status/200")]))
            server.wait_ready(done[-1], 2)
        last_done = time.monotonic()
        assert server.task(done[0]).status_code == 404, "more than --max-tasks 2 were kept"
        assert [server.task(t).status_code for t in done[1:]] == [200, 200]
        running = server.task(slow)
        assert (running.status_code, running.json()["status"]) == (200, "running"), \
            "a running task was dropped to make room"
        time.sleep(max(0.0, last_done + 1.3 - time.monotonic()))
        assert [server.task(t).status_code for t in done] == [404, 404, 404], \
            "kept longer than --retention 1"
        # Retention counts from the end of a task, not its start: the slow one is still there.
        assert server.task(slow).status_code == 200
        assert server.wait_ready(slow, 3) == [200]


# --- the process ------------------------------------------------------------------------------

@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_stops_cleanly_with_a_crawl_in_flight(sig: signal.Signals, fixture_web: Web) -> None:
    with started(quiet=False) as server:
        server.create([fixture_web.url("/delay/5/status/200")])
        server.proc.send_signal(sig)
        assert server.proc.wait(timeout=8) == 0
        out = server.output()
    assert "Traceback" not in out
    assert f"serving on http://127.0.0.1:{server.port}/" in out.splitlines()[0]
    assert "stopped" in out


def test_quiet_says_nothing(fixture_web: Web) -> None:
    with started() as server:
        server.crawl([fixture_web.url("/status/200")])
        server.proc.send_signal(signal.SIGINT)
        assert server.proc.wait(timeout=8) == 0
        assert server.output() == ""


def test_busy_port_is_a_one_line_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        done = subprocess.run([sys.executable, str(SCRIPT), "--port", str(port)],
                              capture_output=True, text=True, timeout=15)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr


def test_app_factory_takes_its_settings_from_its_config(fixture_web: Web) -> None:
    app = reference.create_app(reference.CrawlerConfig(max_urls=2, timeout=3))
    url = fixture_web.url("/status/200")

    async def exercise() -> list[int | None]:
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://crawler") as client:
            assert (await client.post(API, json=[url] * 3)).status_code == 422
            created = await client.post(API, json=[url] * 2)
            assert created.status_code == 201
            for _ in range(200):
                task = (await client.get(API + created.json()["id"])).json()
                if task["status"] == "ready":
                    return task["result"]
                await asyncio.sleep(0.02)
            pytest.fail("the in-process task was not ready within 4 s")

    assert asyncio.run(exercise()) == [200, 200]


def test_defaults() -> None:
    args = reference.build_parser().parse_args([])
    assert (args.host, args.port, args.timeout, args.concurrency, args.retention,
            args.max_tasks, args.max_urls) == ("127.0.0.1", 8888, 10, 200, 3600, 10_000, 10_000)
