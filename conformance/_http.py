"""HTTP for checks: every request has a total deadline and a body cap, and every answer (or the
lack of one) comes back as an `Exchange` or a `CheckFailure` with a reason and a curl line.

Rules: requests run on an httpx AsyncClient inside a background event loop, so the deadline
covers everything (connect, a trickled header, an endless body); proxies from the environment
are ignored; redirects are not followed; nothing here raises a transport exception to a check.
A request that went out on a kept-alive connection which the server had closed (it ends before
any part of an answer: the connection closed or reset, the request could not be written) is
sent once more on a new connection, as browsers do, within the same deadline; the first
attempt is then kept as a `Retry`, naming who sent the request, so a report can say so
(`Http.retries`). Nothing else is ever sent again: not a timeout, not a fresh connection that
fails, not a connection that breaks once an answer has begun, not an answer that is not HTTP.

Evidence a person reads: a reproducer's curl line carries a request body of up to
INLINE_BODY_MAX bytes of text on the command line; a larger one, or one that is binary (a
multipart upload, an audio file), goes to a file of the run's body folder (`bodies_in`: next to
the JSON report, or a temporary folder made when the first body is written) and the line says
`--data-binary @FILE`. A binary body in a summary is its size, type and first bytes, never its
bytes decoded as text.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
from anyio.from_thread import BlockingPortal, start_blocking_portal

MAX_BODY = 1 << 20
# What a CheckFailure for a request that got no answer expected (so a check can tell one).
NO_ANSWER = "a complete HTTP answer"


# Bytes of a text body a curl line carries itself; a larger one makes a line nobody reads (a
# task of 1,000 URLs is 40 KB), so it goes to a file.
INLINE_BODY_MAX = 2048
# Media types whose bodies are bytes, not text, whatever they happen to decode to.
_BINARY_MEDIA = ("multipart/", "application/octet-stream", "audio/", "image/", "video/",
                 "application/zip", "application/gzip", "application/pdf")
_FIRST_BYTES = 32  # of a binary body, in its summary


def is_binary(content: bytes, media_type: str = "") -> bool:
    """Whether a body is bytes rather than text: its media type says so, or it holds a NUL, or
    (for a type that does not say it is text) it is not UTF-8 or holds control characters
    other than tab, newline and carriage return."""
    media = media_type.split(";", 1)[0].strip().lower()
    if media.startswith(_BINARY_MEDIA) or b"\x00" in content:
        return True
    if media.startswith("text/") or media.endswith(("json", "xml", "x-www-form-urlencoded")):
        return False  # text in some encoding, shown with what does not decode replaced
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return any(ord(c) < 32 and c not in "\t\n\r" for c in text)


def describe_binary(content: bytes, media_type: str = "") -> str:
    """A binary body in a few words: `12,345 bytes of audio/wav, starting b'RIFF...'`."""
    media = media_type.split(";", 1)[0].strip() or "an unknown type"
    start = content[:_FIRST_BYTES]
    more = "..." if len(content) > _FIRST_BYTES else ""
    return f"{len(content):,} bytes of {media}, starting {start!r}{more}"


def _header(headers: dict[str, str] | None, name: str) -> str:
    return next((v for k, v in (headers or {}).items() if k.lower() == name), "")


@dataclass
class BodyFiles:
    """Where reproducers put request bodies too large or too binary for a command line: one
    file per distinct body, named by its hash (so a body is written once however many
    reproducers send it), in `folder`, or in a temporary folder made when the first is written
    (a run that needs none leaves none behind)."""

    folder: Path | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def write(self, content: bytes, media_type: str = "") -> Path:
        """The file holding `content`, written now unless it already was."""
        media = media_type.split(";", 1)[0].strip().lower()
        suffix = (".json" if media.endswith("json") else ".multipart" if
                  media.startswith("multipart/") else ".txt" if media.startswith("text/") and
                  not is_binary(content, media) else ".bin")
        name = f"body-{hashlib.sha256(content).hexdigest()[:16]}{suffix}"
        with self._lock:
            if self.folder is None:
                self.folder = Path(tempfile.mkdtemp(prefix="conformance-bodies-"))
            self.folder.mkdir(parents=True, exist_ok=True)
            path = self.folder / name
            if not path.exists():
                path.write_bytes(content)
        return path


_bodies = BodyFiles()


@contextmanager
def bodies_in(folder: Path | None) -> Iterator[BodyFiles]:
    """For the duration (one run), reproducers write the bodies they do not carry into `folder`
    (None: a temporary folder, made when the first is written). Runs of one process follow
    each other, so one folder at a time is enough; the checks' threads all see it."""
    global _bodies
    saved, _bodies = _bodies, BodyFiles(folder)
    try:
        yield _bodies
    finally:
        _bodies = saved


