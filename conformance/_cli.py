"""The `conformance` command line: `list` the requirements, `run` a spec's suite against a target.

Rules: exit 0 when every gating requirement passes, 1 when one fails or goes unchecked (an
unreachable target fails), 2 for a usage error (argparse's own code, unknown spec or id, bad URL,
a target that cannot be set up), 3 when the suite itself breaks. Reports go to the terminal and,
when asked, to JSON and JUnit files.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from conformance import __version__, _batch, _report_json, _report_junit, _report_terminal
from conformance._plugin import RunOptions
from conformance._result import EXIT_FAILED, EXIT_OK, EXIT_USAGE, RunResult
from conformance._run import run_spec
from conformance._spec import Spec, SpecError, load_spec, spec_names
from conformance._target import TargetError, host_port


class UsageError(Exception):
    """The command line asks for something that cannot be done."""


def _positive(kind: type[float] | type[int]) -> Callable[[str], float | int]:
    def parse(text: str) -> float | int:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be above 0: {text!r}")
        return value
    return parse


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `conformance` command."""
    parser = argparse.ArgumentParser(
        prog="conformance",
        description="Check a student's server or program against an assignment's spec.",
    )
    parser.add_argument("--version", action="version", version=f"conformance {__version__}")
    sub = parser.add_subparsers(dest="action", required=True, metavar="{list,run,batch}")

    lst = sub.add_parser("list", help="list the specs and their requirements")
    lst.add_argument("spec", nargs="?", help="one spec (default: all)")

    run = sub.add_parser(
        "run", help="run a spec's suite against a target",
        description="Run SPEC's checks against --base-url, or a server started with --command; "
                    "with neither, against our reference. SPEC 'all' runs every spec against "
                    "our reference.",
    )
    run.add_argument("spec", help="the spec id (see `conformance list`), or 'all'")
    run.add_argument("--base-url", metavar="URL",
                     help="where the server under test answers (e.g. http://127.0.0.1:8888/)")
    run.add_argument("--command", metavar="CMD",
                     help="start the server with this command first ({port} becomes a free "
                          "port); stopped with Ctrl+C afterwards")
    run.add_argument("--strict", action="store_true", help="SHOULD requirements gate too")
    run.add_argument("--only", nargs="+", action="extend", metavar="ID",
                     help="check only these requirements (and run what they need)")
    run.add_argument("--json", type=Path, metavar="FILE", help="write the JSON report here")
    run.add_argument("--junit", type=Path, metavar="FILE", help="write JUnit XML here")
    run.add_argument("--timeout", type=_positive(float), default=5.0, metavar="S",
                     help="seconds one request may take, all told (%(default)s)")
    run.add_argument("--seed", type=int, default=0, metavar="N",
                     help="fuzzing seed; the same seed sends the same requests (%(default)s)")
    run.add_argument("--fuzz-examples", type=_positive(int), default=100, metavar="N",
                     help="generated requests per API operation, at most (%(default)s)")
    run.add_argument("--fuzz-seconds", type=_positive(float), default=20.0, metavar="S",
                     help="time for fuzzing, at most (%(default)s)")
    run.add_argument("--server-port", type=_positive(int), metavar="N",
                     help="for a program: the local port where it expects its server, which "
                          "the suite plays (default: the spec's, 8888)")
    run.add_argument("--fixture-host", default="127.0.0.1", metavar="HOST",
                     help="the address of this machine put into the URLs a crawler fetches, "
                          "for a server under test that runs elsewhere (%(default)s)")
    run.add_argument("--cache-timeout", type=_positive(float), metavar="S",
                     help="for a caching crawler: the seconds its cache keeps a code, so the "
                          "suite can check that an entry expires (unset: not checked)")
    run.add_argument("--redis-url", metavar="URL",
                     help="for a caching crawler: its Redis, where the suite looks for the "
                          "domain counters (read only)")
    run.add_argument("--time-scale", type=_positive(float), default=1.0, metavar="F",
                     help="for a task server started with its delays multiplied by F (our "
                          "reference's --time-scale): expect them so (%(default)s: the real "
                          "delays)")
    run.add_argument("--max-rate", type=_positive(float), metavar="R",
                     help="fuzzing sends at most R requests a second (default: no pacing), to "
                          "stay polite to a server others use too")
    run.add_argument("--service", action="append", default=[], metavar="ROLE=URL",
                     help="for a spec of several services (pipeline): where one of them "
                          "answers, e.g. writer=http://127.0.0.1:5003/ (default: the base "
                          "URL's host on the role's port)")
    run.add_argument("--output-dir", type=Path, metavar="DIR",
                     help="for a pipeline whose writer does not serve its tables: the folder "
                          "it writes them in (read only)")
    run.add_argument("--startup-timeout", type=_positive(float), default=15.0, metavar="S",
                     help="seconds a started server has to listen (%(default)s)")
    _add_batch_parser(sub)
    return parser


