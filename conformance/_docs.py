"""Generate `docs/` from `openapi/`: index, per-API Swagger UI and Markdown pages, requirements,
and a page per protocol description (`openapi/SPEC.protocol.yaml`) on describing a protocol.

Rules: the same input gives the same bytes, and every page works offline (from file://).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import swagger_ui
import yaml

from conformance._options import Option, core_options
from conformance._spec import Spec, load_spec, openapi_dir, spec_names
from conformance._suites import package_name

_SUFFIX = ".requirements.yaml"
_PROTOCOL = ".protocol.yaml"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# Only what the viewer page loads (plus the licence the copy must carry); the package ships
# Swagger Editor too, which the pages never use.
ASSETS = ("LICENSE", "favicon-32x32.png", "index.css", "swagger-ui-bundle.js", "swagger-ui.css")
# The files and folder `build` owns in its output directory: everything else there is left alone.
TOP_FILES = ("index.html", "index.md", "requirements.html", "requirements.md")
API_DIR = "api"


@dataclass(frozen=True)
class Operation:
    """One operation of an OpenAPI document, its parameters' references resolved."""

    method: str
    path: str
    op: dict[str, Any]
    parameters: list[dict[str, Any]]


def _env() -> jinja2.Environment:
    loader = jinja2.PackageLoader("conformance", "templates/docs")
    env = jinja2.Environment(
        loader=loader, autoescape=jinja2.select_autoescape(["html.j2"]),
        keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True,
    )
    env.filters["pretty"] = pretty_json
    env.filters["cell"] = md_cell
    env.filters["schema_type"] = schema_type
    env.filters["option_help"] = option_help
    env.filters["option_default"] = option_default
    return env


def option_help(o: Option) -> str:
    """An option's help text with its default filled in, as `--help` shows it."""
    return o.help.replace("%(default)s", str(o.default))


def option_default(o: Option) -> str:
    """An option's default for a table cell ("" when it has none)."""
    if o.default is None or o.default == {} or o.kind == "bool":
        return ""
    return f"{o.default:g}" if isinstance(o.default, float) else str(o.default)


def pretty_json(value: Any) -> str:
    """JSON for a fenced block: sorted keys, two-space indent, non-ASCII kept readable."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


def md_cell(value: Any) -> str:
    """Text that fits in one Markdown table cell (no line breaks, pipes escaped)."""
    text = "" if value is None else str(value)
    return " ".join(text.split()).replace("|", "\\|")


def schema_type(schema: dict[str, Any] | None) -> str:
    """A short description of a schema's type for a table cell."""
    if not schema:
        return ""
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    kind = schema.get("type", "enum" if "enum" in schema else "")
    text = " or ".join(kind) if isinstance(kind, list) else str(kind)
    return f"{text} ({schema['format']})" if "format" in schema else text


