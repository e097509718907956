"""`conformance batch ROSTER`: grade a class, one `conformance run` per roster line, into a folder.

Rules:
- The whole roster is checked before anything runs (conformance/batch/_roster.py): any problem is
  a usage error naming its line.
- Each line is one `conformance run` subprocess in a process group of its own, its output in a
  file (never a pipe that could fill and block it), every run with the same --seed and --max-rate,
  at most --jobs at once. A run still going at --target-timeout gets SIGINT (its Ctrl+C, so it
  stops the server it started), then SIGKILL with whatever it started 5 s later: one stuck
  target never stalls the rest.
- OUT gets results.json (validated against schemas/batch.schema.json before it is written),
  results.csv, junit/SLUG.xml per line (the run's own, or one failing testcase that says why
  there is none), logs/SLUG.log (the run's terminal report) and the HTML pages.
- Exit 0 when every line passed (every gating requirement), 1 otherwise; usage errors are the
  caller's (exit 2).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import multiprocessing
import multiprocessing.connection
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import psutil
from referencing import Registry, Resource
from rich.console import Console, JustifyMethod
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from conformance import reports
from conformance._grades import Grade, RosterLine, bonus_score, score, slugs
from conformance._result import RunResult
from conformance._run import HIDE_VARIABLE
from conformance._spec import load_spec
from conformance.batch._roster import RosterError, read_roster

SCHEMA_VERSION = 1
STOP_GRACE = 5.0  # seconds between the SIGINT and the SIGKILL of a run past its time bound
POLL = 0.5  # seconds between looks at a running run, so a time bound or Ctrl+C is seen soon
TAIL_LINES = 15
TAIL_CHARS = 2000
# Characters XML 1.0 cannot hold; a run's output may carry them into a JUnit message.
_NOT_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


@dataclass(frozen=True)
class BatchOptions:
    """How to grade: where to write, how many at once, the bounds, and the run options."""

    out: Path
    jobs: int = 4
    target_timeout: float = 600.0
    rate: float = 20.0
    seed: int = 0
    strict: bool = False
    timeout: float | None = None  # each passed through to `conformance run` only when given
    fuzz_examples: int | None = None
    fuzz_seconds: float | None = None
    limits: tuple[str, ...] = ()  # NAME=VALUE: every line's, before its own (which win)
    no_sandbox: bool = False
    # Folders no target may see (the roster's, the results'): set by run_batch.
    hidden: tuple[Path, ...] = ()

    def passthrough(self) -> list[str]:
        """The `conformance run` options every run gets after the line's own."""
        words = ["--strict"] if self.strict else []
        for option, value in (("--timeout", self.timeout), ("--fuzz-examples", self.fuzz_examples),
                              ("--fuzz-seconds", self.fuzz_seconds)):
            if value is not None:
                words += [option, f"{value:g}"]
        return words


# -- one run ---------------------------------------------------------------------------------


def run_argv(entry: RosterLine, options: BatchOptions, json_path: Path,
             junit_path: Path) -> list[str]:
    """The `conformance` arguments of one roster line's run (`run SPEC ...`)."""
    general = [w for limit in options.limits for w in ("--limit", limit)]
    general += ["--no-sandbox"] if options.no_sandbox else []
    argv = ["run", entry.spec,
            "--base-url" if entry.kind == "url" else "--command", entry.target, *general,
            *entry.args,
            "--seed", str(options.seed), "--max-rate", f"{options.rate:g}",
            "--json", str(json_path), "--junit", str(junit_path)]
    return [*argv, *options.passthrough()]


