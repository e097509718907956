"""The reference `pipeline`: four aiohttp services (client, receiver, processor, writer) that write
records in the order they were received although their processing ends out of order (seed 003).

Run it as `python pipeline.py {client,receiver,processor,writer,all} [--host H] [--client-port P]
[--receiver-port P] [--processor-port P] [--writer-port P] [--receiver-url U] [--processor-url U]
[--writer-url U] [--output-dir DIR] [--quiet]`; every option can also come from the environment
(PIPELINE_HOST, PIPELINE_CLIENT_PORT, ..., PIPELINE_OUTPUT_DIR), the command line winning. `all`
runs the four, each a process of its own, on ports 5000-5003 by default, and stops them together.

Rules, as `openapi/pipeline.yaml` and `openapi/pipeline.requirements.yaml` state them:
- processor: `POST /process {"id", "delay"}` sleeps `delay` seconds (without blocking) and
  answers `{"asyncAnswer": "Ok"}`; a body that is not a job answers 400 at once.
- receiver: `POST /requests {"id", "delay"}` takes its receive time and its `seq` (0, 1, 2, ... in
  a `stream` named at startup) in one synchronous step, has the processor process the job, then
  delivers the record to the writer and answers 200. The processor failing: the writer is told
  the seq failed and the answer is 502. The writer unreachable: the answer is 503 and the
  delivery is retried every 0.5 s, in seq order, until the writer takes it.
- writer: `POST /records` keeps a reorder buffer per stream and appends each record to
  `records.txt` and `received.txt` as soon as every seq before it is written or failed; it
  never sorts afterwards. `GET /records` and `GET /files/{records.txt,received.txt}` show them.
- client: `GET /?connection_count=N&connection_value=M&delay_range=D` sends N x M requests at
  once (N sessions of M requests each) with random delays in [0, D] and answers with a report
  when all are answered.
- Ctrl+C or SIGTERM stops the services with exit status 0; a port already taken is one line and
  exit status 1, with nothing left listening.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import heapq
import json
import logging
import math
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

ROLES = ("client", "receiver", "processor", "writer")
# `all` starts them in this order, so that each one's downstream is up before it listens, and
# the client's port listening means the whole pipeline is.
START_ORDER = ("writer", "processor", "receiver", "client")
MAX_DELAY = 60.0
MAX_CONNECTIONS = 1000
MAX_REQUESTS = 100_000
REDELIVER_EVERY = 0.5  # seconds between attempts to hand kept deliveries to the writer
PROCESSOR_GRACE = 10.0  # seconds the processor may take beyond the job's delay
CLIENT_GRACE = 30.0  # seconds a client request may take beyond the largest delay
WRITER_TIMEOUT = 10.0  # seconds one delivery to the writer may take
PROCESSOR_LIMIT = 5000  # connections at most from the receiver to the processor
WRITER_LIMIT = 100  # connections at most from the receiver to the writer
FILES_NEEDED = {"client": 10_000 + 100, "receiver": 10_000 + PROCESSOR_LIMIT + WRITER_LIMIT + 100}
TABLES = {"records.txt": "id | receive_time | write_time",
          "received.txt": "id | receive_time"}
_INTEGER = re.compile(r"[0-9]{1,7}")
_DECIMAL = re.compile(r"[0-9]{1,7}(\.[0-9]*)?|\.[0-9]+")

log = logging.getLogger("pipeline")


@dataclass(frozen=True)
class PipelineConfig:
    """Everything the command line and environment set; the app factories read nothing else."""

    host: str = "127.0.0.1"
    client_port: int = 5000
    receiver_port: int = 5001
    processor_port: int = 5002
    writer_port: int = 5003
    receiver_url: str = "http://127.0.0.1:5001"
    processor_url: str = "http://127.0.0.1:5002"
    writer_url: str = "http://127.0.0.1:5003"
    output_dir: Path = field(default_factory=lambda: Path("output"))
    quiet: bool = False

    def port(self, role: str) -> int:
        """The port `role` listens on."""
        return int(getattr(self, f"{role}_port"))


def now() -> str:
    """The current UTC time, ISO 8601 with microseconds and +00:00."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _json(status: int, payload: object) -> web.Response:
    return web.json_response(payload, status=status)


