"""The fake crawler server: what a crawl client under test talks to, scripted and observed.

Rules: it listens on one loopback port and plays openapi/crawler.yaml the way a FastAPI server
would, without fetching anything:
- `POST /api/v1/tasks/` with a non-empty list of URLs (whatever the Content-Type says) answers
  201 and a fresh task `{"id": <uuid4>, "status": "running", "result": null}`, in the default
  shape whatever shape the body had. It takes the list in every body shape the crawler suite's
  discovery knows (conformance/specs/crawler/_task_api.py's SUBMITS: the bare list,
  `{"urls": [...]}`, `[{"url": ...}]`, ...), and records which one came (`Task.shape`): a
  client that wraps its list fails the check of the body alone, and is judged on polling and
  printing like any other. Any other body answers 422, as FastAPI's validation does;
- `GET /api/v1/tasks/{id}` answers the task: "running" for the script's first `running_polls`
  polls of that task (and until `running_for` seconds have passed since it was created), then
  "ready" with one entry per submitted URL, in submission order, taken from the script's `codes`
  (null for a URL the script does not name); an unknown id answers 404;
- like FastAPI's `redirect_slashes`, `/api/v1/tasks` and `/api/v1/tasks/{id}/` answer 307 to
  the other spelling; any other path answers 404, another method 405;
- a script may replace every answer to the POST or to the polls (`post_reply`, `poll_reply`),
  to see what a client does with garbage.
Every request is recorded (a `Seen`: method, raw path, body, Content-Type, when), so checks can
judge what the client sent. `reset()` forgets the requests and tasks and takes a new script. Its
lifecycle is conformance._servers's (`AiohttpServer`): a context manager, or start() and stop().
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from conformance._servers import AiohttpServer
from conformance.specs.crawler._task_api import SUBMITS, Submit

TASKS_PATH = "/api/v1/tasks/"
_TASK = re.compile(r"^/api/v1/tasks/(?P<id>[^/]+)$")
_TASK_SLASH = re.compile(r"^/api/v1/tasks/(?P<id>[^/]+)/$")
# A request's body is recorded whole (aiohttp takes at most 1 MiB, its client_max_size): checks
# parse the POST's.
_WHOLE_BODY = 2**20


def shape_of(submit: Submit) -> str:
    """A submission's body shape in words: its label says the shape, then where it goes
    ("{"urls": [...]} to POST /api/v1/tasks/")."""
    return submit.label.split(" to ", 1)[0]


# The shape the assignment asks for: the crawler suite's list of shapes starts with it.
BARE_LIST = shape_of(SUBMITS[0])


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


@dataclass
class Task:
    """A task the fake server created."""

    id: str
    urls: list[str]
    created: float
    polls: int = 0
    ready: bool = False
    shape: str = BARE_LIST  # the shape of the POST's body, in words (`submission_shape`)


class FakeCrawler(AiohttpServer):
    """The fake crawler server at 127.0.0.1:`port`, answering by `script`."""

    def __init__(self, port: int, script: Script | None = None, host: str = "127.0.0.1") -> None:
        super().__init__(port, host, body_limit=_WHOLE_BODY)
        self._script = script or Script()
        self._tasks: dict[str, Task] = {}
        self._lock = threading.Lock()

    # what checks use ----------------------------------------------------------------------

    @property
    def url(self) -> str:
        """`http://127.0.0.1:PORT`, where a client reaches this server."""
        return self.base_url

    def reset(self, script: Script | None = None) -> None:
        """Forget every request and task, and answer by `script` from now on."""
        super().reset()
        with self._lock:
            self._tasks.clear()
            self._script = script or Script()

    def tasks(self) -> list[Task]:
        """Every task created so far, in creation order."""
        with self._lock:
            return list(self._tasks.values())

    # serving ------------------------------------------------------------------------------

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()  # read already, and recorded whole: aiohttp keeps it
        with self._lock:
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
            payload = json.loads(body.decode("utf-8"))
        except ValueError:
            return _json(422, {"detail": "the body is not JSON"})
        found = read_submission(payload)
        if found is None:
            return _json(422, {"detail": "the body must be a non-empty JSON list of URLs"})
        urls, shape = found
        task = Task(str(uuid.uuid4()), urls, time.monotonic(), shape=shape)
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


def read_submission(payload: Any) -> tuple[list[str], str] | None:
    """(the URLs, the shape in words) of a POST's parsed body when it is a non-empty list of
    URLs in a shape the crawler suite's discovery knows, else None.

    The shapes are SUBMITS's body builders, not a copy of them: the URLs are the body's
    strings in order, and the body is taken when one builder makes exactly it from them (so a
    shape added there is taken here too, and an object with more members is not)."""
    urls = _strings(payload)
    if not urls:
        return None
    for submit in SUBMITS:
        if submit.body(urls) == payload:
            return urls, shape_of(submit)
    return None



def _strings(value: Any) -> list[str]:
    """Every string among the values of a JSON value (not its keys), depth first, in order."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    return []


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
