"""The box's web hosts: ports 80 (HTTP) and 443 (HTTPS) of every site, each on the site's own
loopback address, answering as the plan says, faults included, and recording every request.

Rules:
- A port where some site REFUSES has one listening socket per other site, bound to its address
  (a wildcard would accept where the refusal must be real); any other port has one wildcard
  socket, 0.0.0.0 (10,000 sites refusing on both ports would need 20,000 sockets, more than a
  hard limit of 20,000 descriptors allows with the rest: keep REFUSED to one port at that size).
  A BLACKHOLE is a socket of its own on its address, which wins over the wildcard; a wildcard
  port accepts and closes a connection to an address no site has. `start()`
  raises this process's RLIMIT_NOFILE as far as the sockets need (the soft limit up to the hard
  one; the hard one too when the process may), and says what to do when it cannot.
- A site is known by the address a connection came to; on 443 the certificate is chosen by
  SNI when it names a site of the box, else by that address. HTTP is parsed by h11 (the faults
  need the raw connection, which aiohttp's server hides); TLS is Python's ssl through asyncio.
- Port faults are the connection's, never the parser's: REFUSED binds nothing; BLACKHOLE binds a
  listener with a backlog of 0 whose one place a connection of our own fills, so the kernel
  drops every SYN and a connect never completes (no firewall needed); RESET reads the request
  and closes with SO_LINGER 0 (an RST); ENDLESS sends headers, then TRICKLE bytes every
  TRICKLE_EVERY seconds until the client leaves or the hosts stop; SILENT reads the request and
  never answers; PLAIN_HTTP serves the site's HTTP answer on 443 without TLS. On 443 RESET,
  ENDLESS and SILENT come after the TLS handshake (the request is read, and recorded, first).
- An answer's redirect answers a request for `/` only (301, Location); any other path gets the
  answer itself, so a redirect to the other scheme or another site is one hop, and one back to
  the same URL is a loop. HEAD gets GET's headers without the body, or 405 with head_differs.
  A site's `paths` answer those paths (a port fault of the site still wins; a path's
  redirect answers that path); a path's own fault is that request's connection's. A streamed
  body (paced, cut short, reset, or from a Range) goes out piece by piece; cut short, the
  connection is closed (a FIN) with the Content-Length of the whole body; reset, it is an
  RST. `answering` counts answers from their request's head to their body's end (or
  failure): `peak_answering` is the most at once.
- Switchable hosts (`switchable=True`) bind one listener per site and port, never a wildcard, so
  that `switch(name, spec)` can change a site's answer or port fault while they run: a new
  answer (or RESET, ENDLESS, SILENT) holds from the next request, kept-alive connections
  included; REFUSED closes the site's listener and ends its open connections (as a server
  going down would); leaving REFUSED binds the listener again. BLACKHOLE, PLAIN_HTTP and
  ELSEWHERE are the plan's only. A port ELSEWHERE binds nothing here: a server of the suite's
  own listens on the site's address (Box.listen), which wins over a wildcard. An answer's
  `delay` holds its head back (the request is recorded first).
- Every request is recorded as a `Hit` when its headers have come; `peak_connections` counts
  connections from accept to close (the TLS handshake included), as the hosts see them: a
  client's close counts once the hosts have handled it, which lags on a busy machine.
  `client_connections()` counts what the kernel holds established now, at the clients' end.
  Serving is conformance/_servers.py's LoopThread: a thread and loop of its own,
  `start()` returns once serving or raises OSError, `stop()` within 2 x STOP_TIMEOUT seconds,
  any number of times.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gzip
import http
import resource
import socket
import ssl
import struct
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import h11

from conformance._box._plan import PACE_PIECES, Answer, Port, Site
from conformance._box._tls import TlsMaterial
from conformance._servers import STOP_TIMEOUT, LoopThread

START_TIMEOUT = 60.0  # 15,000 listeners took 0.4 s, a wildcard 0.01 s: this is for slow machines
BACKLOG = 1024
HANDSHAKE_TIMEOUT = 10.0
CLOSE_TIMEOUT = 1.0
ESTABLISHED = "01"  # a socket's state in /proc/net/tcp
IDLE_TIMEOUT = 30.0  # a kept-alive connection with no request for this long is closed
HOLD_LIMIT = 600.0  # SILENT and ENDLESS give up on a client after this long, whatever it does
TRICKLE, TRICKLE_EVERY = b"x" * 16, 0.2
READ_SIZE = 65536
FD_MARGIN = 4096  # descriptors beyond the listeners: connections, files, the rest of the run


@dataclass(frozen=True)
class Hit:
    """One request a host received: the site, `scheme` ("https" once TLS was made, else
    "http", a port 443 speaking plain HTTP included), the port, method, raw path (with its
    query), the headers as sent (names as spelt, in order, repeats kept), `at`
    (time.monotonic() when its headers had come) and the SNI name the client sent (None
    without one, or over plain HTTP)."""

    site: str
    scheme: Literal["http", "https"]
    port: int
    method: str
    path: str
    headers: tuple[tuple[str, str], ...]
    at: float
    sni: str | None = None

    def header(self, name: str) -> list[str]:
        """Every value of header `name` (any case), in order."""
        return [value for key, value in self.headers if key.lower() == name.lower()]


Listener = tuple[socket.socket, Site | None, int]  # a listening socket, its site (or None), port


class Hosts(LoopThread[list[Listener]]):
    """Ports 80 and 443 of every site (see the module's rules); `start()`, `stop()`, `seen()`,
    `peak_connections`. `http_port`/`https_port` other than 80 and 443 are for tests."""

    def __init__(self, sites: Sequence[Site], tls: TlsMaterial, *, http_port: int = 80,
                 https_port: int = 443, switchable: bool = False) -> None:
        if any(not site.address for site in sites):
            raise ValueError("every site needs its address: plan them with allocate()")
        super().__init__()
        self.sites = tuple(sites)
        self.tls = tls
        self.http_port, self.https_port = http_port, https_port
        self.switchable = switchable
        self._by_name = {site.name: site for site in self.sites}
        self._now = dict(self._by_name)  # what each site answers now (switch() changes it)
        self._listening: dict[tuple[str, int], asyncio.Server] = {}  # switchable: by site, port
        self._open_by: dict[tuple[str, int], set[asyncio.StreamWriter]] = {}
        self._by_address = {site.address: site for site in self.sites}
        tls.prepare(self.sites)
        self.peak_connections = 0
        self.open_connections = 0
        self.answering = 0
        self.peak_answering = 0
        self._hits: list[Hit] = []
        self._lock = threading.Lock()
        self._servers: list[asyncio.Server] = []
        self._handlers: set[asyncio.Task[None]] = set()
        self.start_seconds = 0.0  # how long the last start() took (for the measurements)

    # lifecycle --------------------------------------------------------------------------------

    def start(self) -> None:
        """Bind every site's ports and serve; returns once serving. OSError when a port cannot
        be bound, descriptors are short, or serving does not start within START_TIMEOUT.
        `stop()` ends the connections in flight; the hits recorded stay."""
        if self._thread is not None:
            raise RuntimeError("the hosts are already started")
        began = time.monotonic()
        self._start_serving(self._bind(), thread="box-hosts",
                            failed="the box's hosts did not start", start_timeout=START_TIMEOUT)
        self.start_seconds = time.monotonic() - began

    def __enter__(self) -> Hosts:
        self.start()
        return self

    # what suites read -------------------------------------------------------------------------

    def seen(self, name: str | None = None) -> list[Hit]:
        """The requests received, in arrival order: all, or those of site `name`."""
        with self._lock:
            if name is None:
                return list(self._hits)
            return [hit for hit in self._hits if hit.site == name]

    def switch(self, name: str, spec: Answer | Port,
               schemes: Sequence[str] = ("http", "https")) -> float:
        """Make site `name` answer `spec` on the ports of `schemes` from now on (see the
        module's rules); returns time.monotonic() once it holds. ValueError when the hosts are
        not switchable or `spec` is a plan-only fault; RuntimeError when not serving."""
        if not self.switchable:
            raise ValueError("these hosts were not started switchable")
        if spec in (Port.BLACKHOLE, Port.PLAIN_HTTP, Port.ELSEWHERE):
            raise ValueError(f"{spec} is the plan's only: it cannot be switched to")
        site = self._by_name[name.lower().rstrip(".")]
        loop = self._loop
        if loop is None or self._thread is None:
            raise RuntimeError("the hosts are not serving")
        done = asyncio.run_coroutine_threadsafe(self._switch(site, spec, tuple(schemes)), loop)
        done.result(START_TIMEOUT)
        return time.monotonic()

    async def _switch(self, site: Site, spec: Answer | Port, schemes: tuple[str, ...]) -> None:
        now = self._now[site.name]
        for scheme in schemes:
            port = self.http_port if scheme == "http" else self.https_port
            before = getattr(now, scheme)
            if before in (Port.BLACKHOLE, Port.PLAIN_HTTP, Port.ELSEWHERE):
                raise ValueError(f"{site.name}'s {scheme} port is {before}: it stays so")
            now = replace(now, http=spec) if scheme == "http" else replace(now, https=spec)
            self._now[site.name] = now
            if spec is Port.REFUSED and before is not Port.REFUSED:
                server = self._listening.pop((site.name, port), None)
                if server is not None:
                    server.close()
                for writer in list(self._open_by.get((site.name, port), ())):
                    writer.transport.abort()
            elif spec is not Port.REFUSED and before is Port.REFUSED:
                sock = _listener(site.address, port, reuse_port=False)
                self._sockets.append(sock)
                self._listening[(site.name, port)] = await asyncio.start_server(
                    functools.partial(self._connection, site, port), sock=sock,
                    limit=READ_SIZE)

    def reset(self) -> None:
        """Forget the hits and the peak (the connections open now stay counted)."""
        with self._lock:
            self._hits.clear()
            self.peak_connections = self.open_connections
            self.peak_answering = self.answering

    # binding ----------------------------------------------------------------------------------

    def _bind(self) -> list[Listener]:
        """Listening sockets of every port that accepts, with their site (None: a wildcard,
        the site known per connection) and port; the BLACKHOLE ones are bound, filled and kept
        in `_sockets` only."""
        listeners: list[Listener] = []
        wanted: list[tuple[Site | None, str, int, bool]] = []  # site, address, port, blackhole
        for port, field in ((self.http_port, "http"), (self.https_port, "https")):
            specs = [(site, getattr(site, field)) for site in self.sites]
            holes = [(site, site.address, port, True) for site, spec in specs
                     if spec is Port.BLACKHOLE]
            if self.switchable or any(spec is Port.REFUSED for _, spec in specs):
                wanted += [(site, site.address, port, False) for site, spec in specs
                           if spec not in (Port.REFUSED, Port.BLACKHOLE, Port.ELSEWHERE)]
            elif len(holes) < len(specs):
                wanted.append((None, "0.0.0.0", port, False))
            wanted += holes
        _enough_descriptors(len(wanted) + sum(hole for *_, hole in wanted))
        try:
            for site, address, port, hole in wanted:
                sock = _listener(address, port, reuse_port=site is None or hole, listen=False)
                self._sockets.append(sock)
                if hole:
                    # A backlog of 0 holds one connection; ours takes it, and the kernel then
                    # drops every SYN (a bound address wins over the wildcard): the client's
                    # connect waits out its own timeout.
                    sock.listen(0)
                    filler = socket.create_connection((address, port), timeout=5)
                    self._sockets.append(filler)
                else:
                    sock.listen(BACKLOG)
                    listeners.append((sock, site, port))
        except OSError as exc:
            self.stop()
            raise OSError(exc.errno, f"the box cannot listen: {exc}") from exc
        return listeners

    # the hosts' thread ------------------------------------------------------------------------

    async def _open(self, listening: list[Listener]) -> None:
        self._servers = []
        for sock, site, port in listening:
            server = await asyncio.start_server(
                functools.partial(self._connection, site, port), sock=sock, limit=READ_SIZE)
            self._servers.append(server)
            if site is not None:
                self._listening[(site.name, port)] = server

    async def _close(self) -> None:
        for server in [*self._servers, *self._listening.values()]:
            server.close()
        handlers = list(self._handlers)
        for task in handlers:
            task.cancel()
        if handlers:
            await asyncio.wait(handlers, timeout=STOP_TIMEOUT)

    async def _connection(self, site: Site | None, port: int, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        with self._lock:
            self.open_connections += 1
            self.peak_connections = max(self.peak_connections, self.open_connections)
        try:
            if site is None:  # a wildcard's connection: the site is the address it came to
                site = self._by_address.get(writer.get_extra_info("sockname")[0])
            if site is not None:  # else an address no site has: closed at once
                opened = self._open_by.setdefault((site.name, port), set())
                opened.add(writer)
                try:
                    await self._serve(site, port, reader, writer)
                finally:
                    opened.discard(writer)
        except (OSError, asyncio.IncompleteReadError, h11.ProtocolError):
            pass  # the client left, failed its handshake or spoke no HTTP: nothing to answer
        except asyncio.CancelledError:
            # stop() cancels the connections in flight: this task ends quietly, as asyncio's
            # streams would log a cancelled client task as an error.
            pass
        finally:
            # A close that lets the last answer out (and, over TLS, says close_notify), bounded;
            # then whatever is left is dropped.
            with contextlib.suppress(OSError):  # TimeoutError and SSLError are OSErrors
                writer.close()
                await asyncio.wait_for(writer.wait_closed(), CLOSE_TIMEOUT)
            writer.transport.abort()
            with self._lock:
                self.open_connections -= 1
            if task is not None:
                self._handlers.discard(task)

    async def _serve(self, site: Site, port: int, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> None:
        field = "http" if port == self.http_port else "https"
        spec = getattr(self._now[site.name], field)
        if spec is Port.ELSEWHERE:  # its own server is not listening (yet, or any more)
            return
        scheme: Literal["http", "https"] = "http"
        sni: str | None = None
        if port == self.https_port and spec is not Port.PLAIN_HTTP:
            context = self.tls.context_for(site)
            assert context is not None  # None only for PLAIN_HTTP
            context.sni_callback = self._on_sni
            await writer.start_tls(context, ssl_handshake_timeout=HANDSHAKE_TIMEOUT)
            scheme = "https"
            sni = getattr(writer.get_extra_info("ssl_object"), "box_sni", None)
        connection = h11.Connection(h11.SERVER)
        for _ in range(10_000):  # requests on one kept-alive connection: bounded all the same
            request = await _next_request(connection, reader, writer)
            if request is None:
                return
            spec = getattr(self._now[site.name], field)  # switch() may have changed it
            if spec is Port.PLAIN_HTTP:
                spec = site.http if isinstance(site.http, Answer) else Answer()
            elif spec is Port.REFUSED:  # switched while this connection was kept alive
                return
            self._record(Hit(site.name, scheme, port, request.method.decode("ascii", "replace"),
                             request.target.decode("latin-1"),
                             tuple((k.decode("latin-1"), v.decode("latin-1"))
                                   for k, v in request.headers.raw_items()),
                             time.monotonic(), sni))
            chosen = site.answer_for(spec, request.target.decode("latin-1"))
            if not isinstance(chosen, Answer):
                await self._fault(chosen, connection, reader, writer)
                return
            await _drain_body(connection, reader)
            if chosen.delay:
                await asyncio.sleep(chosen.delay)
            with self._lock:
                self.answering += 1
                self.peak_answering = max(self.peak_answering, self.answering)
            try:
                if chosen.streamed:
                    if not await _stream(connection, writer, chosen, request):
                        return
                else:
                    await _answer(connection, writer, chosen, request,
                                  own_path=chosen is not spec)
            finally:
                with self._lock:
                    self.answering -= 1
            if connection.our_state is not h11.DONE or connection.their_state is not h11.DONE:
                return
            connection.start_next_cycle()

    async def _fault(self, fault: Port, connection: h11.Connection,
                     reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if fault is Port.RESET:
            sock = writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()  # closed at once with linger 0: an RST, no FIN
            return
        if fault is Port.ENDLESS:
            writer.write(connection.send(h11.Response(status_code=200, reason=b"OK", headers=[
                (b"Server", b"box"), (b"Content-Type", b"text/html; charset=utf-8")])) or b"")
            until = time.monotonic() + HOLD_LIMIT
            while time.monotonic() < until and not self._stopping.is_set():
                writer.write(connection.send(h11.Data(data=TRICKLE)) or b"")
                await asyncio.wait_for(writer.drain(), HOLD_LIMIT)
                await asyncio.sleep(TRICKLE_EVERY)
            return
        # SILENT: hold the connection, answer nothing, until the client leaves.
        until = time.monotonic() + HOLD_LIMIT
        while time.monotonic() < until and not self._stopping.is_set():
            if not await asyncio.wait_for(reader.read(READ_SIZE), HOLD_LIMIT):
                return

    def _on_sni(self, sslobj: ssl.SSLObject, name: str | None, _: ssl.SSLContext) -> None:
        """Note the SNI name; when it names another site of the box, serve that site's
        certificate (as a server with many names would)."""
        sslobj.box_sni = name  # type: ignore[attr-defined]  # read back after the handshake
        other = self._by_name.get((name or "").lower().rstrip("."))
        if other is not None and other.https is not Port.PLAIN_HTTP:
            context = self.tls.context_for(other)
            if context is not None and context is not sslobj.context:
                context.sni_callback = self._on_sni
                sslobj.context = context

    def _record(self, hit: Hit) -> None:
        with self._lock:
            self._hits.append(hit)


async def _next_request(connection: h11.Connection, reader: asyncio.StreamReader,
                        writer: asyncio.StreamWriter) -> h11.Request | None:
    """The next request's head, or None when the client left or sent what is not HTTP (it is
    then told 400, as a server would)."""
    try:
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA:
                data = await asyncio.wait_for(reader.read(READ_SIZE), IDLE_TIMEOUT)
                connection.receive_data(data)
                if not data and connection.their_state is h11.IDLE:
                    return None
                continue
            if isinstance(event, h11.Request):
                return event
            return None  # ConnectionClosed, or PAUSED
    except h11.RemoteProtocolError:
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        with contextlib.suppress(OSError):
            await asyncio.wait_for(writer.drain(), IDLE_TIMEOUT)
        return None


async def _drain_body(connection: h11.Connection, reader: asyncio.StreamReader) -> None:
    """Read the request's body to its end (the box answers without looking at it)."""
    for _ in range(100_000):
        event = connection.next_event()
        if event is h11.NEED_DATA:
            data = await asyncio.wait_for(reader.read(READ_SIZE), IDLE_TIMEOUT)
            connection.receive_data(data)
            if not data:
                return
        elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed) or event is h11.PAUSED:
            return


