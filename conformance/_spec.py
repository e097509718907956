"""Behaviour specs: loading `openapi/SPEC.requirements.yaml` into typed, validated objects.

Rules: a spec file is data checked against `schemas/behaviour.schema.json`, and its
`reference.options` against the options its suite declares (conformance/_options.py); ids are
unique; every `needs` names a requirement of the same spec and the needs form no cycle; a
requirement that is not a bonus never needs one (it would go unchecked whenever the bonus was
not attempted). A file that breaks a rule raises `SpecError` naming the file and the key, never
loads half.

A requirement marked `bonus: true` belongs to a bonus part of the assignment: it keeps the level
it has within that part, but never gates a run and is reported and scored apart. MAY and bonus
requirements are optional: their absence is "not implemented", never a failure.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import jsonschema
import yaml

from conformance._options import Option, SpecOptions, declared
from conformance._suites import SuiteError, options_class

Level = Literal["MUST", "SHOULD", "MAY"]
LEVELS: tuple[Level, ...] = ("MUST", "SHOULD", "MAY")
_SUFFIX = ".requirements.yaml"


class SpecError(Exception):
    """A behaviour spec is missing, unknown or invalid."""


@dataclass(frozen=True)
class Requirement:
    """One numbered requirement: what is checked, how strongly, and where the text says so."""

    id: str
    level: Level
    statement: str
    source: str
    original: str = ""
    rationale: str = ""
    needs: tuple[str, ...] = ()
    weight: float = 1.0
    # Part of a bonus of the assignment: `level` is its level within the bonus, but it never
    # gates, and is counted and scored apart from the rest.
    bonus: bool = False

    @property
    def optional(self) -> bool:
        """Whether an implementation may leave it out: a MAY, or part of a bonus. Only an
        optional requirement can be "not implemented"; a required one that is absent fails."""
        return self.bonus or self.level == "MAY"

    @property
    def label(self) -> str:
        """Its level as reports show it: `MUST`, or `MUST, bonus` for a bonus's."""
        return f"{self.level}, bonus" if self.bonus else self.level


@dataclass(frozen=True)
class Spec:
    """One assignment's behaviour spec."""

    name: str
    title: str
    kind: str
    seed: str
    section: str
    requirements: tuple[Requirement, ...]
    reference_command: tuple[str, ...]
    reference_url: str = ""
    default_url: str = ""
    openapi: Path | None = None
    given: str = ""
    reference_options: dict[str, Any] = field(default_factory=dict, compare=False)
    extends: str = ""
    chain: tuple[str, ...] = ()  # the specs it is made of, bases first, itself last
    options_class: type[SpecOptions] = SpecOptions
    limits: dict[str, str] = field(default_factory=dict, compare=False)  # the sandbox's
    by_id: dict[str, Requirement] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self.by_id.update({r.id: r for r in self.requirements})

    def closure(self, ids: set[str]) -> set[str]:
        """The given ids with everything they need, transitively."""
        todo, seen = list(ids), set()
        while todo:
            rid = todo.pop()
            if rid not in seen:
                seen.add(rid)
                todo.extend(self.by_id[rid].needs)
        return seen

    @property
    def options(self) -> tuple[Option, ...]:
        """The options this spec's suite declares (those of a spec it extends included)."""
        return declared(self.options_class)


def openapi_dir() -> Path:
    """Where the spec files are: the repository's `openapi/`, or the copy inside the wheel."""
    packaged = Path(str(resources.files("conformance"))) / "_openapi"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "openapi"