def _detail(status: int, detail: str) -> web.Response:
    return _json(status, {"detail": detail})


class BadRequest(Exception):
    """The request is not what the protocol asks; its message is the 400's detail."""


@web.middleware
async def _json_errors(request: web.Request,
                       handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                       ) -> web.StreamResponse:
    # aiohttp answers unknown paths and methods in plain text; the protocol's errors are JSON.
    try:
        return await handler(request)
    except BadRequest as exc:
        return _detail(400, str(exc))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return web.json_response({"detail": exc.reason}, status=exc.status,
                                 headers={k: v for k, v in exc.headers.items()
                                          if k.lower() == "allow"})


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


async def _object_body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    try:
        body = json.loads(raw, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def _int_field(body: Mapping[str, Any], name: str) -> int:
    if name not in body:
        raise BadRequest(f"{name} is missing")
    value = body[name]
    if type(value) is not int or value < 0:  # `type is`: true is not an integer here
        raise BadRequest(f"{name} must be an integer >= 0, not {json.dumps(value)}")
    return value


def _str_field(body: Mapping[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise BadRequest(f"{name} must be a non-empty string")
    return value


def parse_job(body: Mapping[str, Any]) -> tuple[int, float]:
    """The (id, delay) of a job body; BadRequest when it is not one."""
    job_id = _int_field(body, "id")
    if "delay" not in body:
        raise BadRequest("delay is missing")
    delay = body["delay"]
    if (type(delay) not in (int, float) or not math.isfinite(delay)
            or not 0 <= delay <= MAX_DELAY):
        raise BadRequest(f"delay must be a number of seconds from 0 to {MAX_DELAY:g}, "
                         f"not {json.dumps(delay)}")
    return job_id, float(delay)


def _parse_time(text: str) -> str:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise BadRequest(f"receive_time is not an ISO 8601 time: {text!r}") from None
    if moment.tzinfo is None:
        raise BadRequest(f"receive_time has no UTC offset: {text!r}")
    return text


# ---------------------------------------------------------------------------------- processor

def create_processor_app(config: PipelineConfig) -> web.Application:
    """The processor: `POST /process` waits the job's delay, then answers Ok."""
    app = web.Application(middlewares=[_json_errors])

    async def process(request: web.Request) -> web.Response:
        _, delay = parse_job(await _object_body(request))
        await asyncio.sleep(delay)
        return _json(200, {"asyncAnswer": "Ok"})

    app.router.add_post("/process", process)
    return app


# ----------------------------------------------------------------------------------- receiver

class DeliveryFailed(Exception):
    """The writer did not take a delivery; the message says why."""


class Receiver:
    """The receiver's order (stream, seq, base) and its deliveries to the writer."""

    def __init__(self, config: PipelineConfig) -> None:
        self.config = config
        self.stream = uuid.uuid4().hex
        self.next_seq = 0
        # Seqs not yet accepted by the writer, as a heap with lazy deletion: `base` stays cheap
        # with 10,000 requests in flight.
        self._open: list[int] = []
        self._accepted: set[int] = set()
        self._kept: list[tuple[int, dict[str, Any]]] = []  # deliveries to retry, by seq
        self.writer_down = False
        self.processor: aiohttp.ClientSession | None = None
        self.writer: aiohttp.ClientSession | None = None
        self._redeliverer: asyncio.Task[None] | None = None
        self.log = logging.getLogger("pipeline.receiver")

    def take_seq(self) -> tuple[int, str]:
        """The next seq and the receive time, in one synchronous step (the order's source)."""
        receive_time, seq = now(), self.next_seq
        self.next_seq += 1
        heapq.heappush(self._open, seq)
        return seq, receive_time

    @property
    def base(self) -> int:
        """The lowest seq the writer has not accepted yet."""
        while self._open and self._open[0] in self._accepted:
            self._accepted.discard(heapq.heappop(self._open))
        return self._open[0] if self._open else self.next_seq

    async def start(self) -> None:
        """Open the sessions to the processor and the writer and start the redelivery task."""
        # The timeouts leave out the wait for a pooled connection: with 10,000 jobs in flight
        # and 5,000 connections a job may wait its turn longer than its own delay.
        self.processor = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=PROCESSOR_LIMIT),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=PROCESSOR_GRACE,
                                          sock_read=MAX_DELAY + PROCESSOR_GRACE))
        self.writer = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=WRITER_LIMIT),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=WRITER_TIMEOUT,
                                          sock_read=WRITER_TIMEOUT))
        self._redeliverer = asyncio.get_running_loop().create_task(self._redeliver())

    async def close(self) -> None:
        """Stop retrying and close the sessions; what is still kept is lost (and logged)."""
        if self._redeliverer is not None:
            self._redeliverer.cancel()
            await asyncio.gather(self._redeliverer, return_exceptions=True)
        if self._kept:
            self.log.warning("stopping with %d deliveries the writer has not taken",
                             len(self._kept))
        for session in (self.processor, self.writer):
            if session is not None:
                await session.close()

    async def process(self, job_id: int, delay: float) -> str | None:
        """Have the processor process the job; None when it did, else why not."""
        assert self.processor is not None
        url = self.config.processor_url.rstrip("/") + "/process"
        try:
            async with self.processor.post(
                    url, json={"id": job_id, "delay": delay},
                    timeout=aiohttp.ClientTimeout(
                        total=None, sock_connect=PROCESSOR_GRACE,
                        sock_read=delay + PROCESSOR_GRACE)) as answer:
                if answer.status != 200:
                    return f"answered {answer.status}"
                body = await answer.json(content_type=None)
        except TimeoutError:
            return f"no answer within {delay + PROCESSOR_GRACE:g} s"
        except (aiohttp.ClientError, OSError) as exc:
            return f"{type(exc).__name__}: {exc}"
        except ValueError:
            return "answered something that is not JSON"
        if body != {"asyncAnswer": "Ok"}:
            return f"answered {json.dumps(body)[:200]}, not {{\"asyncAnswer\": \"Ok\"}}"
        return None

    async def _send(self, delivery: dict[str, Any]) -> None:
        assert self.writer is not None
        url = self.config.writer_url.rstrip("/") + "/records"
        # base is taken when sent, not when kept: it only grows while a delivery waits.
        body = {**delivery, "base": self.base}
        try:
            async with self.writer.post(url, json=body) as answer:
                if answer.status not in (200, 409):  # 409: it has this seq already
                    raise DeliveryFailed(f"answered {answer.status}")
                await answer.read()
        except TimeoutError:
            raise DeliveryFailed(f"no answer within {WRITER_TIMEOUT:g} s") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from None
        self._accepted.add(delivery["seq"])
        if self.writer_down:
            self.writer_down = False
            self.log.warning("the writer takes deliveries again")

    def _outage(self, why: str) -> None:
        if not self.writer_down:
            self.writer_down = True
            self.log.warning("the writer does not take deliveries (%s); keeping them and "
                             "retrying every %g s", why, REDELIVER_EVERY)

    async def deliver(self, delivery: dict[str, Any]) -> str | None:
        """Hand `delivery` to the writer; None when it took it, else why not (it is then kept
        and delivered again later)."""
        try:
            await self._send(delivery)
        except DeliveryFailed as exc:
            self._outage(str(exc))
            heapq.heappush(self._kept, (delivery["seq"], delivery))
            return str(exc)
        return None

    async def _redeliver(self) -> None:
        while True:
            await asyncio.sleep(REDELIVER_EVERY)
            while self._kept:
                seq, delivery = heapq.heappop(self._kept)
                try:
                    await self._send(delivery)
                except DeliveryFailed as exc:
                    heapq.heappush(self._kept, (seq, delivery))
                    self._outage(str(exc))
                    break  # still down: the rest waits for the next round


