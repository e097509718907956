"""Draft a protocol description from a server's OpenAPI document (FastAPI publishes one at
`/openapi.json`): `conformance protocol SPEC --from-url URL` or `--from-openapi FILE`.

The core reads the document (over loopback only, with a timeout) and lays its operations out
plainly: method, path, path parameters, the body's fields, and each answer's fields with their
JSON pointers. The spec's package guesses its own operations from them (`draft(operations) ->
str` in `conformance/specs/<spec>/_draft.py`), marking every guess `# guessed: check`; the
draft is validated against the protocol schema before it is printed, so a draft always loads
once its guesses are right. A spec without such a module cannot draft.
"""

from __future__ import annotations

import importlib
import ipaddress
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from conformance._checks import CheckFailure
from conformance._http import Http
from conformance._suites import package_name

GUESSED = "# guessed: check"
DOCUMENT = "/openapi.json"  # where FastAPI publishes it
METHODS = ("get", "post", "put", "patch", "delete")
DEPTH = 3  # answer fields are listed this deep (FastAPI's HTTPException puts them under detail)


class DraftError(ValueError):
    """No draft can be made (the message says why: no document, not loopback, no such spec)."""


@dataclass(frozen=True)
class Field:
    """One field of a body or an answer: its name, where it is, its JSON type and values."""

    name: str
    pointer: str
    type: str  # "string", "integer", "number", "boolean", "object", "array" or "" (unknown)
    enum: tuple[Any, ...] = ()
    format: str = ""


@dataclass(frozen=True)
class Operation:
    """One operation of the document, as the drafting needs it."""

    method: str  # upper case
    path: str
    path_params: tuple[str, ...]
    query_params: tuple[str, ...]
    body: str  # "json", "form" or "" (none)
    body_fields: tuple[Field, ...]
    answers: dict[int, tuple[Field, ...]] = field(default_factory=dict)  # by status code

    def documented(self, status: int) -> bool:
        """Whether the document names this answer status."""
        return status in self.answers


def is_loopback(url: str) -> bool:
    """Whether a URL's host is this machine (localhost, 127.0.0.0/8, ::1)."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def fetch(url: str, timeout: float = 5.0) -> dict[str, Any]:
    """The OpenAPI document a server publishes: URL itself when it ends in .json, else
    URL/openapi.json. Loopback only: a document from elsewhere is saved and given as a file."""
    if urlsplit(url).scheme not in ("http", "https"):
        raise DraftError(f"not an http(s) URL: {url!r}")
    if not is_loopback(url):
        raise DraftError(f"{url} is not on this machine (loopback only); save its OpenAPI "
                         f"document and use --from-openapi FILE")
    parts = urlsplit(url)
    if parts.path.endswith(".json"):  # the document's own address
        base, target = f"{parts.scheme}://{parts.netloc}/", parts.path
    else:
        base, target = url, DOCUMENT
    with Http(base, timeout=timeout) as http:
        try:
            ex = http.request("GET", target)
        except CheckFailure as exc:
            raise DraftError(f"{http.url(target)}: {exc.actual or exc}") from None
    if ex.status != 200:
        raise DraftError(f"{http.url(target)} answered {ex.status}: no OpenAPI document there")
    try:
        document = ex.json()
    except ValueError:
        raise DraftError(f"{http.url(target)}: the answer is not JSON") from None
    return _checked(document, http.url(target))


def read(path: Path) -> dict[str, Any]:
    """An OpenAPI document from a file (JSON or YAML)."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DraftError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        raise DraftError(f"{path}: neither JSON nor YAML ({exc})") from None
    return _checked(document, str(path))


def publishes(http: Http) -> bool:
    """Whether the server behind `http` publishes an OpenAPI document at /openapi.json (one
    request, the run's timeout; False on any trouble)."""
    try:
        ex = http.request("GET", DOCUMENT)
        return ex.status == 200 and isinstance(ex.json().get("paths"), dict)
    except (CheckFailure, ValueError, AttributeError):
        return False


def _checked(document: Any, where: str) -> dict[str, Any]:
    if not isinstance(document, dict) or not isinstance(document.get("paths"), dict):
        raise DraftError(f"{where}: not an OpenAPI document (no paths)")
    return document


