"""In-process servers that play "the other side" for the suites and the tests: a server on a port
of this machine, served from a background thread, that records every request it receives. One
lifecycle for all (`BackgroundServer`) and two ways to serve: an aiohttp application
(`AiohttpServer`; on sockets made elsewhere, TLS or not, `SocketAppServer`) or any ASGI app
through uvicorn (`InProcessServer`; a WSGI app through `WSGIBridge`, a server that answers
garbage through `canned_app`).

Rules: a server serves from a thread of its own that runs an event loop of its own. `start()`
binds the port in the calling thread, with SO_REUSEADDR (a suite starts a fresh server on the
same port run after run, and the last run's connections may still be in TIME_WAIT there), and
returns once the server answers; a port that cannot be bound, a failure of the server's thread
while it starts, or a start slower than START_TIMEOUT seconds raises OSError there. `stop()`
asks the server to end, cancels it after STOP_TIMEOUT seconds, gives up on it after as many
again, and may be called any number of times; a stopped server may be started again. Every
request is recorded as a `Seen` when it arrives; `requests()` may be called from any thread, and
the requests stay until `reset()` forgets them. Loopback by default; another address only when
the caller names it.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import json
import socket
import ssl
import threading
import time
import warnings
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar

from aiohttp import web
from aiohttp.typedefs import Handler

if TYPE_CHECKING:
    import uvicorn

HOST = "127.0.0.1"
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
REQUEST_TIMEOUT = 5.0
BODY_LIMIT = 4096

# ASGI's messages are dictionaries whose values depend on their "type": Any is what they hold.
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass
class Seen:
    """One request a server received. The server's thread fills in `status` and `finished` as
    it answers: None until then; `status` stays None for a request the app did not answer (its
    connection dropped, or the app failed and the server answered 500 for it)."""

    method: str
    path: str  # as the request line had it: the raw path, with its query
    at: float  # time.monotonic() when it arrived
    content_type: str = ""  # its Content-Type header, "" without one
    body: bytes = b""  # its first `body_limit` bytes (the server's)
    status: int | None = None
    finished: float | None = None  # time.monotonic() when its answer was done

    @property
    def line(self) -> str:
        """`METHOD /path -> status`, for a message."""
        return f"{self.method} {self.path}" + (f" -> {self.status}" if self.status else "")

    def json(self) -> Any:
        """The body parsed as JSON (ValueError when it is not JSON, or not UTF-8)."""
        return json.loads(self.body.decode("utf-8"))


L = TypeVar("L")  # what a LoopThread listens on


class LoopThread(abc.ABC, Generic[L]):
    """Serving from an asyncio loop in a background thread of its own, whatever is served:
    `_start_serving(listening, ...)` returns once serving (OSError when it does not start),
    `stop()` ends it within 2 x STOP_TIMEOUT seconds, any number of times, and closes `_sockets`. A
    subclass says how to serve what it listens on (`_open(listening)`, `_close()`);
    `_stopping` is set when it is asked to stop, for a handler that waits until then."""

    def __init__(self) -> None:
        self._stopping = asyncio.Event()
        self._sockets: list[socket.socket] = []  # closed by stop()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._main: asyncio.Task[None] | None = None
        self._serving = False
        self._failure: BaseException | None = None

    def _start_serving(self, listening: L, *, thread: str, failed: str,
                       start_timeout: float | None = None) -> None:
        """Serve `listening` from a thread named `thread`; OSError saying `failed` and why
        when serving has not started within `start_timeout` seconds (START_TIMEOUT, read
        when called)."""
        limit = START_TIMEOUT if start_timeout is None else start_timeout
        # The loop and its first task are made here, before the thread runs, so that stop() finds
        # them whenever it is called, even while the server is still starting.
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        self._stopping = asyncio.Event()
        self._serving, self._failure = False, None
        self._loop = loop
        self._main = loop.create_task(self._lifetime(listening, ready))
        self._thread = threading.Thread(target=self._run, args=(loop, self._main, ready),
                                        name=thread, daemon=True)
        self._thread.start()
        ready.wait(limit)
        if not self._serving:
            failure = self._failure
            self.stop()
            why = repr(failure) if failure is not None else f"not within {limit:g} s"
            raise OSError(f"{failed}: {why}") from failure

    def stop(self) -> None:
        """Stop serving, within 2 x STOP_TIMEOUT seconds; nothing when not started. What was
        recorded stays."""
        thread, loop, main = self._thread, self._loop, self._main
        self._thread = None
        if thread is not None and loop is not None and main is not None:
            _call_soon(loop, self._stopping.set)
            thread.join(STOP_TIMEOUT)
            if thread.is_alive():  # a handler or a connection that will not end: cancel them
                _call_soon(loop, main.cancel)
                thread.join(STOP_TIMEOUT)
            # A thread still alive now is abandoned (it is a daemon); its port is freed all the
            # same, so that the next server can listen there.
        for sock in self._sockets:
            sock.close()
        self._sockets = []

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @abc.abstractmethod
    async def _open(self, listening: L) -> None:
        """Start serving on `listening` (bound), on the thread's loop; return once requests
        are answered."""

    @abc.abstractmethod
    async def _close(self) -> None:
        """Stop serving and let the requests in flight end; called after `_open`, even when it
        failed halfway."""

    def _run(self, loop: asyncio.AbstractEventLoop, main: asyncio.Task[None],
             ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(main)
        except BaseException as exc:  # whatever ends the server: _start_serving() reports it
            self._failure = exc
        finally:
            try:
                _close_loop(loop)
            finally:
                ready.set()

    async def _lifetime(self, listening: L, ready: threading.Event) -> None:
        try:
            await self._open(listening)
            self._serving = True
            ready.set()
            await self._stopping.wait()
        finally:
            await self._close()


class BackgroundServer(LoopThread[list[socket.socket]]):
    """A server on `host`:`port` (port 0: a free one, known once started) served from a
    background thread, every request recorded; `start()` and `stop()` it, or use it as a
    context manager. `url_host` is the host its URLs name (default: `host`), for a server bound
    to every address.

    A subclass says how to serve (`_open(sockets)`: bound, not yet listening; `_close`) and
    records each request with `_arrived`."""

    def __init__(self, port: int = 0, host: str = HOST, *, url_host: str | None = None,
                 body_limit: int = BODY_LIMIT) -> None:
        super().__init__()
        self.host = host
        self.port = port
        self.url_host = url_host or host
        self.body_limit = body_limit
        self._seen: list[Seen] = []
        self._seen_lock = threading.Lock()

    # lifecycle --------------------------------------------------------------------------------

    def start(self) -> Self:
        """Bind the port and serve; OSError when the server cannot (see the module's rules)."""
        if self._thread is not None:
            raise RuntimeError(f"{self._name} on {self.host}:{self.port} is already started")
        sockets = _listen(self.host, self.port)
        self._sockets = sockets
        self.port = sockets[0].getsockname()[1]
        self._start_serving(sockets, thread=f"{self._name}-{self.port}",
                             failed=f"{self._name} did not start on {self.host}:{self.port}")
        return self

    def reset(self) -> None:
        """Forget every request received so far (a subclass forgets its own state too)."""
        with self._seen_lock:
            self._seen.clear()

    def __enter__(self) -> Self:
        return self.start()

    # what checks use --------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """`http://HOST:PORT`, naming `url_host` (the port is the bound one once started)."""
        host = f"[{self.url_host}]" if ":" in self.url_host else self.url_host
        return f"http://{host}:{self.port}"

    def requests(self) -> list[Seen]:
        """Every request received since the start or the last reset, in arrival order (the
        list is a copy; a request still being answered gets its status later)."""
        with self._seen_lock:
            return list(self._seen)

    # for subclasses ---------------------------------------------------------------------------

    def _arrived(self, method: str, path: str, content_type: str) -> Seen:
        """Record a request that has just arrived; the entry to fill in as it is answered."""
        entry = Seen(method, path, time.monotonic(), content_type)
        with self._seen_lock:
            self._seen.append(entry)
        return entry

    @property
    def _name(self) -> str:
        return type(self).__name__


def _listen(host: str, port: int) -> list[socket.socket]:
    """Sockets bound to every address of `host`, all on one port (`port`, or the first free one
    when it is 0); OSError, saying where, when that cannot be."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:  # as asyncio does: IPv6 only, IPv4 has its own socket
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if len(sockets) > 1:  # the port the first one got
                address = (address[0], sockets[0].getsockname()[1], *address[2:])
            sock.bind(address)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    return sockets


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[[], object]) -> None:
    """Run `callback` on the server's loop, unless the loop has closed (the server ended)."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(callback)


def _close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what still runs on a server's loop, waiting for it at most STOP_TIMEOUT seconds,
    then close the loop."""
    try:
        pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.wait(pending, timeout=STOP_TIMEOUT))
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()


# aiohttp ----------------------------------------------------------------------------------------

class AiohttpServer(BackgroundServer):
    """A BackgroundServer serving the aiohttp application that `_app()` makes, afresh at each
    start. Each request is recorded before its handler runs, its body read first (whole: what
    aiohttp takes, at most its client_max_size)."""

    _runner: web.AppRunner | None = None

    @abc.abstractmethod
    def _app(self) -> web.Application:
        """The application to serve."""

    async def _open(self, sockets: list[socket.socket]) -> None:
        app = self._app()
        app.middlewares.append(self._recording)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False,
                                     shutdown_timeout=0.5)
        await self._runner.setup()
        for sock in sockets:
            await web.SockSite(self._runner, sock).start()

    async def _close(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    @web.middleware
    async def _recording(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        entry = self._arrived(request.method, request.raw_path,
                              request.headers.get("Content-Type", ""))
        try:
            if request.can_read_body:
                entry.body = (await request.read())[:self.body_limit]
            response = await handler(request)
        except web.HTTPException as exc:
            entry.status = exc.status
            raise
        finally:
            entry.finished = time.monotonic()
        transport = request.transport
        if transport is not None and not transport.is_closing():  # else it was dropped
            entry.status = response.status
        return response


# ASGI through uvicorn ---------------------------------------------------------------------------

class InProcessServer(BackgroundServer):
    """An ASGI app served by uvicorn on HOST:`port` (a WSGI one through `WSGIBridge`)."""

    def __init__(self, port: int, app: App) -> None:
        super().__init__(port)
        self.app = app
        self._uvicorn: uvicorn.Server | None = None
        self._serve_task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        """The server's base URL, without a trailing slash."""
        return self.base_url

    async def _open(self, sockets: list[socket.socket]) -> None:
        import uvicorn  # here: only the client suites serve ASGI apps, and it is slow to import

        server = uvicorn.Server(uvicorn.Config(
            # interface: uvicorn would take a bound method for an ASGI 2 app
            self._recording, interface="asgi3", log_level="critical", access_log=False,
            lifespan="auto", timeout_graceful_shutdown=1, timeout_keep_alive=1))
        self._uvicorn = server
        self._serve_task = asyncio.create_task(_serve(server, sockets))
        # uvicorn says it serves only by a flag; start() bounds the wait.
        while not (server.started or self._serve_task.done() or self._stopping.is_set()):
            await asyncio.sleep(0.01)
        if not server.started:
            if self._serve_task.done():
                self._serve_task.result()  # its failure, if it failed
            raise RuntimeError("uvicorn ended before it served")

    async def _close(self) -> None:
        server, serve = self._uvicorn, self._serve_task
        self._uvicorn = self._serve_task = None
        if server is not None and serve is not None and not serve.done():
            server.should_exit = True  # uvicorn ends its connections within 1 s
            await serve

    async def _recording(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("raw_path", b"").decode("latin-1") or scope["path"]
        query = scope.get("query_string", b"").decode("latin-1")
        if query and "?" not in path:
            path += "?" + query
        headers = dict(scope.get("headers", []))
        entry = self._arrived(scope["method"], path,
                              headers.get(b"content-type", b"").decode("latin-1"))

        async def receiving() -> Message:
            message = await receive()
            if message["type"] == "http.request" and len(entry.body) < self.body_limit:
                entry.body += message.get("body", b"")[:self.body_limit - len(entry.body)]
            return message

        async def recording(message: Message) -> None:
            if message["type"] == "http.response.start":
                entry.status = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                entry.finished = time.monotonic()  # handed over whole, as aiohttp's are
            await send(message)

        try:
            await self.app(scope, receiving, recording)
        finally:
            if entry.finished is None:  # the app ended without a whole answer
                entry.finished = time.monotonic()


async def _serve(server: uvicorn.Server, sockets: list[socket.socket]) -> None:
    """uvicorn's serve(), its exit when its app's startup fails made an exception: SystemExit
    would leave the server's event loop."""
    try:
        await server.serve(sockets=sockets)
    except SystemExit as exc:
        raise RuntimeError(f"uvicorn exited ({exc.code}): its app's startup failed") from None


Canned = Callable[[str, str], tuple[int, bytes, str]]


async def _lifespan(receive: Receive, send: Send) -> None:
    """Answer uvicorn's lifespan messages: nothing to start or stop."""
    while True:
        message = await receive()
        kind = message["type"].removeprefix("lifespan.")
        await send({"type": f"lifespan.{kind}.complete"})
        if kind == "shutdown":
            return


class WSGIBridge:
    """A WSGI app (a Flask one) as an ASGI app, for InProcessServer: each request runs in a
    thread of a small pool, its body read whole first. `close()` ends the pool."""

    def __init__(self, app: Callable[..., Any], workers: int = 8) -> None:
        # uvicorn's own bridge is deprecated in favour of a2wsgi, which we do not depend on; it
        # is small, and the suites serve test traffic only, so it is enough here. Imported here:
        # uvicorn is slow to import, and only the client suites serve a WSGI app.
        # The ignore: uvicorn.middleware.wsgi names it without exporting it (a2wsgi's, when that
        # is installed, else its own).
        from uvicorn.middleware.wsgi import WSGIMiddleware  # type: ignore[attr-defined]

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            self._bridge = WSGIMiddleware(app, workers=workers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
        elif scope["type"] == "http":
            await self._bridge(scope, receive, send)

    def close(self) -> None:
        """Let the pool's threads end (a request still running finishes first)."""
        self._bridge.executor.shutdown(wait=False)


def canned_app(answer: Canned) -> App:
    """An ASGI app that answers each request with `answer(method, path)`: its status, body and
    Content-Type (to play a server that answers what the protocol does not allow)."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):  # read the request before answering
            pass
        status, body, content_type = answer(scope["method"], scope["path"])
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", content_type.encode("latin-1")),
                                (b"content-length", str(len(body)).encode("ascii"))]})
        await send({"type": "http.response.body", "body": body})

    return app


class SocketAppServer(LoopThread[list[tuple[socket.socket, ssl.SSLContext | None]]]):
    """An aiohttp application served on listening sockets the caller made (each with the TLS
    context it serves with, or None for plain HTTP): a site of a box under its own name, for
    one. Nothing recorded here: the application records what it must. `start()` returns once
    serving; `stop()` as every server here."""

    def __init__(self, app: web.Application,
                 sockets: list[tuple[socket.socket, ssl.SSLContext | None]],
                 name: str = "app") -> None:
        super().__init__()
        self.app = app
        self.name = name
        self._given = sockets
        self._runner: web.AppRunner | None = None

    def start(self) -> Self:
        """Serve on the sockets given (they are closed by `stop()`); OSError if it cannot."""
        if self._thread is not None:
            raise RuntimeError(f"{self.name} is already started")
        self._sockets = [sock for sock, _ in self._given]
        self._start_serving(self._given, thread=self.name, failed=f"{self.name} did not start")
        return self

    def __enter__(self) -> Self:
        return self.start()

    async def _open(self, listening: list[tuple[socket.socket, ssl.SSLContext | None]]) -> None:
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False,
                                     shutdown_timeout=0.5)
        await self._runner.setup()
        for sock, context in listening:
            await web.SockSite(self._runner, sock, ssl_context=context).start()

    async def _close(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