@cache
def _validator() -> jsonschema.Draft202012Validator:
    text = resources.files("conformance").joinpath("schemas/behaviour.schema.json").read_text()
    return jsonschema.Draft202012Validator(
        json.loads(text), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def _options_validator(cls: type[SpecOptions]) -> jsonschema.Draft202012Validator:
    """A validator of `reference.options` for a spec whose suite declares `cls`."""
    schema = {"type": "object", "additionalProperties": False,
              "properties": {o.name: o.json_schema() for o in declared(cls)}}
    return jsonschema.Draft202012Validator(schema)


def _validate(validator: jsonschema.Draft202012Validator, data: Any, where: str) -> None:
    errors = sorted(validator.iter_errors(data), key=lambda e: (list(e.absolute_path), e.message))
    if errors:
        first = errors[0]
        loc = "/".join(str(p) for p in first.absolute_path) or "(top)"
        message = first.message
        if first.validator == "additionalProperties" and "reference/options" in where:
            message += " (not an option of this spec's suite)"
        raise SpecError(f"{where}: {loc}: {message}")


def spec_names() -> list[str]:
    """Every spec that has a behaviour spec file, sorted."""
    return sorted(p.name[: -len(_SUFFIX)] for p in openapi_dir().glob(f"*{_SUFFIX}"))


def _check_needs(name: str, reqs: list[Requirement]) -> None:
    """SpecError (its message starting with `name`) unless ids and needs are consistent."""
    ids = [r.id for r in reqs]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise SpecError(f"{name}: duplicate requirement ids {dupes}")
    known = set(ids)
    graph = {r.id: r.needs for r in reqs}
    for r in reqs:
        unknown = [n for n in r.needs if n not in known]
        if unknown:
            raise SpecError(f"{name}: {r.id} needs unknown ids {unknown}")
    levels = {r.id: r.level for r in reqs}
    for r in reqs:
        # A MUST left unchecked because a SHOULD failed would let a run pass unverified.
        weaker = [n for n in r.needs if r.level == "MUST" and levels[n] != "MUST"]
        if weaker:
            raise SpecError(f"{name}: MUST {r.id} needs {weaker}, which are not MUST")
    bonus = {r.id for r in reqs if r.bonus}
    for r in reqs:
        # A bonus left out leaves what needs it unchecked: only another bonus may need one.
        on_bonus = [n for n in r.needs if n in bonus and not r.bonus]
        if on_bonus:
            raise SpecError(f"{name}: {r.id} needs {on_bonus}, which are bonus, and is not")
    state: dict[str, int] = {}

    def visit(rid: str, path: tuple[str, ...]) -> None:
        if state.get(rid) == 2:
            return
        if state.get(rid) == 1:
            raise SpecError(f"{name}: needs form a cycle: {' -> '.join((*path, rid))}")
        state[rid] = 1
        for n in graph[rid]:
            visit(n, (*path, rid))
        state[rid] = 2

    for rid in graph:
        visit(rid, ())


def parse_spec(data: Any, *, base: Path, where: str) -> Spec:
    """Validate loaded YAML data and build a `Spec` (its openapi file relative to `base`)."""
    _validate(_validator(), data, where)
    try:
        parent = load_spec(data["extends"]) if "extends" in data else None
    except SpecError as exc:
        raise SpecError(f"{where}: extends: {exc}") from None
    inherited = list(parent.requirements) if parent else []
    try:
        options = options_class(data["spec"], data.get("extends", ""))
    except SuiteError as exc:
        raise SpecError(f"{where}: {exc}") from None
    _validate(_options_validator(options), data["reference"].get("options", {}),
              f"{where}: reference/options")
    reqs = inherited + [
        Requirement(
            id=r["id"], level=r["level"], statement=r["statement"], source=r["source"],
            original=r.get("original", ""), rationale=r.get("rationale", ""),
            needs=tuple(r.get("needs", ())), weight=float(r.get("weight", 1.0)),
            bonus=bool(r.get("bonus", False)),
        )
        for r in data["requirements"]
    ]
    _check_needs(where, reqs)
    openapi = base / data["openapi"] if "openapi" in data else None
    if openapi is not None and not openapi.is_file():
        raise SpecError(f"{where}: openapi file {openapi.name} does not exist")
    return Spec(
        name=data["spec"], title=data["title"], kind=data["kind"],
        seed=data["assignment"]["seed"], section=data["assignment"]["section"],
        requirements=tuple(reqs), reference_command=tuple(data["reference"]["command"]),
        reference_url=data["reference"].get("url", ""), default_url=data.get("default_url", ""),
        openapi=openapi, given=data.get("given", ""),
        reference_options=dict(data["reference"].get("options", {})),
        extends=data.get("extends", ""), chain=(*(parent.chain if parent else ()), data["spec"]),
        options_class=options,
        limits={**(parent.limits if parent else {}),
                **{k: str(v) for k, v in data.get("limits", {}).items()}},
    )


@cache
def load_spec(name: str) -> Spec:
    """Load and validate the behaviour spec called `name`."""
    path = openapi_dir() / f"{name}{_SUFFIX}"
    if not path.is_file():
        raise SpecError(f"unknown spec {name!r}; known specs: {', '.join(spec_names()) or 'none'}")
    try:
        # LibYAML's loader where there is one: every command reads every spec (their options
        # make the command line), and the pure-Python loader takes four times as long.
        data = yaml.load(path.read_text(encoding="utf-8"),
                         Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        raise SpecError(f"{path.name}: not valid YAML: {exc}") from exc
    spec = parse_spec(data, base=path.parent, where=path.name)
    if spec.name != name:
        raise SpecError(f"{path.name}: says spec {spec.name!r}, expected {name!r}")
    return spec