def curl_line(method: str, url: str, headers: dict[str, str] | None = None,
              content: bytes | None = None, timeout: float = 5.0) -> str:
    """A shell command that sends the same request with curl and shows the answer's head; a
    body over INLINE_BODY_MAX bytes, or a binary one, is sent from a file (`bodies_in`)."""
    words = ["curl", "-sS", "-i", "--max-time", f"{timeout:g}"]
    if method == "HEAD":
        words.append("-I")
    elif method != "GET":
        words += ["-X", method]
    for name, value in (headers or {}).items():
        words += ["-H", f"{name}: {value}"]
    if content:
        media = _header(headers, "content-type")
        inline = len(content) <= INLINE_BODY_MAX and not is_binary(content, media)
        try:
            words += ["--data-binary", content.decode("utf-8")] if inline else []
        except UnicodeDecodeError:  # text, but not in UTF-8: a command line cannot carry it
            inline = False
        if not inline:
            words += ["--data-binary", f"@{_bodies.write(content, media)}"]
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
        """Status, Content-Type and the start of the body, on one line (a binary body in
        words: its size, type and first bytes)."""
        ctype = self.content_type or "(none)"
        if is_binary(self.body, self.content_type):
            return (f"{self.status} {self.reason}; Content-Type: {ctype}; body: "
                    f"{describe_binary(self.body, self.content_type)}")
        body = self.body.decode("utf-8", "replace")
        if len(body) > limit:
            body = body[:limit] + f"... ({len(self.body)} bytes)"
        return f"{self.status} {self.reason}; Content-Type: {ctype}; body: {body!r}"

    def curl(self) -> str:
        """The curl line that sends this request again."""
        return curl_line(self.method, self.url, self.request_headers, self.request_content,
                         self.timeout)


@dataclass(frozen=True)
class Retry:
    """A request sent a second time, on a new connection: the kept-alive connection it first
    went out on had been closed by the server before any part of an answer came."""

    method: str
    url: str
    first: str  # what the first attempt met, in a person's words
    then: str  # how the second went: "answered 200", or why it got no answer either
    sender: str  # who sent the request (the `sender` Http was given), "" when unknown

    def note(self) -> str:
        """The retry as one line of a report."""
        path = httpx.URL(self.url).raw_path.decode("ascii", "replace")
        return (f"{self.method} {path} went out on a kept-alive connection the server had "
                f"closed ({self.first}); sent once more on a new connection, which {self.then}")


