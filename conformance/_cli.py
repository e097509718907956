"""The `conformance` command line: `list` the requirements, `run` a spec's suite against a target,
`batch` a class, `protocol` print a spec's default protocol description as a starting point (or
draft one from a server's OpenAPI document: conformance/_draft.py).

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

from conformance import __version__, reports
from conformance._arguments import (
    RunRequest,
    UsageError,
    add_run_arguments,
    resolve_run,
    word_type,
)
from conformance._isolation import Network, enter_own_network
from conformance._options import OptionError, parse_limit, positive, positive_int
from conformance._result import EXIT_FAILED, EXIT_OK, EXIT_USAGE, RunResult
from conformance._run import network_needed, run_spec
from conformance._spec import SpecError, load_spec, spec_names
from conformance._target import TargetError
from conformance.graders import _classroom as classroom
from conformance.graders import _gradescope as gradescope


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `conformance` command."""
    parser = argparse.ArgumentParser(
        prog="conformance",
        description="Check a student's server or program against an assignment's spec.",
    )
    parser.add_argument("--version", action="version", version=f"conformance {__version__}")
    sub = parser.add_subparsers(dest="action", required=True,
                                metavar="{list,run,batch,classroom,gradescope,protocol}")

    lst = sub.add_parser("list", help="list the specs, their requirements and options")
    lst.add_argument("spec", nargs="?", help="one spec (default: all)")

    run = sub.add_parser(
        "run", help="run a spec's suite against a target",
        description="Run SPEC's checks against --base-url, or a server started with --command; "
                    "with neither, against our reference. SPEC 'all' runs every spec against "
                    "our reference. `conformance list SPEC` shows a spec's own options.",
    )
    add_run_arguments(run)
    _add_batch_parser(sub)
    gradescope.add_parser(sub)
    classroom.add_parser(sub)
    protocol = sub.add_parser(
        "protocol", help="print a spec's protocol description (ours), to describe another",
        description="Print SPEC's default protocol description, with comments: how the suite "
                    "speaks to a server. For a server that speaks a protocol of its own, edit "
                    "a copy and give it to `conformance run SPEC --protocol FILE`.")
    protocol.add_argument("spec", help="the spec (one whose assignment leaves the protocol open)")
    drafted = protocol.add_mutually_exclusive_group()
    drafted.add_argument("--from-url", metavar="URL",
                         help="instead, draft a description of the server at URL (on this "
                              "machine) from the OpenAPI document it publishes at "
                              "URL/openapi.json (FastAPI does); each guess is marked")
    drafted.add_argument("--from-openapi", type=Path, metavar="FILE",
                         help="instead, draft a description from this OpenAPI document "
                              "(JSON or YAML); each guess is marked")
    protocol.add_argument("--timeout", type=word_type(positive), default=5.0, metavar="S",
                          help="seconds --from-url waits for the document (%(default)s)")
    return parser


def _add_batch_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    positive_number = word_type(positive)
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
    batch.add_argument("--jobs", type=word_type(positive_int), default=4, metavar="N",
                       help="targets graded at once (%(default)s)")
    batch.add_argument("--target-timeout", type=positive_number, default=600.0, metavar="S",
                       help="seconds one target's run may take before it is stopped "
                            "(%(default)s)")
    batch.add_argument("--rate", type=positive_number, default=20.0, metavar="R",
                       help="fuzzing requests per second per target, at most: each run's "
                            "--max-rate (%(default)s)")
    batch.add_argument("--seed", type=int, default=0, metavar="N",
                       help="every run's fuzzing seed, so a re-run gives the same verdicts "
                            "(%(default)s)")
    batch.add_argument("--strict", action="store_true", help="SHOULD requirements gate too")
    batch.add_argument("--timeout", type=positive_number, metavar="S",
                       help="passed to every run (default: run's own)")
    batch.add_argument("--fuzz-examples", type=word_type(positive_int), metavar="N",
                       help="passed to every run (default: run's own)")
    batch.add_argument("--fuzz-seconds", type=positive_number, metavar="S",
                       help="passed to every run (default: run's own)")
    batch.add_argument("--limit", type=_limit_word, action="append", default=[],
                       metavar="NAME=VALUE",
                       help="a sandbox limit for every line's target (a line's own --limit "
                            "wins), e.g. memory=512M; repeat for more")
    batch.add_argument("--no-sandbox", action="store_true",
                       help="start every target without the sandbox (limits still apply)")