def create_receiver_app(config: PipelineConfig) -> web.Application:
    """The receiver: `POST /requests` numbers the job, has it processed, delivers the record."""
    app = web.Application(middlewares=[_json_errors])
    receiver = Receiver(config)
    app["receiver"] = receiver

    async def on_startup(app: web.Application) -> None:
        await receiver.start()

    async def on_cleanup(app: web.Application) -> None:
        await receiver.close()

    async def requests(request: web.Request) -> web.Response:
        job_id, delay = parse_job(await _object_body(request))
        seq, receive_time = receiver.take_seq()
        delivery = {"stream": receiver.stream, "seq": seq, "id": job_id,
                    "receive_time": receive_time}
        why = await receiver.process(job_id, delay)
        if why is not None:
            await receiver.deliver({**delivery, "status": "failed"})
            return _detail(502, f"processor: {why}")
        undelivered = await receiver.deliver({**delivery, "status": "ok"})
        if undelivered is not None:
            return _detail(503, f"writer: {undelivered}; the record is kept and delivered "
                                f"when the writer is back")
        return _json(200, {"id": job_id, "receive_time": receive_time, "asyncAnswer": "Ok"})

    app.router.add_post("/requests", requests)
    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app


# ------------------------------------------------------------------------------------- writer

@dataclass
class Stream:
    """One receiver's stream as the writer sees it: the next seq to write and what waits."""

    next: int
    buffer: dict[int, dict[str, Any] | None] = field(default_factory=dict)  # None: failed


