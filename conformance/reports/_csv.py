"""The batch CSV: one row per roster line and one column per requirement, for a spreadsheet.

Rules: the header is `student,spec,target,score,passed,exit_code,problem`, then every requirement
id of the roster's specs, once, in order of first appearance (the specs in roster order, each
spec's requirements in spec order); a cell is that line's verdict, empty when the id is not of
that line's spec or the run gave no report. The file is UTF-8 with the csv module's quoting.
"""

from __future__ import annotations

import csv
from pathlib import Path

from conformance._grades import Grade
from conformance._spec import load_spec

FIXED_COLUMNS = ("student", "spec", "target", "score", "passed", "exit_code", "problem")


def requirement_columns(grades: list[Grade]) -> list[str]:
    """The requirement ids of the grades' specs, each once, in order of first appearance."""
    ids: dict[str, None] = {}  # a dict keeps insertion order, a set would not
    for name in dict.fromkeys(g.entry.spec for g in grades):
        for req in load_spec(name).requirements:
            ids.setdefault(req.id)
    return list(ids)


def rows(grades: list[Grade]) -> list[list[str]]:
    """The header and one row per grade, as the CSV file holds them."""
    ids = requirement_columns(grades)
    table = [[*FIXED_COLUMNS, *ids]]
    for g in grades:
        verdicts = g.verdicts()
        table.append([
            g.entry.student, g.entry.spec, g.entry.target, f"{g.score:.1f}",
            "true" if g.passed else "false", "" if g.exit_code is None else str(g.exit_code),
            g.problem, *(verdicts.get(rid, "") for rid in ids),
        ])
    return table


def write(grades: list[Grade], path: Path) -> Path:
    """Write the CSV file; returns its path."""
    with path.open("w", encoding="utf-8", newline="") as out:
        csv.writer(out).writerows(rows(grades))
    return path