async def _answer(connection: h11.Connection, writer: asyncio.StreamWriter, answer: Answer,
                  request: h11.Request, own_path: bool = False) -> None:
    """Send `answer` to `request` (see the module's rules for redirects and HEAD); `own_path`:
    the answer is a path's own, whose redirect answers that path."""
    path = b"/" if own_path else request.target.split(b"?", 1)[0]
    status, headers, body = _response(answer, request.method.upper(), path)
    if request.method.upper() == b"HEAD":
        body = b""
    out = connection.send(h11.Response(status_code=status, headers=headers,
                                       reason=_reason(status))) or b""
    if body:
        out += connection.send(h11.Data(data=body)) or b""
    out += connection.send(h11.EndOfMessage()) or b""
    writer.write(out)
    await asyncio.wait_for(writer.drain(), IDLE_TIMEOUT)


async def _stream(connection: h11.Connection, writer: asyncio.StreamWriter, answer: Answer,
                  request: h11.Request) -> bool:
    """Send `answer`'s body piece by piece (see the module's rules); False when the connection
    was closed or reset on purpose."""
    status, headers, body = _response(answer, request.method.upper(),
                                      request.target.split(b"?", 1)[0])
    headers = list(headers)  # the cached list stays as it is
    wanted = dict(request.headers).get(b"range", b"")
    start = _range_start(wanted, len(body)) if answer.ranges and status == 200 else None
    if start is not None:
        status, total, body = 206, len(body), body[start:]
        headers = [(k, v) for k, v in headers if k != b"Content-Length"]
        headers += [(b"Content-Range", f"bytes {start}-{total - 1}/{total}".encode("ascii")),
                    (b"Content-Length", str(len(body)).encode("ascii"))]
    elif answer.ranges:
        headers.append((b"Accept-Ranges", b"bytes"))
    if request.method.upper() == b"HEAD":
        body = b""
    writer.write(connection.send(h11.Response(status_code=status, headers=headers,
                                              reason=_reason(status))) or b"")
    end = len(body)
    for limit in (answer.cut, answer.reset_after):
        if limit is not None:
            end = min(end, limit)
    piece = max(1, -(-end // PACE_PIECES)) if answer.pace else max(1, end)
    for offset in range(0, end, piece):
        writer.write(connection.send(h11.Data(data=body[offset:offset + piece])) or b"")
        await asyncio.wait_for(writer.drain(), IDLE_TIMEOUT)
        if answer.pace:
            await asyncio.sleep(answer.pace / PACE_PIECES)
    if answer.reset_after is not None and answer.reset_after < len(body):
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()
        return False
    if answer.cut is not None and answer.cut < len(body):
        writer.close()  # a FIN before the body's end: the client reads a short body
        return False
    writer.write(connection.send(h11.EndOfMessage()) or b"")
    await asyncio.wait_for(writer.drain(), IDLE_TIMEOUT)
    return True


def _listener(address: str, port: int, *, reuse_port: bool, listen: bool = True
              ) -> socket.socket:
    """A TCP socket bound to `address`:`port` (listening unless `listen` is False)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            # A wildcard and an address's own listener on one port: Linux lets both listen
            # only when both say SO_REUSEPORT (each stays a group of its own).
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((address, port))
        sock.setblocking(False)
        if listen:
            sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


def _range_start(value: bytes, size: int) -> int | None:
    """N of `bytes=N-` when it is within a body of `size` bytes, else None (served whole)."""
    text = value.decode("latin-1").strip().lower()
    if not text.startswith("bytes=") or not text.endswith("-"):
        return None
    number = text[len("bytes="):-1].strip()
    return int(number) if number.isdigit() and int(number) < size else None


@functools.lru_cache(maxsize=4096)
def _response(answer: Answer, method: bytes, path: bytes
              ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """The status, headers and body `answer` gives to `method` on `path` (cached: the same
    few answers are served thousands of times)."""
    headers: list[tuple[bytes, bytes]] = []
    if answer.server is not None:
        headers.append((b"Server", answer.server.encode("latin-1")))
    if answer.redirect is not None and path == b"/":
        return 301, [*headers, (b"Location", answer.redirect.encode("latin-1")),
                     (b"Content-Length", b"0")], b""
    if method == b"HEAD" and answer.head_differs:
        return 405, [*headers, (b"Allow", b"GET"), (b"Content-Length", b"0")], b""
    body = gzip.compress(answer.body, mtime=0) if answer.gzip else answer.body
    headers.append((b"Content-Type", answer.content_type.encode("latin-1")))
    headers += [(b"Content-Language", language.encode("latin-1"))
                for language in answer.languages]
    headers += [(b"Set-Cookie", cookie.encode("latin-1")) for cookie in answer.cookies]
    if answer.gzip:
        headers.append((b"Content-Encoding", b"gzip"))
    headers.append((b"Content-Length", str(len(body)).encode("ascii")))
    return answer.status, headers, body


def _reason(status: int) -> bytes:
    try:
        return http.HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b""


def _enough_descriptors(listeners: int) -> None:
    """Raise RLIMIT_NOFILE to cover `listeners` sockets and FD_MARGIN more: the soft limit up
    to the hard one, the hard one too when this process may (root); OSError saying what to do
    when neither is enough."""
    needed = listeners + FD_MARGIN
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        if hard == resource.RLIM_INFINITY or hard >= needed:
            resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
            return
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (needed, needed))
        except (OSError, ValueError) as exc:
            raise OSError(f"the box needs {needed} open files ({listeners} listening sockets) "
                          f"and this process may have {hard}: raise the hard limit (ulimit -Hn, "
                          f"limits.conf) or run as root") from exc


def client_connections(ports: Sequence[int] = (80, 443)) -> int:
    """How many TCP connections to `ports` clients of this network hold established now, as
    the kernel sees them (their end's state changes the moment a client closes; the hosts'
    own count lags). Connections the box holds itself (a BLACKHOLE's filler) count too."""
    # A line of /proc/net/tcp is `sl local remote state ...`, addresses as HEX:PORT: a client's
    # end names the port in its remote address, followed by the state (the hosts' own end has
    # it in its local address, followed by the remote one). Counted in C: the table has a line
    # per listener too, thousands when sites refuse.
    asked = _established_to(ports)
    if asked is not None:
        return asked
    marks = [f":{port:04X} {ESTABLISHED} ".encode() for port in ports]
    count = 0
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            table = Path(path).read_bytes()
        except OSError:
            continue
        count += sum(table.count(mark) for mark in marks)
    return count


# Linux's sock_diag (netlink): the same count without the table's text, which the kernel writes
# afresh at every read, a line per listener too (a run polls it ten times a second: 11 ms each
# with a few thousand listeners, a second of a run's CPU).
_NETLINK_SOCK_DIAG, _SOCK_DIAG_BY_FAMILY, _NLM_F_DUMP_REQUEST = 4, 20, 0x301
_NLMSG_ERROR, _NLMSG_DONE, _TCP_ESTABLISHED = 2, 3, 1


def _established_to(ports: Sequence[int]) -> int | None:
    """client_connections() asked of sock_diag: the established TCP sockets whose remote port
    is one of `ports`; None where it cannot be asked (not Linux, no sock_diag), so the caller
    reads /proc instead."""
    remote = {port.to_bytes(2, "big") for port in ports}
    # inet_diag_req_v2: family, protocol, extensions, padding, states (a bit per state; only
    # ESTABLISHED, so the kernel skips the listeners), then a zeroed socket id (any socket).
    header = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port id
    count = 0
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, _NETLINK_SOCK_DIAG) as sock:
            sock.settimeout(5.0)
            for family in (socket.AF_INET, socket.AF_INET6):
                request = struct.pack("=BBBBI48x", family, socket.IPPROTO_TCP, 0, 0,
                                      1 << _TCP_ESTABLISHED)
                sock.sendall(header.pack(header.size + len(request), _SOCK_DIAG_BY_FAMILY,
                                         _NLM_F_DUMP_REQUEST, family, 0) + request)
                done = False
                while not done:
                    data = sock.recv(1 << 17)
                    at = 0
                    while at + header.size <= len(data):
                        length, kind = struct.unpack_from("=IH", data, at)
                        if kind == _NLMSG_ERROR or length < header.size:
                            return None
                        if kind == _NLMSG_DONE:
                            done = True
                            break
                        # inet_diag_msg: family, state, timer, retransmits, then the socket
                        # id: source port, destination port (network order), addresses...
                        if data[at + 22:at + 24] in remote:
                            count += 1
                        at += (length + 3) & ~3
                    if not data:
                        return None
    except (OSError, AttributeError):  # AttributeError: no AF_NETLINK on this platform
        return None
    return count
