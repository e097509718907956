"""Adding a spec touches no core file: in a copy of the tree, a toy spec made only of new files
(its behaviour spec, reference, suite package with an option of its own, and twins) is listed,
runs against its reference and its twin, has its option on the command line, in the report and
the docs, and is refused to other specs; CONTRIBUTING.md's recipe, done."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

TOY_SPEC = """\
spec: toy
title: A toy server that greets
kind: http-server
assignment: {seed: "000", section: toy}
default_url: http://127.0.0.1:8888/
reference:
  command: ["{python}", "{reference}/toy.py", "--port", "{port}", "--greeting", "{greeting}"]
  options: {greeting: hello}
requirements:
  - id: TOY-01
    level: MUST
    statement: The server answers HTTP requests.
    source: toy
  - id: TOY-02
    level: MUST
    statement: GET / answers the greeting the suite is told with --greeting.
    source: toy
    needs: [TOY-01]
"""

TOY_REFERENCE = '''\
"""The toy reference: GET / answers its greeting."""
import argparse
from http.server import BaseHTTPRequestHandler, HTTPServer

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, default=8888)
parser.add_argument("--greeting", default="hello")
args = parser.parse_args()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = args.greeting.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


try:
    HTTPServer(("127.0.0.1", args.port), Handler).serve_forever()
except KeyboardInterrupt:
    pass
'''

TOY_OPTIONS = '''\
"""The toy spec's suite."""
from dataclasses import dataclass

from conformance._options import SpecOptions, option


@dataclass(frozen=True)
class Options(SpecOptions):
    """The toy's options."""

    greeting: str = option("hello", help="the greeting the server answers (%(default)s)")
'''

TOY_CHECKS = '''\
"""Checks of the toy spec."""
from conformance import CheckFailure, requirement


@requirement("TOY-01")
def test_answers(http):
    http.get("/")


@requirement("TOY-02")
def test_greets(http, options):
    ex = http.get("/")
    if ex.body.decode() != options.spec.greeting:
        raise CheckFailure("wrong greeting", expected=options.spec.greeting,
                           actual=ex.summary(), reproduce=ex.curl())
'''

TOY_TWINS = '''\
"""The toy spec's twins."""
import sys

from fixtures._twins import Twin

TWINS = (Twin("toy", "rude", "answers 'go away'", frozenset({"TOY-02"})),)


def serve(twin, argv):
    import subprocess
    from pathlib import Path
    reference = Path(__file__).resolve().parents[2] / "reference" / "toy.py"
    return subprocess.call([sys.executable, str(reference), *argv, "--greeting", "go away"])
'''

NEW_FILES = {
    "openapi/toy.requirements.yaml": TOY_SPEC,
    "reference/toy.py": TOY_REFERENCE,
    "conformance/specs/toy/__init__.py": TOY_OPTIONS,
    "conformance/specs/toy/checks.py": TOY_CHECKS,
    "fixtures/toy/__init__.py": TOY_TWINS,
}


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of this tree's own files (no .venv, no .git) with the toy spec added."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("the tree is copied by its git file list, and this is no git checkout")
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                            capture_output=True, check=True, timeout=60).stdout
    copy = tmp_path_factory.mktemp("tree")
    for name in filter(None, listed.decode().split("\0")):
        source = ROOT / name
        if source.is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, copy / name)
    for name, text in NEW_FILES.items():
        assert not (copy / name).exists(), name
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        (copy / name).write_text(text, encoding="utf-8")
    return copy


def run(tree: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`python ARGS` in the copy, which its own packages are imported from."""
    return subprocess.run([sys.executable, *args], cwd=tree, capture_output=True, text=True,
                          timeout=120, env={"PATH": "/usr/bin:/bin", "COLUMNS": "200",
                                            "PYTHONPATH": str(tree)})


def test_the_toy_spec_is_listed_with_its_option(tree: Path) -> None:
    done = run(tree, "-m", "conformance", "list", "toy")
    assert done.returncode == 0, done.stderr
    assert "TOY-02" in done.stdout and "--greeting" in done.stdout
    helped = run(tree, "-m", "conformance", "run", "--help")
    assert "options of toy:" in helped.stdout and "--greeting" in helped.stdout


def test_the_toy_reference_passes_with_the_option_it_was_started_with(tree: Path) -> None:
    done = run(tree, "-m", "conformance", "run", "toy", "--strict", "--json", "r.json")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((tree / "r.json").read_text())
    assert report["options"]["greeting"] == "hello"
    assert {r["verdict"] for r in report["requirements"]} == {"pass"}


def test_the_toy_twin_fails_exactly_its_must(tree: Path) -> None:
    done = run(tree, "-m", "conformance", "run", "toy", "--json", "r.json", "--command",
               f"{sys.executable} -m fixtures toy rude --port {{port}}")
    assert done.returncode == 1, done.stdout + done.stderr
    report = json.loads((tree / "r.json").read_text())
    assert [r["id"] for r in report["requirements"] if r["verdict"] == "fail"] == ["TOY-02"]
    twins = run(tree, "-c", "from fixtures._twins import twins; "
                            "print([t.key for t in twins('toy') if t.broken])")
    assert twins.stdout.strip() == "['toy:rude']", twins.stderr


def test_the_option_is_the_toys_alone_and_in_the_docs(tree: Path) -> None:
    done = run(tree, "-m", "conformance", "run", "credentials", "--greeting", "hi")
    assert done.returncode == 2
    assert "--greeting is not an option of credentials" in done.stderr
    built = run(tree, "-m", "conformance._docs", "out")
    assert built.returncode == 0, built.stderr
    assert "`--greeting`" in (tree / "out" / "requirements.md").read_text()


def test_no_core_file_changed(tree: Path) -> None:
    for path in (tree / "conformance").rglob("*"):
        if path.is_file() and "specs/toy" not in path.as_posix() and "__pycache__" not in \
                path.parts:
            original = ROOT / path.relative_to(tree)
            assert original.is_file() and original.read_bytes() == path.read_bytes(), path