class Writer:
    """The reorder buffers and the two tables."""

    def __init__(self, output_dir: Path) -> None:
        self.output_dir = output_dir
        self.streams: dict[str, Stream] = {}
        self.written = 0
        self.failed = 0
        self.waiting = 0
        self._files: dict[str, Any] = {}

    def open(self) -> None:
        """Create the output folder and open the tables for appending, headers if new."""
        self.output_dir.mkdir(parents=True, exist_ok=True)
        for name, header in TABLES.items():
            # Line-buffered: each record is in the file as soon as its line is written.
            table = open(self.output_dir / name, "a", encoding="utf-8",  # noqa: SIM115
                         buffering=1)
            self._files[name] = table
            if table.seek(0, os.SEEK_END) == 0:
                table.write(header + "\n")

    def close(self) -> None:
        """Close the tables."""
        for table in self._files.values():
            table.close()
        self._files.clear()

    def state(self) -> dict[str, int]:
        """The WriterState totals."""
        return {"written": self.written, "failed": self.failed, "waiting": self.waiting}

    def take(self, delivery: dict[str, Any]) -> bool:
        """Buffer a delivery and write what is now due; False if this seq was taken already."""
        stream = self.streams.get(delivery["stream"])
        if stream is None:  # a new stream starts where its receiver says nothing is pending
            stream = self.streams[delivery["stream"]] = Stream(next=delivery["base"])
        seq = delivery["seq"]
        if seq < stream.next or seq in stream.buffer:
            return False
        stream.buffer[seq] = delivery if delivery["status"] == "ok" else None
        self.waiting += 1
        while stream.next in stream.buffer:
            record = stream.buffer.pop(stream.next)
            self.waiting -= 1
            stream.next += 1
            if record is None:
                self.failed += 1
                continue
            self._files["records.txt"].write(
                f"{record['id']} | {record['receive_time']} | {now()}\n")
            self._files["received.txt"].write(f"{record['id']} | {record['receive_time']}\n")
            self.written += 1
        return True

    def table(self, name: str) -> str:
        """The text of one table."""
        return (self.output_dir / name).read_text(encoding="utf-8")

    def records(self) -> list[dict[str, Any]]:
        """The rows of records.txt, in table order."""
        rows = []
        for line in self.table("records.txt").splitlines()[1:]:
            parts = line.split(" | ")
            if len(parts) == 3 and parts[0].isdigit():
                rows.append({"id": int(parts[0]), "receive_time": parts[1],
                             "write_time": parts[2]})
        return rows


def parse_delivery(body: Mapping[str, Any]) -> dict[str, Any]:
    """The delivery in `body`; BadRequest when it is not one."""
    delivery = {"stream": _str_field(body, "stream"), "seq": _int_field(body, "seq"),
                "base": _int_field(body, "base"), "id": _int_field(body, "id")}
    receive_time = body.get("receive_time")
    if not isinstance(receive_time, str):
        raise BadRequest("receive_time must be a string")
    delivery["receive_time"] = _parse_time(receive_time)
    if body.get("status") not in ("ok", "failed"):
        raise BadRequest('status must be "ok" or "failed"')
    delivery["status"] = body["status"]
    return delivery