def _descendants(pid: int) -> list[int]:
    """The processes under `pid`, so a server that a killed run started in a session of its own
    is not left behind."""
    try:
        return [child.pid for child in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


# What every run imports, imported once in the fork server its runs are forked from: a run then
# costs its own work, not a second of imports (grading a class on 2 cores is CPU-bound).
PRELOAD = ["conformance.batch._preload"]


def _run_in_child(argv: list[str], log: str, hidden: str) -> None:
    """The body of a forked run: a session of its own, output to the log, the folders its
    target must not see, then `conformance`."""
    os.setsid()
    log_fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.environ.update(_child_env(hidden))
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(line_buffering=True)
    from conformance._cli import main

    code = main(argv)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


# A forked run's exit status is 8 bytes the fork server writes once, read by whoever polls it
# first; `Process.start()` polls every earlier process (multiprocessing's _cleanup), so a start
# in one grading thread raced the wait of another for those bytes, and the loser read an end of
# file, taken for status 255: a run that passed was graded as crashed (seen with 20 jobs).
# Whoever reads a status or starts a process holds this lock; waiting is done without it.
_STATUS = threading.Lock()


class _Forked:
    """A run forked from the preloaded fork server, with the part of Popen's face we use."""

    def __init__(self, argv: list[str], out: io.BufferedWriter, hidden: str) -> None:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(PRELOAD)
        # The fork server is not our fork: it gets the log's name, not our descriptor.
        self._process = context.Process(target=_run_in_child, args=(argv, out.name, hidden),
                                        daemon=False)
        with _STATUS:
            self._process.start()
        assert self._process.pid is not None
        self.pid = self._process.pid

    def wait(self, timeout: float | None = None) -> int:
        """The exit status once it ended; subprocess.TimeoutExpired when not within timeout."""
        multiprocessing.connection.wait([self._process.sentinel], timeout)
        with _STATUS:
            code = self._process.exitcode
        if code is None:
            raise subprocess.TimeoutExpired("conformance run", timeout or 0)
        with _STATUS:
            self._process.join()  # ended: only reaps what is left of it
        return code


def _start(argv: list[str], out: io.BufferedWriter,
           hidden: str = "") -> subprocess.Popen[bytes] | _Forked:
    """Start one `conformance` with these arguments (as `run_argv` gives them) and its output in
    `out`, its target hidden the folders `hidden` names (os.pathsep between): forked from the
    fork server where there is one, else a fresh interpreter."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        return _Forked(argv, out, hidden)
    return subprocess.Popen([sys.executable, "-m", "conformance", *argv],
                            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True, env=_child_env(hidden))


def _stop(popen: subprocess.Popen[bytes] | _Forked) -> None:
    """SIGINT to the run's group; SIGKILL to it and to whatever it started, STOP_GRACE later."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(popen.pid, signal.SIGINT)
    try:
        popen.wait(timeout=STOP_GRACE)
        return
    except subprocess.TimeoutExpired:
        pass
    groups = {popen.pid}
    for pid in _descendants(popen.pid):
        with contextlib.suppress(OSError):
            groups.add(os.getpgid(pid))
    groups.discard(os.getpgrp())  # never our own
    for group in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGKILL)
    popen.wait()


def _tail(log: Path) -> str:
    try:
        data = log.read_bytes()
    except OSError:
        return ""
    lines = data[-TAIL_CHARS:].decode("utf-8", "replace").strip().splitlines()
    return "\n".join(lines[-TAIL_LINES:])


def _load_report(path: Path) -> tuple[RunResult | None, str]:
    """The run's report read from its JSON file, or None and why it cannot be used."""
    if not path.exists():
        return None, ""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        reports.report_validator().validate(doc)
        return reports.from_dict(doc), ""
    except (OSError, ValueError, jsonschema.ValidationError) as exc:
        return None, f"its JSON report is unreadable: {str(exc).splitlines()[0]}"


def _child_env(hidden: str = "") -> dict[str, str]:
    env = dict(os.environ)
    if hidden:  # the roster's folder and the results': the other students' files
        env[HIDE_VARIABLE] = hidden
    env.setdefault("COLUMNS", "120")  # the log is read by people: not too narrow
    env["PYTHONUNBUFFERED"] = "1"  # a killed run's log still holds what it printed
    return env


def grade_line(entry: RosterLine, slug: str, options: BatchOptions,
               stop: threading.Event) -> Grade:
    """Run one roster line's `conformance run` to its end or its time bound, and grade it."""
    # Each run's own report stays with the results: the reproducers of its failures may name
    # request bodies in a folder beside it (SLUG.bodies/), which must outlive the batch.
    json_path = options.out / "reports" / f"{slug}.json"
    junit_path = options.out / "junit" / f"{slug}.xml"
    log = options.out / "logs" / f"{slug}.log"
    junit_path.unlink(missing_ok=True)  # a file there now is an older batch's, not this run's
    argv = run_argv(entry, options, json_path, junit_path)
    t0 = time.monotonic()
    stopped = False
    with log.open("wb") as out:
        try:
            hidden = os.pathsep.join(map(str, options.hidden))
            popen: subprocess.Popen[bytes] | _Forked = _start(argv, out, hidden)
        except OSError as exc:
            return _finish(entry, slug, None, time.monotonic() - t0, None,
                           f"cannot start the run: {exc.strerror or exc}", junit_path, log)
        deadline = t0 + options.target_timeout
        while True:
            try:
                code: int | None = popen.wait(timeout=POLL)
                break
            except subprocess.TimeoutExpired:
                if stop.is_set() or time.monotonic() >= deadline:
                    stopped = not stop.is_set()
                    _stop(popen)
                    code = None
                    break
    duration = time.monotonic() - t0
    if stopped:
        problem = f"stopped at the time bound of {options.target_timeout:g} s"
        return _finish(entry, slug, None, duration, None, problem, junit_path, log)
    if code is None:
        return _finish(entry, slug, None, duration, None, "interrupted", junit_path, log)
    report, problem = _load_report(json_path)
    if report is None:
        tail = _tail(log)
        problem = problem or f"the run gave no report (exit {code})"
        problem += f"; its output ends:\n{tail}" if tail else ""
    elif report.error:
        problem = report.error
    return _finish(entry, slug, code, duration, report, problem, junit_path, log)


