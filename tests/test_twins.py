"""Every spec against every implementation it is tried on, as a teacher would run it: our
reference passes --strict; each twin (fixtures/<spec>/, as data: fixtures/_twins.py) gets exactly
the verdicts it declares: a broken twin fails its one MUST and whatever it names, a correct
variant or a student's program passes without --strict; and every MUST has a broken twin."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conformance import load_spec, spec_names
from fixtures._twins import Shows, Twin, family, launch, reference_shows, twins
from tests.conftest import Run, conformance, need_fixed_port

CASES = twins()
GATING = ("fail", "not_run")
# A broken twin is judged for its one fault, so its run fuzzes a tenth of the default
# examples (a twin whose verdicts rest on fuzzing names its own budget in its args); a correct
# variant's or a student's run fuzzes as a teacher's does, where a false failure would show.
LEAN_FUZZ = ("--fuzz-examples", "10")
# About how long our reference's strict run takes where far more than most's 30 s (one
# observation of fixed length: taskqueue's 35 s of delays, downloader's 30 s timeout, probe's
# run), so that those start first.
REFERENCE_SECONDS = {"taskqueue": 45.0, "downloader": 40.0, "probe": 35.0}


def _args(twin: Twin, given: tuple[str, ...]) -> tuple[str, ...]:
    if twin.broken and not twin.student and "--fuzz-examples" not in given:
        return (*LEAN_FUZZ, *given)
    return given


def _cost(twin: Twin) -> float:
    """About how long a twin's run takes: a client program is run tens of times, once per
    situation, so its spec's twins are the longest."""
    if twin.seconds is not None:
        return twin.seconds
    spec = load_spec(twin.spec)
    return 40.0 if spec.kind == "program" and spec.default_url else 15.0


def _summary(run: Run) -> str:
    """What a failed assertion shows: the verdicts that are not a pass, and the output's end."""
    if run.report is None:
        return f"no report (exit {run.code}): {run.stdout[-2000:]} {run.stderr[-2000:]}"
    odd = {r["id"]: (r["verdict"], r["reason"]) for r in run.report["requirements"]
           if r["verdict"] != "pass"}
    return f"exit {run.code}, error {run.report['error']!r}, not passed: {odd}"


def _text(entry: dict[str, Any], where: str) -> str:
    if where == "reason":
        return entry["reason"] or ""
    if where == "notes":
        return "\n".join(entry["notes"])
    return entry["failures"][0][where] if entry["failures"] else ""


@pytest.mark.parametrize("spec", [
    pytest.param(s, marks=pytest.mark.slow(REFERENCE_SECONDS.get(s, 30.0))) for s in spec_names()])
def test_reference_passes_everything_strict(spec: str, tmp_path: Path) -> None:
    # Fuzzing bounded by examples: the same requests however busy the machine is.
    run = conformance("run", spec, "--strict", "--fuzz-examples", "50", "--fuzz-seconds", "60",
                      tmp=tmp_path)
    assert run.code == 0, _summary(run)
    assert set(run.verdicts().values()) == {"pass"}, _summary(run)
    assert run.report["passed"] is True
    entries = {r["id"]: r for r in run.report["requirements"]}
    for shows in reference_shows(spec):
        assert shows.text in _text(entries[shows.requirement], shows.where), \
            (shows, entries[shows.requirement])


@pytest.mark.parametrize("twin", [pytest.param(t, id=t.key, marks=pytest.mark.slow(_cost(t)))
                                  for t in CASES])