class Http:
    """A blocking facade for checks; use as a context manager (it owns an event loop thread).

    `sender`, when given, names who sends each request (called in the sender's thread as the
    request is made): a `Retry` keeps that name."""

    def __init__(self, base_url: str, timeout: float = 5.0, *, max_body: int = MAX_BODY,
                 explain: Callable[[], str] | None = None,
                 sender: Callable[[], str] | None = None) -> None:
        self.base_url = base_url
        self.timeout = timeout
        self.max_body = max_body
        self._explain = explain or (lambda: "")
        self._sender = sender or (lambda: "")
        self._stack = ExitStack()
        self._portal: BlockingPortal | None = None
        self._client: httpx.AsyncClient | None = None
        self._fresh: httpx.AsyncClient | None = None
        self._retries: list[Retry] = []
        self._retries_lock = threading.Lock()

    def __enter__(self) -> Http:
        self._portal = self._stack.enter_context(start_blocking_portal(backend="asyncio"))
        self._client = self._new_client(httpx.Limits())
        self._stack.callback(self._portal.call, self._close_clients)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def _new_client(self, limits: httpx.Limits) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.base_url, follow_redirects=False, trust_env=False,
            timeout=httpx.Timeout(self.timeout), limits=limits,
            headers={"User-Agent": "conformance-kit"},
        )

    async def _close_clients(self) -> None:
        for client in (self._client, self._fresh):
            if client is not None:
                await client.aclose()

    def retries(self) -> list[Retry]:
        """Every request sent a second time so far, in the order they were (a copy)."""
        with self._retries_lock:
            return list(self._retries)

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
                                              limit, self._sender())
        return Pending(future, self._explain, method, url, headers, content, limit, requirement)

    async def _send(self, method: str, url: str, headers: dict[str, str],
                    content: bytes | None, limit: float, sender: str) -> Exchange:
        assert self._client is not None
        started = time.monotonic()
        try:
            # One deadline for both attempts: a retry never makes a request take longer.
            with anyio.fail_after(limit):
                try:
                    return await self._attempt(self._client, method, url, headers, content,
                                               limit, started)
                except _Stale as stale:
                    first = stale.reason
                if self._fresh is None:
                    # Keeps no connection: each request it sends opens a new one.
                    self._fresh = self._new_client(httpx.Limits(max_keepalive_connections=0))
                then = "got no complete answer either, by the request's deadline"
                try:
                    ex = await self._attempt(self._fresh, method, url, headers, content, limit,
                                             started)
                    then = f"answered {ex.status}"
                    return ex
                except _NoAnswer as exc:
                    then = f"got no answer either: {exc.reason}"
                    raise
                finally:
                    self._retried(Retry(method, url, first, then, sender))
        except TimeoutError:
            raise _NoAnswer(f"no complete answer within {limit:g} s") from None

    def _retried(self, retry: Retry) -> None:
        with self._retries_lock:
            self._retries.append(retry)

    async def _attempt(self, client: httpx.AsyncClient, method: str, url: str,
                       headers: dict[str, str], content: bytes | None, limit: float,
                       started: float) -> Exchange:
        """One attempt: the answer, `_Stale` when a kept-alive connection turned out closed
        before any of an answer came, or `_NoAnswer`."""
        # httpcore reports the steps of a request to a trace callback: whether it opened a
        # connection for this one (else it reused a kept-alive one), and how far it got.
        steps: list[str] = []

        async def trace(name: str, info: dict[str, Any]) -> None:
            steps.append(name)

        try:
            async with client.stream(method, url, headers=headers, content=content,
                                     timeout=httpx.Timeout(limit),
                                     extensions={"trace": trace}) as response:
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > self.max_body:
                        raise _NoAnswer(f"the body goes on past {self.max_body} bytes")
        except httpx.HTTPError as exc:
            reason = _describe(exc)
            if _closed_before_answer(exc, steps):
                raise _Stale(reason) from None
            raise _NoAnswer(reason) from None
        return Exchange(
            method=method, url=url, request_headers=headers, request_content=content,
            status=response.status_code, reason=response.reason_phrase,
            headers=response.headers, body=bytes(body), elapsed=time.monotonic() - started,
            timeout=limit,
        )


def _closed_before_answer(exc: httpx.HTTPError, steps: list[str]) -> bool:
    """Whether a failed attempt met a kept-alive connection the server had closed: it opened
    no connection of its own, got no answer's head, and the connection ended (closed, reset,
    or unwritable) rather than timing out or carrying something that is not HTTP."""
    reused = not any(step.startswith("connection.connect_tcp.") for step in steps)
    head = any(step.endswith("receive_response_headers.complete") for step in steps)
    if not reused or head or isinstance(exc, httpx.TimeoutException):
        return False
    if isinstance(exc, httpx.RemoteProtocolError):
        # httpcore's words when the connection ended before an answer's head was complete; any
        # other protocol error is an answer that is not HTTP.
        return "without sending a response" in str(exc)
    if isinstance(exc, httpx.ReadError | httpx.WriteError):
        return isinstance(_root_os_error(exc), ConnectionResetError | BrokenPipeError |
                          ConnectionAbortedError)
    return False


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
                               expected=NO_ANSWER, actual=reason,
                               reproduce=curl_line(self.method, self.url, self.headers,
                                                   self.content, self.limit),
                               requirement=self.requirement) from None


class _NoAnswer(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Stale(_NoAnswer):
    """The first attempt met a kept-alive connection the server had closed: worth one more."""


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
