"""The reference `crawler.py`: a FastAPI server that fetches lists of URLs and reports their codes.

Run it as `python crawler.py [--host H] [--port P] [--timeout S] [--concurrency N]
[--retention S] [--max-tasks N] [--max-urls N] [--quiet]`; it listens on 127.0.0.1:8888 by
default. asyncio only: no threads and no processes do its I/O. (Name lookup aside: aiohttp, like
asyncio.open_connection, resolves a host name with loop.getaddrinfo, which asyncio runs in its
default executor; an IP address is used as it is.)

Rules, as `openapi/crawler.yaml` and `openapi/crawler.requirements.yaml` state them:
- `POST /api/v1/tasks/` (that path exactly: no redirect from or to a missing slash) takes a bare,
  non-empty JSON list of at most `--max-urls` non-empty strings and answers 201 with
  `{"id": "<uuid4>", "status": "running", "result": null}` at once, before fetching anything.
  Any other body answers 422 and creates no task.
- Every URL is then fetched with exactly one GET. At most `--concurrency` fetches are in flight
  across all tasks together, shared round-robin between the running tasks, so a task of 10,000
  URLs does not make a task of one URL submitted after it wait for all of them.
- A URL's entry is the status code of its first answer: redirects are not followed, and the body
  is never read (the connection is closed instead), so an endless body costs nothing. A URL
  without a scheme (`127.0.0.1:8000/x`) is fetched as `http://` + it. A URL that gives no HTTP
  answer within `--timeout` seconds, all told (refused, reset, timed out, invalid, a scheme other
  than http(s)), gives null, and so does a status outside 100-599, which is not an HTTP code.
  Entries are in submission order.
- `GET /api/v1/tasks/{id}` answers 200 with the task: "running" with a null result until every
  URL is done, then "ready" with the list. An id that names no task, malformed ones included,
  answers 404 with `{"detail": "task not found"}`.
- A finished task is kept `--retention` seconds, and only the `--max-tasks` most recently finished
  ones are kept (the oldest go first); a running task is never dropped. Dropped means 404.
- Ctrl+C or SIGTERM stops the server with exit status 0; a port already taken is a one-line error
  and exit status 1.

HTTP client, chosen by measurement (`bench/http_clients.py`: 10,000 GETs at concurrency 200
against a local aiohttp.web server, 2 CPUs, aiohttp 3.14.5, httpx 0.28.1 / httpcore 1.0.9):
aiohttp.ClientSession 13,000-13,800 req/s, httpx.AsyncClient 320-360 req/s, so aiohttp, 36-43x
faster. With it, one task of 10,000 URLs runs as fast as a bare aiohttp loop doing the same
fetches (`bench/crawler_10k.py`: 0.80 s both, peak RSS 61 MiB).
"""

# No `from __future__ import annotations` here: FastAPI reads the endpoints' annotations at run
# time, and the body's type is built inside create_app, where a postponed string cannot find it.
import argparse
import asyncio
import collections
import json
import logging
import re
import signal
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from types import FrameType
from typing import Annotated, Literal, Protocol

import aiohttp
import uvicorn
from fastapi import Body, FastAPI, Response
from pydantic import BaseModel, Field, StringConstraints

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8888

log = logging.getLogger("crawler")

# "scheme:" not followed by a digit: `localhost:8000/x` is a host and port, not the scheme
# "localhost", while `ftp://...` and `mailto:...` do name a scheme (one we then refuse).
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:(?![0-9])")
_NOT_FOUND = b'{"detail":"task not found"}'


