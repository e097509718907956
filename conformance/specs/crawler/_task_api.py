"""How the suite talks to a crawler's task API, and the shapes real submissions give it.

Rules: every list of shapes starts with the assignment's own; discovery tries them in order and
keeps the first one a server accepts, and from then on every check talks through that shape.
So a server that deviates in one way (a `{"urls": [...]}` body, no trailing slash, "done" for
"ready", `results` for `result`, a dict of codes, a task per URL) fails the one requirement the
deviation breaks, with a message naming both shapes, and is judged on everything else.
Shapes are data: add a new one here, not a special case in a check.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from conformance._checks import CheckFailure
from conformance._http import Exchange, Http


@dataclass(frozen=True)
class Submit:
    """One way of sending a list of URLs to create a task."""

    label: str
    path: str
    body: Callable[[list[str]], Any]


CANONICAL_PATH = "/api/v1/tasks/"
SUBMITS: tuple[Submit, ...] = (
    Submit("a bare JSON list to POST /api/v1/tasks/", CANONICAL_PATH, list),
    Submit("a bare JSON list to POST /api/v1/tasks (no trailing slash)", "/api/v1/tasks", list),
    Submit('{"urls": [...]} to POST /api/v1/tasks/', CANONICAL_PATH, lambda u: {"urls": u}),
    Submit('{"urls": [...]} to POST /api/v1/tasks', "/api/v1/tasks", lambda u: {"urls": u}),
    Submit('[{"url": ...}] to POST /api/v1/tasks/', CANONICAL_PATH,
           lambda u: [{"url": x} for x in u]),
    Submit('[{"url": ...}] to POST /api/v1/tasks', "/api/v1/tasks",
           lambda u: [{"url": x} for x in u]),
)
ID_FIELDS = ("id", "task_id", "taskId", "uuid")
POLL_PATHS = ("/api/v1/tasks/{id}", "/api/v1/tasks/{id}/")
POLL_MIN, POLL_MAX = 0.1, 0.5  # seconds between polls of a task: at first, and at most
RUNNING_WORDS = ("running", "pending", "in_progress", "in progress", "processing", "started",
                 "created", "queued", "new")
READY_WORDS = ("ready", "done", "finished", "completed", "complete", "success", "succeeded")
RESULT_FIELDS = ("result", "results", "codes", "status_codes")
CODE_FIELDS = ("code", "status", "status_code")


def _word(value: Any, words: tuple[str, ...]) -> bool:
    return isinstance(value, str) and value.strip().lower() in words


def _task_id(body: Any) -> tuple[str, Any] | None:
    if isinstance(body, dict):
        for name in ID_FIELDS:
            if body.get(name) not in (None, ""):
                return name, body[name]
    return None


def read_codes(value: Any, urls: list[str]) -> tuple[str, list[Any]] | None:
    """(form, codes in submission order) from a result value, or None when it is none of the
    known forms: a list of codes, a dict URL -> code, a list of {"url", "code"} objects."""
    def by_url(table: dict[Any, Any]) -> list[Any]:
        return [table.get(u, table.get("http://" + u)) for u in urls]

    if isinstance(value, list) and all(v is None or isinstance(v, int | str) for v in value):
        return "a list", list(value)
    if isinstance(value, dict) and any(u in value or "http://" + u in value for u in urls):
        return "an object of URL -> code", by_url(value)
    if isinstance(value, list) and value and all(isinstance(v, dict) and "url" in v
                                                  for v in value):
        codes = {}
        for item in value:
            code_field = next((f for f in CODE_FIELDS if f in item), None)
            codes[item["url"]] = item.get(code_field) if code_field else None
        return 'a list of {"url", "code"} objects', by_url(codes)
    return None


@dataclass
class Created:
    """The answer to creating one task (or several, for servers that make a task per URL)."""

    exchange: Exchange
    body: Any
    ids: list[Any]
    urls: list[str]


@dataclass
class Ready:
    """A task seen ready: its last answers, and the codes read from it in submission order."""

    exchanges: list[Exchange]
    status: Any
    field: str
    form: str
    codes: list[Any]
    raw: Any
    seconds: float


@dataclass
class Api:
    """A server's task API as discovered: the shape it accepts, and what it was seen to answer."""

    http: Http
    submit: Submit
    id_field: str
    per_url: bool
    poll_path: str = POLL_PATHS[0]
    running_words: set[str] = field(default_factory=set)
    ready_words: set[str] = field(default_factory=set)
    result_fields: set[str] = field(default_factory=set)
    result_forms: set[str] = field(default_factory=set)

    @property
    def canonical_submit(self) -> bool:
        """Whether the server takes what the assignment says: a bare list to /api/v1/tasks/."""
        return self.submit is SUBMITS[0]

    def create(self, urls: list[str]) -> Created:
        """Create a task for `urls`; CheckFailure when the server does not create one."""
        ex = self.http.request("POST", self.submit.path, content=_json(self.submit.body(urls)),
                               headers={"Content-Type": "application/json"})
        body = _body(ex)
        if self.per_url and isinstance(body, list):
            ids = [found[1] for found in map(_task_id, body) if found]
            if len(ids) == len(urls):
                return Created(ex, body, ids, urls)
        found = _task_id(body)
        if ex.status >= 300 or found is None:
            raise CheckFailure(f"{ex.request_line} created no task",
                               expected="2xx and a task object with an id",
                               actual=ex.summary(), reproduce=ex.curl())
        # A new task's word is the server's word for "running", unless it is a word for ready
        # (a task answered at once, from a cache say), which must never be taken for running.
        if isinstance(body, dict) and "status" in body and not _word(body["status"], READY_WORDS):
            self.running_words.add(str(body["status"]))
        return Created(ex, body, [found[1]], urls)

    def poll(self, task_id: Any, *, timeout: float | None = None) -> Exchange:
        """GET the task once."""
        return self.http.get(self.poll_path.format(id=task_id), timeout=timeout)

    def wait_ready(self, created: Created, limit: float, *, since: float | None = None) -> Ready:
        """Poll until every task of `created` is ready, or raise CheckFailure `limit` s after
        `since` (a time.monotonic() reading, such as when the task was created; default now)."""
        t0 = time.monotonic() if since is None else since
        deadline = t0 + limit
        last: dict[Any, Exchange] = {}
        done: dict[Any, Any] = {}
        while True:
            for task_id in created.ids:
                if task_id in done:
                    continue
                ex = self.poll(task_id)
                last[task_id] = ex
                body = _body(ex)
                if ex.status == 200 and isinstance(body, dict) and self._is_ready(body):
                    done[task_id] = body
            if len(done) == len(created.ids):
                break
            if time.monotonic() > deadline:
                ex = last[next(i for i in created.ids if i not in done)]
                raise CheckFailure(
                    f"the task did not become ready within {limit:g} s",
                    expected='status "ready" with a result',
                    actual=f"last answer: {ex.summary()}", reproduce=ex.curl())
            # Soon for a quick task, then calmer: a task stuck for its whole limit costs a
            # few dozen polls, not hundreds (grading many servers at once is CPU-bound).
            time.sleep(min(POLL_MAX, max(POLL_MIN, (time.monotonic() - t0) / 5)))
        return self._read(created, [done[i] for i in created.ids], list(last.values()),
                          time.monotonic() - t0)

    def _is_ready(self, body: dict[str, Any]) -> bool:
        status = body.get("status")
        if _word(status, RUNNING_WORDS) or status in self.running_words:
            return False
        has_result = any(body.get(f) is not None for f in RESULT_FIELDS)
        return _word(status, READY_WORDS) or (has_result and status is not None)

    def _read(self, created: Created, bodies: list[dict[str, Any]],
              exchanges: list[Exchange], seconds: float) -> Ready:
        status = bodies[0].get("status")
        self.ready_words.add(str(status))
        if self.per_url:
            raws = [next((b[f] for f in RESULT_FIELDS if f in b), None) for b in bodies]
            codes = [r[0] if isinstance(r, list) and len(r) == 1 else r for r in raws]
            name = next((f for f in RESULT_FIELDS if f in bodies[0]), "result")
            self.result_fields.add(name)
            self.result_forms.add("one task per URL")
            return Ready(exchanges, status, name, "one task per URL", codes, raws, seconds)
        body = bodies[0]
        for name in RESULT_FIELDS:
            if name in body:
                read = read_codes(body[name], created.urls)
                if read is not None:
                    self.result_fields.add(name)
                    self.result_forms.add(read[0])
                    return Ready(exchanges, status, name, read[0], read[1], body[name], seconds)
        ex = exchanges[0]
        raise CheckFailure("the ready task has no result in a form the suite knows",
                           expected='"result": a list of codes', actual=ex.summary(),
                           reproduce=ex.curl())


