"""The fake crawler server: what a crawl client under test talks to, scripted and observed.

Rules: it listens on one loopback port and plays openapi/crawler.yaml the way a FastAPI server
would, without fetching anything:
- `POST /api/v1/tasks/` with a non-empty JSON list of strings (whatever the Content-Type says)
  answers 201 and a fresh task `{"id": <uuid4>, "status": "running", "result": null}`; any
  other body answers 422, as FastAPI's validation does;
- `GET /api/v1/tasks/{id}` answers the task: "running" for the script's first `running_polls`
  polls of that task (and until `running_for` seconds have passed since it was created), then
  "ready" with one entry per submitted URL, in submission order, taken from the script's `codes`
  (null for a URL the script does not name); an unknown id answers 404;
- like FastAPI's `redirect_slashes`, `/api/v1/tasks` and `/api/v1/tasks/{id}/` answer 307 to
  the other spelling; any other path answers 404, another method 405;
- a script may replace every answer to the POST or to the polls (`post_reply`, `poll_reply`),
  to see what a client does with garbage.
Every request is recorded (method, raw path, body, Content-Type, when), so checks can judge what
the client sent. `reset()` forgets the requests and tasks and takes a new script. The server runs
on an event loop of its own in a background thread; use it as a context manager.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

TASKS_PATH = "/api/v1/tasks/"
_TASK = re.compile(r"^/api/v1/tasks/(?P<id>[^/]+)$")
_TASK_SLASH = re.compile(r"^/api/v1/tasks/(?P<id>[^/]+)/$")


@dataclass(frozen=True)
class Reply:
    """A canned answer: status, body and Content-Type."""

    status: int
    body: bytes
    content_type: str = "application/json"


@dataclass(frozen=True)
class Script:
    """How the fake server answers during one run of the client."""

    codes: Mapping[str, int | None] = field(default_factory=dict)
    running_polls: int = 2
    running_for: float = 0.0
    post_reply: Reply | None = None
    poll_reply: Reply | None = None


@dataclass(frozen=True)
class Seen:
    """One request the fake server received."""

    method: str
    path: str
    body: bytes
    content_type: str
    at: float

    @property
    def line(self) -> str:
        """`POST /api/v1/tasks/`: the request as a person reads it."""
        return f"{self.method} {self.path}"

    def json(self) -> Any:
        """The body parsed as JSON (ValueError when it is not JSON)."""
        return json.loads(self.body.decode("utf-8"))


@dataclass
class Task:
    """A task the fake server created."""

    id: str
    urls: list[str]
    created: float
    polls: int = 0
    ready: bool = False


class FakeCrawler:
    """The fake crawler server at 127.0.0.1:`port`, answering by `script`."""

    def __init__(self, port: int, script: Script | None = None, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port
        self._script = script or Script()
        self._seen: list[Seen] = []
        self._tasks: dict[str, Task] = {}
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    # lifetime -----------------------------------------------------------------------------

    def __enter__(self) -> FakeCrawler:
        ready = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._start())
            except BaseException as exc:  # handed to the starting thread below
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._stop())
            loop.close()

        self._thread = threading.Thread(target=serve, name="fake-crawler", daemon=True)
        self._thread.start()
        if not ready.wait(timeout=10):
            raise OSError(f"the fake crawler server did not start on {self.host}:{self.port}")
        if failure:
            raise failure[0]
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)

    async def _start(self) -> None:
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

    async def _stop(self) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    # what checks use ----------------------------------------------------------------------

    @property
    def url(self) -> str:
        """`http://127.0.0.1:PORT`, where a client reaches this server."""
        return f"http://{self.host}:{self.port}"

    def reset(self, script: Script | None = None) -> None:
        """Forget every request and task, and answer by `script` from now on."""
        with self._lock:
            self._seen.clear()
            self._tasks.clear()
            self._script = script or Script()

    def requests(self) -> list[Seen]:
        """Every request received so far, in arrival order."""
        with self._lock:
            return list(self._seen)

    def tasks(self) -> list[Task]:
        """Every task created so far, in creation order."""
        with self._lock:
            return list(self._tasks.values())

    # serving ------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        with self._lock:
            self._seen.append(Seen(request.method, request.raw_path, body,
                                   request.headers.get("Content-Type", ""), time.monotonic()))
            script = self._script
        path = request.path
        if path == TASKS_PATH:
            if request.method != "POST":
                return _json(405, {"detail": "Method Not Allowed"})
            return self._create(body, script)
        if path == TASKS_PATH.rstrip("/"):
            return _redirect(request, TASKS_PATH)
        match = _TASK.match(path)
        if match:
            if request.method != "GET":
                return _json(405, {"detail": "Method Not Allowed"})
            return self._poll(match["id"], script)
        match = _TASK_SLASH.match(path)
        if match:
            return _redirect(request, path.rstrip("/"))
        return _json(404, {"detail": "Not Found"})

    def _create(self, body: bytes, script: Script) -> web.Response:
        if script.post_reply is not None:
            return _reply(script.post_reply)
        try:
            urls = json.loads(body.decode("utf-8"))
        except ValueError:
            return _json(422, {"detail": "the body is not JSON"})
        if not isinstance(urls, list) or not urls or not all(isinstance(u, str) for u in urls):
            return _json(422, {"detail": "the body must be a non-empty JSON list of URLs"})
        task = Task(str(uuid.uuid4()), urls, time.monotonic())
        with self._lock:
            self._tasks[task.id] = task
        return _json(201, {"id": task.id, "status": "running", "result": None})

    def _poll(self, task_id: str, script: Script) -> web.Response:
        with self._lock:
            task = self._tasks.get(task_id)
            if task is not None:
                task.polls += 1
                if (task.polls > script.running_polls
                        and time.monotonic() - task.created >= script.running_for):
                    task.ready = True
        if script.poll_reply is not None:
            return _reply(script.poll_reply)
        if task is None:
            return _json(404, {"detail": "Task not found"})
        if not task.ready:
            return _json(200, {"id": task.id, "status": "running", "result": None})
        result = [script.codes.get(url) for url in task.urls]
        return _json(200, {"id": task.id, "status": "ready", "result": result})


def _json(status: int, payload: object) -> web.Response:
    return web.Response(status=status, body=json.dumps(payload).encode(),
                        content_type="application/json")


def _reply(reply: Reply) -> web.Response:
    response = web.Response(status=reply.status, body=reply.body)
    response.headers["Content-Type"] = reply.content_type
    return response


def _redirect(request: web.Request, path: str) -> web.Response:
    # Starlette answers a path that matches a route but for its trailing slash with 307 to the
    # other spelling, keeping the method and body; a client that follows it gets there.
    location = str(request.url.with_path(path))
    return web.Response(status=307, headers={"Location": location})
