"""Protocol descriptions: how a student's server speaks a spec's abstract operations.

Some assignments leave the protocol to the student (seed 004: "Протокол ... на усмотрение
разработчика"). A spec whose suite works through abstract operations (taskqueue: submit, status,
result) reads them off a small YAML file validated by `schemas/protocol.schema.json`: over HTTP a
method, path, query, form or JSON body per operation, over TCP one request line; where each value
is in the answer (a JSON pointer or a regular expression); what marks "not found" and "not
ready"; and the server's words for the spec's (`"в очереди"` -> queued). Our own protocol is such
a file too, `openapi/SPEC.protocol.yaml`, so the default is not a special case. For a spec of
several services (pipeline) each operation names the `service` that answers it, and an operation
may read a `file` the program writes (a table) in the run's output folder instead.

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
from typing import Any, ClassVar, Literal

import jsonschema
import yaml

from conformance._checks import CheckFailure
from conformance._http import Exchange, Http
from conformance._options import OptionError, SpecOptions, option
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
    transport: Literal["http", "tcp", "program"]
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
         operations: dict[str, tuple[str, ...]] | None = None,
         services: tuple[str, ...] | None = None) -> Protocol:
    """Read and validate a description; `spec` and `operations` (each operation the spec needs,
    with the values it must give) say what the spec asks of it; `services`, for a spec of several
    services, their names (each operation with a path must then say which one answers it).
    Raises ProtocolError."""
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
    for op in data["operations"].values():
        op.setdefault("answer", {})  # an operation may read nothing (a table's whole text)
    _check_services_and_files(path, data["operations"], services)
    transport = data["transport"]
    if transport == "program":  # a client program's command lines, not requests
        _check_program(path, data["operations"], operations or {})
        return Protocol(path, data["spec"], transport, data["operations"],
                        data.get("words", {}), data.get("arguments", {}))
    for name, op in data["operations"].items():
        wanted = ("method", "path") if transport == "http" else ()
        if "file" in op and "path" not in op:
            wanted = ()  # read from the run's output folder, not requested
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
        answer = data["operations"][name]["answer"]
        missing = [v for v in gives if v not in answer or answer[v].get("optional")]
        if missing:
            raise ProtocolError(f"{path}: operation {name!r} must say where its answer has "
                                f"{', '.join(missing)}")
    return Protocol(path, data["spec"], transport, data["operations"], data.get("words", {}),
                    data.get("arguments", {}))


def _check_services_and_files(path: Path, operations: dict[str, dict[str, Any]],
                              services: tuple[str, ...] | None) -> None:
    """Each operation's `service` is one of the spec's (and named wherever a request is sent,
    when the spec has several); each `file` is a path inside the run's output folder."""
    for name, op in operations.items():
        if "service" in op and services is not None and op["service"] not in services:
            raise ProtocolError(f"{path}: operation {name!r} names the service "
                                f"{op['service']!r}; the spec's services are "
                                f"{', '.join(services)}")
        if services is not None and "service" not in op and "path" in op:
            raise ProtocolError(f"{path}: operation {name!r} must say which service answers "
                                f"it (service: one of {', '.join(services)})")
        if "file" in op:
            where = Path(op["file"])
            if where.is_absolute() or ".." in where.parts or not where.parts:
                raise ProtocolError(f"{path}: operation {name!r} reads the file {op['file']!r}: "
                                    f"a file is named relative to --output-dir, inside it")


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
    text: str = ""  # the whole answer's text (an HTTP body, a file), as it was read

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
    the timeout and the curl lines; over TCP the same host, port and timeout. For a spec of
    several services (pipeline), `services` gives each its `Http`, and an operation naming its
    `service` goes there; an operation's `file` is read in `folder` (--output-dir)."""

    def __init__(self, protocol: Protocol, http: Http, *,
                 services: dict[str, Http] | None = None,
                 folder: Path | str | None = None) -> None:
        self.protocol = protocol
        self.http = http
        # A spec of several services: each operation's `service` is asked at its own base URL.
        self.services = services or {}
        # Where an operation's `file` is read (the run's --output-dir), when one was given.
        self.folder = Path(folder) if folder is not None else None

    def http_for(self, op: dict[str, Any]) -> Http:
        """The `Http` of the service that answers `op` (the run's own when it names none)."""
        return self.services.get(op.get("service", ""), self.http)

    def reads_file(self, operation: str) -> bool:
        """Whether `operation` is read from a file of the output folder: it names a `file`,
        and a folder was given (or it has no request to send instead)."""
        op = self.protocol.operations[operation]
        return "file" in op and (self.folder is not None or "path" not in op)

    def call(self, operation: str, **args: Any) -> Outcome:
        """Perform one operation with its arguments; never raises for what the server did."""
        op = self.protocol.operations[operation]
        for name, theirs in self.protocol.arguments.items():
            if name in args and str(args[name]) in theirs:
                args[name] = theirs[str(args[name])]
        if self.reads_file(operation):
            return self._file(operation, op, args)
        if self.protocol.transport == "http":
            return self._http(operation, op, args)
        return self._tcp(operation, op, args)

    def _judge(self, operation: str, op: dict[str, Any], status: int | None, text: str,
               request: str, answer: str, reproduce: str,
               exchange: Exchange | None = None) -> Outcome:
        document = _parse_json(text)
        out = Outcome(operation, "ok", {}, request, answer, reproduce, exchange, text=text)
        for mark in ("not_found", "not_ready"):
            if mark in op and _holds(op[mark], status, text, document):
                out.kind = mark
                # Optional values are read here too: a not-ready answer may name the status.
                for name, locator in op["answer"].items():
                    if locator.get("optional"):
                        self._optional(out, name, _read(locator, text, document))
                return out
        ok = op.get("ok", {"status": list(range(200, 300))} if status is not None else None)
        if ok is not None and not _holds(ok, status, text, document):
            out.kind, out.why = "unreadable", "not an answer the description calls good"
            return out
        for name, locator in op["answer"].items():
            found = _read(locator, text, document)
            if locator.get("optional"):
                self._optional(out, name, found)
                continue
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

    def _optional(self, out: Outcome, name: str, found: Any) -> None:
        """Keep an optional value: absent when the answer lacks it, None when it is null, a
        spec word where the description maps it (else the server's text as it is)."""
        if found is _MISSING:
            return
        if isinstance(found, int | float) and not isinstance(found, bool):
            found = str(found)
        if name in self.protocol.words and isinstance(found, str):
            out.values[f"{name}_shown"] = found
            found = self.protocol.spec_word(name, found) or found
        out.values[name] = found

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
            ex = self.http_for(op).request(op["method"], target, headers=headers,
                                           content=content)
        except CheckFailure as exc:
            return Outcome(operation, "no_answer", {}, request, exc.actual or str(exc),
                           exc.reproduce or "")
        text = ex.body.decode("utf-8", "replace")
        return self._judge(operation, op, ex.status, text, request, ex.summary(), ex.curl(), ex)

    def _file(self, operation: str, op: dict[str, Any], args: dict[str, Any]) -> Outcome:
        """Read a file of the output folder: "not_found" while it is not there (a program may
        make it when it first has something to write), "no_answer" when it cannot be read."""
        if self.folder is None:
            return Outcome(operation, "no_answer", {}, f"read {op['file']}",
                           "(no folder to read it in: give --output-dir DIR)", "")
        path = self.folder / fill(op["file"], args)
        reproduce = f"cat {shlex.quote(str(path))}"
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return Outcome(operation, "not_found", {}, f"read {path}", f"(no file {path})",
                           reproduce)
        except OSError as exc:
            return Outcome(operation, "no_answer", {}, f"read {path}",
                           f"(cannot read {path}: {exc.strerror or exc})", reproduce)
        lines = text.count("\n")
        return self._judge(operation, op, None, text, f"read {path}",
                           f"{len(text.encode())} bytes, {lines} lines", reproduce)

    def _tcp(self, operation: str, op: dict[str, Any], args: dict[str, Any]) -> Outcome:
        if "json" in op:
            line = json.dumps(fill_json(op["json"], args), ensure_ascii=False)
        else:
            line = fill(op["line"], args).replace("\n", " ")  # one line, whatever the data
        http = self.http_for(op)  # the service that answers it, for a spec of several
        url = urllib.parse.urlsplit(http.base_url)
        host, port = url.hostname or "127.0.0.1", url.port or 80
        reproduce = (f"printf '%s\\n' {shlex.quote(line)} | nc -q 5 {host} {port}")
        deadline = time.monotonic() + http.timeout
        try:
            with socket.create_connection((host, port), timeout=http.timeout) as sock:
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
                           f"(no answer line within {http.timeout:g} s)", reproduce)
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