@dataclass
class Discovery:
    """What creating a task looked like: each shape tried, and the API found (None if none)."""

    attempts: list[tuple[Submit, Exchange | CheckFailure]]
    api: Api | None

    def explain(self) -> str:
        """`422 to a bare JSON list ...; 201 to {"urls": [...]}`: what each shape got."""
        parts = []
        for submit, outcome in self.attempts:
            got = (f"{outcome.status}" if isinstance(outcome, Exchange)
                   else f"no answer ({outcome.actual})")
            parts.append(f"{got} to {submit.label}")
        return "; ".join(parts)


def discover(http: Http, urls: list[str]) -> Discovery:
    """Find the first shape of SUBMITS the server creates a task with, and its poll path."""
    attempts: list[tuple[Submit, Exchange | CheckFailure]] = []
    for submit in SUBMITS:
        try:
            ex = http.request("POST", submit.path, content=_json(submit.body(urls)),
                              headers={"Content-Type": "application/json"})
        except CheckFailure as exc:
            attempts.append((submit, exc))
            continue
        attempts.append((submit, ex))
        if ex.status >= 300:
            continue
        body = _body(ex)
        per_url = (isinstance(body, list) and len(body) == len(urls) > 0
                   and all(_task_id(b) for b in body))
        found = _task_id(body[0] if per_url else body)
        if found is None:
            continue
        api = Api(http, submit, found[0], per_url)
        if isinstance(body, dict) and "status" in body:
            api.running_words.add(str(body["status"]))
        api.poll_path = _poll_path(http, found[1])
        return Discovery(attempts, api)
    return Discovery(attempts, None)


def _poll_path(http: Http, task_id: Any) -> str:
    for path in POLL_PATHS:
        try:
            ex = http.get(path.format(id=task_id))
        except CheckFailure:
            continue
        if ex.status == 200:
            return path
    return POLL_PATHS[0]


def random_task_id() -> str:
    """An id no server has given out."""
    return str(uuid.uuid4())


def _json(value: Any) -> bytes:
    import json

    return json.dumps(value).encode()


def _body(ex: Exchange) -> Any:
    try:
        return ex.json()
    except ValueError:
        return None