def _finish(entry: RosterLine, slug: str, code: int | None,
            duration: float, report: RunResult | None, problem: str, junit_path: Path,
            log: Path) -> Grade:
    spec = load_spec(entry.spec)
    grade = Grade(entry=entry, exit_code=code, duration_s=round(duration, 3), report=report,
                  problem=problem, score=score(report, spec), slug=slug, extra={"log": log},
                  bonus_score=bonus_score(report, spec))
    if not _readable_junit(junit_path):
        write_fallback_junit(grade, junit_path)
    grade.junit = junit_path
    return grade


def _readable_junit(path: Path) -> bool:
    try:
        ET.parse(path)
    except (OSError, ET.ParseError):
        return False
    return True


def write_fallback_junit(grade: Grade, path: Path) -> None:
    """A JUnit file of one failing testcase that says why the run wrote none."""
    entry = grade.entry
    problem = _NOT_XML.sub("", grade.problem or "the run wrote no JUnit report")
    root = ET.Element("testsuites", name="conformance")
    suite = ET.SubElement(root, "testsuite", name=entry.spec, tests="1", failures="1",
                          errors="0", skipped="0", time=f"{grade.duration_s:.3f}")
    props = ET.SubElement(suite, "properties")
    for name, value in (("student", entry.student), ("target", entry.target)):
        ET.SubElement(props, "property", name=name, value=_NOT_XML.sub("", value))
    case = ET.SubElement(suite, "testcase", classname=f"{entry.spec}.batch",
                         name=f"{_NOT_XML.sub('', entry.student)}: the run gave a report",
                         time=f"{grade.duration_s:.3f}")
    failure = ET.SubElement(case, "failure", message=problem.splitlines()[0], type="no_report")
    failure.text = problem
    tree = ET.ElementTree(root)
    ET.indent(tree)
    tree.write(path, encoding="utf-8", xml_declaration=True)


# -- the whole roster ------------------------------------------------------------------------


def grade_all(entries: list[RosterLine], options: BatchOptions,
              on_done: Callable[[Grade], None] = lambda g: None) -> list[Grade]:
    """Grade every line, at most `options.jobs` at once; the grades in roster order.

    On Ctrl+C every run still going is stopped (SIGINT, then SIGKILL) before it propagates.
    """
    names = slugs([e.student for e in entries])
    stop = threading.Event()
    grades: dict[int, Grade] = {}
    pool = ThreadPoolExecutor(max_workers=options.jobs, thread_name_prefix="grade")
    try:
        futures: dict[Future[Grade], int] = {
            pool.submit(grade_line, e, s, options, stop): i
            for i, (e, s) in enumerate(zip(entries, names, strict=True))
        }
        for future in as_completed(futures):
            grades[futures[future]] = grade = future.result()
            on_done(grade)
    except BaseException:
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return [grades[i] for i in range(len(entries))]


def student_dict(grade: Grade) -> dict[str, Any]:
    """One line's entry of results.json."""
    entry = grade.entry
    return {
        "student": entry.student, "spec": entry.spec, "target": entry.target,
        "args": list(entry.args), "slug": grade.slug, "exit_code": grade.exit_code,
        "duration_s": grade.duration_s, "score": grade.score,
        "bonus_score": grade.bonus_score, "bonus": bonus_words(grade),
        "passed": grade.passed, "problem": grade.problem, "verdicts": grade.verdicts(),
        "report": reports.to_dict(grade.report) if grade.report else None,
    }


@cache
def batch_schema() -> dict[str, Any]:
    """The JSON Schema results.json validates against."""
    schema: dict[str, Any] = json.loads(resources.files("conformance").joinpath(
        "schemas/batch.schema.json").read_text(encoding="utf-8"))
    return schema


def validate(doc: dict[str, Any]) -> None:
    """jsonschema.ValidationError unless `doc` is results.json as the schema says."""
    # batch.schema.json refers to report.schema.json by its $id for each run's own report.
    registry: Registry = Registry().with_resource(
        "report.schema.json", Resource.from_contents(reports.report_schema()))
    jsonschema.Draft202012Validator(batch_schema(), registry=registry).validate(doc)


