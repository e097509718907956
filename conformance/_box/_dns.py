"""The box's DNS server: answers for the planned names on 127.0.0.53:53 (UDP and TCP) as each
site's `Dns` fault says, and records every query, so a suite sees how a program resolves.

Rules: dnslib makes and reads the wire format, only the fault logic is ours; it serves from an
event loop in a thread of its own (start() returns once it listens, stop() is idempotent); a
planned name answers an A record with its address, any other type NOERROR with no answer (so a
program falls back to IPv4), an unplanned name NXDOMAIN; names are matched without case and
without a trailing dot; every answer is held from `delay` to twice that, spread evenly (a
LATE one at least `site.dns_delay`), so that a program's queries overlap and `peak_in_flight`
shows how many it has out at once; a SILENT name's query is dropped after that hold, never
answered. Times are `time.monotonic()`, as the hosts' are.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

from dnslib import QTYPE, RCODE, RR, A, DNSRecord

from conformance._box._plan import Dns, Site

_GOLDEN = 0.6180339887498949  # spreads successive holds evenly
ADDRESS = "127.0.0.53"
PORT = 53
TTL = 60  # long enough for one probe run; a program that caches then asks once per name
START_TIMEOUT = 10.0
# A program with 1,000 lookups out sends them in one burst: the default buffer (some 200 KB,
# a few hundred datagrams) dropped a third of 20,000 queries sent 1,000 at once (measured).
UDP_BUFFER = 16 * 1024 * 1024
_SO_RCVBUFFORCE = 33  # Linux's; Python 3.11's socket module does not name it
TCP_IDLE = 10.0  # a TCP client that sends nothing for this long is dropped
# Sends one answer back the way its query came (None: the query is dropped, not answered).
_Sender = Callable[[bytes | None], None]


@dataclass
class Query:
    """One query the resolver received: the name (as asked, lowercased, no trailing dot),
    its type ("A", "AAAA"...), the transport, when it came and when it was answered (None:
    never: SILENT, or still held)."""

    name: str
    type: str
    transport: str  # "udp" or "tcp"
    arrival: float
    answered: float | None = None


class Resolver:
    """The box's DNS server for `sites` (allocated: each has its address); `delay` holds every
    answer that long (seconds)."""

    def __init__(self, sites: Sequence[Site], delay: float = 0.0, *, address: str = ADDRESS,
                 port: int = PORT) -> None:
        self.sites = {site.name.lower().rstrip("."): site for site in sites}
        self.delay = delay
        self.address = address
        self.port = port
        self.peak_in_flight = 0  # most queries received and not yet answered (or dropped)
        self._in_flight = 0
        self._queries: list[Query] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._stopping: asyncio.Event | None = None
        self._answers: dict[tuple[str, object, int], bytes] = {}  # see _answer()

    # -- lifetime --------------------------------------------------------------------------

    def start(self) -> None:
        """Bind UDP and TCP and serve from a thread of its own; returns once both listen
        (OSError when a port cannot be bound)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._serve, name="box-dns", daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT):
            raise RuntimeError(f"the box's resolver did not start in {START_TIMEOUT:.0f} s")
        if self._failure is not None:
            self._thread.join(START_TIMEOUT)
            self._thread = None
            raise self._failure

    def stop(self) -> None:
        """Stop serving and close the sockets (idempotent)."""
        thread, loop, stopping = self._thread, self._loop, self._stopping
        if thread is None:
            return
        if loop is not None and stopping is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop ended on its own meanwhile
                loop.call_soon_threadsafe(stopping.set)
        thread.join(START_TIMEOUT)
        self._thread = None

    def __enter__(self) -> Resolver:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- observations ------------------------------------------------------------------------

    def queries(self) -> list[Query]:
        """Every query received so far, in order of arrival (copies)."""
        with self._lock:
            return [Query(q.name, q.type, q.transport, q.arrival, q.answered)
                    for q in self._queries]

    def last_arrival(self) -> float | None:
        """When the latest query came (None before the first): queries()'s last, without
        copying thousands of them for a run polled every tenth of a second."""
        with self._lock:
            return self._queries[-1].arrival if self._queries else None

    # -- serving -----------------------------------------------------------------------------

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        except BaseException as exc:  # reported to start(), which is waiting
            self._failure = exc
        finally:
            self._ready.set()
            loop.close()

    async def _main(self) -> None:
        loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind((self.address, self.port))
        except OSError:
            sock.close()
            raise
        _deep_buffer(sock)
        udp, _ = await loop.create_datagram_endpoint(lambda: _Udp(self), sock=sock)
        # Many programs open a TCP connection each for a retry: a deep backlog keeps them in.
        tcp = await asyncio.start_server(self._tcp_client, self.address, self.port,
                                         backlog=1024)
        self._ready.set()
        try:
            await self._stopping.wait()
        finally:
            udp.close()
            tcp.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(tcp.wait_closed(), 2)

    def _received(self, data: bytes, transport: str, send: _Sender) -> bool:
        """Record a query and schedule its answer (or its drop); False for junk, which is
        neither recorded nor answered."""
        try:
            request = DNSRecord.parse(data)
        except Exception:  # dnslib raises several kinds on junk
            return False
        if not request.questions:
            return False
        question = request.questions[0]
        name = str(question.qname).lower().rstrip(".")
        qtype = QTYPE.get(question.qtype, str(question.qtype))
        query = Query(name, str(qtype), transport, time.monotonic())
        with self._lock:
            self._queries.append(query)
            self._in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
        site = self.sites.get(name)
        # Spread over [delay, 2 delay) by the golden ratio, the same for the same run: held
        # answers released all at once would overflow a program's socket buffer (a burst of
        # a thousand), and the box, not the program, would have lost them.
        hold = self.delay * (1.0 + (len(self._queries) * _GOLDEN) % 1.0)
        if site is not None and site.dns is Dns.LATE:
            hold = max(hold, site.dns_delay)
        answer = None if site is not None and site.dns is Dns.SILENT else \
            self._answer(data, request, site, qtype)
        assert self._loop is not None
        self._loop.call_later(hold, self._settle, query, answer, send)
        return True

    def _answer(self, data: bytes, request: DNSRecord, site: Site | None,
                qtype: object) -> bytes:
        """The answer's bytes: packed by dnslib once per name, type and flags, then reused
        with the query's id and question (as asked, case included), which is all that differs:
        a program that asks again for each of a site's URLs costs 25 us a query, not 75."""
        key = (str(request.questions[0].qname).lower(), qtype, data[2] & 0x01)
        template = self._answers.get(key)
        if template is None:
            template = _answer(request, site)
            self._answers[key] = template
        end = 12 + len(request.questions[0].qname.label) + sum(
            len(label) for label in request.questions[0].qname.label) + 1 + 4
        return data[:2] + template[2:12] + data[12:end] + template[end:]

    def _settle(self, query: Query, answer: bytes | None, send: _Sender) -> None:
        with self._lock:
            self._in_flight -= 1
            if answer is not None:
                query.answered = time.monotonic()
        send(answer)

    async def _tcp_client(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        held = 0  # answers scheduled and not yet sent on this connection
        all_sent = asyncio.Event()

        def send(answer: bytes | None) -> None:
            nonlocal held
            held -= 1
            if answer is not None and not writer.is_closing():
                writer.write(struct.pack("!H", len(answer)) + answer)
            if held <= 0:
                all_sent.set()

        try:
            while True:
                head = await asyncio.wait_for(reader.readexactly(2), TCP_IDLE)
                body = await asyncio.wait_for(reader.readexactly(struct.unpack("!H", head)[0]),
                                              TCP_IDLE)
                if self._received(body, "tcp", send):
                    held += 1
                    all_sent.clear()
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            # A client that sent its query and closed its side still reads the held answers.
            if held > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(all_sent.wait(), self._longest_hold())
            writer.close()

    def _longest_hold(self) -> float:
        late = [s.dns_delay for s in self.sites.values() if s.dns is Dns.LATE]
        return max([self.delay, *late]) + 0.1


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The selector loop's datagram transport is not a DatagramTransport subclass.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        transport = self.transport

        def send(answer: bytes | None) -> None:
            if answer is not None and transport is not None and not transport.is_closing():
                transport.sendto(answer, addr)

        self.resolver._received(data, "udp", send)


def _deep_buffer(sock: socket.socket) -> None:
    """Raise the socket's receive buffer to UDP_BUFFER: past the system's maximum where this
    process may (CAP_NET_ADMIN of the run's network), else as far as the maximum allows."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, UDP_BUFFER)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_BUFFER)


def _answer(request: DNSRecord, site: Site | None) -> bytes:
    """The packed answer to `request` for `site` (None: not planned)."""
    reply = request.reply(ra=1, aa=1)
    question = request.questions[0]
    if site is None or site.dns is Dns.NXDOMAIN:
        reply.header.rcode = RCODE.NXDOMAIN
    elif site.dns is Dns.SERVFAIL:
        reply.header.rcode = RCODE.SERVFAIL
        reply.header.aa = 0
    elif question.qtype in (QTYPE.A, QTYPE.ANY):
        reply.add_answer(RR(question.qname, QTYPE.A, rdata=A(site.address), ttl=TTL))
    # Any other type of a planned name: NOERROR and no record ("no data"), as for a name
    # that has only an IPv4 address.
    packed: bytes = reply.pack()
    return packed
