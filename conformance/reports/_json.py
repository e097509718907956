"""The JSON report: one document per run, shaped as `schemas/report.schema.json` says, and read
back into a `RunResult` (the batch reads its runs' reports so).

Rules: every field the schema requires is always present; the document validates against the
schema before it is written, so a report a consumer reads is a report the schema describes;
`from_dict(to_dict(r))` gives `r` back, requirements and options included.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from conformance import __version__
from conformance._options import RunOptions, SpecOptions, build, core_options, values_of
from conformance._result import Bonus, Failure, RequirementResult, RunResult
from conformance._spec import Requirement, SpecError, load_spec

SCHEMA_VERSION = 1


@cache
def report_schema() -> dict[str, Any]:
    """The JSON Schema every report validates against."""
    schema: dict[str, Any] = json.loads(resources.files("conformance").joinpath(
        "schemas/report.schema.json").read_text(encoding="utf-8"))
    return schema


@cache
def report_validator() -> jsonschema.Draft202012Validator:
    """A validator of reports, built once: `jsonschema.validate` checks the schema itself at
    every call, which costs a batch of thirty runs seconds of CPU."""
    return jsonschema.Draft202012Validator(report_schema())


def to_dict(result: RunResult) -> dict[str, Any]:
    """The report as plain data."""
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "conformance", "version": __version__},
        "spec": result.spec.name,
        "title": result.spec.title,
        "target": result.target,
        "strict": result.strict,
        "seed": result.seed,
        "started_at": result.started_at,
        "duration_s": result.duration_s,
        "passed": result.passed,
        "exit_code": result.exit_code,
        "error": result.error or None,
        "options": _options(result.options),
        "isolation": result.isolation,
        "target_output": result.target_output or None,
        "stopped": list(result.stopped),
        "rerun": result.rerun,
        "counts": result.counts(),
        "bonus": _bonus(result.bonus()),
        "requirements": [
            {
                "id": r.requirement.id,
                "level": r.requirement.level,
                "bonus": r.requirement.bonus,
                "statement": r.requirement.statement,
                "source": r.requirement.source,
                "weight": r.requirement.weight,
                "verdict": r.verdict,
                "gating": r.gating(result.strict),
                "reason": r.reason or None,
                "checks": r.checks,
                "notes": r.notes,
                "failures": [
                    {"check": f.check, "message": f.message, "expected": f.expected,
                     "actual": f.actual, "reproduce": f.reproduce}
                    for f in r.failures
                ],
            }
            for r in result.results
        ],
    }


def _bonus(bonus: Bonus | None) -> dict[str, Any] | None:
    if bonus is None:
        return None
    return {"status": bonus.status, "passed": bonus.passed, "total": bonus.total,
            "counts": dict(bonus.counts), "summary": bonus.words()}


def _options(options: RunOptions[SpecOptions] | None) -> dict[str, Any]:
    if options is None:
        return {}
    core = {o.name: o.to_json(getattr(options, o.name)) for o in core_options()}
    own = {name: dict(value) if isinstance(value, dict) else value
           for name, value in values_of(options.spec).items()}
    return {**core, **own}


def _read_options(doc: dict[str, Any], cls: type[SpecOptions]) -> RunOptions[SpecOptions] | None:
    values = doc.get("options")
    if not values:
        return None
    core = {o.name for o in core_options()}
    own = {k: v for k, v in values.items() if k not in core}
    try:
        spec = build(cls, own)
    except (ValueError, TypeError):
        spec = cls()
    return RunOptions(**{k: v for k, v in values.items() if k in core}, spec=spec)


def from_dict(doc: dict[str, Any]) -> RunResult:
    """The RunResult a report describes (the report validated first, by the caller).

    Its requirements are the spec's own where this install knows the spec and the id, else
    built from what the report says of them."""
    try:
        spec = load_spec(doc["spec"])
    except SpecError:
        raise ValueError(f"the report is of spec {doc['spec']!r}, which this install does not "
                         f"have") from None
    results = []
    for r in doc["requirements"]:
        requirement = spec.by_id.get(r["id"]) or Requirement(
            id=r["id"], level=r["level"], statement=r["statement"], source=r["source"],
            weight=float(r.get("weight", 1.0)), bonus=bool(r.get("bonus", False)))
        results.append(RequirementResult(
            requirement, r["verdict"], r["reason"] or "",
            [Failure(f["message"], f["expected"], f["actual"], f["reproduce"], f["check"])
             for f in r["failures"]],
            checks=list(r["checks"]), notes=list(r["notes"])))
    return RunResult(
        spec=spec, target=doc["target"], strict=doc["strict"], seed=doc["seed"],
        started_at=doc["started_at"], duration_s=doc["duration_s"], results=results,
        rerun=doc["rerun"], error=doc["error"] or "", isolation=doc.get("isolation", ""),
        target_output=doc.get("target_output") or "", stopped=list(doc.get("stopped", [])),
        options=_read_options(doc, spec.options_class))


def write(results: list[RunResult], path: Path) -> None:
    """Write one report, or a list of reports when several specs ran."""
    docs = [to_dict(r) for r in results]
    for doc in docs:
        report_validator().validate(doc)
    payload: Any = docs[0] if len(docs) == 1 else docs
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