def write_results(grades: list[Grade], roster: Path, options: BatchOptions, started_at: str,
                  duration: float) -> Path:
    """Write results.json, validated first; returns its path."""
    doc = {
        "schema_version": SCHEMA_VERSION, "roster": str(roster), "seed": options.seed,
        "strict": options.strict, "rate": options.rate, "jobs": options.jobs,
        "started_at": started_at, "duration_s": round(duration, 3),
        "students": [student_dict(g) for g in grades],
    }
    validate(doc)
    path = options.out / "results.json"
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def _write_html(grades: list[Grade], out: Path, err: Console) -> None:
    try:
        from conformance.reports._html import write_batch
    except ModuleNotFoundError as exc:
        if exc.name != "conformance.reports._html":
            raise
        err.print("conformance: note: no HTML report in this install (conformance.reports._html "
                  "is missing)")
        return
    write_batch(grades, out)


def _musts(grade: Grade) -> str:
    total = sum(r.level == "MUST" and not r.bonus
                for r in load_spec(grade.entry.spec).requirements)
    if grade.report is None:
        return f"-/{total}"
    musts = [r for r in grade.report.results
             if r.requirement.level == "MUST" and not r.requirement.bonus]
    return f"{sum(r.verdict == 'pass' for r in musts)}/{len(musts)}"


def bonus_words(grade: Grade) -> str | None:
    """How the line did on its spec's bonus, in words (`attempted, 2/3 passed`, `not
    attempted`); None when the run judged no bonus requirement or gave no report."""
    bonus = grade.report.bonus() if grade.report is not None else None
    return bonus.words() if bonus is not None else None


def _bonus_cell(grade: Grade) -> str:
    """The summary table's bonus cell: the bonus score and whether it was attempted."""
    if grade.bonus_score is None:
        return ""
    bonus = grade.report.bonus() if grade.report is not None else None
    if bonus is None or bonus.status == "attempted":
        return f"{grade.bonus_score:.1f}"
    return f"{grade.bonus_score:.1f} ({bonus.status})"


def _result(grade: Grade) -> str:
    if grade.passed:
        return "[green]pass[/]"
    if grade.report is not None:
        return "[red]FAIL[/]" if grade.exit_code == 1 else "[red]broke[/]"
    return "[yellow]stopped[/]" if grade.exit_code is None else "[red]no report[/]"


def summary_table(grades: list[Grade]) -> Table:
    """The end-of-batch table: one row per line."""
    table = Table(show_header=True, header_style="bold")
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("student", "left"), ("spec", "left"), ("score", "right"), ("bonus", "right"),
        ("MUSTs", "right"), ("result", "left"), ("seconds", "right"))
    for name, justify in columns:
        table.add_column(name, justify=justify)
    for g in grades:
        table.add_row(escape(g.entry.student), g.entry.spec, f"{g.score:.1f}", _bonus_cell(g),
                      _musts(g), _result(g), f"{g.duration_s:.1f}")
    return table


def _clear(folder: Path, pattern: str) -> None:
    """Empty `folder` of an older batch's files and folders, so it holds this batch's only."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob(pattern):
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)


def run_batch(roster: Path, options: BatchOptions, console: Console, err: Console) -> int:
    """Grade the roster into options.out; the exit code (0 every line passed, else 1).

    RosterError when the roster or the output folder cannot be used.
    """
    entries = read_roster(roster)
    options = dataclasses.replace(options, hidden=(roster.resolve().parent,
                                                   options.out.resolve()))
    try:
        options.out.mkdir(parents=True, exist_ok=True)
        _clear(options.out / "junit", "*.xml")
        _clear(options.out / "logs", "*.log")
        _clear(options.out / "reports", "*")
    except OSError as exc:
        raise RosterError(f"--out: cannot use {str(options.out)!r}: {exc}") from None
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    t0 = time.monotonic()
    if err.is_terminal:
        with Progress(TextColumn("grading"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), TextColumn("[dim]{task.fields[last]}"),
                      console=err, transient=True) as progress:
            task = progress.add_task("grading", total=len(entries), last="")

            def done(g: Grade) -> None:
                progress.update(task, advance=1,
                                last=f"{escape(g.entry.student)} {g.entry.spec} {g.score:.1f}")
            grades = grade_all(entries, options, done)
    else:
        grades = grade_all(entries, options)
    duration = time.monotonic() - t0
    write_results(grades, roster, options, started_at, duration)
    reports.write_csv(grades, options.out / "results.csv")
    _write_html(grades, options.out, err)
    console.print(summary_table(grades))
    passed = sum(g.passed for g in grades)
    console.print(f"{passed} of {len(grades)} passed in {duration:.1f} s; results in "
                  f"{escape(str(options.out))}/ (results.json, results.csv, junit/, logs/, "
                  f"index.html)")
    return 0 if passed == len(grades) else 1