def create_writer_app(config: PipelineConfig) -> web.Application:
    """The writer: `POST /records` into the reorder buffer, `GET /records`, `GET /files/...`."""
    app = web.Application(middlewares=[_json_errors])
    writer = Writer(config.output_dir)
    app["writer"] = writer

    async def on_startup(app: web.Application) -> None:
        writer.open()

    async def on_cleanup(app: web.Application) -> None:
        writer.close()

    async def deliver(request: web.Request) -> web.Response:
        delivery = parse_delivery(await _object_body(request))
        # Synchronous from here on: the small appends need no thread, and no await means no
        # other delivery interleaves with this one's flush.
        if not writer.take(delivery):
            return _detail(409, f"seq {delivery['seq']} of stream {delivery['stream']} "
                                f"was taken already")
        return _json(200, writer.state())

    async def listing(request: web.Request) -> web.Response:
        return _json(200, {**writer.state(), "records": writer.records()})

    async def table(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in TABLES:  # only these two names: no path reaches anything else
            return _detail(404, f"no table {name!r}; the tables are {', '.join(TABLES)}")
        return web.Response(text=writer.table(name), content_type="text/plain",
                            charset="utf-8")

    app.router.add_post("/records", deliver)
    app.router.add_get("/records", listing)
    app.router.add_get("/files/{name}", table)
    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app


# ------------------------------------------------------------------------------------- client

@dataclass(frozen=True)
class Load:
    """The parameters of one client run."""

    connections: int = 10
    per_connection: int = 10
    delay_range: float = 5.0


def parse_load(query: Mapping[str, str]) -> Load:
    """The run's parameters from the query; BadRequest when one is not in its range."""
    d = Load()

    def integer(name: str, default: int) -> int:
        text = query.get(name)
        if text is None:
            return default
        if not _INTEGER.fullmatch(text) or not 1 <= int(text) <= MAX_CONNECTIONS:
            raise BadRequest(f"{name} must be an integer from 1 to {MAX_CONNECTIONS}, "
                             f"not {text!r}")
        return int(text)

    n = integer("connection_count", d.connections)
    m = integer("connection_value", d.per_connection)
    if n * m > MAX_REQUESTS:
        raise BadRequest(f"connection_count x connection_value is {n * m}; at most "
                         f"{MAX_REQUESTS} requests are sent in one run")
    text = query.get("delay_range")
    delay_range = d.delay_range
    if text is not None:
        if not _DECIMAL.fullmatch(text) or not 0 <= float(text) <= MAX_DELAY:
            raise BadRequest(f"delay_range must be a number of seconds from 0 to "
                             f"{MAX_DELAY:g}, not {text!r}")
        delay_range = float(text)
    return Load(n, m, delay_range)


def create_client_app(config: PipelineConfig) -> web.Application:
    """The client: `GET /` runs N x M requests through the receiver and reports."""
    app = web.Application(middlewares=[_json_errors])
    url = config.receiver_url.rstrip("/") + "/requests"
    next_id = 0  # ids are never reused while the client runs; a run takes a block at once

    async def one(session: aiohttp.ClientSession, job_id: int, delay_range: float) -> str:
        delay = round(random.uniform(0, delay_range), 3)
        try:
            async with session.post(url, json={"id": job_id, "delay": delay}) as answer:
                await answer.read()
                return str(answer.status)
        except (TimeoutError, aiohttp.ClientError, OSError):
            return "error"

    async def connection(first: int, load: Load) -> list[str]:
        # One "connection" is one session of its own, sending its M requests at once.
        async with aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=load.per_connection),
                timeout=aiohttp.ClientTimeout(total=load.delay_range + CLIENT_GRACE)) as s:
            return await asyncio.gather(*(one(s, first + j, load.delay_range)
                                          for j in range(load.per_connection)))

    async def run(request: web.Request) -> web.Response:
        nonlocal next_id
        load = parse_load(request.query)
        total = load.connections * load.per_connection
        first_id, next_id = next_id, next_id + total
        started_at, started = now(), time.monotonic()
        outcomes = await asyncio.gather(*(connection(first_id + k * load.per_connection, load)
                                          for k in range(load.connections)))
        elapsed = time.monotonic() - started
        statuses = collections.Counter(s for batch in outcomes for s in batch)
        return _json(200, {
            "connection_count": load.connections, "connection_value": load.per_connection,
            "delay_range": load.delay_range, "requests": total, "ok": statuses["200"],
            "failed": total - statuses["200"], "statuses": dict(sorted(statuses.items())),
            "first_id": first_id, "last_id": first_id + total - 1, "started_at": started_at,
            "finished_at": now(), "elapsed_s": round(elapsed, 3)})

    app.router.add_get("/", run)
    return app


