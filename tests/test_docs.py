"""The generated `docs/`: up to date with `openapi/`, complete, and working offline."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

from conformance import _docs
from conformance._spec import load_spec, spec_names
from tests.conftest import ROOT

DOCS = ROOT / "docs"


def files_under(root: Path) -> dict[str, bytes]:
    """Every file below `root`, by its relative POSIX path."""
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("docs")
    _docs.build(out)
    return out


def test_docs_are_not_stale(built: Path) -> None:
    fresh, kept = files_under(built), files_under(DOCS) if DOCS.is_dir() else {}
    stale = sorted(name for name in fresh.keys() & kept.keys() if fresh[name] != kept[name])
    missing = sorted(fresh.keys() - kept.keys())
    extra = sorted(kept.keys() - fresh.keys())
    if stale or missing or extra:
        pytest.fail(f"docs/ is out of date (stale: {stale}, missing: {missing}, extra: {extra}); "
                    "run `tox -e docs`")


def test_a_second_build_gives_the_same_bytes(built: Path, tmp_path: Path) -> None:
    _docs.build(tmp_path)
    assert files_under(tmp_path) == files_under(built)


def test_build_wipes_what_it_wrote_before_and_nothing_else(tmp_path: Path) -> None:
    (tmp_path / "api").mkdir()
    (tmp_path / "api" / "gone.html").write_text("old")
    (tmp_path / "notes.txt").write_text("mine")
    written = _docs.build(tmp_path)
    assert not (tmp_path / "api" / "gone.html").exists()
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert sorted(written) == sorted(p for p in tmp_path.rglob("*")
                                     if p.is_file() and p.name != "notes.txt")


class Links(HTMLParser):
    """The src and href values of a page, and the ids it defines."""

    def __init__(self) -> None:
        super().__init__()
        self.targets: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for key, value in attrs:
            if key in ("src", "href") and value is not None:
                self.targets.append(value)
            if key == "id" and value is not None:
                self.ids.add(value)


def links(page: Path) -> Links:
    parser = Links()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


REMOTE = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", re.IGNORECASE)
REMOTE_IMPORT = re.compile(r"@import\s+(?:url\()?\s*[\"']?\s*(?:https?:)?//", re.IGNORECASE)


def test_pages_load_nothing_from_the_network(built: Path) -> None:
    pages = sorted([*built.rglob("*.html"), *built.rglob("*.css")])
    assert pages
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert not REMOTE.search(text), f"{page.relative_to(built)} loads a remote URL"
        assert not REMOTE_IMPORT.search(text), f"{page.relative_to(built)} imports remote CSS"


def test_every_local_link_of_a_page_exists(built: Path) -> None:
    for page in sorted(built.rglob("*.html")):
        for target in links(page).targets:
            path, _, fragment = target.partition("#")
            where = f"{page.relative_to(built)} -> {target}"
            assert ":" not in path, f"{where} is not a relative link"
            goal = (page.parent / path).resolve() if path else page
            assert goal.is_file(), f"{where}: no such file"
            if fragment and goal.suffix == ".html":
                assert fragment in links(goal).ids, f"{where}: no such anchor"


def test_every_spec_is_in_the_catalogue_with_all_its_ids(built: Path) -> None:
    md = (built / "requirements.md").read_text(encoding="utf-8")
    ids = links(built / "requirements.html").ids
    index = (built / "index.md").read_text(encoding="utf-8")
    for name in spec_names():
        spec = load_spec(name)
        assert f"`{name}`" in index
        assert name in ids and f'<a id="{name}"></a>' in md
        for req in spec.requirements:
            assert f"{name}-{req.id}" in ids, f"{name} {req.id} not in requirements.html"
            assert f"### {req.id} ({req.label})" in md, f"{name} {req.id} not in requirements.md"


def test_every_openapi_file_has_its_pages(built: Path) -> None:
    stems = [p.stem for p in _docs.openapi_files()]
    assert {"crawler", "taskqueue"} <= set(stems)
    for stem in stems:
        assert (built / "api" / f"{stem}.md").is_file()
        page = (built / "api" / f"{stem}.html").read_text(encoding="utf-8")
        assert "SwaggerUIBundle(" in page and "spec: spec" in page


def test_the_markdown_page_lists_every_operation(built: Path) -> None:
    for path in _docs.openapi_files():
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        text = (built / "api" / f"{path.stem}.md").read_text(encoding="utf-8")
        for op in _docs.operations(document):
            assert f"### {op.method.upper()} `{op.path}`" in text
            for status in op.op["responses"]:
                assert f"\n| {status} | " in text
