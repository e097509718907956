"""HTTP for checks: every request has a total deadline and a body cap, and every answer (or the
lack of one) comes back as an `Exchange` or a `CheckFailure` with a reason and a curl line.

Rules: requests run on an httpx AsyncClient inside a background event loop, so the deadline
covers everything (connect, a trickled header, an endless body); proxies from the environment
are ignored; redirects are not followed; nothing here raises a transport exception to a check.
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
from anyio.from_thread import BlockingPortal, start_blocking_portal

MAX_BODY = 1 << 20


def curl_line(method: str, url: str, headers: dict[str, str] | None = None,
              content: bytes | None = None, timeout: float = 5.0) -> str:
    """A shell command that sends the same request with curl and shows the answer's head."""
    words = ["curl", "-sS", "-i", "--max-time", f"{timeout:g}"]
    if method == "HEAD":
        words.append("-I")
    elif method != "GET":
        words += ["-X", method]
    for name, value in (headers or {}).items():
        words += ["-H", f"{name}: {value}"]
    if content:
        words += ["--data-binary", content.decode("utf-8", "replace")]
    words.append(url)
    return " ".join(shlex.quote(w) for w in words)


@dataclass
class Exchange:
    """One request and the complete answer it got."""

    method: str
    url: str
    request_headers: dict[str, str]
    request_content: bytes | None
    status: int
    reason: str
    headers: httpx.Headers
    body: bytes
    elapsed: float
    timeout: float

    @property
    def request_line(self) -> str:
        """`GET /?species=Dalek`: the request as a person reads it."""
        url = httpx.URL(self.url)
        query = url.raw_path.decode("ascii", "replace")
        return f"{self.method} {query}"

    @property
    def content_type(self) -> str:
        """The Content-Type header as sent, or '' when absent."""
        return str(self.headers.get("content-type", ""))

    def json(self) -> Any:
        """The body parsed as JSON; ValueError when it is not."""
        return json.loads(self.body.decode("utf-8"))

    def summary(self, limit: int = 200) -> str:
        """Status, Content-Type and the start of the body, on one line."""
        body = self.body.decode("utf-8", "replace")
        if len(body) > limit:
            body = body[:limit] + f"... ({len(self.body)} bytes)"
        ctype = self.content_type or "(none)"
        return f"{self.status} {self.reason}; Content-Type: {ctype}; body: {body!r}"

    def curl(self) -> str:
        """The curl line that sends this request again."""
        return curl_line(self.method, self.url, self.request_headers, self.request_content,
                         self.timeout)