FACTORIES: dict[str, Callable[[PipelineConfig], web.Application]] = {
    "client": create_client_app, "receiver": create_receiver_app,
    "processor": create_processor_app, "writer": create_writer_app,
}


def create_app(config: PipelineConfig, role: str) -> web.Application:
    """The aiohttp application of one role, configured by `config` alone."""
    return FACTORIES[role](config)


# ------------------------------------------------------------------------------------ serving

def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio turns Nagle off only on sockets that say they are TCP.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _raise_file_limit() -> int | None:
    """Raise the open-file limit to its hard limit; the limit now, None if unknown."""
    # 100 x 100 requests are 10,000 sockets on each hop; the usual soft limit is 1024.
    try:
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ImportError, ValueError, OSError):
        return None
    return None if soft == resource.RLIM_INFINITY else soft


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


async def _serve(config: PipelineConfig, roles: tuple[str, ...],
                 sockets: dict[str, socket.socket]) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    runners: list[web.AppRunner] = []
    try:
        for role in roles:
            runner = web.AppRunner(create_app(config, role), access_log=None,
                                   handle_signals=False, shutdown_timeout=2.0)
            try:
                await runner.setup()
            except OSError as exc:
                print(f"pipeline: {role} cannot start: {exc}", file=sys.stderr)
                return 1
            runners.append(runner)
            await web.SockSite(runner, sockets[role], backlog=4096).start()
            log.info("%s listening on http://%s:%d/", role, _url_host(config.host),
                     config.port(role))
        await stop.wait()
        log.info("stopping")
        return 0
    finally:
        for runner in reversed(runners):  # the client first: it is what sends
            await runner.cleanup()
        for sock in sockets.values():
            sock.close()


def _logging(config: PipelineConfig) -> None:
    logging.basicConfig(format="%(name)s: %(message)s", stream=sys.stderr,
                        level=logging.WARNING if config.quiet else logging.INFO)
    logging.getLogger("aiohttp").setLevel(logging.ERROR)


def _bind_all(config: PipelineConfig, roles: tuple[str, ...]) -> dict[str, socket.socket] | None:
    """A listening socket per role; None (having said which port) when one is taken."""
    sockets: dict[str, socket.socket] = {}
    for role in roles:
        try:
            sockets[role] = _bind(config.host, config.port(role))
        except OSError as exc:
            for sock in sockets.values():
                sock.close()
            print(f"pipeline: {role} cannot listen on {config.host}:{config.port(role)}: "
                  f"{exc.strerror or exc}", file=sys.stderr)
            return None
    return sockets


def serve(config: PipelineConfig, roles: tuple[str, ...]) -> int:
    """Serve `roles` in one event loop until Ctrl+C or SIGTERM (0); 1 if a port is taken."""
    _logging(config)
    limit = _raise_file_limit()
    for role in roles:
        if role in FILES_NEEDED and limit is not None and limit < FILES_NEEDED[role]:
            # A 100 x 100 run is 10,000 sockets at the client and twice that at the receiver.
            log.warning("%s: open-file limit %d is below the %d a run of 10,000 requests needs",
                        role, limit, FILES_NEEDED[role])
    sockets = _bind_all(config, roles)
    if sockets is None:
        return 1
    try:
        return asyncio.run(_serve(config, roles, sockets))
    except KeyboardInterrupt:  # Ctrl+C before the loop's own handler was in place
        for sock in sockets.values():
            sock.close()
        return 0


def _role_argv(config: PipelineConfig, role: str) -> list[str]:
    """The command line that runs `role` alone with this configuration."""
    argv = [sys.executable, os.path.abspath(__file__), role, "--host", config.host,
            "--output-dir", str(config.output_dir)]
    for name in ROLES:
        argv += [f"--{name}-port", str(config.port(name))]
    for name in ("receiver", "processor", "writer"):
        argv += [f"--{name}-url", getattr(config, f"{name}_url")]
    return argv + (["--quiet"] if config.quiet else [])