def _resolve(document: dict[str, Any], node: Any, seen: int = 0) -> Any:
    """A schema with its local $ref followed (and a single-entry allOf / anyOf without null
    unwrapped, as FastAPI writes optional and described fields)."""
    while isinstance(node, dict) and seen < 20:
        seen += 1
        if "$ref" in node and str(node["$ref"]).startswith("#/"):
            target: Any = document
            for part in str(node["$ref"])[2:].split("/"):
                target = target.get(part, {}) if isinstance(target, dict) else {}
            node = target
            continue
        for key in ("allOf", "anyOf", "oneOf"):
            options = [o for o in node.get(key, []) if not (isinstance(o, dict)
                                                          and o.get("type") == "null")]
            if len(options) == 1:
                node = options[0]
                break
        else:
            return node
    return node


def _type(schema: Any) -> str:
    kind = schema.get("type", "") if isinstance(schema, dict) else ""
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "")
    values = schema.get("enum") or [] if isinstance(schema, dict) else []
    if not kind and values:  # an enum alone: the type of its values
        if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            return "integer"
        if all(isinstance(v, str) for v in values):
            return "string"
    return str(kind)


def _fields(document: dict[str, Any], schema: Any, prefix: str = "",
            depth: int = DEPTH) -> tuple[Field, ...]:
    schema = _resolve(document, schema)
    if not isinstance(schema, dict) or depth == 0:
        return ()
    out: list[Field] = []
    for name, sub in (schema.get("properties") or {}).items():
        sub = _resolve(document, sub)
        pointer = f"{prefix}/{str(name).replace('~', '~0').replace('/', '~1')}"
        enum = tuple(sub.get("enum", ())) if isinstance(sub, dict) else ()
        fmt = str(sub.get("format", "")) if isinstance(sub, dict) else ""
        out.append(Field(str(name), pointer, _type(sub), enum, fmt))
        if _type(sub) == "object":
            out += _fields(document, sub, pointer, depth - 1)
    return tuple(out)


def operations(document: dict[str, Any]) -> list[Operation]:
    """Every operation of the document, in its order."""
    out = []
    for path, item in document.get("paths", {}).items():
        if not isinstance(item, dict):
            continue
        shared = item.get("parameters", [])
        for method in METHODS:
            op = item.get(method)
            if not isinstance(op, dict):
                continue
            params = [_resolve(document, p) for p in [*shared, *op.get("parameters", [])]]
            body = ""
            body_fields: tuple[Field, ...] = ()
            content = (_resolve(document, op.get("requestBody", {})) or {}).get("content", {})
            for kind, media in (("json", "application/json"),
                                ("form", "application/x-www-form-urlencoded"),
                                ("form", "multipart/form-data")):
                if media in content:
                    body = kind
                    body_fields = _fields(document, content[media].get("schema", {}), depth=1)
                    break
            answers = {}
            for code, response in (op.get("responses") or {}).items():
                if not str(code).isdigit():
                    continue
                response = _resolve(document, response)
                media = (response.get("content") or {}).get("application/json", {})
                answers[int(code)] = _fields(document, media.get("schema", {}))
            out.append(Operation(
                method.upper(), str(path),
                tuple(p["name"] for p in params if isinstance(p, dict) and p.get("in") == "path"),
                tuple(p["name"] for p in params if isinstance(p, dict) and p.get("in") == "query"),
                body, body_fields, answers))
    return out


def draft(spec: str, document: dict[str, Any], source: str) -> str:
    """The spec's draft description built from `document` (`source` says where it came from,
    for the header), validated against the protocol schema. DraftError when it cannot."""
    from conformance import _protocol

    try:
        module = importlib.import_module(f"{package_name(spec)}._draft")
    except ModuleNotFoundError:
        raise DraftError(f"the spec {spec!r} cannot draft a description from an OpenAPI "
                         f"document; start from `conformance protocol {spec}`") from None
    text: str = module.draft(operations(document), source)
    data = yaml.safe_load(text)
    errors = sorted(_protocol._validator().iter_errors(data), key=str)
    if errors:  # a drafting bug: say so rather than print what cannot load
        raise DraftError(f"the draft does not validate: {errors[0].message}")
    return text


def flow(value: Any) -> str:
    """A value as YAML flow text (JSON is YAML), for the drafts' lines."""
    return json.dumps(value, ensure_ascii=False)
