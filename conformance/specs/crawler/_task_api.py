"""How the suite talks to a crawler's task API, and the shapes real submissions give it.

Rules: every list of shapes starts with the assignment's own; discovery tries them in order and
keeps the first one a server accepts, and from then on every check talks through that shape.
So a server that deviates in one way (a `{"urls": [...]}` body, no trailing slash, "done" for
"ready", `results` for `result`, a dict of codes, a task per URL, its id under another name)
fails the one requirement the deviation breaks, with a message naming both shapes, and is
judged on everything else.
- Shapes are data: add a new one here, not a special case in a check. A body under a key no
  list here knows is learnt from the server itself: the field FastAPI's 422 says is missing,
  and the request body its /openapi.json documents (`learned` says where it came from).
- The task's id is the member whose value names the task: GET /api/v1/tasks/{value} shows it
  (and, under a name no list here knows, the value is new for each task).
- What the server answers is read as it is: a task's words for running and ready are the ones
  it was seen to use (a POST that answers a finished task gives no word for running), and a
  result that leaves URLs out has them missing, never filled in.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from conformance._checks import CheckFailure
from conformance._http import Exchange, Http, Pending


@dataclass(frozen=True)
class Submit:
    """One way of sending a list of URLs to create a task: to `path`, the list bare or as the
    member `key` of an object, each URL a string or an object `{item_key: url}`."""

    label: str
    path: str
    key: str = ""
    item_key: str = ""
    learned: str = ""  # where the suite learnt this shape ("" for the ones it knows)

    def body(self, urls: Any) -> Any:
        """The body that carries `urls` (any value, for bad bodies too) in this shape."""
        value = urls
        if self.item_key and isinstance(value, list):
            value = [{self.item_key: u} for u in value]
        return {self.key: value} if self.key else value

    def schema(self, url_list: dict[str, Any]) -> dict[str, Any]:
        """The JSON schema of this shape's body, given the schema of a bare list of URLs."""
        schema = dict(url_list)
        if self.item_key:
            schema["items"] = {"type": "object", "required": [self.item_key],
                               "properties": {self.item_key: url_list.get("items", {})}}
        if self.key:
            schema = {"type": "object", "required": [self.key],
                      "properties": {self.key: schema}}
        return schema

    @property
    def shape(self) -> tuple[str, str, str]:
        """What tells two shapes apart: the path, the key and the item's key."""
        return self.path, self.key, self.item_key


CANONICAL_PATH = "/api/v1/tasks/"
PATHS = (CANONICAL_PATH, "/api/v1/tasks")
SUBMITS: tuple[Submit, ...] = (
    Submit("a bare JSON list to POST /api/v1/tasks/", CANONICAL_PATH),
    Submit("a bare JSON list to POST /api/v1/tasks (no trailing slash)", "/api/v1/tasks"),
    Submit('{"urls": [...]} to POST /api/v1/tasks/', CANONICAL_PATH, key="urls"),
    Submit('{"urls": [...]} to POST /api/v1/tasks', "/api/v1/tasks", key="urls"),
    Submit('[{"url": ...}] to POST /api/v1/tasks/', CANONICAL_PATH, item_key="url"),
    Submit('[{"url": ...}] to POST /api/v1/tasks', "/api/v1/tasks", item_key="url"),
)
MAX_ATTEMPTS = 12  # shapes tried at most, the learnt ones included
ID_FIELDS = ("id", "task_id", "taskId", "uuid")
# Names that say "the id" in other words: id_, _id, ID, task_uuid, taskID ...
ID_NAME = re.compile(r"^_*(task_?)?(id|uuid)_*$", re.IGNORECASE)
POLL_PATHS = ("/api/v1/tasks/{id}", "/api/v1/tasks/{id}/")
POLL_MIN, POLL_MAX = 0.1, 0.5  # seconds between polls of a task: at first, and at most
# Answers to a poll that say the request itself is wrong, and so will not change however long
# the suite waits (a 404 may: some servers show a task only once it is ready).
HOPELESS_AFTER = 3  # such answers in a row
RUNNING_WORDS = ("running", "pending", "in_progress", "in progress", "processing", "started",
                 "created", "queued", "new")
READY_WORDS = ("ready", "done", "finished", "completed", "complete", "success", "succeeded")
RESULT_FIELDS = ("result", "results", "codes", "status_codes")
CODE_FIELDS = ("code", "status", "status_code")


def _word(value: Any, words: tuple[str, ...]) -> bool:
    return isinstance(value, str) and value.strip().lower() in words


def _hopeless(status: int) -> bool:
    """A 4xx that says the request is wrong, not that the task is not there (yet)."""
    return 400 <= status < 500 and status not in (404, 408, 409, 423, 425, 429)