def test_twin_gets_the_verdicts_it_declares(twin: Twin, tmp_path: Path) -> None:
    if twin.default_address:
        need_fixed_port(8888)
    how = launch(twin, tmp_path)
    # One run with --strict: the verdicts do not depend on it, and the exit code without it
    # follows from them (only MUSTs gate then).
    run = conformance("run", twin.spec, "--strict", "--command", how.command,
                      *_args(twin, how.args), tmp=tmp_path)
    assert run.report is not None and not run.report["error"], _summary(run)
    assert twin.fails <= run.failed() <= twin.fails | twin.by_chance, _summary(run)
    entries = {r["id"]: r for r in run.report["requirements"]}
    # A bonus's requirements never gate, whatever their level.
    strict_gating = [i for i, r in entries.items() if not r["bonus"]
                     and r["level"] in ("MUST", "SHOULD") and r["verdict"] in GATING]
    assert run.code == (1 if strict_gating else 0), _summary(run)
    musts_pass = not any(r["level"] == "MUST" and not r["bonus"] and r["verdict"] in GATING
                         for r in entries.values())
    assert musts_pass == (not twin.broken), _summary(run)
    for rid in twin.fails:
        # Every failure names what was expected, what came instead, and how to see it again.
        failure = entries[rid]["failures"][0]
        assert failure["message"] and failure["expected"] and failure["actual"], failure
        assert failure["reproduce"], failure
    absent = {i for i, r in entries.items() if r["verdict"] == "not_implemented"}
    assert twin.absent <= absent <= twin.absent | twin.by_chance, _summary(run)
    not_run = twin.expected_not_run()
    if not_run is not None:
        chance = {i for i in twin.by_chance if load_spec(twin.spec).by_id[i].optional}
        assert not_run <= {i for i, r in entries.items() if r["verdict"] == "not_run"} \
            <= not_run | chance, _summary(run)
    if twin.skips is not None:
        assert {i for i, r in entries.items() if r["verdict"] == "skipped"} == twin.skips, \
            _summary(run)
    for shows in twin.shows:
        assert shows.text in _text(entries[shows.requirement], shows.where), \
            (shows, entries[shows.requirement])


@pytest.mark.parametrize("spec", spec_names())
def test_every_must_has_a_broken_twin(spec: str) -> None:
    musts = {r.id for r in load_spec(spec).requirements if r.level == "MUST" and not r.bonus}
    # A spec that extends another runs that one's checks on the same ids: its twins count too.
    covered = {rid for part in load_spec(spec).chain for t in twins(part)
               if t.broken and not t.student for rid in t.musts}
    assert musts <= covered, f"MUSTs of {spec} with no broken twin: {sorted(musts - covered)}"


@pytest.mark.parametrize("spec", spec_names())
def test_twins_are_well_formed(spec: str) -> None:
    known = set(load_spec(spec).by_id)
    names = [t.name for t in twins(spec)]
    assert len(names) == len(set(names)), f"{spec}: a twin name is used twice"
    assert callable(getattr(family(spec), "serve", None)), f"fixtures of {spec} have no serve()"
    for t in twins(spec):
        assert t.spec == spec, t.key
        assert t.fails <= known, f"{t.key}: unknown ids {sorted(t.fails - known)}"
        for ids in (t.expected_not_run(), t.skips, t.absent):
            assert ids is None or (ids <= known and not ids & t.fails), t.key
        spec_of = load_spec(spec)
        # Only an optional requirement (a MAY, a bonus's) can be not implemented.
        assert all(spec_of.by_id[i].optional for i in t.absent), t.key
        assert all(s.requirement in known for s in t.shows), t.key
        if t.broken and not t.student:
            # One twin, one MUST: a failure then points at what it breaks.
            assert len(t.musts) == 1 or t.several, f"{t.key} breaks {sorted(t.musts)}"
        assert not t.several or len(t.musts) > 1, f"{t.key} says `several` but breaks one MUST"
        if t.default_address:
            assert load_spec(spec).default_url, f"{t.key}: {spec} has no default address"


def test_shows_names_a_known_place() -> None:
    wheres = {s.where for t in CASES for s in t.shows}
    assert wheres <= {"message", "expected", "actual", "reproduce", "reason", "notes"}
    assert Shows("X-01", "reason", "x").where == "reason"
