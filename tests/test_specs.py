"""The specs themselves: every behaviour spec and OpenAPI file is valid, every requirement is
checked by some check and every check names known requirements, and the loader refuses specs
that break its rules."""

from __future__ import annotations

import copy
import inspect
import os
import re
from importlib import import_module
from pathlib import Path

import pytest
import yaml
from openapi_spec_validator import validate

from conformance import SpecError, load_spec, spec_names
from conformance._spec import openapi_dir, parse_spec
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


def _suite_module(name: str) -> str:
    return f"conformance.suites.{name.replace('-', '_')}"


def _checks(name: str) -> dict[str, tuple[set[str], set[str]]]:
    module = import_module(_suite_module(name))
    # A spec that extends another runs that one's checks too, imported into its suite.
    extends = load_spec(name).extends
    own = {module.__name__} | ({_suite_module(extends)} if extends else set())
    found = {}
    for attr, fn in inspect.getmembers(module, inspect.isfunction):
        if attr.startswith("test_") and fn.__module__ in own:
            marks = [m for m in getattr(fn, "pytestmark", []) if m.name == "requirement"]
            ids = {i for m in marks for i in m.args}
            needs = {n for m in marks for n in m.kwargs.get("needs", ())}
            found[attr] = (ids, needs)
    return found


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


def _data() -> dict:
    path = openapi_dir() / "credentials.requirements.yaml"
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _mutate(change) -> dict:
    data = copy.deepcopy(_data())
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


def test_unknown_spec_is_an_error() -> None:
    with pytest.raises(SpecError, match="unknown spec"):
        load_spec("no-such-spec")


def test_openapi_dir_is_the_repository_folder_in_a_checkout() -> None:
    assert openapi_dir() == ROOT / "openapi" or openapi_dir().name == "_openapi"
    assert Path(openapi_dir() / "credentials.yaml").is_file()
