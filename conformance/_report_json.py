"""The JSON report: one document per run, shaped as `schemas/report.schema.json` says.

Rules: every field the schema requires is always present; the document validates against the
schema before it is written, so a report a consumer reads is a report the schema describes.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from conformance import __version__
from conformance._result import RunResult

SCHEMA_VERSION = 1


@cache
def report_schema() -> dict[str, Any]:
    """The JSON Schema every report validates against."""
    return json.loads(resources.files("conformance").joinpath("schemas/report.schema.json")
                      .read_text(encoding="utf-8"))


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
        "rerun": result.rerun,
        "counts": result.counts(),
        "requirements": [
            {
                "id": r.requirement.id,
                "level": r.requirement.level,
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


def write(results: list[RunResult], path: Path) -> None:
    """Write one report, or a list of reports when several specs ran."""
    docs = [to_dict(r) for r in results]
    for doc in docs:
        report_validator().validate(doc)
    payload: Any = docs[0] if len(docs) == 1 else docs
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
