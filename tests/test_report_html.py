"""The batch HTML report: matrix cells, student pages, escaping, offline and byte-stable output.

Grades are built by hand from report dicts shaped as a real run's (schema-checked), no server.
"""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from markupsafe import escape

from conformance._grades import Grade, RosterLine, score
from conformance._spec import load_spec
from conformance.reports import from_dict, report_schema
from conformance.reports._html import write_batch

EVIL = "<script>alert(1)</script>"


def make_report(spec_name: str, verdicts: dict[str, str], *, only: set[str] | None = None,
                strict: bool = False) -> dict[str, Any]:
    """A schema-valid report for `spec_name`: every requirement passes unless `verdicts` says."""
    spec = load_spec(spec_name)
    reqs = []
    counts = {lv: dict.fromkeys(("pass", "fail", "not_run", "skipped"), 0)
              for lv in ("MUST", "SHOULD", "MAY")}
    for r in spec.requirements:
        if only is not None and r.id not in only:
            continue
        v = verdicts.get(r.id, "pass")
        counts[r.level][v] += 1
        failures = []
        if v == "fail":
            failures = [{"check": f"check_{r.id}", "message": f"{r.id} broke {EVIL}",
                         "expected": f"status 200\nfor {r.id}",
                         "actual": f"status 500 {EVIL}\nline two",
                         "reproduce": f"curl -sS 'http://127.0.0.1:8000/?s={r.id}&x=<b>'"}]
        reqs.append({
            "id": r.id, "level": r.level, "statement": r.statement, "source": r.source,
            "weight": r.weight, "verdict": v,
            "gating": r.level == "MUST" or (strict and r.level == "SHOULD"),
            "reason": {"not_run": f"needs something that failed {EVIL}",
                       "skipped": "does not apply"}.get(v),
            "checks": [f"check_{r.id}"],
            "notes": [f"seen: lower case {EVIL}"] if r.id == "CRED-14" else [],
            "failures": failures,
        })
    gated = any(q["gating"] and q["verdict"] in ("fail", "not_run") for q in reqs)
    report = {
        "schema_version": 1, "tool": {"name": "conformance", "version": "0"},
        "spec": spec.name, "title": spec.title, "target": "http://127.0.0.1:8000/",
        "strict": strict, "seed": 1, "started_at": "2026-01-01T00:00:00Z", "duration_s": 1.5,
        "passed": not gated, "exit_code": 1 if gated else 0, "error": None,
        "rerun": f"conformance run {spec.name} --url http://127.0.0.1:8000/ --seed 1",
        "counts": counts, "requirements": reqs,
    }
    jsonschema.validate(report, report_schema())
    return report


def grade(student: str, spec_name: str, report: dict[str, Any] | None, *,
          exit_code: int | None = 0, slug: str = "", problem: str = "") -> Grade:
    """A Grade as the runner builds it from the run's JSON report, scored by the real rule."""
    line = RosterLine(line=2, student=student, spec=spec_name, target="http://127.0.0.1:8000/",
                      kind="url")
    result = from_dict(report) if report is not None else None
    if result is not None:
        exit_code = result.exit_code
    return Grade(entry=line, exit_code=exit_code, duration_s=2.25, report=result,
                 problem=problem, score=score(result, load_spec(spec_name)), slug=slug)


