"""A webhook alert end: a tiny aiohttp app that records every request a program under test
sends it (an alert by HTTP POST to any path), so a suite can judge alerts by webhook.

Rules: every request to any path is recorded (method, path, query, headers, raw body, and the
body parsed as JSON or as a form when it is one) before it is answered; the answer is 200 with
`{"ok": true}` unless statuses were scripted (`WebhookRecorder.script`), one per request.
The recorder is thread-safe: the app's loop appends from its thread, the suite reads from its
own. Serving the app (port, loopback, TLS) is the caller's part.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web

# The largest body recorded: an alert is a few hundred bytes, and a runaway program must not
# fill the suite's memory.
MAX_BODY = 1 << 20


@dataclass(frozen=True)
class WebhookHit:
    """One request: when (time.time()), method, path, query, headers (names lower-cased),
    the raw body, and the body parsed: `json` (None unless it parses as JSON and is declared
    JSON or starts with { or [) and `form` (None unless urlencoded or multipart; a file
    field holds its file name)."""

    at: float
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    json: Any
    form: dict[str, list[str]] | None

    @property
    def text(self) -> str:
        """The raw body decoded as UTF-8 (bad bytes replaced)."""
        return self.body.decode("utf-8", "replace")


class WebhookRecorder:
    """What arrived at the webhook app, and the statuses it is to answer with."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._hits: list[WebhookHit] = []
        self._statuses: deque[int] = deque()

    def script(self, statuses: Iterable[int]) -> None:
        """Answer the next requests with these statuses, one each, then 200 again."""
        with self._lock:
            self._statuses.extend(statuses)

    def next_status(self) -> int:
        """The status for the request being answered (a scripted one, else 200)."""
        with self._lock:
            return self._statuses.popleft() if self._statuses else 200

    def add(self, hit: WebhookHit) -> None:
        """Record a request (the app calls this)."""
        with self._lock:
            self._hits.append(hit)
            self._lock.notify_all()

    def hits(self, method: str | None = "POST") -> list[WebhookHit]:
        """The requests so far, oldest first: POSTs only by default, every method if None."""
        with self._lock:
            return [hit for hit in self._hits if method is None or hit.method == method]

    def wait_for(self, count: int, timeout: float, method: str | None = "POST"
                 ) -> list[WebhookHit]:
        """Wait up to `timeout` s until at least `count` requests (of `method`) have arrived;
        those requests then (fewer if the time ran out)."""
        with self._lock:
            self._lock.wait_for(lambda: len(self._matching(method)) >= count, timeout)
            return self._matching(method)

    def clear(self) -> None:
        """Forget the requests and any statuses still scripted."""
        with self._lock:
            self._hits.clear()
            self._statuses.clear()

    def _matching(self, method: str | None) -> list[WebhookHit]:
        return [hit for hit in self._hits if method is None or hit.method == method]


def create_webhook_app(recorder: WebhookRecorder) -> web.Application:
    """The webhook app: any method to any path is recorded in `recorder` and answered."""

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()  # over MAX_BODY: aiohttp answers 413, unrecorded
        query = {key: request.query.getall(key) for key in request.query}
        recorder.add(WebhookHit(
            time.time(), request.method, request.path, query,
            {name.lower(): value for name, value in request.headers.items()}, body,
            _json(request.content_type, body),
            _form(request.content_type, request.headers.get("Content-Type", ""), body)))
        status = recorder.next_status()
        return web.json_response({"ok": 200 <= status < 300}, status=status)

    app = web.Application(client_max_size=MAX_BODY)
    app.router.add_route("*", "/{tail:.*}", receive)
    return app


def _json(content_type: str, body: bytes) -> Any:
    # Declared JSON, or JSON sent as text or untyped (requests' data=json.dumps(...)): a
    # student's alert often is the latter, and the suite judges content, not Content-Type.
    declared = content_type == "application/json" or content_type.endswith("+json")
    if not declared and not body.lstrip().startswith((b"{", b"[")):
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def _form(content_type: str, header: str, body: bytes) -> dict[str, list[str]] | None:
    if content_type == "application/x-www-form-urlencoded":
        return parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    if content_type == "multipart/form-data":
        return _multipart(header, body)
    return None


def _multipart(header: str, body: bytes) -> dict[str, list[str]] | None:
    # The body is read already: the stdlib's MIME parser reads multipart from bytes.
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + header.encode("latin-1", "replace") + b"\r\n\r\n" + body)
    if not message.is_multipart():
        return None
    form: dict[str, list[str]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        filename = part.get_filename()
        if filename is not None:
            value = filename
        else:
            payload = part.get_payload(decode=True)
            value = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
        form.setdefault(name, []).append(value)
    return form
