"""The batch HTML report: a verdict matrix per spec (index.html) and one page per student.

Per spec the index shows the matrix (students by requirements), a class row under its header
(per requirement, how many of the students with a report passed it, the lowest shares marked),
a score histogram drawn with plain HTML/CSS, and each run's isolation as a numbered key. A
bonus's requirements are columns marked bonus, never marked lowest (they are optional), and a
spec with a bonus gets a bonus column: the bonus score, apart from the score, and whether the
bonus was attempted.

Rules: pages are self-contained (inline CSS, no script, no external URL, no image) so they
work offline and print; everything from a roster or a run is escaped; the same grades give the
same bytes. Nothing is made up: a run that did not say how it was isolated shows nothing there.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from conformance._grades import Grade, slugs
from conformance._result import Failure, RequirementResult
from conformance._spec import SpecError, load_spec

# Verdict -> (cell text, word). The text differs per verdict so the matrix reads without colour.
_CELL = {
    "pass": ("✓", "pass"),
    "fail": ("✗", "fail"),
    "not_run": ("?", "not run"),
    "skipped": ("n/a", "skipped"),
    "not_implemented": ("∅", "not implemented"),
}
_MISSING = ("—", "not reported")

# The histogram: scores 0-100 in bins of this width (the last bin also holds 100), and the
# height in em of the tallest bar.
_BIN = 10
_BAR_EM = 4.0


@dataclass
class Column:
    """One requirement of a spec, as a matrix column."""

    id: str
    level: str
    statement: str
    bonus: bool = False  # part of a bonus: never gates, scored apart


@dataclass
class Cell:
    """One student's verdict on one requirement."""

    text: str
    word: str
    css: str  # the verdict's class: pass, fail, not_run, skipped, not_implemented, missing
    href: str = ""  # to the failure on the student's page, for a failed requirement


@dataclass
class Row:
    """One student in a spec's matrix."""

    student: str
    href: str
    cells: list[Cell]
    score: str
    musts: str
    result: str
    seconds: str
    isolation: str = ""  # the run's own words; "" when it did not say (or gave no report)
    isolation_key: str = ""  # its marker in the matrix, e.g. "[1]"; "" with no isolation
    bonus: str = ""  # the bonus score, "66.7" or "0.0" ("" when the spec has no bonus)
    bonus_words: str = ""  # how the bonus went: "attempted, 2/3 passed", "not attempted"
    stopped: list[str] = field(default_factory=list)  # what the sandbox's limits stopped


@dataclass
class Share:
    """The class row's cell for one requirement: who of the graded students passed it."""

    text: str  # "7/30", or "—" when no student of the spec has a report
    percent: str  # "23%", or ""
    title: str  # the same in words, with how the others did
    css: str  # "share", plus " low" (under half passed) or " lowest" (the spec's lowest)
    marker: str = ""  # shown before the text of the lowest, so it reads without colour


@dataclass
class Bin:
    """One bar of a spec's score histogram."""

    label: str  # "10-19.9"
    words: str  # "scores from 10 to under 20"
    count: int
    height: str  # the bar's CSS height, e.g. "2.67em"; "" for an empty bin


@dataclass
class Shown:
    """One requirement as a student's page shows it."""

    id: str
    level: str
    statement: str
    reason: str
    gating: bool
    failures: list[Failure]
    rerun: str = ""  # the run's re-run line limited to this requirement
    bonus: bool = False


@dataclass
class SpecTable:
    """One spec's matrix."""

    name: str
    title: str
    columns: list[Column]
    rows: list[Row] = field(default_factory=list)
    shares: list[Share] = field(default_factory=list)
    graded: int = 0  # students of the spec with a report: the class row's denominator
    histogram: list[Bin] = field(default_factory=list)
    reportless: int = 0  # students of the spec with no report (they score 0)
    isolations: list[tuple[str, str]] = field(default_factory=list)  # (marker, words)
    has_bonus: bool = False  # the spec has a bonus: the matrix gets a bonus score column


def _env() -> Environment:
    # StrictUndefined: a misspelt field in a template fails the write instead of printing "".
    return Environment(loader=PackageLoader("conformance", "templates/batch"), autoescape=True,
                       undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                       keep_trailing_newline=True)


def result_word(grade: Grade) -> str:
    """PASS, FAIL, STOPPED (stopped at the time bound) or ERROR (no report, or the suite broke)."""
    if grade.exit_code is None:
        return "STOPPED"
    if grade.report is None or grade.report.error:
        return "ERROR"
    return "PASS" if grade.passed else "FAIL"


def _page_slugs(grades: list[Grade]) -> list[str]:
    """The runner's slugs; a missing or repeated one is replaced so no page overwrites another."""
    fallback = slugs([g.entry.student for g in grades])
    out: list[str] = []
    for g, alt in zip(grades, fallback, strict=True):
        slug = g.slug or alt
        n = 2
        while slug in out:
            slug = f"{g.slug or alt}-{n}"
            n += 1
        out.append(slug)
    return out