class Page(HTMLParser):
    """Tables, links and sources of one page, read with the stdlib parser."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tables: list[list[list[dict[str, Any]]]] = []  # table -> row -> cell
        self.headers: list[list[dict[str, Any]]] = []  # table -> header cells
        self.links: list[str] = []
        self.urls: list[str] = []  # every href and src
        self.ids: set[str] = set()
        self._cell: dict[str, Any] | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if "id" in a:
            self.ids.add(a["id"])
        for k in ("href", "src"):
            if k in a:
                self.urls.append(a[k])
        if tag == "a":
            self.links.append(a.get("href", ""))
        if tag == "table":
            self.tables.append([])
            self.headers.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = {"tag": tag, "attrs": a, "text": ""}

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            if self._cell["tag"] == "th":
                self.headers[-1].append(self._cell)
            else:
                self.tables[-1][-1].append(self._cell)
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell["text"] += data


CRED = load_spec("credentials")


@pytest.fixture
def grades() -> list[Grade]:
    """Four credentials students (all pass, some fail, stopped, no report) and one fight one."""
    fight = load_spec("fight")
    return [
        grade("Ada Lovelace", "credentials", make_report("credentials", {})),
        grade(f"Mallory {EVIL}", "credentials", make_report(
            "credentials", {"CRED-02": "fail", "CRED-05": "not_run", "CRED-10": "fail",
                            "CRED-15": "skipped"}), slug="mallory"),
        grade("Slow Sam", "credentials", None, exit_code=None,
              problem="stopped after 60 s <timeout>"),
        grade("Broken Bob", "credentials", None, exit_code=3, problem="Traceback:\n  boom"),
        grade("Ada Lovelace", "fight", make_report("fight", {fight.requirements[0].id: "fail"})),
        grade("Partial Pat", "credentials",
              make_report("credentials", {}, only={"CRED-01", "CRED-02"})),
    ]


@pytest.fixture
def written(grades: list[Grade], tmp_path: Path) -> Path:
    """The batch report of `grades`, written once."""
    return write_batch(grades, tmp_path / "out", title="Grades <2026>", note="ran at noon")


def test_index_has_a_row_per_student_and_a_column_per_requirement(
        grades: list[Grade], written: Path) -> None:
    page = Page(written.read_text(encoding="utf-8"))
    assert written == written.parent / "index.html"
    assert len(page.tables) == 2  # credentials first (first appearance), then fight
    cred_rows = [r for r in page.tables[0] if r]
    assert [r[0]["text"] for r in cred_rows] == [
        "Ada Lovelace", f"Mallory {EVIL}", "Slow Sam", "Broken Bob", "Partial Pat"]
    extra = ["score", "MUSTs", "result", "seconds"]
    head = [h["text"] for h in page.headers[0]]
    assert head == ["student", *(f"{r.id}{r.level}" for r in CRED.requirements), *extra]
    assert [h["attrs"]["title"] for h in page.headers[0][1:-4]] == [
        r.statement for r in CRED.requirements]
    fight = load_spec("fight")
    assert len(page.headers[1]) == 1 + len(fight.requirements) + 4
    assert all(len(r) == 1 + len(CRED.requirements) + 4 for r in cred_rows)
    assert "ran at noon" in written.read_text(encoding="utf-8")


def test_cells_carry_the_verdicts_score_and_result(grades: list[Grade], written: Path) -> None:
    page = Page(written.read_text(encoding="utf-8"))
    n = len(CRED.requirements)
    rows = {r[0]["text"]: r for r in page.tables[0] if r}

    def by_id(row: list[dict[str, Any]]) -> dict[str, str]:
        return {req.id: c["attrs"]["title"] for req, c in zip(CRED.requirements, row[1:n + 1],
                                                              strict=True)}

    ada = rows["Ada Lovelace"]
    assert set(by_id(ada).values()) == {"pass"}
    assert [c["text"] for c in ada[n + 1:]] == ["100.0", "8/8", "PASS", "2.2"]
    mal = by_id(rows[f"Mallory {EVIL}"])
    assert mal["CRED-02"] == "fail"
    assert mal["CRED-05"] == "not run"
    assert mal["CRED-10"] == "fail (does not gate)"
    assert mal["CRED-15"] == "skipped"
    assert mal["CRED-01"] == "pass"
    cells = rows[f"Mallory {EVIL}"]
    assert "fail" in cells[2]["attrs"]["class"] and cells[2]["text"] == "✗"
    assert cells[1]["text"] == "✓"
    assert [c["text"] for c in cells[n + 1:n + 4]] == [
        f"{grades[1].score:.1f}", "6/8", "FAIL"]
    assert grades[1].score == pytest.approx(76.9)
    # Neither of these has a report: every requirement cell is "—".
    for name, word in (("Slow Sam", "STOPPED"), ("Broken Bob", "ERROR")):
        row = rows[name]
        assert {c["text"] for c in row[1:n + 1]} == {"—"}
        assert [c["text"] for c in row[n + 1:n + 4]] == ["0.0", "0/8", word]
    # A run limited to two requirements: the others were not reported.
    pat = rows["Partial Pat"]
    assert [c["text"] for c in pat[1:4]] == ["✓", "✓", "—"]
    assert pat[3]["attrs"]["title"] == "not reported"


def test_links_resolve_and_failures_link_to_their_anchor(written: Path) -> None:
    page = Page(written.read_text(encoding="utf-8"))
    targets = [h for h in page.links if h.startswith("students/")]
    assert len({h.split("#")[0] for h in targets}) == 6  # one page per roster line
    for href in targets:
        path, _, anchor = href.partition("#")
        file = written.parent / path
        assert file.is_file(), href
        if anchor:
            assert anchor in Page(file.read_text(encoding="utf-8")).ids
    assert "students/mallory.html#CRED-02" in targets
    for file in (written.parent / "students").iterdir():
        assert "../index.html" in Page(file.read_text(encoding="utf-8")).links


def test_student_page_shows_every_failure(grades: list[Grade], written: Path) -> None:
    text = (written.parent / "students" / "mallory.html").read_text(encoding="utf-8")
    page = Page(text)
    assert "Mallory &lt;script&gt;" in text
    for rid in ("CRED-02", "CRED-10"):
        req = CRED.by_id[rid]
        assert rid in page.ids
        assert str(escape(req.statement)) in text
        assert f"{rid} broke &lt;script&gt;alert(1)&lt;/script&gt;" in text
        assert f"status 200\nfor {rid}</pre>" in text  # newlines kept
        assert "status 500 &lt;script&gt;alert(1)&lt;/script&gt;\nline two</pre>" in text
        assert f"curl -sS &#39;http://127.0.0.1:8000/?s={rid}&amp;x=&lt;b&gt;&#39;" in text
        assert (f"conformance run credentials --url http://127.0.0.1:8000/ --seed 1 "
                f"--only {rid}</pre>") in text
    assert "(does not gate)" in text  # CRED-10 is a SHOULD outside --strict
    assert "CRED-05" in page.ids and "needs something that failed &lt;script&gt;" in text
    assert "CRED-15" in page.ids and "does not apply" in text
    assert "seen: lower case &lt;script&gt;" in text  # notes
    assert "http://127.0.0.1:8000/" in text  # target
    assert f"{grades[1].score:.1f}" in text and "FAIL" in text and "2.2 s" in text


def test_reportless_grades_render(written: Path) -> None:
    students = written.parent / "students"
    sam = (students / "slow-sam.html").read_text(encoding="utf-8")
    assert "STOPPED" in sam and "stopped after 60 s &lt;timeout&gt;</pre>" in sam
    bob = (students / "broken-bob.html").read_text(encoding="utf-8")
    assert "ERROR" in bob and "Traceback:\n  boom</pre>" in bob


def test_untrusted_text_is_escaped(written: Path) -> None:
    for file in [written, *(written.parent / "students").iterdir()]:
        text = file.read_text(encoding="utf-8")
        assert "<script" not in text, file.name
    assert "Grades &lt;2026&gt;" in written.read_text(encoding="utf-8")


def test_output_is_byte_identical_and_offline(grades: list[Grade], tmp_path: Path) -> None:
    a = write_batch(grades, tmp_path / "a").parent
    b = write_batch(grades, tmp_path / "b").parent
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert files_a == files_b and len(files_a) == 7
    for rel in files_a:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
        page = Page((a / rel).read_text(encoding="utf-8"))
        assert not [u for u in page.urls if u.startswith(("http://", "https://", "//"))], rel
        assert "<script" not in (a / rel).read_text(encoding="utf-8")


def test_repeated_or_missing_slugs_get_their_own_page(tmp_path: Path) -> None:
    report = make_report("credentials", {})
    same = [grade("Twin", "credentials", report, slug="twin"),
            grade("Twin", "credentials", report, slug="twin"),
            grade("Ünïcode Name", "credentials", report)]
    index = write_batch(same, tmp_path)
    names = sorted(p.name for p in (tmp_path / "students").iterdir())
    assert names == ["twin-2.html", "twin.html", "unicode-name.html"]
    links = [h for h in Page(index.read_text(encoding="utf-8")).links if h.startswith("students")]
    assert links == ["students/twin.html", "students/twin-2.html", "students/unicode-name.html"]


def test_a_suite_that_could_not_run_is_an_error(tmp_path: Path) -> None:
    report = make_report("credentials", {"CRED-01": "fail"})
    report.update(error="the suite broke <here>", exit_code=3, passed=False)
    index = write_batch([grade("Eve", "credentials", report)], tmp_path)
    rows = [r for r in Page(index.read_text(encoding="utf-8")).tables[0] if r]
    assert rows[0][-2]["text"] == "ERROR"
    page = (tmp_path / "students" / "eve.html").read_text(encoding="utf-8")
    assert "the suite broke &lt;here&gt;</pre>" in page