# A client program (transport: program): one command line per operation -----------------------

_NOT_PROGRAM = ("method", "path", "query", "form", "json", "line", "ok", "not_found", "not_ready")


def _check_program(path: Path, operations: dict[str, dict[str, Any]],
                   needed: dict[str, tuple[str, ...]]) -> None:
    """A program's operations: each has its argv and no field of a request; a regex compiles;
    the spec's operations are all there (their `answer` stays optional: without a locator a
    value is looked for anywhere in what the program prints)."""
    for name, op in operations.items():
        if "argv" not in op:
            raise ProtocolError(f"{path}: operation {name!r} of a program needs argv")
        stray = [k for k in _NOT_PROGRAM if k in op]
        if stray:
            raise ProtocolError(f"{path}: operation {name!r} of a program has "
                                f"{', '.join(stray)}, which only http or tcp has")
        for key, where in op.get("answer", {}).items():
            if "regex" in where:
                _compile(path, f"{name}.answer.{key}", where["regex"])
    for name in needed:
        if name not in operations:
            raise ProtocolError(f"{path}: the spec needs the operation {name!r}")


def fill_argv(protocol: Protocol, operation: str, **args: Any) -> list[str]:
    """The command-line words of one operation of a program: each argv template filled in,
    after `arguments` maps the spec's values onto the program's (type 1 -> "reverse"). A word
    stays one word whatever its spaces, quotes or characters: no shell is involved."""
    for name, theirs in protocol.arguments.items():
        if name in args and str(args[name]) in theirs:
            args[name] = theirs[str(args[name])]
    return [fill(word, args) for word in protocol.operations[operation]["argv"]]


