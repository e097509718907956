"""The in-process servers' one lifecycle (conformance/_servers.py): start() binds and serves,
stop() ends it (bounded, forced when it must be, any number of times), reset() forgets, a port
that cannot be bound or a server that fails while starting is an OSError in the starting thread,
and every request is recorded the same way whether an aiohttp application or an ASGI app serves
it. Loopback only; every wait is bounded."""

from __future__ import annotations

import asyncio
import errno
import socket
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from aiohttp import web

from conformance import _servers
from conformance._servers import (
    BODY_LIMIT,
    AiohttpServer,
    BackgroundServer,
    InProcessServer,
    Message,
    Receive,
    Scope,
    Send,
    canned_app,
)
from conformance._target import free_port

ANSWER = b"made here"


class Echo(AiohttpServer):
    """Answers every request 201 with ANSWER; `/wait` answers only once the server stops."""

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.path == "/wait":
            await self._stopping.wait()
        return web.Response(status=201, body=ANSWER, content_type="text/plain")


def asgi(port: int) -> InProcessServer:
    return InProcessServer(port, canned_app(lambda method, path: (201, ANSWER, "text/plain")))


KINDS: dict[str, Callable[[int], BackgroundServer]] = {"aiohttp": Echo, "asgi": asgi}


@pytest.fixture(params=sorted(KINDS))
def make(request: pytest.FixtureRequest) -> Callable[[int], BackgroundServer]:
    return KINDS[request.param]


def url(server: BackgroundServer, path: str = "/") -> str:
    return server.base_url + path


def get(target: str) -> httpx.Response:
    return httpx.get(target, timeout=5, trust_env=False)


def alive(server: BackgroundServer) -> list[threading.Thread]:
    """The server's threads still running (its thread is named after its class and port)."""
    name = f"{type(server).__name__}-{server.port}"
    return [t for t in threading.enumerate() if t.name == name]