def _columns(spec_name: str, grades: list[Grade]) -> tuple[str, list[Column]]:
    """The spec's title and requirements in spec order, then any id only the reports name."""
    title = ""
    columns: list[Column] = []
    try:
        spec = load_spec(spec_name)
        title = spec.title
        columns = [Column(r.id, r.level, r.statement, r.bonus) for r in spec.requirements]
    except SpecError:
        pass  # a spec this install does not know: the reports still say what they checked
    known = {c.id for c in columns}
    for g in grades:
        if g.report is None:
            continue
        title = title or g.report.spec.title
        for r in g.report.results:
            if r.requirement.id not in known:
                known.add(r.requirement.id)
                columns.append(Column(r.requirement.id, r.requirement.level,
                                      r.requirement.statement, r.requirement.bonus))
    return title, columns


def _cell(req: RequirementResult | None, strict: bool, slug: str) -> Cell:
    if req is None:
        return Cell(*_MISSING, css="missing")
    verdict = req.verdict
    text, word = _CELL[verdict]
    css: str = verdict
    if verdict in ("fail", "not_run") and not req.gating(strict):
        # As on the terminal: a problem that did not decide the exit code is not red.
        css += " nongating"
        word += " (does not gate)"
    href = f"students/{slug}.html#{req.requirement.id}" if verdict == "fail" else ""
    return Cell(text, word, css, href)


def _row(grade: Grade, slug: str, columns: list[Column]) -> Row:
    report = grade.report
    reqs = {r.requirement.id: r for r in report.results} if report else {}
    strict = report.strict if report else False
    musts = [c for c in columns if c.level == "MUST" and not c.bonus]
    won = sum(1 for c in musts if c.id in reqs and reqs[c.id].verdict == "pass")
    bonus = report.bonus() if report else None
    return Row(
        student=grade.entry.student, href=f"students/{slug}.html",
        cells=[_cell(reqs.get(c.id), strict, slug) for c in columns],
        score=f"{grade.score:.1f}", musts=f"{won}/{len(musts)}", result=result_word(grade),
        seconds=f"{grade.duration_s:.1f}", isolation=report.isolation if report else "",
        bonus="" if grade.bonus_score is None else f"{grade.bonus_score:.1f}",
        bonus_words=bonus.words() if bonus else "",
        stopped=list(report.stopped) if report else [],
    )


def _percent(won: int, total: int) -> str:
    """`won` of `total` as a whole percentage, rounded half up, never 0% or 100% unless exact.

    A share that rounds to 100% while someone still failed would hide exactly what the class
    row is for, and one that rounds to 0% would hide that someone passed.
    """
    pct = (200 * won + total) // (2 * total)
    if won < total:
        pct = min(pct, 99)
    if won > 0:
        pct = max(pct, 1)
    return f"{pct}%"


def _shares(columns: list[Column], graded: list[Grade]) -> list[Share]:
    """The class row: per requirement, how many of `graded` (the students with a report) passed.

    The denominator is the same for every requirement; a requirement a report did not name
    (a run limited with --only) counts as not passed, as in the score.
    """
    n = len(graded)
    if not n:
        return [Share("—", "", "no student of this spec has a report", "share")
                for _ in columns]
    verdicts = [g.verdicts() for g in graded]
    won = [sum(1 for v in verdicts if v.get(c.id) == "pass") for c in columns]
    # A bonus is optional: few passing it is no sign of a requirement the class missed.
    lowest = min((w for c, w in zip(columns, won, strict=True) if not c.bonus), default=n)
    shares = []
    for c, w in zip(columns, won, strict=True):
        pct = _percent(w, n)
        others = []
        for verdict in ("fail", "not_run", "skipped", "not_implemented"):
            k = sum(1 for v in verdicts if v.get(c.id) == verdict)
            if k:
                others.append(f"{k} {_CELL[verdict][1]}")
        missing = sum(1 for v in verdicts if c.id not in v)
        if missing:
            others.append(f"{missing} not reported")
        title = f"{c.id}: {w} of {n} students with a report passed ({pct})"
        if others:
            title += "; " + ", ".join(others)
        css, marker = "share", ""
        if c.bonus:
            title += "; a bonus: optional, scored apart"
            css = "share bonus"
        elif w == lowest and w < n:
            # Ties are all marked: two requirements missed by as many students are as urgent.
            css, marker = "share lowest", "▼"
            title += "; the lowest share in this spec"
        elif 2 * w < n:
            css = "share low"
            title += "; fewer than half passed"
        shares.append(Share(f"{w}/{n}", pct, title, css, marker))
    return shares


