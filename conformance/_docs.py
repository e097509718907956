"""Generate `docs/` from `openapi/`: index, per-API Swagger UI and Markdown pages, requirements.

Rules: the same input gives the same bytes, and every page works offline (from file://).
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import swagger_ui
import yaml

from conformance._options import Option, core_options
from conformance._spec import Spec, load_spec, openapi_dir, spec_names

_SUFFIX = ".requirements.yaml"
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
    return sorted(p for p in openapi_dir().glob("*.yaml") if not p.name.endswith(_SUFFIX))


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

    context = {"specs": specs, "apis": sorted(apis), "core_options": core_options()}
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