def _resolve(document: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    """Follow a local `$ref` (as `#/components/parameters/X`) to what it names."""
    while "$ref" in item:
        node: Any = document
        for part in item["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        item = node
    return item


def operations(document: dict[str, Any]) -> list[Operation]:
    """Every operation of the document, in its paths' order, methods in the standard order."""
    out = []
    for path, item in document.get("paths", {}).items():
        shared = [_resolve(document, p) for p in item.get("parameters", [])]
        for method in METHODS:
            if method in item:
                op = item[method]
                own = [_resolve(document, p) for p in op.get("parameters", [])]
                names = {(p["name"], p["in"]) for p in own}
                params = [p for p in shared if (p["name"], p["in"]) not in names] + own
                out.append(Operation(method, path, op, params))
    return out


def openapi_files() -> list[Path]:
    """Every OpenAPI document in `openapi/`, sorted by name."""
    return sorted(p for p in openapi_dir().glob("*.yaml")
                  if not p.name.endswith((_SUFFIX, _PROTOCOL)))


def protocol_files() -> dict[str, Path]:
    """Every spec's default protocol description in `openapi/`, by spec."""
    return {p.name[: -len(_PROTOCOL)]: p for p in sorted(openapi_dir().glob(f"*{_PROTOCOL}"))}


@dataclass(frozen=True)
class Example:
    """A worked example of a description: a fixture's `*.protocol.yaml`, what its header says it
    is, the command its header says judges it, and how it differs from the default."""

    path: Path
    about: str
    command: str
    differs: tuple[str, ...]


def _header(text: str) -> list[str]:
    """The comment lines a YAML file opens with, without their `#`."""
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line[1:].removeprefix(" "))
    return lines


def intro(text: str) -> str:
    """A default description's first paragraph of comments, as prose (a trailing colon, which
    leads into the commands that follow it there, made a full stop)."""
    paragraph: list[str] = []
    for line in _header(text):
        if not line.strip():
            break
        paragraph.append(line.strip())
    joined = " ".join(paragraph)
    return joined[:-1] + "." if joined.endswith(":") else joined


def differences(default: dict[str, Any], example: dict[str, Any]) -> tuple[str, ...]:
    """What an example description changes from the default, one phrase per part."""
    out = []
    if example.get("transport") != default.get("transport"):
        out.append(f"transport `{example.get('transport')}` (the default's: "
                   f"`{default.get('transport')}`)")
    for key in ("arguments", "words"):
        if example.get(key) != default.get(key):
            out.append(f"`{key}` of its own" if example.get(key)
                       else f"no `{key}` (the spec's own)")
    ours = default.get("operations", {})
    for name, op in example.get("operations", {}).items():
        base = ours.get(name, {})
        changed = sorted(k for k in op.keys() | base.keys() if op.get(k) != base.get(k))
        if changed:
            out.append(f"`{name}`: {', '.join(changed)}")
    return tuple(out)


def _command(header: list[str]) -> tuple[int, int]:
    """Where a header's command is, as a slice: the first line that runs `conformance`, with
    the lines a `\\` continues; when it is indented, the whole indented block around it (the
    server started before it, say). (0, 0) when there is none."""
    at = next((i for i, line in enumerate(header) if line.strip().startswith("conformance ")),
              None)
    if at is None:
        return 0, 0
    lo = hi = at
    if header[at][:1].isspace():
        while lo > 0 and header[lo - 1][:1].isspace() and header[lo - 1].strip():
            lo -= 1
        while hi + 1 < len(header) and header[hi + 1][:1].isspace() and header[hi + 1].strip():
            hi += 1
    else:
        while hi + 1 < len(header) and header[hi].rstrip().endswith("\\"):
            hi += 1
    return lo, hi + 1


def examples(spec: str, default: Path) -> list[Example]:
    """The worked examples of a spec's descriptions: `fixtures/<spec_pkg>/*.protocol.yaml`, each
    with the command its header comment gives (`_command`) and the comment's first paragraph
    before it as what it is."""
    folder = openapi_dir().parent / "fixtures" / spec.replace("-", "_")
    ours = yaml.safe_load(default.read_text(encoding="utf-8"))
    out = []
    for path in sorted(folder.glob(f"*{_PROTOCOL}")):
        text = path.read_text(encoding="utf-8")
        header = _header(text)
        lo, hi = _command(header)
        about: list[str] = []
        for line in header[:lo] if hi else header:
            if not line.strip():
                break
            about.append(line.strip())
        prose = " ".join(about)
        out.append(Example(path, prose[:-1] + "." if prose.endswith(":") else prose,
                           textwrap.dedent("\n".join(header[lo:hi])),
                           differences(ours, yaml.safe_load(text))))
    return out


def drafts(spec: str) -> bool:
    """Whether the spec can draft a description from an OpenAPI document (its `_draft`)."""
    return importlib.util.find_spec(f"{package_name(spec)}._draft") is not None


def protocol_page(spec: str, path: Path) -> str:
    """The Markdown page on describing a protocol for `spec`: what it is (the default's own
    first paragraph), how, the worked examples with their commands, and the commented default."""
    fence = "```"
    default = path.read_text(encoding="utf-8")
    parts = [
        f"<!-- Generated by `python -m conformance._docs` (`tox -e docs`) from openapi/"
        f"{path.name} and fixtures/{spec.replace('-', '_')}/*{_PROTOCOL}; do not edit. -->\n"
        f"# Describing a protocol for `{spec}`\n\n"
        f"{intro(default)}\n\n"
        f"## How\n\n"
        f"The assignment leaves the protocol to the student, so the suite speaks to the target "
        f"through a *protocol description*: a YAML file, validated by "
        f"`conformance/schemas/protocol.schema.json`, that maps the spec's operations onto what "
        f"the target takes (over HTTP a method, path, query, form or JSON body; over TCP one "
        f"request line, JSON or text; for a program its command-line words) and says where each "
        f"value is in the answer (a JSON pointer, or a regular expression), what marks \"not "
        f"found\" and \"not ready\", and the target's words for the spec's. Without one, the "
        f"suite speaks ours, [the default](#the-default); a target that speaks another fails the "
        f"requirement to speak the described protocol, and nothing else is judged. A "
        f"requirement about a choice of our protocol's own is judged with ours, or where the "
        f"description says where to find what it needs (its statement says which).\n\n"
        f"{fence}sh\nconformance protocol {spec} > mine.protocol.yaml   # the default, to edit\n"
        f"conformance run {spec} ... --protocol mine.protocol.yaml\n{fence}\n"]
    if drafts(spec):
        parts.append(
            f"\nA server that publishes its OpenAPI document (FastAPI does, at `/openapi.json`) "
            f"can have a draft made from it, each guess marked `# guessed: check` (the failure "
            f"of a run without a description offers this command when the document is "
            f"there):\n\n"
            f"{fence}sh\nconformance protocol {spec} --from-url http://127.0.0.1:8888/ > "
            f"mine.protocol.yaml\nconformance protocol {spec} --from-openapi openapi.json > "
            f"mine.protocol.yaml\n{fence}\n")
    found = examples(spec, path)
    if found:
        parts.append("\n## Worked examples\n\nStudents' programs of the fixtures, each judged "
                     "through its own description, with the command its header gives.\n")
    for example in found:
        link = f"../../fixtures/{spec.replace('-', '_')}/{example.path.name}"
        judged = (f"{fence}sh\n{example.command}\n{fence}\n" if example.command
                  else "(its header names no command)\n")
        changed = "; ".join(example.differs) or "nothing"
        parts.append(
            f"\n### [{example.path.name}]({link})\n\n{example.about}\n\nJudged with:\n\n"
            f"{judged}\nWhat it changes from the default: {changed}.\n\n"
            f"{fence}yaml\n{example.path.read_text(encoding='utf-8')}{fence}\n")
    parts.append(f"\n## The default\n\n[{path.name}](../../openapi/{path.name}), our own "
                 f"protocol:\n\n{fence}yaml\n{default}{fence}\n")
    return "".join(parts)


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as handle:
        handle.write(text if text.endswith("\n") else text + "\n")
    return path


def _wipe(out: Path) -> None:
    """Remove what an earlier build wrote (only that)."""
    shutil.rmtree(out / API_DIR, ignore_errors=True)
    for name in TOP_FILES:
        (out / name).unlink(missing_ok=True)


def build(out: Path) -> list[Path]:
    """Regenerate the docs into `out` and return the files written, sorted."""
    env = _env()
    _wipe(out)
    specs: list[Spec] = [load_spec(name) for name in spec_names()]
    apis = {p.stem: p for p in openapi_files()}
    written: list[Path] = []

    assets = Path(swagger_ui.__file__).resolve().parent / "static"
    for name in ASSETS:
        target = out / API_DIR / "assets" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(assets / name, target)
        written.append(target)

    for stem, path in apis.items():
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        context = {"name": stem, "source": path.name, "doc": document,
                   "info": document.get("info", {}), "operations": operations(document)}
        for template, suffix in (("api.md.j2", ".md"), ("api.html.j2", ".html")):
            text = env.get_template(template).render(context)
            written.append(_write(out / API_DIR / f"{stem}{suffix}", text))

    protocols = protocol_files()
    for spec, path in protocols.items():
        written.append(_write(out / API_DIR / f"{spec}.protocol.md", protocol_page(spec, path)))

    context = {"specs": specs, "apis": sorted(apis), "core_options": core_options(),
               "protocols": sorted(protocols)}
    for page in TOP_FILES:
        text = env.get_template(f"{page}.j2").render(context)
        written.append(_write(out / page, text))
    return sorted(written)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m conformance._docs [OUT]`: regenerate OUT (default `docs`)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) > 1 or any(a.startswith("-") for a in args):
        print("usage: python -m conformance._docs [OUT]", file=sys.stderr)
        return 2
    out = Path(args[0] if args else "docs")
    written = build(out)
    print(f"wrote {len(written)} files into {out}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