def _add_batch_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    batch = sub.add_parser(
        "batch", help="grade a class: one run per roster line, into a folder",
        description="Run `conformance run` for every line of ROSTER, a CSV file with the "
                    "columns student, spec, target (a base URL, or a command; {port} becomes a "
                    "free port) and optionally args (more `conformance run` options). Writes "
                    "results.json, results.csv, junit/ and index.html into --out.",
    )
    batch.add_argument("roster", type=Path, help="the roster CSV file")
    batch.add_argument("--out", type=Path, default=Path("grading"), metavar="DIR",
                       help="where the results go, created if need be (%(default)s)")
    batch.add_argument("--jobs", type=_positive(int), default=4, metavar="N",
                       help="targets graded at once (%(default)s)")
    batch.add_argument("--target-timeout", type=_positive(float), default=600.0, metavar="S",
                       help="seconds one target's run may take before it is stopped "
                            "(%(default)s)")
    batch.add_argument("--rate", type=_positive(float), default=20.0, metavar="R",
                       help="fuzzing requests per second per target, at most: each run's "
                            "--max-rate (%(default)s)")
    batch.add_argument("--seed", type=int, default=0, metavar="N",
                       help="every run's fuzzing seed, so a re-run gives the same verdicts "
                            "(%(default)s)")
    batch.add_argument("--strict", action="store_true", help="SHOULD requirements gate too")
    batch.add_argument("--timeout", type=_positive(float), metavar="S",
                       help="passed to every run (default: run's own)")
    batch.add_argument("--fuzz-examples", type=_positive(int), metavar="N",
                       help="passed to every run (default: run's own)")
    batch.add_argument("--fuzz-seconds", type=_positive(float), metavar="S",
                       help="passed to every run (default: run's own)")


def _list(args: argparse.Namespace, console: Console) -> int:
    names = [args.spec] if args.spec else spec_names()
    for name in names:
        spec = load_spec(name)
        console.rule(f"[bold]{escape(spec.name)}[/] - {escape(spec.title)} "
                     f"(seed {spec.seed}, {escape(spec.section)}; {spec.kind})")
        table = Table(box=None, show_header=True, header_style="bold", pad_edge=False)
        for column in ("id", "level", "requirement", "from the assignment"):
            table.add_column(column, no_wrap=column in ("id", "level"))
        for r in spec.requirements:
            why = f"\n[dim]why {r.level}: {escape(r.rationale)}[/]" if r.rationale else ""
            table.add_row(r.id, r.level, escape(r.statement) + why, escape(r.source))
        console.print(table)
    return EXIT_OK