def read_printed(protocol: Protocol, operation: str, stdout: str) -> dict[str, str]:
    """The values one operation's output gives by its `answer` locators (a regex's first group,
    else its match; a JSON pointer when stdout is JSON), stripped; a value with a `words`
    mapping becomes the spec's word (`<name>_shown` keeps the program's). A value whose locator
    finds nothing is left out: the caller says what was missing."""
    document = _parse_json(stdout)
    out: dict[str, str] = {}
    for name, locator in protocol.operations[operation].get("answer", {}).items():
        found = _read(locator, stdout, document)
        if found is _MISSING or found is None:
            continue
        text = str(found).strip()
        if name in protocol.words:
            out[f"{name}_shown"] = text
            text = protocol.spec_word(name, text) or text
        out[name] = text
    return out


def first_word(protocol: Protocol, name: str, text: str,
               spec_words: tuple[str, ...]) -> str | None:
    """The spec's word for the first of `spec_words` that `text` shows, as the description's
    `words` spells them (a spec word not mapped stands for itself), matched as whole words and
    without regard to case; None when it shows none."""
    mapping = protocol.words.get(name, {})
    spelled = [(shown, word) for word in spec_words for shown in mapping.get(word, [word])]
    best: tuple[int, str] | None = None
    for shown, word in spelled:
        found = re.search(rf"(?<!\w){re.escape(shown)}(?!\w)", text, re.IGNORECASE)
        if found and (best is None or found.start() < best[0]):
            best = (found.start(), word)
    return best[1] if best else None


def _described_file(text: str) -> str:
    """--protocol's word: a description that loads and validates, as an absolute path (which
    spec it must describe is checked once the run's spec is known)."""
    try:
        load(text)
    except ProtocolError as exc:
        raise OptionError(str(exc)) from exc
    return str(Path(text).resolve())


@dataclass(frozen=True)
class ProtocolOptions(SpecOptions):
    """`--protocol FILE`, declared once for every spec whose assignment leaves the protocol open
    (one flag, one declaration). A spec's Options derives it and names its spec and operations;
    a file that describes another spec, or lacks an operation, is a usage error then."""

    PROTOCOL_SPEC: ClassVar[str] = ""
    PROTOCOL_OPERATIONS: ClassVar[dict[str, tuple[str, ...]]] = {}
    # For a spec of several services (pipeline): their names, which operations must name.
    PROTOCOL_SERVICES: ClassVar[tuple[str, ...] | None] = None

    protocol: str | None = option(
        None, parse=_described_file, metavar="FILE",
        help="a description of the protocol the target speaks (the assignment leaves it "
             "open); `conformance protocol SPEC` prints ours, the default, to start from")

    def __post_init__(self) -> None:
        self.check_protocol()

    def check_protocol(self) -> None:
        """OptionError unless --protocol's file describes this spec with its operations."""
        if self.protocol is None or not self.PROTOCOL_SPEC:
            return
        try:
            load(self.protocol, spec=self.PROTOCOL_SPEC, operations=self.PROTOCOL_OPERATIONS,
                 services=self.PROTOCOL_SERVICES)
        except ProtocolError as exc:
            raise OptionError(f"--protocol: {exc}") from exc

    def described(self) -> Protocol:
        """The run's description: --protocol's, else the spec's default (ours)."""
        return load(self.protocol or default_path(self.PROTOCOL_SPEC), spec=self.PROTOCOL_SPEC,
                    operations=self.PROTOCOL_OPERATIONS, services=self.PROTOCOL_SERVICES)
