"""Run options as declarations: the core's (`RunOptions`) and those each spec declares for
itself (a `SpecOptions` dataclass in its package), from which the command line, its usage
errors, the re-run line, the report's `options`, roster checks, the schema of
`reference.options` and the docs are all built.

Rules: an option is a field of a frozen dataclass made with `option()`; its flag is its name
with dashes (`fixture_host` -> `--fixture-host`) unless it says otherwise; its type is the
field's annotation, one of `str`, `int`, `float`, `bool` (a switch), `X | None` of those, or
`dict[str, str]` (a repeated `KEY=VALUE` flag); a word that does not parse is a usage error
naming the flag. A spec that extends another declares options deriving from the other's, so
the other's checks read theirs.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, get_args, get_origin

from conformance._sandbox import LimitError, Limits

_META = "conformance.option"


class OptionError(ValueError):
    """A value of an option cannot be taken (the message says why, without the flag's name)."""


@dataclass(frozen=True)
class _Info:
    help: str
    metavar: str
    parse: Callable[[str], Any] | None
    check: Callable[[Any], str] | None
    roster: bool
    flag: str
    outside: Callable[[Any], bool] | None
    written: bool


def option(default: Any = None, *, help: str, metavar: str = "",
           parse: Callable[[str], Any] | None = None, check: Callable[[Any], str] | None = None,
           roster: bool = True, flag: str = "",
           outside: Callable[[Any], bool] | None = None, written: bool = False) -> Any:
    """A declared option: a dataclass field with its default and how the command line shows it.

    `parse` turns one command-line word into a value (raising OptionError or ValueError with the
    reason); by default the annotation's type does. `check` returns '' for a usable value or
    why not (e.g. a folder that does not exist). `roster=False` keeps it out of a roster's args.
    `flag` replaces the one made from the name (as `--service` for a dict named `services`).
    `outside(value)` says whether a value names something outside the run (a host or service
    the grader started, a machine elsewhere), which a network of the run's own would cut off.
    `written` says the value is a folder the target writes to (a writer's tables), which its
    sandbox must let it.
    `help` may use %(default)s.
    """
    info = _Info(help, metavar, parse, check, roster, flag, outside, written)
    if isinstance(default, dict):
        frozen = dict(default)
        return field(default_factory=lambda: dict(frozen), metadata={_META: info})
    return field(default=default, metadata={_META: info})


@dataclass(frozen=True)
class Option:
    """One declared option, resolved: where it comes from and how it is read and written."""

    name: str
    kind: str  # "str" | "int" | "float" | "bool" | "dict"
    optional: bool  # None is a value (unset)
    default: Any
    help: str
    metavar: str
    roster: bool
    owner: str  # the declaring class's qualified name, for messages and docs
    own_flag: str = ""
    parse_word: Callable[[str], Any] | None = field(default=None, compare=False)
    check_value: Callable[[Any], str] | None = field(default=None, compare=False)
    outside: Callable[[Any], bool] | None = field(default=None, compare=False)
    written: bool = False  # a folder the target writes to (conformance/_sandbox.py)

    def reaches_outside(self, value: Any) -> bool:
        """Whether `value` names something outside the run, which it must reach."""
        return self.outside is not None and value != self.default and self.outside(value)

    @property
    def flag(self) -> str:
        """The command-line flag, e.g. `--fixture-host`."""
        return self.own_flag or "--" + self.name.replace("_", "-")

    @property
    def type_name(self) -> str:
        """The value's type as docs show it."""
        text = {"str": "text", "int": "integer", "float": "number", "bool": "switch",
                "dict": "KEY=VALUE, repeated"}[self.kind]
        return f"{text}, optional" if self.optional and self.kind != "bool" else text

    def parse(self, word: str) -> Any:
        """One command-line word as a value; OptionError saying why it is not one."""
        try:
            if self.parse_word is not None:
                return self.parse_word(word)
            if self.kind == "int":
                return _number(int, word)
            if self.kind == "float":
                return _number(float, word)
            if self.kind == "dict":
                key, sep, value = word.partition("=")
                if not sep or not key:
                    raise OptionError(f"{word!r} is not KEY=VALUE")
                return key, value
            return word
        except OptionError:
            raise
        except ValueError as exc:
            raise OptionError(str(exc) or f"cannot read {word!r}") from None

    def json_schema(self) -> dict[str, Any]:
        """The JSON Schema of a value (for `reference.options` and reports)."""
        schemas: dict[str, dict[str, Any]] = {
            "str": {"type": "string"}, "int": {"type": "integer"}, "float": {"type": "number"},
            "bool": {"type": "boolean"},
            "dict": {"type": "object", "additionalProperties": {"type": "string"}},
        }
        base = schemas[self.kind]
        if self.optional:
            return {"anyOf": [base, {"type": "null"}]}
        return base

    def words(self, value: Any) -> list[str]:
        """The command-line words that give `value` (for a re-run line)."""
        if self.kind == "bool":
            return [self.flag] if value else []
        if value is None:
            return []
        if self.kind == "dict":
            return [w for k, v in value.items() for w in (self.flag, f"{k}={v}")]
        return [self.flag, f"{value:g}" if isinstance(value, float) else str(value)]

    def to_json(self, value: Any) -> Any:
        """The value as JSON data."""
        return dict(value) if self.kind == "dict" else value


_KINDS: dict[Any, str] = {str: "str", int: "int", float: "float", bool: "bool"}


def _kind(annotation: Any, where: str) -> tuple[str, bool]:
    origin = get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1 and len(get_args(annotation)) == 2:
            kind, _ = _kind(args[0], where)
            return kind, True
    if origin is dict and get_args(annotation) == (str, str):
        return "dict", False
    if annotation in _KINDS:
        return _KINDS[annotation], False
    raise TypeError(f"{where}: option type {annotation!r} is not one of str, int, float, bool, "
                    f"X | None or dict[str, str]")


_DECLARED: dict[type, tuple[Option, ...]] = {}


def declared(cls: type) -> tuple[Option, ...]:
    """The options a dataclass declares (with those it inherits), in declaration order."""
    if cls not in _DECLARED:
        _DECLARED[cls] = _declare(cls)
    return _DECLARED[cls]


def _declare(cls: type) -> tuple[Option, ...]:
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        info = f.metadata.get(_META)
        if info is None:
            continue
        # The class that declares it, not one that inherits it: one option, one owner.
        owner = next(c for c in reversed(cls.__mro__)
                     if f.name in inspect.get_annotations(c))
        where = f"{owner.__module__}.{owner.__qualname__}.{f.name}"
        kind, optional = _kind(hints[f.name], where)
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            raise TypeError(f"{where}: an option needs a default")
        out.append(Option(f.name, kind, optional, default, info.help, info.metavar or
                          f.name.upper(), info.roster, where.rsplit(".", 1)[0], info.flag,
                          info.parse, info.check, info.outside, info.written))
    return tuple(out)


def _number(kind: Callable[[str], Any], text: str) -> Any:
    try:
        return kind(text)
    except ValueError:
        raise OptionError(f"not a {'whole ' if kind is int else ''}number: {text!r}") from None


def existing_folder(value: str | None) -> str:
    """'' for a folder that exists (or no value), else why not."""
    import os

    if value is not None and not os.path.isdir(value):
        return f"folder {value!r} does not exist"
    return ""


def positive(text: str) -> float:
    """A number above 0 (as a float)."""
    value: float = _number(float, text)
    if not value > 0:
        raise OptionError(f"must be above 0: {text!r}")
    return value


def positive_int(text: str) -> int:
    """A whole number above 0."""
    value: int = _number(int, text)
    if value <= 0:
        raise OptionError(f"must be above 0: {text!r}")
    return value


@dataclass(frozen=True)
class SpecOptions:
    """The base of every spec's declared options; a spec that declares none uses it as is."""

    def program_port(self) -> int | None:
        """For a program that talks to a server the suite plays: the port it expects that
        server on, when an option of the run fixed it (None: the command or spec decides)."""
        return None

    def server_running(self) -> bool:
        """For such a program: whether its server runs already, outside the run (an option
        gave its URL), so that something listening on the program's port is expected."""
        return False


S = TypeVar("S", bound=SpecOptions)


def parse_limit(word: str) -> tuple[str, str]:
    """One `--limit NAME=VALUE` word, checked against the sandbox's limits."""
    name, sep, value = word.partition("=")
    if not sep or not name:
        raise OptionError(f"{word!r} is not NAME=VALUE")
    try:
        Limits().changed({name: value})
    except LimitError as exc:
        raise OptionError(str(exc)) from None
    return name.replace("-", "_"), value


@dataclass(frozen=True)
class RunOptions(Generic[S]):
    """What checks may read about the run: the core's limits, seed and fuzzing budget, and the
    spec's own options in `spec` (its SpecOptions dataclass)."""

    timeout: float = option(5.0, parse=positive, metavar="S",
                            help="seconds one request may take, all told (%(default)s)")
    seed: int = option(0, metavar="N", roster=False,
                       help="fuzzing seed; the same seed sends the same requests (%(default)s)")
    fuzz_examples: int = option(100, parse=positive_int, metavar="N",
                                help="generated requests per API operation, at most "
                                     "(%(default)s)")
    fuzz_seconds: float = option(20.0, parse=positive, metavar="S",
                                 help="time for fuzzing, at most (%(default)s)")
    max_rate: float | None = option(None, parse=positive, metavar="R", roster=False,
                                    help="fuzzing sends at most R requests a second (default: "
                                         "no pacing), to stay polite to a server others use too")
    strict: bool = option(False, help="SHOULD requirements gate too")
    workdir: str | None = option(
        None, metavar="DIR", check=existing_folder,
        help="the folder a started target runs in (default: a new empty folder of the run's "
             "own), e.g. the student's, for a command such as `uvicorn main:app`")
    shared_network: bool = option(
        False, help="run the target on this machine's network rather than in a network of "
                    "its own (for a target that needs a service started outside the run); "
                    "its fixed ports are then locked and its listener checked")
    limit: dict[str, str] = option(
        {}, parse=parse_limit, metavar="NAME=VALUE", flag="--limit",
        help="a sandbox limit for a started target, over the spec's and the defaults "
             "(memory=1024M, processes=256, open_files=1024, file_size=1024M, cpu=600); "
             "repeat for more")
    no_sandbox: bool = option(
        False, help="start the target without the sandbox (bubblewrap): it then sees the "
                    "grader's files and runs as the grader's user; the limits still apply")
    spec: S = field(default_factory=SpecOptions)  # type: ignore[assignment]  # S's own default


def core_options() -> tuple[Option, ...]:
    """The options every spec has."""
    return declared(RunOptions)


def build(cls: type[S], values: Mapping[str, Any]) -> S:
    """An instance of the options class `cls` from `values` (name -> value; others default)."""
    names = {o.name for o in declared(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise OptionError(f"no option {', '.join(unknown)}")
    return cls(**values)


def values_of(options: object) -> dict[str, Any]:
    """The declared options of an options instance, name -> value."""
    return {o.name: getattr(options, o.name) for o in declared(type(options))}


def given(options: object) -> dict[str, Any]:
    """The declared options whose value is not the default, name -> value."""
    return {o.name: getattr(options, o.name) for o in declared(type(options))
            if getattr(options, o.name) != o.default}
