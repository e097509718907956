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

`FixtureHosts` keeps the fixture webs of one run apart by address, so that a server's state per
host (its counters of a domain, a limit per host) holds only what one check gave it:
- the fixture host (127.0.0.1, or --fixture-host) is the domain whose counters the suite reads;
  no other check's URLs name it;
- with a loopback fixture host, further loopback addresses (127.0.0.2, 127.0.0.3, ...) serve as
  further domains: one shared by the checks that observe nothing per host, and one of its own
  for each check that counts, observes or loads a host;
- with an address elsewhere (the server under test runs on another machine), or where the
  loopback holds no other address, only that one host exists: every check gets it, and each
  that wanted one of its own is told why it shares it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
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

    def serve_again(self) -> str:
        """The command line that serves this fixture web again, by hand, where it was."""
        host = "" if self.host == "127.0.0.1" else f"--host {self.host} "
        return f"python -m fixtures.web {host}--port {self.port}"

    def settle(self, prefix: str, limit: float, quiet: float = 0.5) -> float | None:
        """Wait until no request under `prefix` is being answered and none came for `quiet`
        seconds, at most `limit` seconds; how long that took, or None if it never did."""
        t0 = time.monotonic()
        while True:
            hits = self.hits(prefix)
            now = time.monotonic()
            last = max((h.at for h in hits), default=0.0)
            if all(h.finished is not None for h in hits) and now - last >= quiet:
                return now - t0
            if now - t0 >= limit:
                return None
            time.sleep(0.05)

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


class FixtureHosts:
    """The fixture webs of one run, one per address (see the module's rules); `stop()` them
    all at the end. `fixture_host` is the address the crawler is to fetch from."""

    def __init__(self, fixture_host: str) -> None:
        self.fixture_host = fixture_host
        self._webs: dict[str, FixtureWeb] = {}
        self._shared: FixtureWeb | None = None
        self._next = 1
        self._only = ""  # why the fixture host is the only host ("" while others can be had)
        try:
            address = ipaddress.ip_address(fixture_host)
        except ValueError:
            address = None
        if address is None or address.version != 4 or not address.is_loopback:
            self._only = f"--fixture-host {fixture_host} is the one address it fetches from"

    def counted(self) -> tuple[FixtureWeb, str]:
        """The fixture host's web, whose domain no other check's URLs name; with it, why it is
        shared all the same ("" when it is not)."""
        return self._web(self.fixture_host), self._only

    def shared(self) -> FixtureWeb:
        """The web of the checks that observe nothing per host."""
        if self._shared is None:
            self._shared, _ = self._another()
        return self._shared

    def own(self) -> tuple[FixtureWeb, str]:
        """A web on an address no other check's URLs name; or, where there is no such address,
        the fixture host's, and why."""
        self.shared()  # the shared one takes the first address after the fixture host
        return self._another()

    def stop(self) -> None:
        """Stop every web started."""
        for one in self._webs.values():
            one.stop()

    def _another(self) -> tuple[FixtureWeb, str]:
        while not self._only:
            address = str(ipaddress.ip_address(self.fixture_host) + self._next)
            self._next += 1
            if not ipaddress.ip_address(address).is_loopback:
                self._only = "the loopback addresses after the fixture host are all taken"
                break
            try:
                return self._web(address), ""
            except OSError as exc:  # a loopback with one address (macOS, unless aliased)
                self._only = f"this machine's loopback holds no address but {self.fixture_host}" \
                             f" ({exc})"
        return self._web(self.fixture_host), self._only

    def _web(self, address: str) -> FixtureWeb:
        if address not in self._webs:
            local = address in ("localhost", "::1") or address.startswith("127.")
            # An address elsewhere names this machine as another sees it: listen on all.
            self._webs[address] = FixtureWeb(address if local else "0.0.0.0",
                                             url_host=address).start()
        return self._webs[address]
