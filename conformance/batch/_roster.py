"""A roster: the CSV file that names, per line, a student, a spec and a target, read and checked
before anything runs.

Rules: the header names at least `student`, `spec` and `target` (any order; an optional `args`
column holds extra `conformance run` options, split like a shell would). Blank lines and lines
whose first cell starts with `#` are skipped. A target that starts with http:// or https:// is a
base URL, anything else a command (`{port}` in it becomes a free port, as `conformance run`
does). A relative path in a line, in its command or its args (`--protocol FILE`, each a word of
its own, or a word of a command given as one arg, as `--server-command`'s), names a file next
to the roster, as a teacher who keeps the roster with the class's files expects; one that is
not there is looked for where the grader stands, as `conformance run` does. A line's args are
checked by the same code as `conformance run`'s command line, against that line's spec; what
the batch sets itself (the target, the report files, and the options declared `roster=False`,
such as --seed) may not come from a line. Any problem is a `RosterError` naming its line.
"""

from __future__ import annotations

import csv
import io
import re
import shlex
from pathlib import Path
from typing import Literal

from conformance._arguments import RaisingParser, UsageError, add_run_arguments, parse_run
from conformance._grades import RosterLine
from conformance._isolation import absolute_paths
from conformance._options import core_options
from conformance._spec import SpecError, load_spec, spec_names
from conformance._target import TargetError, host_port, split_command

REQUIRED_COLUMNS = ("student", "spec", "target")


class RosterError(Exception):
    """The roster cannot be graded as written (a usage error, with its line number)."""


def _check_args(n: int, spec: str, kind: str, target: str, args: list[str]) -> None:
    flag = "--base-url" if kind == "url" else "--command"
    try:
        parse_run([spec, flag, target, *args])
    except (UsageError, SpecError) as exc:
        raise RosterError(f"roster line {n}: args: {exc}") from None
    parser = RaisingParser(prog="conformance run")
    add_run_arguments(parser)
    alone = vars(parser.parse_args([spec, *args]))
    own = ["--json", "--junit", "--command"] + (["--base-url"] if kind == "url" else [])
    for option in own:
        if alone.get(option[2:].replace("-", "_")) is not None:
            raise RosterError(f"roster line {n}: args: {option} is set by the batch, not a line")
    for o in (*core_options(), *load_spec(spec).options):
        if not o.roster and f"option_{o.name}" in alone:
            raise RosterError(f"roster line {n}: args: {o.flag} is set by the batch for every "
                              f"line, not by a line")


_PLAIN = re.compile(r"[\w@%+=:,./{}-]+")


def _from(folder: Path, command: str) -> str:
    """A command line with its relative paths to what exists in `folder` made absolute (the
    line as it was when none are: then the run looks where the grader stands)."""
    try:
        words = shlex.split(command)
    except ValueError:
        return command  # the target's own check says why
    found = absolute_paths(words, folder)
    if found == words:
        return command
    return " ".join(w if _PLAIN.fullmatch(w) else shlex.quote(w) for w in found)


def _args_from(folder: Path, args: list[str]) -> list[str]:
    """A line's args with relative paths seen from `folder`: each word, and each word of an
    arg that is itself a command line (it has spaces and is no option)."""
    out = absolute_paths(args, folder)
    return [_from(folder, a) if " " in a.strip() and not a.startswith("-") else a for a in out]


def _cell(cells: list[str], columns: dict[str, int], name: str) -> str:
    i = columns.get(name)
    return cells[i] if i is not None and i < len(cells) else ""


def read_roster(path: Path) -> list[RosterLine]:
    """The roster's lines, checked; RosterError, naming the line, when one cannot be graded."""
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: a spreadsheet's BOM is no column
    except FileNotFoundError:
        raise RosterError(f"roster {str(path)!r}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RosterError(f"roster {str(path)!r}: cannot read it: {exc}") from None
    folder = path.resolve().parent  # relative paths of a line are seen from here first
    reader = csv.reader(io.StringIO(text))
    columns: dict[str, int] | None = None
    known = spec_names()
    entries: list[RosterLine] = []
    seen: dict[tuple[str, str], int] = {}
    for row in reader:
        n = reader.line_num
        cells = [c.strip() for c in row]
        if not any(cells) or cells[0].startswith("#"):
            continue
        if columns is None:
            columns = {name.lower(): i for i, name in enumerate(cells) if name}
            missing = [c for c in REQUIRED_COLUMNS if c not in columns]
            if missing:
                raise RosterError(
                    f"roster line {n}: the header has no column {', '.join(missing)} (it needs "
                    f"{', '.join(REQUIRED_COLUMNS)}, and may have args)")
            continue
        student, spec, target = (_cell(cells, columns, c) for c in REQUIRED_COLUMNS)
        for name, value in (("student", student), ("spec", spec), ("target", target)):
            if not value:
                raise RosterError(f"roster line {n}: {name} is empty")
        if spec not in known:
            raise RosterError(f"roster line {n}: unknown spec {spec!r} "
                              f"(known: {', '.join(known)})")
        if (student, spec) in seen:
            raise RosterError(f"roster line {n}: {student} / {spec} is already on line "
                              f"{seen[student, spec]}")
        seen[student, spec] = n
        kind: Literal["url", "command"] = (
            "url" if target.startswith(("http://", "https://")) else "command")
        if kind == "command":
            target = _from(folder, target)
        try:
            if kind == "url":
                host_port(target)
            else:
                split_command(target)
        except TargetError as exc:
            raise RosterError(f"roster line {n}: target: {exc}") from None
        if kind == "url" and load_spec(spec).kind == "program":
            raise RosterError(f"roster line {n}: {spec} checks a program: the target must be "
                              f"the command that runs it, not a URL")
        try:
            args = _args_from(folder, shlex.split(_cell(cells, columns, "args")))
        except ValueError as exc:
            raise RosterError(f"roster line {n}: cannot parse args "
                              f"{_cell(cells, columns, 'args')!r}: {exc}") from None
        _check_args(n, spec, kind, target, args)
        entries.append(RosterLine(line=n, student=student, spec=spec, target=target, kind=kind,
                                  args=tuple(args)))
    if columns is None:
        raise RosterError(f"roster {str(path)!r}: no header (it needs "
                          f"{', '.join(REQUIRED_COLUMNS)})")
    if not entries:
        raise RosterError(f"roster {str(path)!r}: no students under the header")
    return entries