def _wait_listening(host: str, port: int, proc: subprocess.Popen[bytes], limit: float) -> bool:
    reach = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with socket.create_connection((reach, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def serve_all(config: PipelineConfig) -> int:
    """Run the four roles as processes of their own (each with its own open-file limit), started
    in dependency order, each once the one before listens, and stopped together: 0 after Ctrl+C
    or SIGTERM, 1 when one cannot start or stops by itself (the others are stopped then)."""
    _logging(config)
    sockets = _bind_all(config, START_ORDER)  # a taken port starts nothing at all
    if sockets is None:
        return 1
    for sock in sockets.values():
        sock.close()
    stopping: list[int] = []

    def stop(signum: int, frame: object) -> None:
        stopping.append(signum)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    procs: dict[str, subprocess.Popen[bytes]] = {}
    code = 0
    try:
        for role in START_ORDER:
            if stopping:
                break
            procs[role] = proc = subprocess.Popen(_role_argv(config, role))
            if not _wait_listening(config.host, config.port(role), proc, 15.0) \
                    and not stopping:
                print(f"pipeline: {role} did not start (exit status {proc.poll()}); stopping "
                      f"the others", file=sys.stderr)
                return 1
        while not stopping:
            ended = [(r, p.returncode) for r, p in procs.items() if p.poll() is not None]
            if ended:
                role, status = ended[0]
                print(f"pipeline: {role} stopped by itself (exit status {status}); stopping "
                      f"the others", file=sys.stderr)
                code = 1
                break
            time.sleep(0.1)
        return code
    finally:
        for proc in reversed(procs.values()):  # the client first: it is what sends
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _port(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be 1-65535, not {value}")
    return value


def _url(text: str) -> str:
    if not re.match(r"https?://[^/\s]+", text):
        raise argparse.ArgumentTypeError(f"must be an http:// URL, not {text!r}")
    return text.rstrip("/")


def build_parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    """The command line; every option's default comes from `env` (PIPELINE_...), else
    PipelineConfig's."""
    d = PipelineConfig()
    parser = argparse.ArgumentParser(
        description="Four async services that write records in the order they were received: "
                    "client, receiver, processor, writer (or all four together).")
    parser.add_argument("role", choices=(*ROLES, "all"), help="the service(s) to run")

    def option(name: str, default: object, help_text: str, **kwargs: Any) -> None:
        var = "PIPELINE_" + name.upper().replace("-", "_")
        # argparse applies `type` to a string default too, so a bad variable is a usage error.
        parser.add_argument(f"--{name}", default=env.get(var, default),
                            help=f"{help_text} ({var}, else %(default)s)", **kwargs)

    option("host", d.host, "address the services listen on")
    for role in ROLES:
        option(f"{role}-port", str(d.port(role)), f"port of the {role}", type=_port)
    for role in ("receiver", "processor", "writer"):
        option(f"{role}-url", None, f"where the {role} is reached; default http://HOST:PORT",
               type=_url)
    option("output-dir", "output", "folder of the writer's tables, created if missing",
           type=Path)
    parser.add_argument("--quiet", action="store_true", help="log warnings and errors only")
    return parser


def config_from(args: argparse.Namespace) -> PipelineConfig:
    """The configuration the parsed command line asks for."""
    # A wildcard address listens everywhere but is no place to connect to.
    reach = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(args.host, args.host)

    def url(role: str) -> str:
        given = getattr(args, f"{role}_url")
        return given or f"http://{_url_host(reach)}:{getattr(args, f'{role}_port')}"

    return PipelineConfig(
        host=args.host, client_port=args.client_port, receiver_port=args.receiver_port,
        processor_port=args.processor_port, writer_port=args.writer_port,
        receiver_url=url("receiver"), processor_url=url("processor"), writer_url=url("writer"),
        output_dir=args.output_dir, quiet=args.quiet)


def main(argv: list[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Run the services; 0 after Ctrl+C or SIGTERM, 1 if one cannot listen, 2 for bad options."""
    parser = build_parser(os.environ if env is None else env)
    args = parser.parse_args(argv)
    roles = START_ORDER if args.role == "all" else (args.role,)
    ports = [getattr(args, f"{role}_port") for role in roles]
    if len(set(ports)) < len(ports):
        parser.error(f"the services need four different ports, not {ports}")
    if args.role == "all":
        return serve_all(config_from(args))
    return serve(config_from(args), roles)


if __name__ == "__main__":
    sys.exit(main())
