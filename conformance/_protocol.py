"""Protocol descriptions: how a student's server speaks a spec's abstract operations.

Some assignments leave the protocol to the student (seed 004: "Протокол ... на усмотрение
разработчика"). A spec whose suite works through abstract operations (taskqueue: submit, status,
result) reads them off a small YAML file validated by `schemas/protocol.schema.json`: over HTTP a
method, path, query, form or JSON body per operation, over TCP one request line; where each value
is in the answer (a JSON pointer or a regular expression); what marks "not found" and "not
ready"; and the server's words for the spec's (`"в очереди"` -> queued). Our own protocol is such
a file too, `openapi/SPEC.protocol.yaml`, so the default is not a special case.

Rules: every operation has a timeout (the run's `Http`'s, for TCP too) and returns an `Outcome`,
never raises for what the server did; the outcome keeps the raw exchange and a reproducer a
person can paste (a curl line; `printf ... | nc HOST PORT` for TCP). Loopback or the run's own
target only: the description names paths and lines, never hosts.
"""

from __future__ import annotations

import json
import re
import shlex
import socket
import time
import urllib.parse
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import jsonschema
import yaml

from conformance._checks import CheckFailure
from conformance._http import Exchange, Http
from conformance._spec import openapi_dir

Kind = Literal["ok", "not_found", "not_ready", "unreadable", "no_answer"]
MAX_LINE = 1 << 20  # an answer line longer than a mebibyte is not read further
_PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)(?::(int))?\}")


class ProtocolError(ValueError):
    """A description that cannot be used (the message names the file and what is wrong)."""


def _validator() -> jsonschema.Draft202012Validator:
    text = resources.files("conformance").joinpath("schemas/protocol.schema.json").read_text()
    return jsonschema.Draft202012Validator(json.loads(text))


def default_path(spec: str) -> Path:
    """Where a spec's default description (our protocol) is: `openapi/SPEC.protocol.yaml`."""
    return openapi_dir() / f"{spec}.protocol.yaml"


@dataclass(frozen=True)
class Protocol:
    """A validated description."""

    source: Path
    spec: str
    transport: Literal["http", "tcp"]
    operations: dict[str, dict[str, Any]]
    words: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    arguments: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def is_default(self) -> bool:
        """Whether this is the spec's own default description (our protocol)."""
        default = default_path(self.spec)
        return default.is_file() and default.resolve() == self.source.resolve()

    def spec_word(self, name: str, shown: str) -> str | None:
        """The spec's word for a value the server showed, or None when the description maps
        no spec word onto it (a spec word not mapped stands for itself)."""
        mapping = self.words.get(name, {})
        for word, theirs in mapping.items():
            if shown in theirs:
                return word
        claimed = {w for theirs in mapping.values() for w in theirs}
        return None if shown in claimed or shown in mapping else shown