@dataclass(frozen=True)
class Codes:
    """The codes read from a result: its form, the codes of the URLs it holds in submission
    order, and the URLs it leaves out (a dict or a list of objects may)."""

    form: str
    codes: list[Any]
    missing: list[str] = field(default_factory=list)


def _spellings(url: str) -> tuple[str, ...]:
    """How a server may write back a submitted URL: as given, with http:// (a scheme-less
    one), with or without a trailing slash."""
    full = url if "://" in url else "http://" + url
    return tuple(dict.fromkeys((url, full, full.rstrip("/"), full.rstrip("/") + "/")))


def read_codes(value: Any, urls: list[str]) -> Codes | None:
    """The codes of a result value, or None when it is none of the known forms: a list of
    codes, a dict URL -> code, a list of {"url", "code"} objects. A URL a dict or a list of
    objects does not name is missing, not null."""
    def by_url(form: str, table: dict[Any, Any]) -> Codes:
        codes, missing = [], []
        for u in urls:
            key = next((s for s in _spellings(u) if s in table), None)
            if key is None:
                missing.append(u)
            else:
                codes.append(table[key])
        return Codes(form, codes, missing)

    if isinstance(value, list) and all(v is None or isinstance(v, int | str) for v in value):
        return Codes("a list", list(value))
    if isinstance(value, dict) and any(s in value for u in urls for s in _spellings(u)):
        return by_url("an object of URL -> code", value)
    if isinstance(value, list) and value and all(isinstance(v, dict) and "url" in v
                                                  for v in value):
        table = {}
        for item in value:
            code_field = next((f for f in CODE_FIELDS if f in item), None)
            table[item["url"]] = item.get(code_field) if code_field else None
        return by_url('a list of {"url", "code"} objects', table)
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
    """A task seen ready: its last answers, the codes read from it in submission order, and
    the URLs its result leaves out."""

    exchanges: list[Exchange]
    status: Any
    field: str
    form: str
    codes: list[Any]
    raw: Any
    seconds: float
    # (`field` is a member's name here, so the function goes by its module's name)
    missing: list[str] = dataclasses.field(default_factory=list)


@dataclass
class PendingTask:
    """A task being created in the background (`Api.create_soon`)."""

    api: Api
    pending: Pending
    urls: list[str]

    def result(self) -> Created:
        """The task created, or CheckFailure as `Api.create` raises it."""
        return self.api.created(self.pending.result(), self.urls)


@dataclass
class Api:
    """A server's task API as discovered: the shape it accepts, and what it was seen to answer."""

    http: Http
    submit: Submit
    id_field: str
    per_url: bool
    poll_path: str = POLL_PATHS[0]
    sample_id: Any = None  # an id the server gave out, to ask for one of the same form
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
        return self.created(ex, urls)

    def create_soon(self, urls: list[str]) -> PendingTask:
        """Send the request that creates a task for `urls` in the background."""
        pending = self.http.request_soon(
            "POST", self.submit.path, content=_json(self.submit.body(urls)),
            headers={"Content-Type": "application/json"})
        return PendingTask(self, pending, urls)

    def created(self, ex: Exchange, urls: list[str]) -> Created:
        """The task (or tasks) an answer to a creating POST gives; CheckFailure if none."""
        body = _body(ex)
        if self.per_url and isinstance(body, list):
            ids = [b.get(self.id_field) for b in body if isinstance(b, dict)]
            if len(ids) == len(urls) and None not in ids:
                return Created(ex, body, ids, urls)
        task_id = body.get(self.id_field) if isinstance(body, dict) else None
        if ex.status >= 300 or task_id in (None, ""):
            raise CheckFailure(f"{ex.request_line} created no task",
                               expected=f'2xx and a task object with its "{self.id_field}"',
                               actual=ex.summary(), reproduce=ex.curl())
        self.saw_new(body)
        return Created(ex, body, [task_id], urls)

    def saw_new(self, body: Any) -> None:
        """Learn the server's word for a running task from a new task's answer, unless that
        word says ready (a POST that did the whole crawl, or a task answered from a cache):
        a word for ready must never be taken for running."""
        if isinstance(body, dict) and "status" in body and not _word(body["status"],
                                                                     READY_WORDS):
            status = str(body["status"])
            if status not in self.ready_words:
                self.running_words.add(status)

    def poll(self, task_id: Any, *, timeout: float | None = None) -> Exchange:
        """GET the task once."""
        return self.http.get(self.poll_path.format(id=task_id), timeout=timeout)

    def wait_ready(self, created: Created, limit: float, *, since: float | None = None) -> Ready:
        """Poll until every task of `created` is ready, or raise CheckFailure `limit` s after
        `since` (a time.monotonic() reading, such as when the task was created; default now),
        or sooner when the polls keep answering that the request itself is wrong."""
        t0 = time.monotonic() if since is None else since
        deadline = t0 + limit
        last: dict[Any, Exchange] = {}
        done: dict[Any, Any] = {}
        hopeless: dict[Any, int] = {}
        while True:
            for task_id in created.ids:
                if task_id in done:
                    continue
                ex = self.poll(task_id)
                last[task_id] = ex
                body = _body(ex)
                if ex.status == 200 and isinstance(body, dict) and self.is_ready(body):
                    done[task_id] = body
                hopeless[task_id] = hopeless.get(task_id, 0) + 1 if _hopeless(ex.status) else 0
                if hopeless[task_id] >= HOPELESS_AFTER:
                    raise CheckFailure(
                        f"{ex.request_line} answered {ex.status} {HOPELESS_AFTER} times in a "
                        f"row: the task cannot be read there, however long the suite waits",
                        expected='200 and the task, until its status is "ready"',
                        actual=ex.summary(), reproduce=ex.curl())
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

    def is_ready(self, body: dict[str, Any]) -> bool:
        """Whether a task object says it is ready (in the server's words)."""
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
                    self.result_forms.add(read.form)
                    return Ready(exchanges, status, name, read.form, read.codes, body[name],
                                 seconds, read.missing)
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
            learned = f" (learnt from {submit.learned})" if submit.learned else ""
            parts.append(f"{got} to {submit.label}{learned}")
        return "; ".join(parts)