@dataclass(frozen=True)
class CrawlerConfig:
    """Everything the command line sets; `create_app` reads nothing else."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    timeout: float = 10.0
    concurrency: int = 200
    retention: float = 3600.0
    max_tasks: int = 10_000
    max_urls: int = 10_000
    quiet: bool = False


class TaskOut(BaseModel):
    """A task as the API shows it (documentation only: answers are rendered by hand, once)."""

    id: uuid.UUID
    status: Literal["running", "ready"]
    result: list[int | None] | None = None


@dataclass(eq=False)
class Task:
    """One submitted list of URLs and, entry by entry, what each answered."""

    id: str
    urls: list[str]
    result: list[int | None]
    next_index: int = 0
    pending: int = 0
    finished_at: float | None = None
    # The JSON answer of a finished task, rendered once: pollers may ask for it many times.
    body: bytes | None = field(default=None, repr=False)

    def render(self) -> bytes:
        """The task as the API shows it."""
        if self.body is not None:
            return self.body
        return json.dumps({"id": self.id, "status": "running", "result": None}).encode()


async def _one_try(request: aiohttp.ClientRequest,
                   handler: aiohttp.ClientHandlerType) -> aiohttp.ClientResponse:
    """A client middleware that keeps aiohttp from sending a GET again.

    aiohttp repeats an idempotent request once when its connection fails before an answer
    (ClientOSError, ServerDisconnectedError). The crawler sends one GET per URL and no more,
    so such a failure leaves as a plain ClientConnectionError, which aiohttp does not repeat.
    """
    try:
        return await handler(request)
    except (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError) as exc:
        raise aiohttp.ClientConnectionError(str(exc)) from exc


def normalize_url(url: str) -> str:
    """`url` with `http://` in front when it names no scheme, else unchanged."""
    return url if _SCHEME.match(url) else "http://" + url


class Crawler:
    """The tasks, and exactly `concurrency` worker coroutines that fetch their URLs.

    A fixed pool of workers, rather than a coroutine per URL behind a semaphore, keeps memory
    flat however many URLs wait (a 10,000-URL task costs its list, not 10,000 coroutines), and
    lets the workers take URLs from the running tasks in turn.
    """

    def __init__(self, config: CrawlerConfig) -> None:
        self.config = config
        self._running: dict[str, Task] = {}
        # Finished tasks in the order they finished, which is also the order they expire in, so
        # eviction only ever looks at the front: O(1) per dropped task, no scans.
        self._finished: collections.OrderedDict[str, Task] = collections.OrderedDict()
        # Running tasks that still have URLs nobody has taken; the head gives the next URL.
        self._queue: collections.deque[Task] = collections.deque()
        self._work = asyncio.Event()
        self._workers: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Open the HTTP client and start the workers (inside the running event loop)."""
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.config.concurrency, limit_per_host=0),
            timeout=aiohttp.ClientTimeout(total=self.config.timeout),
            # Cookies one crawled site sets must not be sent along with another task's URLs.
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            trust_env=False,
            middlewares=(_one_try,),
        )
        self._workers = [asyncio.create_task(self._worker(), name=f"crawler-worker-{i}")
                         for i in range(self.config.concurrency)]

    async def close(self) -> None:
        """Stop the workers (running tasks stay unfinished) and close the HTTP client."""
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []
        if self._session is not None:
            await self._session.close()
            self._session = None

    def submit(self, urls: list[str]) -> Task:
        """Create a running task for `urls` and queue its URLs for the workers."""
        self._evict()
        task = Task(id=str(uuid.uuid4()), urls=urls, result=[None] * len(urls),
                    pending=len(urls))
        self._running[task.id] = task
        self._queue.append(task)
        self._work.set()
        return task

    async def submitted(self, task: Task) -> None:
        """Called once a task is created, before it is answered: a hook for subclasses."""

    def get(self, task_id: str) -> Task | None:
        """The task named `task_id` (UUIDs compare case-insensitively), or None."""
        self._evict()
        key = task_id.lower()
        return self._running.get(key) or self._finished.get(key)

    def _evict(self) -> None:
        now = time.monotonic()
        finished = self._finished
        while finished:
            oldest = next(iter(finished.values()))
            assert oldest.finished_at is not None
            if (len(finished) <= self.config.max_tasks
                    and now - oldest.finished_at < self.config.retention):
                break
            finished.popitem(last=False)

    def _finish(self, task: Task) -> None:
        task.body = json.dumps({"id": task.id, "status": "ready", "result": task.result}).encode()
        task.finished_at = time.monotonic()
        task.urls = []  # no longer needed; the rendered body is all a finished task keeps
        del self._running[task.id]
        self._finished[task.id] = task
        self._evict()

    async def _worker(self) -> None:
        queue = self._queue
        while True:
            if not queue:
                self._work.clear()
                await self._work.wait()
                continue
            task = queue[0]
            index = task.next_index
            task.next_index += 1
            if task.next_index == len(task.urls):
                queue.popleft()  # every URL of it is taken; the last ones are still in flight
            else:
                queue.rotate(-1)  # the next URL comes from the next task: round-robin
            task.result[index] = await self._fetch(task.urls[index])
            task.pending -= 1
            if task.pending == 0:
                self._finish(task)

    async def _fetch(self, url: str) -> int | None:
        """The status code `url` answers a GET with, or None; never raises (but cancellation)."""
        assert self._session is not None
        try:
            # Leaving the block without reading the body closes the connection unless the whole
            # body has already arrived, so an endless or slow body is never waited for.
            async with self._session.get(normalize_url(url), allow_redirects=False) as answer:
                status = answer.status
        except (aiohttp.ClientError, TimeoutError, ValueError, OSError):
            # No HTTP answer: refused, reset, timed out, an invalid URL or an unsupported scheme.
            return None
        except Exception:
            # A bug must not leave the task running forever: this URL gets null, and we say so.
            log.exception("unexpected error fetching %r", url)
            return None
        return status if 100 <= status <= 599 else None