def _limit_word(word: str) -> str:
    """A batch's `--limit NAME=VALUE`, checked as a run's is."""
    try:
        name, value = parse_limit(word)
    except OptionError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return f"{name}={value}"


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
            what = "a bonus" if r.bonus else r.level
            why = f"\n[dim]why {what}: {escape(r.rationale)}[/]" if r.rationale else ""
            table.add_row(r.id, r.label, escape(r.statement) + why, escape(r.source))
        console.print(table)
        if spec.options:
            console.print("[bold]options of this spec[/] (`conformance run "
                          f"{escape(spec.name)} --help` shows every option)")
            options = Table(box=None, show_header=False, pad_edge=False)
            options.add_column("flag", no_wrap=True)
            options.add_column("help")
            for o in spec.options:
                value = "" if o.kind == "bool" else f" {o.metavar}"
                options.add_row(escape(o.flag + value),
                                escape(o.help.replace("%(default)s", str(o.default))))
            console.print(options)
    return EXIT_OK


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


def _network(request: RunRequest, err: Console) -> Network:
    """A network of the run's own when every spec of the request may have one and this machine
    gives one (entered now, before any thread or socket); else the machine's, saying why."""
    for spec in request.specs:
        why = network_needed(spec, request.base_url, request.command,
                             request.options[spec.name])
        if why:
            return Network(False, why)
    refused = enter_own_network()
    if refused:
        err.print(f"conformance: note: no network of its own for this run ({escape(refused)}); "
                  f"its fixed ports are locked and its listeners checked instead")
        return Network(False, refused)
    return Network(True)


def _run(args: argparse.Namespace, console: Console) -> int:
    request = resolve_run(args)
    network = _network(request, Console(stderr=True, highlight=False))
    results: list[RunResult] = []
    # Request bodies too large for a reproducer's command line go next to the JSON report
    # (report.json: report.bodies/), or without one to a temporary folder the lines name.
    bodies = request.json.with_name(request.json.stem + ".bodies") if request.json else None
    with _progress(Console(stderr=True)) as progress:
        for spec in request.specs:
            try:
                result = run_spec(spec, base_url=request.base_url, command=request.command,
                                  options=request.options[spec.name], only=request.only,
                                  startup_timeout=request.startup_timeout,
                                  on_progress=progress(spec.name), network=network,
                                  bodies=bodies)
            except TargetError as exc:
                raise UsageError(str(exc)) from None
            results.append(result)
    for result in results:
        reports.render_terminal(result, console)
    if request.json:
        reports.write_json(results, request.json)
    if request.junit:
        reports.write_junit(results, request.junit)
    if request.gradescope:
        reports.write_gradescope(results, request.gradescope, request.gradescope_points)
    return max(r.exit_code for r in results) if results else EXIT_FAILED


def _batch_command(args: argparse.Namespace, console: Console, err: Console) -> int:
    # Here, not at the top: a run (the suite starts hundreds) need not import a class's grading.
    from conformance import batch

    options = batch.BatchOptions(
        out=args.out, jobs=args.jobs, target_timeout=args.target_timeout, rate=args.rate,
        seed=args.seed, strict=args.strict, timeout=args.timeout,
        fuzz_examples=args.fuzz_examples, fuzz_seconds=args.fuzz_seconds,
        limits=tuple(args.limit), no_sandbox=args.no_sandbox)
    try:
        return batch.run_batch(args.roster, options, console, err)
    except batch.RosterError as exc:
        raise UsageError(str(exc)) from None


def _protocol_command(name: str, args: argparse.Namespace | None = None) -> int:
    from conformance._protocol import ProtocolError, commented_default

    spec = load_spec(name)  # an unknown spec is a usage error naming the known ones
    if args is not None and (args.from_url or args.from_openapi):
        from conformance import _draft

        try:
            if args.from_url:
                document, source = _draft.fetch(args.from_url, args.timeout), args.from_url
            else:
                document, source = _draft.read(args.from_openapi), str(args.from_openapi)
            sys.stdout.write(_draft.draft(name, document, source))
        except _draft.DraftError as exc:
            raise UsageError(str(exc)) from None
        return EXIT_OK
    try:
        text = commented_default(name)
    except ProtocolError as exc:
        from conformance._client_run import OwnServerOptions

        if issubclass(spec.options_class, OwnServerOptions):
            why = ("its client speaks the protocol of the student's own server, which the "
                   "suite judges it through: give that server with --server-command COMMAND "
                   "(or --server-url URL)")
        else:
            why = ("the suite speaks no described protocol to it: the assignment fixes the "
                   "protocol, or the suite finds it by itself (`conformance list "
                   f"{name}` says how)")
        raise UsageError(f"{exc}: {why}") from None
    sys.stdout.write(text)  # as is: rich would re-wrap the comments
    return EXIT_OK


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
        if args.action == "classroom":
            return classroom.command(args)
        if args.action == "protocol":
            return _protocol_command(args.spec, args)
        if args.action == "gradescope":
            return gradescope.command(args)
        return _run(args, console)
    except (UsageError, SpecError, gradescope.GraderError) as exc:
        err.print(f"conformance: error: {escape(str(exc))}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        err.print("conformance: interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
