"""The batch CSV: one row per roster line and one column per requirement, for a spreadsheet.

Rules: the header is `student,spec,target,score,passed,exit_code,problem,bonus_score,bonus`
(the bonus's score, apart from the score, and how the bonus went in words: both empty when the
spec has no bonus), then every requirement id of the roster's specs, once, in order of first
appearance (the specs in roster order, each spec's requirements in spec order); a cell is that
line's verdict (`pass`, `fail`, `not_run`, `skipped`, `not_implemented`), empty when the id is
not of that line's spec or the run gave no report. The file is UTF-8 with the csv module's
quoting.
"""

from __future__ import annotations

import csv
from pathlib import Path

from conformance._grades import Grade
from conformance._spec import load_spec

# The bonus's columns come last, so the others keep the places they always had.
FIXED_COLUMNS = ("student", "spec", "target", "score", "passed", "exit_code", "problem",
                 "bonus_score", "bonus")


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
        bonus = g.report.bonus() if g.report is not None else None
        table.append([
            g.entry.student, g.entry.spec, g.entry.target, f"{g.score:.1f}",
            "true" if g.passed else "false", "" if g.exit_code is None else str(g.exit_code),
            g.problem, "" if g.bonus_score is None else f"{g.bonus_score:.1f}",
            bonus.words() if bonus is not None else "", *(verdicts.get(rid, "") for rid in ids),
        ])
    return table


def write(grades: list[Grade], path: Path) -> Path:
    """Write the CSV file; returns its path."""
    with path.open("w", encoding="utf-8", newline="") as out:
        csv.writer(out).writerows(rows(grades))
    return path