def discover(http: Http, urls: list[str]) -> Discovery:
    """Find the first shape the server creates a task with (those of SUBMITS, then those the
    server's 422 answers and /openapi.json name), the task's id in its answer, and its poll
    path."""
    attempts: list[tuple[Submit, Exchange | CheckFailure]] = []
    queue = list(SUBMITS)
    tried: set[tuple[str, str, str]] = set()
    asked_openapi = False
    while len(attempts) < MAX_ATTEMPTS:
        if not queue and not asked_openapi:
            asked_openapi = True
            queue.extend(_from_openapi(http))
        if not queue:
            break
        submit = queue.pop(0)
        if submit.shape in tried:
            continue
        tried.add(submit.shape)
        try:
            ex = http.request("POST", submit.path, content=_json(submit.body(urls)),
                              headers={"Content-Type": "application/json"})
        except CheckFailure as exc:
            attempts.append((submit, exc))
            continue
        attempts.append((submit, ex))
        if ex.status == 422:
            queue.extend(_from_422(ex, submit.path))
        if ex.status >= 300:
            continue
        api = _identify(http, submit, _body(ex), urls)
        if api is not None:
            return Discovery(attempts, api)
    return Discovery(attempts, None)


def _identify(http: Http, submit: Submit, body: Any, urls: list[str]) -> Api | None:
    """The API behind a 2xx answer to `submit`: the member that is the task's id, or None when
    the answer holds no task."""
    per_url = (isinstance(body, list) and len(body) == len(urls) > 0
               and all(isinstance(b, dict) for b in body))
    task = body[0] if per_url else body
    if not isinstance(task, dict):
        return None
    candidates = list(_id_candidates(task))
    chosen: tuple[str, Any, str] | None = None
    for name, value in candidates:
        path = _shown_at(http, value)
        if path is not None and (name in ID_FIELDS or ID_NAME.match(name)
                                 or _new_each_time(http, submit, urls, name, value)):
            chosen = (name, value, path)
            break
    if chosen is None:
        # Shown nowhere yet (a server that shows a task only once it is ready): the member
        # whose name says it is the id.
        named = [(n, v) for n, v in candidates if n in ID_FIELDS or ID_NAME.match(n)]
        if not named:
            return None
        chosen = (*named[0], POLL_PATHS[0])
    name, value, path = chosen
    api = Api(http, submit, name, per_url, poll_path=path, sample_id=value)
    api.saw_new(task)
    return api


