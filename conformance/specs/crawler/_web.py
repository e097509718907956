"""The fixture web: a local HTTP server the suite and the tests use as "the internet".

Rules: it listens on one loopback (or given) address and serves only made-up pages:
- `/status/CODE` answers CODE (200-599);
- `/delay/SECONDS/REST` waits SECONDS (at most 60), then answers as REST;
- `/redirect/CODE` answers CODE (301, 302, 303, 307 or 308) with Location `/status/200`;
- `/reset` resets the connection, `/close` closes it without answering;
- `/hang` never answers (until the server stops), `/endless` sends a body that never ends.
Any path may start with `/t/TOKEN` to keep one check's requests apart from another's. Every
request is recorded (a `Seen`: method, raw path with its query, when it arrived and when its
answer was done), so checks can observe what a crawler really fetched, and how many requests
were in flight at once. Its lifecycle is conformance._servers's (`AiohttpServer`).
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
import time

from aiohttp import web

from conformance._servers import AiohttpServer, Seen

_ROUTE = re.compile(r"^(?:/t/(?P<token>[A-Za-z0-9_-]+))?(?P<rest>/.*)$")
_REDIRECTS = {301, 302, 303, 307, 308}
MAX_DELAY = 60.0


class FixtureWeb(AiohttpServer):
    """The fixture web on `host`:`port` (port 0: a free one), its URLs naming `url_host`
    (default: `host`); a context manager, or start() and stop() it."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *,
                 url_host: str | None = None) -> None:
        super().__init__(port, host, url_host=url_host)

    # what checks use ----------------------------------------------------------------------

    def url(self, path: str) -> str:
        """The absolute URL of a fixture path."""
        return self.base_url + path

    @staticmethod
    def token() -> str:
        """A fresh `/t/TOKEN` prefix that keeps one check's requests apart."""
        return "/t/" + secrets.token_hex(6)

    def hits(self, prefix: str = "") -> list[Seen]:
        """The requests received whose path starts with `prefix`, in arrival order."""
        return [h for h in self.requests() if h.path.startswith(prefix)]

    def count(self, path: str, method: str | None = "GET") -> int:
        """How many requests for exactly `path` (query included) came, with that method."""
        return sum(1 for h in self.hits(path)
                   if h.path == path and (method is None or h.method == method))

    def max_in_flight(self, prefix: str) -> int:
        """The most requests under `prefix` that were being answered at the same moment."""
        events: list[tuple[float, int]] = []
        now = time.monotonic()
        for h in self.hits(prefix):
            events.append((h.at, 1))
            events.append((h.finished if h.finished is not None else now, -1))
        best = current = 0
        for _, step in sorted(events, key=lambda e: (e[0], e[1])):
            current += step
            best = max(best, current)
        return best

    # serving ------------------------------------------------------------------------------

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        match = _ROUTE.match(request.path)
        prefix = f"/t/{match['token']}" if match and match["token"] else ""
        rest = match["rest"] if match else request.path
        return await self._answer(request, prefix, rest)

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