class Http:
    """A blocking facade for checks; use as a context manager (it owns an event loop thread)."""

    def __init__(self, base_url: str, timeout: float = 5.0, *, max_body: int = MAX_BODY,
                 explain: Callable[[], str] | None = None) -> None:
        self.base_url = base_url
        self.timeout = timeout
        self.max_body = max_body
        self._explain = explain or (lambda: "")
        self._stack = ExitStack()
        self._portal: BlockingPortal | None = None
        self._client: httpx.AsyncClient | None = None

    def __enter__(self) -> Http:
        self._portal = self._stack.enter_context(start_blocking_portal(backend="asyncio"))
        self._client = httpx.AsyncClient(
            base_url=self.base_url, follow_redirects=False, trust_env=False,
            timeout=httpx.Timeout(self.timeout),
            headers={"User-Agent": "conformance-kit"},
        )
        self._stack.callback(self._portal.call, self._client.aclose)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def url(self, target: str) -> str:
        """The absolute URL of `target`, a path from the service's root (the base URL, whose
        own path prefix is kept: `/?q=1` on `http://h/app` is `http://h/app/?q=1`)."""
        if "://" in target:
            return target
        root = self.base_url if self.base_url.endswith("/") else self.base_url + "/"
        return root + target.lstrip("/")

    def get(self, target: str, **kwargs: Any) -> Exchange:
        """GET `target` (a path with its query, sent exactly as written)."""
        return self.request("GET", target, **kwargs)

    def request(self, method: str, target: str, *, headers: dict[str, str] | None = None,
                content: bytes | None = None, timeout: float | None = None,
                requirement: str | None = None) -> Exchange:
        """Send one request; return the whole answer or raise CheckFailure saying why not."""
        return self.request_soon(method, target, headers=headers, content=content,
                                 timeout=timeout, requirement=requirement).result()

    def request_soon(self, method: str, target: str, *, headers: dict[str, str] | None = None,
                     content: bytes | None = None, timeout: float | None = None,
                     requirement: str | None = None) -> Pending:
        """Send one request in the background, for checks that need requests to overlap;
        `.result()` gives what `request` would have returned or raised."""
        assert self._portal is not None, "use Http as a context manager"
        limit = self.timeout if timeout is None else timeout
        url = self.url(target)
        future = self._portal.start_task_soon(self._send, method, url, headers or {}, content,
                                              limit)
        return Pending(future, self._explain, method, url, headers, content, limit, requirement)

    async def _send(self, method: str, url: str, headers: dict[str, str],
                    content: bytes | None, limit: float) -> Exchange:
        assert self._client is not None
        started = time.monotonic()
        try:
            with anyio.fail_after(limit):
                async with self._client.stream(method, url, headers=headers, content=content,
                                               timeout=httpx.Timeout(limit)) as response:
                    body = bytearray()
                    async for chunk in response.aiter_bytes():
                        body += chunk
                        if len(body) > self.max_body:
                            raise _NoAnswer(f"the body goes on past {self.max_body} bytes")
        except TimeoutError:
            raise _NoAnswer(f"no complete answer within {limit:g} s") from None
        except httpx.HTTPError as exc:
            raise _NoAnswer(_describe(exc)) from None
        return Exchange(
            method=method, url=url, request_headers=headers, request_content=content,
            status=response.status_code, reason=response.reason_phrase,
            headers=response.headers, body=bytes(body), elapsed=time.monotonic() - started,
            timeout=limit,
        )


@dataclass
class Pending:
    """A request sent in the background (`Http.request_soon`)."""

    future: Future[Exchange]
    explain: Callable[[], str]
    method: str
    url: str
    headers: dict[str, str] | None
    content: bytes | None
    limit: float
    requirement: str | None

    def result(self) -> Exchange:
        """The whole answer, once it came; CheckFailure saying why when none did."""
        try:
            return self.future.result()
        except _NoAnswer as exc:
            from conformance._checks import CheckFailure

            why = self.explain()
            reason = f"{exc.reason}; {why}" if why else exc.reason
            raise CheckFailure(f"{self.method} {httpx.URL(self.url).raw_path.decode()}: {reason}",
                               expected="a complete HTTP answer", actual=reason,
                               reproduce=curl_line(self.method, self.url, self.headers,
                                                   self.content, self.limit),
                               requirement=self.requirement) from None


class _NoAnswer(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _root_os_error(exc: BaseException) -> OSError | None:
    """The OS error behind a transport error, through causes, contexts and exception groups."""
    todo, seen = [exc], set()
    while todo:
        e = todo.pop(0)
        if id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, ConnectionError | TimeoutError) or (
                isinstance(e, OSError) and e.errno is not None):
            return e
        todo.extend(x for x in (e.__cause__, e.__context__) if x is not None)
        todo.extend(getattr(e, "exceptions", ()))
    return None


def _describe(exc: httpx.HTTPError) -> str:
    """A person's words for a transport error."""
    root = _root_os_error(exc)
    if isinstance(root, ConnectionRefusedError):
        return "connection refused (nothing listens there)"
    if isinstance(root, ConnectionResetError):
        return "the connection was reset by the server"
    text = str(exc) or type(exc).__name__
    low = text.lower()
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect: {root or text}"
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out ({type(exc).__name__})"
    if isinstance(exc, httpx.RemoteProtocolError):
        if "without sending" in low or "disconnected" in low:
            return "the server closed the connection without answering"
        return f"not a valid HTTP answer: {text}"
    if isinstance(exc, httpx.ReadError | httpx.WriteError):
        return f"the connection broke: {root or text}"
    if isinstance(exc, httpx.DecodingError):
        return f"the body could not be decoded: {text}"
    return f"{type(exc).__name__}: {text}"