def create_app(config: CrawlerConfig, crawler: Crawler | None = None) -> FastAPI:
    """Return the crawler's ASGI application, configured by `config` alone (or serving the given
    crawler, a subclass that adds to it, such as server_cached's)."""
    crawler = crawler or Crawler(config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await crawler.start()
        try:
            yield
        finally:
            await crawler.close()

    # redirect_slashes=False: a client that POSTs to /api/v1/tasks (no slash) must get an error,
    # not a 307 that its HTTP library silently follows, which would hide the deviation.
    app = FastAPI(title="crawler", version="1.0.0", lifespan=lifespan, redirect_slashes=False,
                  summary="Asynchronous URL status crawler (the reference).")
    app.state.crawler = crawler

    Url = Annotated[str, StringConstraints(min_length=1)]
    UrlList = Annotated[list[Url], Field(min_length=1, max_length=config.max_urls)]

    @app.post("/api/v1/tasks/", status_code=201, response_model=TaskOut,
              responses={422: {"description": "Not a non-empty JSON list of URL strings, or "
                                              "too many URLs."}})
    async def create_task(urls: Annotated[UrlList, Body()]) -> Response:
        """Create a task that fetches every URL of the list; answers before fetching any."""
        task = crawler.submit(urls)
        # Rendered before the hook runs: the answer to a POST is the task as it was created,
        # "running", even if its URLs were all answered (say, from a cache) meanwhile.
        body = task.render()
        await crawler.submitted(task)
        return Response(body, status_code=201, media_type="application/json")

    @app.get("/api/v1/tasks/{task_id}", response_model=TaskOut,
             responses={404: {"description": "No such task (never created, or no longer kept)."}})
    async def get_task(task_id: str) -> Response:
        """Show a task; once ready, with one status code (or null) per URL, in order."""
        # task_id is a plain string, not a UUID parameter: a malformed id names no task (404),
        # it is not a validation error (422).
        task = crawler.get(task_id)
        if task is None:
            return Response(_NOT_FOUND, status_code=404, media_type="application/json")
        return Response(task.render(), media_type="application/json")

    return app


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be 0-65535, not {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, not {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The command line; its defaults are CrawlerConfig's."""
    d = CrawlerConfig()
    parser = argparse.ArgumentParser(description="Asynchronous URL status crawler (FastAPI).")
    parser.add_argument("--host", default=d.host, help="address to listen on (%(default)s)")
    parser.add_argument("--port", type=_port, default=d.port, help="port (%(default)s)")
    parser.add_argument("--timeout", type=_positive_float, default=d.timeout,
                        help="seconds one URL may take, all told (%(default)s)")
    parser.add_argument("--concurrency", type=_positive_int, default=d.concurrency,
                        help="fetches in flight at most, all tasks together (%(default)s)")
    parser.add_argument("--retention", type=_positive_float, default=d.retention,
                        help="seconds a finished task is kept (%(default)s)")
    parser.add_argument("--max-tasks", type=_positive_int, default=d.max_tasks,
                        help="finished tasks kept at most, oldest dropped first (%(default)s)")
    parser.add_argument("--max-urls", type=_positive_int, default=d.max_urls,
                        help="URLs one task may list (%(default)s)")
    parser.add_argument("--quiet", action="store_true", help="log nothing but errors")
    return parser


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio turns Nagle off (TCP_NODELAY) only on sockets that say
    # they are TCP, and without that every answer on a kept-alive connection waits 40 ms
    # for the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def config_from(args: argparse.Namespace) -> CrawlerConfig:
    """The configuration the parsed command line asks for."""
    return CrawlerConfig(host=args.host, port=args.port, timeout=args.timeout,
                         concurrency=args.concurrency, retention=args.retention,
                         max_tasks=args.max_tasks, max_urls=args.max_urls, quiet=args.quiet)


def main(argv: list[str] | None = None) -> int:
    """Start the server from the command line; 0 after Ctrl+C or SIGTERM, 1 if it cannot."""
    config = config_from(build_parser().parse_args(argv))
    return serve(config, lambda: create_app(config), "crawler", describe(config))


def describe(config: CrawlerConfig) -> str:
    """The settings, as the startup line shows them."""
    return (f"timeout {config.timeout:g} s, concurrency {config.concurrency}, retention "
            f"{config.retention:g} s, max-tasks {config.max_tasks}, max-urls {config.max_urls}")


class Listening(Protocol):
    """What `serve` reads of a configuration."""

    host: str
    port: int
    quiet: bool


def serve(config: Listening, make_app: Callable[[], FastAPI], name: str, settings: str) -> int:
    """Log as `name`, listen where `config` says and serve `make_app()` until stopped; the
    startup line shows `settings`."""
    logging.basicConfig(format=f"{name}: %(message)s", stream=sys.stderr,
                        level=logging.WARNING if config.quiet else logging.INFO)
    # Binding here, not in uvicorn, turns a taken port into one line instead of uvicorn's log.
    try:
        sock = _bind(config.host, config.port)
    except OSError as exc:
        print(f"{name}: cannot listen on {config.host}:{config.port}: "
              f"{exc.strerror or exc}", file=sys.stderr)
        return 1
    # uvicorn shuts down gracefully on SIGINT/SIGTERM and then re-raises the signal to the
    # handler that was there before it: Python's KeyboardInterrupt for SIGINT, ours for SIGTERM.
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        server = uvicorn.Server(uvicorn.Config(
            make_app(), log_level="warning", access_log=False, lifespan="on",
            timeout_graceful_shutdown=5,
        ))
        host = f"[{config.host}]" if ":" in config.host else config.host
        log.info("serving on http://%s:%d/ (%s; Ctrl+C to stop)", host, config.port, settings)
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
