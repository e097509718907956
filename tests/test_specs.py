"""The specs themselves: every behaviour spec and OpenAPI file is valid, every requirement is
checked by some check and every check names known requirements, and the loader refuses specs
that break its rules."""

from __future__ import annotations

import copy
import inspect
import os
import re
import sys
import types
from collections.abc import Iterator
from importlib import import_module
from pathlib import Path

import pytest
import yaml
from openapi_spec_validator import validate

from conformance import SpecError, load_spec, spec_names
from conformance._plugin import check_needs
from conformance._spec import openapi_dir, parse_spec
from conformance._suites import package_name
from tests.conftest import ROOT

SHARED = ROOT.parent / "shared"


def test_there_are_specs() -> None:
    assert "credentials" in spec_names()


@pytest.mark.parametrize("name", spec_names())
def test_openapi_document_is_valid(name: str) -> None:
    spec = load_spec(name)
    if spec.openapi is not None:
        document = yaml.safe_load(spec.openapi.read_text())
        assert document["openapi"].startswith("3.1")
        validate(document)


def _requirement_marks(name: str) -> Iterator[tuple[str, list[pytest.Mark]]]:
    """Each check of the spec, with its `requirement` marks. A spec that extends another runs
    that one's checks too (its chain: bases first)."""
    for part in load_spec(name).chain:
        module = import_module(f"{package_name(part)}.checks")
        for attr, fn in inspect.getmembers(module, inspect.isfunction):
            if attr.startswith("test_") and fn.__module__ == module.__name__:
                yield attr, [m for m in getattr(fn, "pytestmark", []) if m.name == "requirement"]


def _checks(name: str) -> dict[str, tuple[set[str], set[str]]]:
    return {attr: ({i for m in marks for i in m.args},
                   {n for m in marks for n in m.kwargs.get("needs") or ()})
            for attr, marks in _requirement_marks(name)}


def _named_needs(name: str) -> dict[str, tuple[tuple[str, ...], tuple[str, ...] | None]]:
    """Each check's ids, and the needs it names (None: it names none, so it needs the spec's)."""
    found = {}
    for attr, marks in _requirement_marks(name):
        given = [m.kwargs.get("needs") for m in marks]
        named = None if all(g is None for g in given) else tuple(
            n for g in given for n in g or ())
        found[attr] = (tuple(i for m in marks for i in m.args), named)
    return found


@pytest.mark.parametrize("name", spec_names())
def test_every_checks_needs_are_the_specs(name: str) -> None:
    # A run's "not run: needs X" must name an X the spec lists (and docs/ shows): a check needs
    # what the spec says its requirements need, or some of it, never more.
    spec = load_spec(name)
    stray = {attr: bad for attr, (ids, named) in _named_needs(name).items()
             if (bad := check_needs(spec, ids, named)[1])}
    assert not stray, f"checks that need what the spec does not list: {stray}"


def test_a_check_may_narrow_its_needs_but_never_add_one() -> None:
    spec = load_spec("credentials")  # CRED-02 needs CRED-01 and CRED-06; CRED-05 needs CRED-04
    assert check_needs(spec, ("CRED-02",), None) == (("CRED-01", "CRED-06"), [])
    assert check_needs(spec, ("CRED-02",), ("CRED-01",)) == (("CRED-01",), [])
    assert check_needs(spec, ("CRED-05",), ("CRED-01",)) == (("CRED-01",), [])  # through CRED-04
    assert check_needs(spec, ("CRED-02",), ("CRED-04",))[1] == ["CRED-04"]
    # A check of two ids may name only what both need.
    assert check_needs(spec, ("CRED-02", "CRED-07"), ("CRED-06",))[1] == ["CRED-06"]


@pytest.mark.parametrize("name", spec_names())
def test_every_requirement_has_a_check_and_every_check_a_known_requirement(name: str) -> None:
    spec = load_spec(name)
    checks = _checks(name)
    assert checks, f"no checks for {name}"
    unmarked = [c for c, (ids, _) in checks.items() if not ids]
    assert not unmarked, f"checks that name no requirement: {unmarked}"
    named = {i for ids, needs in checks.values() for i in ids | needs}
    assert named <= set(spec.by_id), f"unknown ids: {sorted(named - set(spec.by_id))}"
    checked = {i for ids, _ in checks.values() for i in ids}
    assert set(spec.by_id) <= checked, f"requirements with no check: {set(spec.by_id) - checked}"


@pytest.mark.parametrize("name", spec_names())
def test_sources_quote_the_assignments(name: str) -> None:
    if not SHARED.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail("../shared is missing under CI")
        pytest.skip("../shared is not beside this checkout")
    text = " ".join((SHARED / "ASSIGNMENTS.md").read_text(encoding="utf-8").split())
    for req in load_spec(name).requirements:
        for part in re.split(r"\s*\.\.\.\s*", req.source):
            part = " ".join(part.split())
            if len(part) > 3:
                assert part in text, f"{req.id}: {part!r} is not in ASSIGNMENTS.md"