def load(path: Path | str, *, spec: str | None = None,
         operations: dict[str, tuple[str, ...]] | None = None) -> Protocol:
    """Read and validate a description; `spec` and `operations` (each operation the spec needs,
    with the values it must give) say what the spec asks of it. Raises ProtocolError."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ProtocolError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    except yaml.YAMLError as exc:
        raise ProtocolError(f"{path}: not YAML ({exc})") from exc
    error = jsonschema.exceptions.best_match(_validator().iter_errors(data))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(the top)"
        raise ProtocolError(f"{path}: at {where}: {error.message}")
    if spec is not None and data["spec"] != spec:
        raise ProtocolError(f"{path}: describes the spec {data['spec']!r}, not {spec!r}")
    transport = data["transport"]
    for name, op in data["operations"].items():
        wanted = ("method", "path") if transport == "http" else ()
        missing = [k for k in wanted if k not in op]
        if transport == "tcp" and "line" not in op and "json" not in op:
            missing.append("line or json")
        if missing:
            raise ProtocolError(f"{path}: operation {name!r} over {transport} needs "
                                f"{', '.join(missing)}")
        stray = [k for k in ("method", "path", "query", "form") if k in op]
        if transport == "tcp" and stray:
            raise ProtocolError(f"{path}: operation {name!r} over tcp has {', '.join(stray)}, "
                                f"which only http has")
        if transport == "http" and "line" in op:
            raise ProtocolError(f"{path}: operation {name!r} over http has a line")
        for key, where in ((k, v) for k, v in op["answer"].items() if "regex" in v):
            _compile(path, f"{name}.answer.{key}", where["regex"])
        for mark in ("ok", "not_found", "not_ready"):
            if "regex" in op.get(mark, {}):
                _compile(path, f"{name}.{mark}", op[mark]["regex"])
    for name, gives in (operations or {}).items():
        if name not in data["operations"]:
            raise ProtocolError(f"{path}: the spec needs the operation {name!r}")
        missing = [v for v in gives if v not in data["operations"][name]["answer"]]
        if missing:
            raise ProtocolError(f"{path}: operation {name!r} must say where its answer has "
                                f"{', '.join(missing)}")
    return Protocol(path, data["spec"], transport, data["operations"], data.get("words", {}),
                    data.get("arguments", {}))


def _compile(path: Path, where: str, pattern: str) -> None:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ProtocolError(f"{path}: at {where}: not a regular expression ({exc})") from exc


@dataclass
class Outcome:
    """What one operation got: its kind, the values read, and the raw exchange as evidence."""

    operation: str
    kind: Kind
    values: dict[str, Any]
    request: str  # what was sent, as a person reads it
    answer: str  # what came back, in one line (or why nothing did)
    reproduce: str
    exchange: Exchange | None = None  # over http
    why: str = ""  # for "unreadable": what was missing

    def value(self, name: str) -> Any:
        """One value read from the answer, or None."""
        return self.values.get(name)

    def describe(self) -> str:
        """The answer in one line, and why it could not be read, if it could not."""
        return f"{self.answer} ({self.why})" if self.why else self.answer


def fill(template: str, args: dict[str, Any], quote: bool = False) -> str:
    """A template with each {NAME} replaced by its argument (percent-encoded when `quote`)."""
    def one(match: re.Match[str]) -> str:
        value = str(args.get(match.group(1), match.group(0)))
        return urllib.parse.quote(value, safe="") if quote else value
    return _PLACEHOLDER.sub(one, template)


def fill_json(template: Any, args: dict[str, Any]) -> Any:
    """A JSON template filled in: a string that is exactly {NAME} takes the argument's value and
    type, so a task's type stays a number; {NAME:int} makes a number of a numeric text (an id
    the server gave as a number), and leaves any other text as it is."""
    if isinstance(template, str):
        whole = _PLACEHOLDER.fullmatch(template)
        if whole and whole.group(1) in args:
            value = args[whole.group(1)]
            if whole.group(2) == "int" and isinstance(value, str) and re.fullmatch(
                    r"-?[0-9]+", value):
                return int(value)
            return value
        return fill(template, args)
    if isinstance(template, list):
        return [fill_json(v, args) for v in template]
    if isinstance(template, dict):
        return {k: fill_json(v, args) for k, v in template.items()}
    return template


_MISSING = object()


def pointer(document: Any, where: str) -> Any:
    """The value at a JSON pointer (RFC 6901), or _MISSING."""
    if where == "":
        return document
    node = document
    for raw in where[1:].split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return _MISSING
    return node


def _parse_json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return _MISSING


def _holds(condition: dict[str, Any], status: int | None, text: str, document: Any) -> bool:
    if "status" in condition and status not in condition["status"]:
        return False
    if "regex" in condition and not re.search(condition["regex"], text):
        return False
    if "pointer" in condition:
        found = pointer(document, condition["pointer"]) if document is not _MISSING else _MISSING
        if found is _MISSING or ("equals" in condition and found != condition["equals"]):
            return False
    return True


def _read(locator: dict[str, Any], text: str, document: Any) -> Any:
    if "pointer" in locator:
        return _MISSING if document is _MISSING else pointer(document, locator["pointer"])
    match = re.search(locator["regex"], text)
    if match is None:
        return _MISSING
    return match.group(1) if match.re.groups else match.group(0)


class Speaker:
    """Speaks a description's operations to one server: the run's `Http` carries the base URL,
    the timeout and the curl lines; over TCP the same host, port and timeout."""

    def __init__(self, protocol: Protocol, http: Http) -> None:
        self.protocol = protocol
        self.http = http

    def call(self, operation: str, **args: Any) -> Outcome:
        """Perform one operation with its arguments; never raises for what the server did."""
        op = self.protocol.operations[operation]
        for name, theirs in self.protocol.arguments.items():
            if name in args and str(args[name]) in theirs:
                args[name] = theirs[str(args[name])]
        if self.protocol.transport == "http":
            return self._http(operation, op, args)
        return self._tcp(operation, op, args)

    def _judge(self, operation: str, op: dict[str, Any], status: int | None, text: str,
               request: str, answer: str, reproduce: str,
               exchange: Exchange | None = None) -> Outcome:
        document = _parse_json(text)
        out = Outcome(operation, "ok", {}, request, answer, reproduce, exchange)
        for mark in ("not_found", "not_ready"):
            if mark in op and _holds(op[mark], status, text, document):
                out.kind = mark
                return out
        ok = op.get("ok", {"status": list(range(200, 300))} if status is not None else None)
        if ok is not None and not _holds(ok, status, text, document):
            out.kind, out.why = "unreadable", "not an answer the description calls good"
            return out
        for name, locator in op["answer"].items():
            found = _read(locator, text, document)
            if found is _MISSING or found is None:
                where = locator.get("pointer", locator.get("regex"))
                out.kind, out.why = "unreadable", f"no {name} at {where!r}"
                return out
            if isinstance(found, int | float) and not isinstance(found, bool) and \
                    name != "result":
                found = str(found)  # a numeric id or status stands for its text
            if name in self.protocol.words and isinstance(found, str):
                word = self.protocol.spec_word(name, found)
                if word is None:
                    out.values[f"{name}_shown"] = found
                    out.kind, out.why = "unreadable", f"{name} {found!r} is mapped to no word"
                    return out
                out.values[f"{name}_shown"] = found
                found = word
            out.values[name] = found
        return out

    def _http(self, operation: str, op: dict[str, Any], args: dict[str, Any]) -> Outcome:
        target = fill(op["path"], args, quote=True)
        if "query" in op:
            query = {k: fill(v, args) for k, v in op["query"].items()}
            target += ("&" if "?" in target else "?") + urllib.parse.urlencode(query)
        headers: dict[str, str] | None = None
        content: bytes | None = None
        if "json" in op:
            content = json.dumps(fill_json(op["json"], args), ensure_ascii=False).encode()
            headers = {"Content-Type": "application/json"}
        elif "form" in op:
            form = {k: fill(v, args) for k, v in op["form"].items()}
            content = urllib.parse.urlencode(form).encode()
            headers = {"Content-Type": "application/x-www-form-urlencoded"}
        request = f"{op['method']} {target}"
        try:
            ex = self.http.request(op["method"], target, headers=headers, content=content)
        except CheckFailure as exc:
            return Outcome(operation, "no_answer", {}, request, exc.actual or str(exc),
                           exc.reproduce or "")
        text = ex.body.decode("utf-8", "replace")
        return self._judge(operation, op, ex.status, text, request, ex.summary(), ex.curl(), ex)

    def _tcp(self, operation: str, op: dict[str, Any], args: dict[str, Any]) -> Outcome:
        if "json" in op:
            line = json.dumps(fill_json(op["json"], args), ensure_ascii=False)
        else:
            line = fill(op["line"], args).replace("\n", " ")  # one line, whatever the data
        url = urllib.parse.urlsplit(self.http.base_url)
        host, port = url.hostname or "127.0.0.1", url.port or 80
        reproduce = (f"printf '%s\\n' {shlex.quote(line)} | nc -q 5 {host} {port}")
        deadline = time.monotonic() + self.http.timeout
        try:
            with socket.create_connection((host, port), timeout=self.http.timeout) as sock:
                sock.sendall(line.encode() + b"\n")
                got = b""
                while b"\n" not in got and len(got) < MAX_LINE:
                    sock.settimeout(max(0.01, deadline - time.monotonic()))
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    got += chunk
        except TimeoutError:
            return Outcome(operation, "no_answer", {}, line,
                           f"(no answer line within {self.http.timeout:g} s)", reproduce)
        except OSError as exc:
            return Outcome(operation, "no_answer", {}, line,
                           f"(nothing came: {exc.strerror or exc})", reproduce)
        if b"\n" not in got:
            shown = got[:200].decode("utf-8", "replace")
            return Outcome(operation, "no_answer", {}, line,
                           f"(the connection closed before a whole line came: {shown!r})",
                           reproduce)
        text = got.split(b"\n", 1)[0].decode("utf-8", "replace").rstrip("\r")
        shown = text if len(text) <= 200 else text[:200] + "..."
        return self._judge(operation, op, None, text, line, shown, reproduce)


def commented_default(spec: str) -> str:
    """The default description's text, as a starting point (the file keeps its comments)."""
    path = default_path(spec)
    if not path.is_file():
        raise ProtocolError(f"the spec {spec!r} has no protocol description to start from")
    return path.read_text(encoding="utf-8")
