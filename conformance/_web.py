"""The fixture web: a local HTTP server the suite and the tests use as "the internet".

Rules: it listens on one loopback (or given) address and serves only made-up pages:
- `/status/CODE` answers CODE (200-599);
- `/delay/SECONDS/REST` waits SECONDS (at most 60), then answers as REST;
- `/redirect/CODE` answers CODE (301, 302, 303, 307 or 308) with Location `/status/200`;
- `/reset` resets the connection, `/close` closes it without answering;
- `/hang` never answers (until the server stops), `/endless` sends a body that never ends.
Any path may start with `/t/TOKEN` to keep one check's requests apart from another's. Every
request is recorded (method, path, when it started and finished), so checks can observe what a
crawler really fetched, and how many requests were in flight at once.
It lives in `conformance` because the suite needs it at run time; `python -m fixtures.web`
serves it by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import socket
import struct
import threading
import time
from dataclasses import dataclass

from aiohttp import web

_ROUTE = re.compile(r"^(?:/t/(?P<token>[A-Za-z0-9_-]+))?(?P<rest>/.*)$")
_REDIRECTS = {301, 302, 303, 307, 308}
MAX_DELAY = 60.0


@dataclass
class Hit:
    """One request the fixture web received."""

    method: str
    path: str
    started: float
    finished: float | None = None


class FixtureWeb:
    """The fixture web, served from a background thread; use as a context manager."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *,
                 url_host: str | None = None) -> None:
        self.host = host
        self.port = port
        self.url_host = url_host or host
        self._hits: list[Hit] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._stopping: asyncio.Event | None = None

    # lifetime -----------------------------------------------------------------------------

    def __enter__(self) -> FixtureWeb:
        ready = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._start())
            except BaseException as exc:  # reported to the starting thread below
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._cleanup())
            loop.close()

        self._thread = threading.Thread(target=serve, name="fixture-web", daemon=True)
        self._thread.start()
        ready.wait(timeout=10)
        if failure:
            raise failure[0]
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)

    async def _start(self) -> None:
        self._stopping = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False,
                                     shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        server = site._server  # aiohttp exposes the bound port only here
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _cleanup(self) -> None:
        assert self._stopping is not None and self._runner is not None
        self._stopping.set()
        await self._runner.cleanup()

    # what checks use ----------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """`http://HOST:PORT` as put into URLs (the url_host, not the bind address)."""
        host = f"[{self.url_host}]" if ":" in self.url_host else self.url_host
        return f"http://{host}:{self.port}"

    def url(self, path: str) -> str:
        """The absolute URL of a fixture path."""
        return self.base_url + path

    @staticmethod
    def token() -> str:
        """A fresh `/t/TOKEN` prefix that keeps one check's requests apart."""
        return "/t/" + secrets.token_hex(6)

    def hits(self, prefix: str = "") -> list[Hit]:
        """The requests received whose path starts with `prefix`, in arrival order."""
        with self._lock:
            return [h for h in self._hits if h.path.startswith(prefix)]

    def count(self, path: str, method: str | None = "GET") -> int:
        """How many requests for exactly `path` (query included) came, with that method."""
        return sum(1 for h in self.hits(path)
                   if h.path == path and (method is None or h.method == method))

    def max_in_flight(self, prefix: str) -> int:
        """The most requests under `prefix` that were being answered at the same moment."""
        events = []
        now = time.monotonic()
        for h in self.hits(prefix):
            events.append((h.started, 1))
            events.append((h.finished if h.finished is not None else now, -1))
        best = current = 0
        for _, step in sorted(events, key=lambda e: (e[0], e[1])):
            current += step
            best = max(best, current)
        return best

    # serving ------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        hit = Hit(request.method, request.path_qs, time.monotonic())
        with self._lock:
            self._hits.append(hit)
        try:
            match = _ROUTE.match(request.path)
            prefix = f"/t/{match['token']}" if match and match["token"] else ""
            rest = match["rest"] if match else request.path
            return await self._answer(request, prefix, rest)
        finally:
            hit.finished = time.monotonic()

    async def _answer(self, request: web.Request, prefix: str,
                      rest: str) -> web.StreamResponse:
        parts = [p for p in rest.split("/") if p]
        while parts[:1] == ["delay"] and len(parts) >= 2:
            try:
                seconds = min(float(parts[1]), MAX_DELAY)
            except ValueError:
                return _text(400, "bad delay")
            await asyncio.sleep(max(seconds, 0.0))
            parts = parts[2:]
        kind = parts[0] if parts else ""
        if kind == "status" and len(parts) == 2 and parts[1].isdigit():
            code = int(parts[1])
            if 200 <= code <= 599:
                return _text(code, f"{code}\n")
        elif kind == "redirect" and len(parts) == 2 and parts[1].isdigit():
            code = int(parts[1])
            if code in _REDIRECTS:
                response = _text(code, "see elsewhere\n")
                response.headers["Location"] = f"{prefix}/status/200"
                return response
        elif kind == "reset":
            _abort(request, rst=True)
            return _text(500, "")
        elif kind == "close":
            _abort(request, rst=False)
            return _text(500, "")
        elif kind == "hang":
            assert self._stopping is not None
            await self._stopping.wait()
            _abort(request, rst=False)
            return _text(500, "")
        elif kind == "endless":
            return await self._endless(request)
        return _text(404, "no such fixture page\n")

    async def _endless(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=200, headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        chunk = b"." * 65536
        assert self._stopping is not None
        # Bounded all the same: 4 GiB, or until the client goes away or the server stops.
        with contextlib.suppress(ConnectionError, OSError, RuntimeError):
            for _ in range(65536):
                if self._stopping.is_set():
                    break
                await response.write(chunk)
        return response


def _text(status: int, body: str) -> web.Response:
    no_body = status in (204, 304)
    return web.Response(status=status, text=None if no_body else body,
                        content_type=None if no_body else "text/plain")


def _abort(request: web.Request, *, rst: bool) -> None:
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if rst and sock is not None:
        # SO_LINGER with a zero timeout makes the close send RST instead of FIN.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