def _data(name: str = "credentials") -> dict:
    path = openapi_dir() / f"{name}.requirements.yaml"
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _mutate(change, name: str = "credentials") -> dict:
    data = copy.deepcopy(_data(name))
    change(data)
    return data


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d["requirements"].append(dict(d["requirements"][0])), "duplicate"),
    (lambda d: d["requirements"][1].update(needs=["CRED-77"]), "unknown ids"),
    (lambda d: d["requirements"][0].update(needs=["CRED-02"]), "cycle"),
    (lambda d: d["requirements"][1].update(needs=["CRED-09"]), "not MUST"),
    (lambda d: d["requirements"][0].pop("source"), "source"),
    (lambda d: d["requirements"][8].pop("rationale"), "rationale"),
    (lambda d: d["requirements"][0].update(level="MUSTN'T"), "level"),
    (lambda d: d.update(openapi="missing.yaml"), "does not exist"),
])
def test_loader_refuses_broken_specs(change, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_spec(_mutate(change), base=openapi_dir(), where="test")


@pytest.mark.parametrize(("name", "change", "message"), [
    # A misspelt option: the file and the key are named, before anything runs.
    ("crawler-cached", lambda d: d["reference"]["options"].update(cache_timout=2),
     r"test: reference/options: \(top\): Additional properties are not allowed "
     r"\('cache_timout' was unexpected\) \(not an option of this spec's suite\)"),
    ("crawler-cached", lambda d: d["reference"]["options"].update(cache_timeout="two"),
     r"test: reference/options: cache_timeout: 'two' is not valid"),
    ("pipeline", lambda d: d["reference"]["options"].update(services=["receiver"]),
     r"test: reference/options: services: \['receiver'\] is not of type 'object'"),
    ("credentials", lambda d: d["reference"].update(options={"time_scale": 2}),
     r"'time_scale' was unexpected"),
    ("credentials", lambda d: d.update(spec="no-suite"), r"test: spec 'no-suite' has no suite"),
    ("crawler-cached", lambda d: d.update(extends="no-such-spec"),
     r"test: extends: unknown spec 'no-such-spec'"),
    ("credentials", lambda d: d.update(default_url="not a url"),
     r"default_url: 'not a url' does not match"),
])
def test_loader_names_the_file_and_key_of_a_broken_spec(name: str, change,
                                                       message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_spec(_mutate(change, name), base=openapi_dir(), where="test")


@pytest.mark.parametrize(("declares", "message"), [
    ("class Options:\n    pass\n", "must be a dataclass deriving"),
    ("@dataclass(frozen=True)\nclass Options:\n    x: int = 1\n", "must be a dataclass deriving"),
    ("@dataclass(frozen=True)\nclass Options(SpecOptions):\n"
     "    x: tuple[int, ...] = option((), help='x')\n", "option type"),
])
def test_a_broken_options_declaration_is_a_spec_error(declares: str, message: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"broken-{abs(hash(declares))}"
    module = types.ModuleType(package_name(name))
    monkeypatch.setitem(sys.modules, module.__name__, module)
    exec("from dataclasses import dataclass\n"
         "from conformance._options import SpecOptions, option\n" + declares, module.__dict__)
    with pytest.raises(SpecError, match=f"test: .*{message}"):
        parse_spec(_mutate(lambda d: d.update(spec=name)), base=openapi_dir(), where="test")


def test_every_spec_has_a_suite_package_and_every_package_a_spec() -> None:
    folders = {p.parent.name for p in (ROOT / "conformance" / "specs").glob("*/checks.py")}
    assert folders == {package_name(n).rsplit(".", 1)[-1] for n in spec_names()}


def test_an_extending_spec_is_made_of_its_base_and_itself() -> None:
    cached = load_spec("crawler-cached")
    assert cached.chain == ("crawler", "crawler-cached")
    assert issubclass(cached.options_class, load_spec("crawler").options_class)
    assert [o.name for o in cached.options][:1] == ["fixture_host"]


def test_unknown_spec_is_an_error() -> None:
    with pytest.raises(SpecError, match="unknown spec"):
        load_spec("no-such-spec")


def test_openapi_dir_is_the_repository_folder_in_a_checkout() -> None:
    assert openapi_dir() == ROOT / "openapi" or openapi_dir().name == "_openapi"
    assert Path(openapi_dir() / "credentials.yaml").is_file()


def test_a_bonus_is_data_and_only_a_bonus_may_need_one() -> None:
    fight = load_spec("fight")
    assert [r.id for r in fight.requirements if r.bonus] == [
        "FIGHT-11", "FIGHT-12", "FIGHT-13", "FIGHT-14"]

    def need_the_bonus(d: dict) -> None:
        next(r for r in d["requirements"] if r["id"] == "FIGHT-09")["needs"] = ["FIGHT-11"]

    with pytest.raises(SpecError, match=r"FIGHT-09 needs \['FIGHT-11'\], which are bonus"):
        parse_spec(_mutate(need_the_bonus, "fight"), base=openapi_dir(), where="test")
    with pytest.raises(SpecError, match=r"test: requirements/0/bonus: 'yes' is not of type"):
        parse_spec(_mutate(lambda d: d["requirements"][0].update(bonus="yes")),
                   base=openapi_dir(), where="test")
