"""The README: its Quick start is two commands and CI runs the second; every `conformance`
example parses with today's options; the "check your own server" example runs as written."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys

from conformance._arguments import UsageError, resolve_run
from conformance._cli import build_parser
from conformance._options import core_options
from conformance._spec import load_spec, spec_names
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")


def _blocks(section: str) -> list[list[str]]:
    body = README.split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", body, flags=re.S)
    return [[line.split("  #")[0].strip() for line in b.splitlines() if line.strip()]
            for b in blocks]


def test_quick_start_is_two_commands_and_ci_runs_the_test_one() -> None:
    (commands,) = _blocks("Quick start")
    assert commands == ["python3 bootstrap.py conformance run all", "python3 bootstrap.py tox"]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "\npython3 bootstrap.py tox\n" in ci


def test_tox_has_the_envs_the_readme_names() -> None:
    tox = (ROOT / "tox.ini").read_text(encoding="utf-8")
    for env in ("[testenv:test]", "[testenv:lint]", "[testenv:conformance]"):
        assert env in tox
    assert "conformance run {posargs" in tox


def test_every_conformance_example_parses() -> None:
    lines = [line for block in re.findall(r"```sh\n(.*?)```", README, flags=re.S)
             for line in block.splitlines()]
    lines += re.findall(r"`(conformance [^`]+)`", README)
    # What the shell does with the output (`> FILE`, `| less`) is not conformance's to parse.
    examples = [re.split(r" [>|] ", line.split("  #")[0])[0].strip() for line in lines
                if line.strip().startswith(("conformance ", "python3 bootstrap.py conformance"))]
    assert examples
    placeholders = {"SPEC": "credentials", "ID": "CRED-01", "FILE": "out", "URL": "http://x/",
                    # a student's description, written as `conformance protocol` prints ours
                    "mine.protocol.yaml": str(ROOT / "openapi" / "taskqueue.protocol.yaml")}
    for example in examples:
        words = shlex.split(example.replace("python3 bootstrap.py ", ""))[1:]
        words = [placeholders.get(w.strip("[]"), w.strip("[]")) for w in words
                 if w not in ("...", "ARGS", "[ID", "...]")]
        if words[:1] == ["run"] and (len(words) == 1 or words[1].startswith("-")):
            words.insert(1, "credentials")
        try:
            args = build_parser().parse_args(words)
            if args.action == "run":
                resolve_run(args)  # its options are the spec's own
        except SystemExit as exc:
            if exc.code != 0 or "--help" not in words:  # --help exits 0 once it has printed
                raise AssertionError(f"README example does not parse: {example}") from None
        except UsageError as exc:
            raise AssertionError(f"README example does not parse: {example} ({exc})") from None


def test_the_options_tables_name_declared_options_and_their_specs() -> None:
    rows = re.findall(r"^\| `(--[a-z-]+)[^|]*\|(?: ([a-z, -]+) \|)?", README, flags=re.M)
    declared = {o.flag: () for o in core_options()}
    for name in spec_names():
        for o in load_spec(name).options:
            declared[o.flag] = (*declared.get(o.flag, ()), name)
    run_flags = {"--only", "--json", "--startup-timeout", "--base-url", "--command"}
    assert rows
    for flag, specs in rows:
        assert flag in declared or flag in run_flags, f"README names no such option: {flag}"
        if specs.strip() and flag in declared:
            assert tuple(specs.strip().split(", ")) == declared[flag], flag


def test_check_your_own_server_example_runs(tmp_path) -> None:
    (_, start_it), = [b for b in _blocks("Checking your own server or program") if len(b) == 2]
    assert start_it.startswith("conformance run credentials --command")
    words = shlex.split(start_it)
    my_server = tmp_path / "my_server.py"
    my_server.write_text((ROOT / "reference" / "credentials.py").read_text(encoding="utf-8"))
    command = words[-1].replace("python", sys.executable, 1)
    assert "{port}" in command
    done = subprocess.run([sys.executable, "-m", "conformance", *words[1:-1], command,
                           "--fuzz-seconds", "3"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "credentials: PASS" in done.stdout.replace("\n", " ")
