"""The `conformance run` command line, built from the declared options (conformance/_options.py):
its flags, their parsing, and the checks that turn a parsed line into a `RunRequest`.

Rules: every option is a flag of `run`, the core's under "options of every spec" and each spec's
under its specs' names; a flag of an option the named spec does not have is a usage error, as is
a word that does not parse; what the command line did not give is not in the namespace, so
"given" is known (the re-run line and rosters use it). Usage errors are `UsageError`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from conformance._options import (
    Option,
    OptionError,
    RunOptions,
    SpecOptions,
    build,
    core_options,
    positive,
    positive_int,
)
from conformance._spec import Spec, SpecError, load_spec, spec_names
from conformance._target import TargetError, host_port


class UsageError(Exception):
    """The command line asks for something that cannot be done."""


class RaisingParser(argparse.ArgumentParser):
    """A parser whose errors are UsageError instead of a message and exit 2 (for rosters)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def word_type(parse_word: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse type from a parser of one word whose errors say why (OptionError)."""
    def parse(word: str) -> Any:
        try:
            return parse_word(word)
        except (OptionError, ValueError) as exc:
            raise argparse.ArgumentTypeError(str(exc) or f"cannot read {word!r}") from None
    return parse


def _add_option(group: argparse._ArgumentGroup, o: Option) -> None:
    # SUPPRESS: only what the command line gives lands in the namespace, so "given" is known.
    dest = f"option_{o.name}"
    if o.kind == "bool":
        group.add_argument(o.flag, dest=dest, action="store_true", default=argparse.SUPPRESS,
                           help=o.help)
        return
    help_text = o.help.replace("%(default)s", str(o.default))
    group.add_argument(o.flag, dest=dest, type=word_type(o.parse), metavar=o.metavar,
                       default=argparse.SUPPRESS, help=help_text,
                       action="append" if o.kind == "dict" else "store")


@dataclass(frozen=True)
class _Owned:
    """A declared option with the specs that have it."""

    option: Option
    specs: tuple[str, ...]


def spec_options() -> list[_Owned]:
    """Every option a spec declares, once per declaration, with the specs that have it."""
    found: dict[tuple[str, str], tuple[Option, list[str]]] = {}
    for name in spec_names():
        for o in load_spec(name).options:
            found.setdefault((o.owner, o.name), (o, []))[1].append(name)
    # One flag and one name, one declaration: a run's options are looked up by name.
    taken: dict[str, str] = {k: "" for o in core_options() for k in (o.flag, o.name)}
    out = []
    for (owner, _), (o, names) in found.items():
        for key in (o.flag, o.name):
            if taken.get(key, owner) != owner:
                raise SpecError(f"option {key} is declared twice: by {taken[key] or 'the core'} "
                                f"and by {owner}")
            taken[key] = owner
        out.append(_Owned(o, tuple(names)))
    return out


def add_run_arguments(run: argparse.ArgumentParser) -> None:
    """The arguments of `conformance run`: the spec, the target, the reports, every option."""
    run.add_argument("spec", help="the spec id (see `conformance list`), or 'all'")
    run.add_argument("--base-url", metavar="URL",
                     help="where the server under test answers (e.g. http://127.0.0.1:8888/)")
    run.add_argument("--command", metavar="CMD",
                     help="start the server with this command first ({port} becomes a free "
                          "port); stopped with Ctrl+C afterwards")
    run.add_argument("--only", nargs="+", action="extend", metavar="ID",
                     help="check only these requirements (and run what they need)")
    run.add_argument("--json", type=Path, metavar="FILE", help="write the JSON report here")
    run.add_argument("--junit", type=Path, metavar="FILE", help="write JUnit XML here")
    run.add_argument("--gradescope", type=Path, metavar="FILE",
                     help="write Gradescope's results.json here (a test per requirement)")
    run.add_argument("--gradescope-points", type=word_type(positive_int), default=100,
                     metavar="N", help="the points --gradescope shares out by weight "
                                       "(%(default)s)")
    run.add_argument("--startup-timeout", type=word_type(positive), default=15.0,
                     metavar="S", help="seconds a started server has to listen (%(default)s)")
    core = run.add_argument_group("options of every spec")
    for o in core_options():
        _add_option(core, o)
    groups: dict[tuple[str, ...], argparse._ArgumentGroup] = {}
    for owned in spec_options():
        if owned.specs not in groups:
            groups[owned.specs] = run.add_argument_group(f"options of {', '.join(owned.specs)}")
        _add_option(groups[owned.specs], owned.option)


@dataclass
class RunRequest:
    """A `conformance run` command line, checked: the specs, their options, and the rest."""

    specs: list[Spec]
    options: dict[str, RunOptions[SpecOptions]]  # spec name -> the options of its run
    base_url: str | None
    command: str | None
    only: set[str] | None
    json: Path | None
    junit: Path | None
    startup_timeout: float
    given: set[str]  # the names of the options the command line gave
    gradescope: Path | None = None  # Gradescope's results.json (reports/_gradescope.py)
    gradescope_points: int = 100


def _given_values(args: argparse.Namespace) -> dict[str, Any]:
    values = {k.removeprefix("option_"): v for k, v in vars(args).items()
              if k.startswith("option_")}
    for name, value in values.items():
        if isinstance(value, list):  # a repeated KEY=VALUE flag: later ones win
            values[name] = dict(value)
    return values


def resolve_run(args: argparse.Namespace) -> RunRequest:
    """Check a parsed `run` command line against the specs it names; UsageError when it asks
    for something that cannot be done."""
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
    values = _given_values(args)
    core = {o.name: o for o in core_options()}
    every = {**core, **{o.name: o for s in specs for o in s.options}}
    for name, value in values.items():
        if name not in every:
            flag = next(w.option.flag for w in spec_options() if w.option.name == name)
            which = specs[0].name if len(specs) == 1 else "any spec"
            theirs = ", ".join(o.flag for o in specs[0].options) if len(specs) == 1 else ""
            raise UsageError(f"{flag} is not an option of {which}"
                             + (f" (its options: {theirs})" if theirs else
                                " (it has no options of its own)" if len(specs) == 1 else ""))
        check = every[name].check_value
        problem = check(value) if check is not None else ""
        if problem:
            raise UsageError(f"{every[name].flag}: {problem}")
    for option, path in (("--json", args.json), ("--junit", args.junit),
                         ("--gradescope", args.gradescope)):
        if path is not None and not path.parent.is_dir():
            raise UsageError(f"{option}: folder {str(path.parent)!r} does not exist")
    core_values = {k: v for k, v in values.items() if k in core}
    per_spec: dict[str, RunOptions[SpecOptions]] = {}
    for spec in specs:
        own = {o.name for o in spec.options}
        try:
            spec_values = build(spec.options_class,
                                {k: v for k, v in values.items() if k in own})
        except OptionError as exc:  # options that cannot go together
            raise UsageError(str(exc)) from None
        per_spec[spec.name] = RunOptions(**core_values, spec=spec_values)
    return RunRequest(specs, per_spec, args.base_url, args.command,
                      set(args.only) if args.only else None, args.json, args.junit,
                      args.startup_timeout, set(values), args.gradescope,
                      args.gradescope_points)


def parse_run(words: list[str]) -> RunRequest:
    """`conformance run WORDS`, parsed and checked; UsageError with argparse's message or ours
    (SpecError for an unknown spec)."""
    parser = RaisingParser(prog="conformance run")
    add_run_arguments(parser)
    return resolve_run(parser.parse_args(words))