def _check_args(args: argparse.Namespace) -> list[Spec]:
    if args.spec == "all":
        if args.base_url or args.command:
            raise UsageError("'all' runs our references; name one spec to check a target")
        if args.only:
            raise UsageError("--only needs one spec, not 'all'")
        specs = [load_spec(n) for n in spec_names()]
    else:
        specs = [load_spec(args.spec)]
    if args.base_url:
        try:
            host_port(args.base_url)
        except TargetError as exc:
            raise UsageError(f"--base-url: {exc}") from None
    if args.only:
        unknown = sorted(set(args.only) - set(specs[0].by_id))
        if unknown:
            raise UsageError(f"--only: {specs[0].name} has no requirement {', '.join(unknown)}")
    for item in args.service:
        role, sep, url = item.partition("=")
        if not sep or not role:
            raise UsageError(f"--service: {item!r} is not ROLE=URL")
        try:
            host_port(url)
        except TargetError as exc:
            raise UsageError(f"--service {role}: {exc}") from None
    if args.output_dir is not None and not args.output_dir.is_dir():
        raise UsageError(f"--output-dir: folder {str(args.output_dir)!r} does not exist")
    for option, path in (("--json", args.json), ("--junit", args.junit)):
        if path is not None and not path.parent.is_dir():
            raise UsageError(f"{option}: folder {str(path.parent)!r} does not exist")
    return specs


@contextmanager
def _progress(console: Console) -> Iterator[Callable[[str], Callable[[int, int, str], None]]]:
    """A transient progress bar on a terminal; nothing when output is redirected."""
    if not console.is_terminal:
        yield lambda name: (lambda done, total, label: None)
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("[dim]{task.fields[check]}"), console=console,
                  transient=True) as progress:
        def for_spec(name: str) -> Callable[[int, int, str], None]:
            task = progress.add_task(name, total=None, check="")

            def update(done: int, total: int, label: str) -> None:
                progress.update(task, completed=done, total=total, check=label)
            return update
        yield for_spec


def _run(args: argparse.Namespace, console: Console) -> int:
    specs = _check_args(args)
    options = RunOptions(timeout=args.timeout, seed=args.seed, fuzz_examples=args.fuzz_examples,
                         fuzz_seconds=args.fuzz_seconds, strict=args.strict,
                         server_port=args.server_port, fixture_host=args.fixture_host,
                         cache_timeout=args.cache_timeout, redis_url=args.redis_url,
                         time_scale=args.time_scale,
                         services=dict(s.partition("=")[::2] for s in args.service),
                         output_dir=str(args.output_dir) if args.output_dir else None,
                         max_rate=args.max_rate)
    results: list[RunResult] = []
    with _progress(Console(stderr=True)) as progress:
        for spec in specs:
            try:
                result = run_spec(spec, base_url=args.base_url, command=args.command,
                                  options=options, only=set(args.only) if args.only else None,
                                  startup_timeout=args.startup_timeout,
                                  on_progress=progress(spec.name))
            except TargetError as exc:
                raise UsageError(str(exc)) from None
            results.append(result)
    for result in results:
        _report_terminal.render(result, console)
    if args.json:
        _report_json.write(results, args.json)
    if args.junit:
        _report_junit.write(results, args.junit)
    return max(r.exit_code for r in results) if results else EXIT_FAILED


def _batch_command(args: argparse.Namespace, console: Console, err: Console) -> int:
    options = _batch.BatchOptions(
        out=args.out, jobs=args.jobs, target_timeout=args.target_timeout, rate=args.rate,
        seed=args.seed, strict=args.strict, timeout=args.timeout,
        fuzz_examples=args.fuzz_examples, fuzz_seconds=args.fuzz_seconds)
    try:
        return _batch.run_batch(args.roster, options, console, err)
    except _batch.RosterError as exc:
        raise UsageError(str(exc)) from None


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `conformance` command; returns the exit code."""
    args = build_parser().parse_args(argv)
    console = Console(highlight=False)
    err = Console(stderr=True, highlight=False)
    try:
        if args.action == "list":
            return _list(args, console)
        if args.action == "batch":
            return _batch_command(args, console, err)
        return _run(args, console)
    except (UsageError, SpecError) as exc:
        err.print(f"conformance: error: {escape(str(exc))}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        err.print("conformance: interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