def _histogram(scores: list[float]) -> list[Bin]:
    """Scores 0-100 in bins of _BIN points, the last one closed (it holds 100)."""
    nbins = 100 // _BIN
    counts = [0] * nbins
    for sc in scores:
        counts[min(max(int(sc // _BIN), 0), nbins - 1)] += 1
    top = max(counts, default=0)
    bins = []
    for i, count in enumerate(counts):
        lo, hi = i * _BIN, (i + 1) * _BIN
        last = i == nbins - 1
        # Scores carry one decimal, so "10-19.9" names the bin exactly.
        label = f"{lo}-{hi}" if last else f"{lo}-{hi - 0.1:g}"
        words = f"scores from {lo} to {hi}" if last else f"scores from {lo} to under {hi}"
        height = f"{_BAR_EM * count / top:.2f}em" if count else ""
        bins.append(Bin(label, words, count, height))
    return bins


def _isolation_keys(rows: list[Row]) -> list[tuple[str, str]]:
    """Number each different isolation of a spec's rows, in roster order; mark the rows."""
    keys: dict[str, str] = {}
    for row in rows:
        if row.isolation:
            row.isolation_key = keys.setdefault(row.isolation, f"[{len(keys) + 1}]")
    return [(key, words) for words, key in keys.items()]


def _tables(grades: list[Grade], page_slugs: list[str]) -> list[SpecTable]:
    order = list(dict.fromkeys(g.entry.spec for g in grades))
    tables = []
    for name in order:
        mine = [(g, s) for g, s in zip(grades, page_slugs, strict=True) if g.entry.spec == name]
        title, columns = _columns(name, [g for g, _ in mine])
        table = SpecTable(name, title, columns)
        table.rows = [_row(g, s, columns) for g, s in mine]
        graded = [g for g, _ in mine if g.report is not None]
        table.graded = len(graded)
        table.shares = _shares(columns, graded)
        table.histogram = _histogram([g.score for g, _ in mine])
        table.reportless = len(mine) - len(graded)
        table.isolations = _isolation_keys(table.rows)
        table.has_bonus = any(c.bonus for c in columns)
        tables.append(table)
    return tables


def _shown(r: RequirementResult, strict: bool, rerun: str) -> Shown:
    only = f"{rerun} --only {shlex.quote(r.requirement.id)}" if rerun else ""
    return Shown(r.requirement.id, r.requirement.label, r.requirement.statement, r.reason,
                 r.gating(strict), r.failures, only, r.requirement.bonus)


def _student(grade: Grade) -> dict[str, Any]:
    """What a student's page shows, as plain data for the template."""
    report = grade.report
    results = report.results if report else []
    strict = report.strict if report else False
    rerun = report.rerun if report else ""
    shown = [_shown(r, strict, rerun) for r in results]
    counts = []
    for level, c in (report.counts() if report else {}).items():
        total = sum(c.values())
        if total:
            counts.append(f"{level} {c['pass']}/{total} passed")
    bonus = report.bonus() if report else None
    return {
        "student": grade.entry.student,
        "spec": grade.entry.spec,
        "title": report.spec.title if report else "",
        "target": report.target if report else grade.entry.target,
        "isolation": report.isolation if report else "",
        "score": f"{grade.score:.1f}",
        "bonus": bonus.words() if bonus else "",
        "bonus_score": "" if grade.bonus_score is None else f"{grade.bonus_score:.1f}",
        "result": result_word(grade),
        "seconds": f"{grade.duration_s:.1f}",
        "exit_code": "none (stopped)" if grade.exit_code is None else str(grade.exit_code),
        "rerun": rerun,
        "problem": grade.problem,
        "error": report.error if report else "",
        "counts": "; ".join(counts),
        "failed": [s for s, r in zip(shown, results, strict=True) if r.verdict == "fail"],
        "not_run": [s for s, r in zip(shown, results, strict=True) if r.verdict == "not_run"],
        "skipped": [s for s, r in zip(shown, results, strict=True) if r.verdict == "skipped"],
        "not_implemented": [s for s, r in zip(shown, results, strict=True)
                            if r.verdict == "not_implemented"],
        "notes": [(r.requirement.id, n) for r in results for n in r.notes],
    }


def _write(path: Path, text: str) -> None:
    # newline="" keeps "\n" on every platform, so the bytes do not depend on where it ran.
    with path.open("w", encoding="utf-8", newline="") as fh:
        fh.write(text)


def write_batch(grades: list[Grade], out: Path, *, title: str = "Grades", note: str = "") -> Path:
    """Write `out/index.html` and `out/students/SLUG.html` per grade; return the index's path.

    `note` (e.g. when the batch ran) is shown under the title; nothing else varies between runs.
    """
    env = _env()
    page_slugs = _page_slugs(grades)
    students = out / "students"
    students.mkdir(parents=True, exist_ok=True)
    page = env.get_template("student.html.j2")
    for grade, slug in zip(grades, page_slugs, strict=True):
        data = _student(grade)
        _write(students / f"{slug}.html",
               page.render(page_title=f"{data['student']} - {data['spec']}", batch_title=title,
                           note=note, s=data))
    index = out / "index.html"
    _write(index, env.get_template("index.html.j2").render(
        page_title=title, batch_title=title, note=note, tables=_tables(grades, page_slugs),
        legend=[(v, *_CELL[v]) for v in _CELL] + [("missing", *_MISSING)],
        count=len(grades)))
    return index
