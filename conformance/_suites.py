"""Where a spec's suite lives: its package under `conformance/specs/`, found by the spec's name
alone, so the runner names no spec.

Rules: spec `crawl-client` is package `conformance.specs.crawl_client`; its `checks.py` is the
pytest module of its checks, its optional `fixtures.py` a pytest plugin of fixtures, and its
`__init__` may declare `Options` (a `SpecOptions` dataclass). A spec that extends another runs
the other's checks first and gets its fixtures, and its `Options` derive from the other's (so
the other's checks read theirs). Anything else is a `SpecError` naming the package.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from conformance._options import SpecOptions, declared

PACKAGE = "conformance.specs"


class SuiteError(Exception):
    """A spec's package is missing or breaks a rule of the layout."""


def package_name(spec_name: str) -> str:
    """The import name of a spec's package."""
    return f"{PACKAGE}.{spec_name.replace('-', '_')}"


@cache
def options_class(spec_name: str, extends: str = "") -> type[SpecOptions]:
    """The options class a spec declares (SpecOptions when it declares none)."""
    name = package_name(spec_name)
    try:
        package = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and name.startswith(exc.name):
            raise SuiteError(f"spec {spec_name!r} has no suite: no package {name} "
                             f"(conformance/specs/{spec_name.replace('-', '_')}/)") from None
        raise
    base = options_class(extends) if extends else SpecOptions
    cls = getattr(package, "Options", base)
    if not (isinstance(cls, type) and issubclass(cls, base) and dataclasses.is_dataclass(cls)):
        raise SuiteError(f"{name}.Options must be a dataclass deriving {base.__module__}."
                         f"{base.__qualname__}")
    try:
        declared(cls)
    except TypeError as exc:  # an option of a type the command line cannot take
        raise SuiteError(str(exc)) from None
    return cls


@dataclass(frozen=True)
class Suite:
    """What pytest is given for one spec: the checks' files and the fixture plugins' modules,
    those of the spec it extends first."""

    checks: tuple[Path, ...]
    fixtures: tuple[str, ...]


def suite_of(chain: tuple[str, ...]) -> Suite:
    """The suite of a spec, given the names of the specs it is made of (bases first)."""
    checks: list[Path] = []
    fixtures: list[str] = []
    for spec_name in chain:
        name = package_name(spec_name)
        try:
            package = importlib.import_module(name)
        except ModuleNotFoundError:
            raise SuiteError(f"spec {spec_name!r} has no suite package {name}") from None
        folder = Path(package.__file__ or "").resolve().parent
        if not (folder / "checks.py").is_file():
            raise SuiteError(f"{name} has no checks.py")
        checks.append(folder / "checks.py")
        if (folder / "fixtures.py").is_file():
            fixtures.append(f"{name}.fixtures")
    return Suite(tuple(checks), tuple(fixtures))


def specs_dir() -> Path:
    """The folder of the spec packages (and of the suites' pytest.ini)."""
    package = importlib.import_module(PACKAGE)
    return Path(package.__file__ or "").resolve().parent