def _id_candidates(task: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """The members that may be the task's id, likeliest first: the names the suite knows, names
    that say "id", then any other string or whole number that is no status word."""
    def usable(value: Any) -> bool:
        return (isinstance(value, str | int) and not isinstance(value, bool)
                and value != "" and not _word(value, RUNNING_WORDS + READY_WORDS))

    names = [n for n in ID_FIELDS if n in task]
    names += [n for n in task if n not in names and ID_NAME.match(n)]
    names += [n for n in task if n not in names and n != "status" and n not in RESULT_FIELDS]
    for name in names:
        if usable(task[name]):
            yield name, task[name]


def _shown_at(http: Http, task_id: Any) -> str | None:
    """The poll path at which `task_id` answers 200 and an object, or None."""
    for path in POLL_PATHS:
        try:
            ex = http.get(path.format(id=task_id))
        except CheckFailure:
            continue
        if ex.status == 200 and isinstance(_body(ex), dict):
            return path
    return None


def _new_each_time(http: Http, submit: Submit, urls: list[str], name: str, value: Any) -> bool:
    """Whether a member under a name the suite does not know takes a new value for another
    task (a counter of tasks would; a constant never does)."""
    try:
        ex = http.request("POST", submit.path, content=_json(submit.body(urls)),
                          headers={"Content-Type": "application/json"})
    except CheckFailure:
        return False
    body = _body(ex)
    task = body[0] if isinstance(body, list) and body else body
    return isinstance(task, dict) and task.get(name) not in (None, value)


def _from_422(ex: Exchange, path: str) -> list[Submit]:
    """The shapes a FastAPI 422 names: a member the body misses (`loc` ["body", NAME]), or a
    member each list item misses (["body", 0, NAME])."""
    body = _body(ex)
    details = body.get("detail") if isinstance(body, dict) else None
    found = []
    for item in details if isinstance(details, list) else []:
        loc = item.get("loc") if isinstance(item, dict) else None
        if not (isinstance(loc, list) and loc[:1] == ["body"]
                and item.get("type") == "missing"):
            continue
        where = f"the 422 to POST {path}"
        if len(loc) == 2 and isinstance(loc[1], str):
            found.append(_learned(path, loc[1], "", where))
        elif len(loc) == 3 and isinstance(loc[1], int) and isinstance(loc[2], str):
            found.append(_learned(path, "", loc[2], where))
        elif (len(loc) == 4 and isinstance(loc[1], str) and isinstance(loc[2], int)
              and isinstance(loc[3], str)):
            found.append(_learned(path, loc[1], loc[3], where))
    return found


def _from_openapi(http: Http) -> list[Submit]:
    """The shapes the server's own /openapi.json documents for POST at the task paths."""
    try:
        ex = http.get("/openapi.json")
        document = ex.json() if ex.status == 200 else None
    except (CheckFailure, ValueError):
        return []
    if not isinstance(document, dict):
        return []
    found = []
    for path in PATHS:
        try:
            schema = document["paths"][path]["post"]["requestBody"]["content"][
                "application/json"]["schema"]
        except (KeyError, TypeError):
            continue
        key, item_key = "", ""
        schema = _resolve(document, schema)
        if schema.get("type") == "object":
            key = _list_member(document, schema)
            if not key:
                continue
            schema = _resolve(document, schema["properties"][key])
        if schema.get("type") == "array":
            items = _resolve(document, schema.get("items", {}))
            if items.get("type") == "object":
                item_key = _string_member(document, items)
                if not item_key:
                    continue
        if key or item_key:
            found.append(_learned(path, key, item_key, "its /openapi.json"))
    return found


def _resolve(document: dict[str, Any], schema: Any, depth: int = 0) -> dict[str, Any]:
    """A schema with its `$ref` (into the same document) followed, a few deep at most."""
    while isinstance(schema, dict) and "$ref" in schema and depth < 5:
        ref = schema["$ref"]
        if not (isinstance(ref, str) and ref.startswith("#/")):
            return {}
        target: Any = document
        for part in ref[2:].split("/"):
            target = target.get(part) if isinstance(target, dict) else None
        schema, depth = target, depth + 1
    return schema if isinstance(schema, dict) else {}


def _members(document: dict[str, Any], schema: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """An object schema's properties, the required ones first."""
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return []
    required = [n for n in schema.get("required", []) if n in properties]
    names = required + [n for n in properties if n not in required]
    return [(n, _resolve(document, properties[n])) for n in names]


def _list_member(document: dict[str, Any], schema: dict[str, Any]) -> str:
    return next((n for n, s in _members(document, schema) if s.get("type") == "array"), "")


def _string_member(document: dict[str, Any], schema: dict[str, Any]) -> str:
    return next((n for n, s in _members(document, schema) if s.get("type") == "string"), "")


def _learned(path: str, key: str, item_key: str, where: str) -> Submit:
    item = f'[{{"{item_key}": ...}}]' if item_key else "[...]"
    shape = f'{{"{key}": {item}}}' if key else item
    return Submit(f"{shape} to POST {path}", path, key=key, item_key=item_key, learned=where)


def random_task_id() -> str:
    """An id no server has given out."""
    return str(uuid.uuid4())


def unknown_task_id(api: Api) -> str:
    """An id of the form the server gives out (a UUID, or a whole number) that names no task:
    a route typed for its ids answers a malformed one with 422, which says nothing about
    unknown tasks."""
    sample = api.sample_id
    if isinstance(sample, int) or (isinstance(sample, str) and sample.isdigit()):
        return str(10**12 + uuid.uuid4().int % 10**9)
    return random_task_id()


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


def _body(ex: Exchange) -> Any:
    try:
        return ex.json()
    except ValueError:
        return None
