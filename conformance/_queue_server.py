"""Our reference taskqueue server run in-process, for judging a client: on a given loopback port,
with a given time scale, every request recorded and the queue's state open to inspection.

Rules: the server runs uvicorn on an event loop of its own in a background thread; starting it
takes at most START_TIMEOUT seconds and stopping it at most STOP_TIMEOUT (then it is forced);
a port that cannot be bound raises OSError. Any ASGI app may be served the same way, so a check
can also play a server that answers garbage, and so may a WSGI app (a Flask one) through
`WSGIBridge`. Tasks are prepared over HTTP, as a client would, and the state is only read from
outside the server's thread.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import warnings
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from uvicorn.middleware.wsgi import WSGIMiddleware

from reference.taskqueue_server import QueueConfig, Task, TaskQueue, create_app

HOST = "127.0.0.1"
TASKS_PATH = "/api/v1/tasks"
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
REQUEST_TIMEOUT = 5.0
BODY_LIMIT = 4096

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass
class Seen:
    """One request the server received: method, path (with its query), when, its body (the
    first BODY_LIMIT bytes) and the status it was answered with."""

    method: str
    path: str
    at: float  # time.monotonic()
    status: int | None = None
    body: bytearray = field(default_factory=bytearray)

    @property
    def line(self) -> str:
        """`METHOD /path -> status`, for a message."""
        return f"{self.method} {self.path}" + (f" -> {self.status}" if self.status else "")


class _Recorder:
    """ASGI middleware that records every HTTP request and the status it was answered with."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.seen: list[Seen] = []
        self.lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query = scope.get("query_string", b"").decode("latin-1")
        entry = Seen(scope["method"], scope.get("raw_path", b"").decode("latin-1")
                     or scope["path"], time.monotonic())
        if query and "?" not in entry.path:
            entry.path += "?" + query
        with self.lock:
            self.seen.append(entry)

        async def receiving() -> Message:
            message = await receive()
            if message["type"] == "http.request" and len(entry.body) < BODY_LIMIT:
                entry.body += message.get("body", b"")[:BODY_LIMIT - len(entry.body)]
            return message

        async def recording(message: Message) -> None:
            if message["type"] == "http.response.start":
                entry.status = message["status"]
            await send(message)

        await self.app(scope, receiving, recording)


def _bind(port: int) -> socket.socket:
    # SO_REUSEADDR: the suite starts a fresh server on the same port run after run, and the
    # last run's connections may still be in TIME_WAIT there.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((HOST, port))
    except OSError:
        sock.close()
        raise
    return sock


class InProcessServer:
    """An ASGI app served on 127.0.0.1:`port` from a background thread; a context manager."""

    def __init__(self, port: int, app: App) -> None:
        self.port = port
        self._recorder = _Recorder(app)
        self._server = uvicorn.Server(uvicorn.Config(
            self._recorder, log_level="critical", access_log=False, lifespan="auto",
            timeout_graceful_shutdown=1, timeout_keep_alive=1))
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self._failure: list[BaseException] = []

    @property
    def url(self) -> str:
        """The server's base URL, without a trailing slash."""
        return f"http://{HOST}:{self.port}"

    def __enter__(self) -> InProcessServer:
        self._sock = _bind(self.port)
        self.port = self._sock.getsockname()[1]

        def serve() -> None:
            try:
                asyncio.run(self._server.serve(sockets=[self._sock] if self._sock else None))
            except BaseException as exc:  # handed to the starting thread, or lost at exit
                self._failure.append(exc)

        self._thread = threading.Thread(target=serve, name=f"queue-server-{self.port}",
                                        daemon=True)
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self._server.started and self._thread.is_alive() \
                and time.monotonic() < deadline:
            time.sleep(0.01)
        if not self._server.started:
            self.__exit__()
            why = repr(self._failure[0]) if self._failure else f"not within {START_TIMEOUT:g} s"
            raise OSError(f"the in-process server did not start on {HOST}:{self.port}: {why}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=STOP_TIMEOUT)
            if self._thread.is_alive():  # a connection that will not close: stop waiting for it
                self._server.force_exit = True
                self._thread.join(timeout=STOP_TIMEOUT)
        if self._sock is not None:
            self._sock.close()

    def requests(self) -> list[Seen]:
        """Every request so far, in arrival order."""
        with self._recorder.lock:
            return list(self._recorder.seen)


class LiveQueue(InProcessServer):
    """Our reference taskqueue server (reference/taskqueue_server.py) with its delays times
    `time_scale`, its queue open to inspection."""

    def __init__(self, port: int, time_scale: float) -> None:
        self.time_scale = time_scale
        app = create_app(QueueConfig(host=HOST, port=port, time_scale=time_scale, quiet=True))
        self.queue: TaskQueue = app.state.queue
        super().__init__(port, app)

    def submit(self, task_type: int, data: str) -> str:
        """Queue a task over HTTP, as a client would; its id."""
        response = httpx.post(self.url + TASKS_PATH, json={"type": task_type, "data": data},
                              timeout=REQUEST_TIMEOUT, trust_env=False, verify=False)
        response.raise_for_status()
        return str(response.json()["id"])

    def tasks(self) -> list[Task]:
        """The tasks the server holds, in the order they were submitted."""
        # list() copies the dict in one step, so the server's thread cannot change it meanwhile.
        return list(self.queue.tasks.values())

    def task(self, task_id: str) -> Task | None:
        """The task named `task_id`, or None."""
        return self.queue.tasks.get(task_id)

    def wait_for(self, task_id: str, statuses: set[str], timeout: float) -> bool:
        """Wait until the task's status is one of `statuses`; False after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            task = self.task(task_id)
            if task is not None and task.status in statuses:
                return True
            time.sleep(0.01)
        return False


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
        # is small, and the suites serve test traffic only, so it is enough here.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            self._bridge = WSGIMiddleware(app, workers=workers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
        elif scope["type"] == "http":
            await self._bridge(scope, receive, send)  # type: ignore[arg-type]

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