@pytest.fixture
def listening() -> Iterator[int]:
    """A port where a plain socket of this test listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_start_serves_and_stop_ends_it(make: Callable[[int], BackgroundServer]) -> None:
    server = make(0)
    assert server.port == 0 and server.requests() == []
    assert server.start() is server
    assert server.port != 0 and server.base_url == f"http://127.0.0.1:{server.port}"
    try:
        answer = get(url(server, "/hello"))
        assert (answer.status_code, answer.content) == (201, ANSWER)
    finally:
        server.stop()
    assert not alive(server)
    with pytest.raises(httpx.ConnectError):
        get(url(server))
    server.stop()  # again: nothing to do
    assert [r.line for r in server.requests()] == ["GET /hello -> 201"]  # kept after the stop


def test_a_request_is_recorded_with_its_path_body_type_status_and_times(
        make: Callable[[int], BackgroundServer]) -> None:
    body = bytes(range(256)) * 20  # more than BODY_LIMIT
    with make(0) as server:
        t0 = time.monotonic()
        answer = httpx.post(url(server, "/a/b%20c?x=1&y=%20z"), content=body, timeout=5,
                            trust_env=False,
                            headers={"Content-Type": "application/octet-stream; x=y"})
        t1 = time.monotonic()
        assert answer.status_code == 201
        (seen,) = server.requests()
    assert (seen.method, seen.path, seen.content_type, seen.status) == (
        "POST", "/a/b%20c?x=1&y=%20z", "application/octet-stream; x=y", 201)
    assert seen.body == body[:BODY_LIMIT]
    assert seen.finished is not None and t0 <= seen.at <= seen.finished <= t1
    assert seen.line == "POST /a/b%20c?x=1&y=%20z -> 201"


def test_json_body(make: Callable[[int], BackgroundServer]) -> None:
    with make(0) as server:
        httpx.post(url(server), json={"a": [1, "ü"]}, timeout=5, trust_env=False)
        httpx.post(url(server), content=b"not json", timeout=5, trust_env=False)
        first, second = server.requests()
    assert first.json() == {"a": [1, "ü"]} and first.content_type == "application/json"
    with pytest.raises(ValueError):
        second.json()


def test_reset_forgets_the_requests_and_the_server_keeps_serving(
        make: Callable[[int], BackgroundServer]) -> None:
    with make(0) as server:
        get(url(server, "/before"))
        copy = server.requests()
        copy.clear()  # a copy: the server's record stays
        assert len(server.requests()) == 1
        server.reset()
        assert server.requests() == []
        assert get(url(server, "/after")).status_code == 201
        assert [r.path for r in server.requests()] == ["/after"]


def test_a_port_in_use_is_an_os_error_saying_where(
        make: Callable[[int], BackgroundServer], listening: int) -> None:
    server = make(listening)
    threads = threading.active_count()
    with pytest.raises(OSError, match=f"127.0.0.1:{listening}") as caught:
        server.start()
    assert caught.value.errno == errno.EADDRINUSE
    assert threading.active_count() == threads  # no thread was started
    server.stop()  # nothing to stop


def test_an_unknown_host_is_an_os_error() -> None:
    with pytest.raises(OSError, match=r"no-such-host\.invalid"):
        Echo(0, "no-such-host.invalid").start()


def test_a_fixed_port_is_listened_on_again_at_once(make: Callable[[int], BackgroundServer]) -> None:
    # The server closes its kept-alive connection as it stops, so its side of it waits in
    # TIME_WAIT: without SO_REUSEADDR the next server could not bind the port for a minute.
    port = free_port()
    with make(port) as first, httpx.Client(timeout=5, trust_env=False) as client:
        assert client.get(url(first)).status_code == 201
        first.stop()
        with make(port) as second:
            assert client.get(url(second)).status_code == 201


def test_a_stopped_server_starts_again_and_twice_is_an_error() -> None:
    server = Echo()
    with server:
        with pytest.raises(RuntimeError, match="already started"):
            server.start()
        get(url(server))
    with server:
        assert get(url(server)).status_code == 201
        assert len(server.requests()) == 2  # a restart forgets nothing; reset() does


class Broken(Echo):
    def _app(self) -> web.Application:
        raise ValueError("no app today")


def test_a_failure_in_the_servers_thread_is_an_os_error_in_the_starting_thread() -> None:
    server = Broken()
    with pytest.raises(OSError, match="ValueError") as caught:
        server.start()
    assert isinstance(caught.value.__cause__, ValueError)
    assert not alive(server)
    with socket.socket() as sock:  # the port was given back
        sock.bind(("127.0.0.1", server.port))


async def _failing_startup(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        message: Message = await receive()
        await send({"type": "lifespan.startup.failed", "message": f"{message['type']}: no"})


def test_an_asgi_app_whose_startup_fails_is_an_os_error() -> None:
    server = InProcessServer(0, _failing_startup)
    with pytest.raises(OSError, match="did not start"):
        server.start()
    assert not alive(server)


class Slow(Echo):
    async def _open(self, sockets: list[socket.socket]) -> None:
        await asyncio.sleep(30)  # never ready in time, and deaf to stop()


class Stubborn(Echo):
    async def _close(self) -> None:
        await asyncio.sleep(30)  # will not end when asked


@pytest.fixture
def short_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_servers, "START_TIMEOUT", 0.5)
    monkeypatch.setattr(_servers, "STOP_TIMEOUT", 0.5)


@pytest.mark.usefixtures("short_timeouts")
def test_a_start_that_takes_too_long_is_an_os_error_and_is_stopped() -> None:
    server = Slow()
    t0 = time.monotonic()
    with pytest.raises(OSError, match=r"not within 0\.5 s"):
        server.start()
    assert time.monotonic() - t0 < 3
    assert not alive(server)


@pytest.mark.usefixtures("short_timeouts")
def test_a_server_that_will_not_stop_is_cancelled() -> None:
    server = Stubborn().start()
    t0 = time.monotonic()
    server.stop()
    assert time.monotonic() - t0 < 3
    assert not alive(server)
    with pytest.raises(httpx.ConnectError):
        get(url(server))


def test_a_handler_waiting_for_the_end_is_let_go_at_stop() -> None:
    server = Echo().start()
    answers: list[int] = []
    waiting = threading.Thread(target=lambda: answers.append(get(url(server, "/wait")).status_code))
    waiting.start()
    deadline = time.monotonic() + 5
    while not server.requests() and time.monotonic() < deadline:
        time.sleep(0.01)
    t0 = time.monotonic()
    server.stop()
    waiting.join(5)
    assert time.monotonic() - t0 < 2
    assert answers == [201]
    (seen,) = server.requests()
    assert seen.status == 201 and seen.finished is not None


async def _never_answers(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while (kind := (await receive())["type"]) != "lifespan.shutdown":
            await send({"type": f"{kind}.complete"})
        await send({"type": f"{kind}.complete"})
        return
    await asyncio.sleep(60)


def test_an_asgi_app_that_never_answers_is_stopped_in_bounded_time() -> None:
    server = InProcessServer(0, _never_answers).start()
    outcome: list[object] = []

    def ask() -> None:
        try:
            outcome.append(get(url(server)).status_code)  # uvicorn answers 500 as it gives up
        except httpx.HTTPError as exc:
            outcome.append(exc)

    asking = threading.Thread(target=ask)
    asking.start()
    deadline = time.monotonic() + 5
    while not server.requests() and time.monotonic() < deadline:
        time.sleep(0.01)
    t0 = time.monotonic()
    server.stop()
    asking.join(10)
    assert time.monotonic() - t0 < 4
    assert outcome and not asking.is_alive() and not alive(server)
    (seen,) = server.requests()
    assert seen.status is None and seen.finished is not None  # the app never answered
