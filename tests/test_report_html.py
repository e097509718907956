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

from conformance._grades import Grade, RosterLine, bonus_score, score
from conformance._result import VERDICTS, Bonus
from conformance._spec import load_spec
from conformance.reports import from_dict, report_schema
from conformance.reports._html import _histogram as _histogram_bins
from conformance.reports._html import _percent, write_batch

EVIL = "<script>alert(1)</script>"


def make_report(spec_name: str, verdicts: dict[str, str], *, only: set[str] | None = None,
                strict: bool = False, isolation: str | None = None) -> dict[str, Any]:
    """A schema-valid report for `spec_name`: every requirement passes unless `verdicts` says.

    `isolation` None leaves the key out, as a report written before it existed.
    """
    spec = load_spec(spec_name)
    reqs = []
    counts = {lv: dict.fromkeys(VERDICTS, 0) for lv in ("MUST", "SHOULD", "MAY")}
    bonus = dict.fromkeys(VERDICTS, 0)
    for r in spec.requirements:
        if only is not None and r.id not in only:
            continue
        v = verdicts.get(r.id, "pass")
        (bonus if r.bonus else counts[r.level])[v] += 1
        failures = []
        if v == "fail":
            failures = [{"check": f"check_{r.id}", "message": f"{r.id} broke {EVIL}",
                         "expected": f"status 200\nfor {r.id}",
                         "actual": f"status 500 {EVIL}\nline two",
                         "reproduce": f"curl -sS 'http://127.0.0.1:8000/?s={r.id}&x=<b>'"}]
        reqs.append({
            "id": r.id, "level": r.level, "bonus": r.bonus, "statement": r.statement,
            "source": r.source, "weight": r.weight, "verdict": v,
            "gating": not r.bonus and (r.level == "MUST" or (strict and r.level == "SHOULD")),
            "reason": {"not_run": f"needs something that failed {EVIL}",
                       "skipped": "does not apply",
                       "not_implemented": f"no such feature {EVIL}"}.get(v),
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
        "counts": counts, "bonus": None, "requirements": reqs,
    }
    if sum(bonus.values()):
        status = ("attempted" if bonus["pass"] or bonus["fail"]
                  else "not attempted" if bonus["not_implemented"] else "not judged")
        summary = Bonus(status, bonus["pass"], sum(bonus.values()), bonus).words()
        report["bonus"] = {"status": status, "passed": bonus["pass"],
                           "total": sum(bonus.values()), "counts": bonus, "summary": summary}
    if isolation is not None:
        report["isolation"] = isolation
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
    spec = load_spec(spec_name)
    return Grade(entry=line, exit_code=exit_code, duration_s=2.25, report=result,
                 problem=problem, score=score(result, spec), slug=slug,
                 bonus_score=bonus_score(result, spec))


class Page(HTMLParser):
    """Tables, links and sources of one page, read with the stdlib parser.

    A `<th scope="row">` belongs to its row, as a `<td>` does; other `<th>` are column headers.
    """

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tables: list[list[list[dict[str, Any]]]] = []  # table -> row -> cell
        self.headers: list[list[dict[str, Any]]] = []  # table -> header cells
        self.classes: list[str] = []  # table -> its class attribute
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
            self.classes.append(a.get("class", ""))
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = {"tag": tag, "attrs": a, "text": ""}

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            if self._cell["tag"] == "th" and self._cell["attrs"].get("scope") != "row":
                self.headers[-1].append(self._cell)
            else:
                self.tables[-1][-1].append(self._cell)
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell["text"] += data

    def of_class(self, css: str) -> list[tuple[list[list[dict[str, Any]]], list[dict[str, Any]]]]:
        """(rows, column headers) of every table of class `css`, in page order."""
        return [(t, h) for t, h, c in zip(self.tables, self.headers, self.classes, strict=True)
                if c == css]

    def matrices(self) -> list[list[list[dict[str, Any]]]]:
        """The student rows of each spec matrix (the class row left out)."""
        return [[r for r in t if r and r[0]["tag"] == "td"] for t, _ in self.of_class("matrix")]

    def class_rows(self) -> list[list[dict[str, Any]]]:
        """The class row of each spec matrix, its "class" label first."""
        return [next(r for r in t if r and r[0]["tag"] == "th") for t, _ in self.of_class("matrix")]


CRED = load_spec("credentials")
NETNS = "a network namespace of its own"


@pytest.fixture
def grades() -> list[Grade]:
    """Five credentials students (all pass, some fail, stopped, no report, a run limited with
    --only; the first two say how they were isolated) and one fight one (isolation "")."""
    fight = load_spec("fight")
    return [
        grade("Ada Lovelace", "credentials",
              make_report("credentials", {}, isolation=NETNS)),
        grade(f"Mallory {EVIL}", "credentials", make_report(
            "credentials", {"CRED-02": "fail", "CRED-05": "not_run", "CRED-10": "fail",
                            "CRED-15": "skipped"}, isolation=f"shared {EVIL} & co"),
              slug="mallory"),
        grade("Slow Sam", "credentials", None, exit_code=None,
              problem="stopped after 60 s <timeout>"),
        grade("Broken Bob", "credentials", None, exit_code=3, problem="Traceback:\n  boom"),
        grade("Ada Lovelace", "fight",
              make_report("fight", {fight.requirements[0].id: "fail"}, isolation="")),
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
    matrices = page.of_class("matrix")
    assert len(matrices) == 2  # credentials first (first appearance), then fight
    cred_rows = page.matrices()[0]
    assert [r[0]["text"] for r in cred_rows] == [
        "Ada Lovelace", f"Mallory {EVIL}", "Slow Sam", "Broken Bob", "Partial Pat"]
    # Some credentials runs said how they were isolated: that spec gets the column.
    extra = ["score", "MUSTs", "result", "seconds", "isolation"]
    cred_head = matrices[0][1]
    head = [h["text"] for h in cred_head]
    assert head == ["student", *(f"{r.id}{r.level}" for r in CRED.requirements), *extra]
    assert [h["attrs"]["title"] for h in cred_head[1:-5]] == [
        r.statement for r in CRED.requirements]
    fight = load_spec("fight")
    # No fight run did: no column there; fight has a bonus, so a bonus score column.
    assert [h["text"] for h in matrices[1][1][-5:]] == ["score", "bonus", *extra[1:4]]
    assert len(matrices[1][1]) == 1 + len(fight.requirements) + 5
    assert [h["text"] for h in matrices[1][1][1:-5]] == [
        f"{r.id}{r.level}" + (" bonus" if r.bonus else "") for r in fight.requirements]
    assert all(len(r) == 1 + len(CRED.requirements) + 5 for r in cred_rows)
    assert "ran at noon" in written.read_text(encoding="utf-8")


def test_cells_carry_the_verdicts_score_and_result(grades: list[Grade], written: Path) -> None:
    page = Page(written.read_text(encoding="utf-8"))
    n = len(CRED.requirements)
    rows = {r[0]["text"]: r for r in page.matrices()[0]}

    def by_id(row: list[dict[str, Any]]) -> dict[str, str]:
        return {req.id: c["attrs"]["title"] for req, c in zip(CRED.requirements, row[1:n + 1],
                                                              strict=True)}

    ada = rows["Ada Lovelace"]
    assert set(by_id(ada).values()) == {"pass"}
    assert [c["text"] for c in ada[n + 1:]] == ["100.0", "8/8", "PASS", "2.2", "[1]"]
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
    rows = Page(index.read_text(encoding="utf-8")).matrices()[0]
    assert rows[0][-2]["text"] == "ERROR"
    page = (tmp_path / "students" / "eve.html").read_text(encoding="utf-8")
    assert "the suite broke &lt;here&gt;</pre>" in page


def _shares(row: list[dict[str, Any]]) -> dict[str, tuple[str, str, str]]:
    """Requirement id -> (text, class, title) of a credentials class row."""
    return {r.id: (c["text"], c["attrs"]["class"], c["attrs"]["title"])
            for r, c in zip(CRED.requirements, row[1:len(CRED.requirements) + 1], strict=True)}


def test_class_row_counts_passes_over_the_students_with_a_report(written: Path) -> None:
    page = Page(written.read_text(encoding="utf-8"))
    cred, fight_row = page.class_rows()
    assert cred[0]["text"] == "class passed / graded"
    # Of five credentials lines, Sam (stopped) and Bob (no report) are not graded: 3 are.
    assert "3 students of this spec whose run gave a report" in cred[0]["attrs"]["title"]
    shares = _shares(cred)
    assert shares["CRED-01"][0] == "3/3 100%"
    assert shares["CRED-02"][0] == "2/3 67%"  # Mallory failed it
    assert shares["CRED-03"][0] == "2/3 67%"  # Pat's run did not name it: not passed
    assert shares["CRED-03"][2] == ("CRED-03: 2 of 3 students with a report passed (67%); "
                                    "1 not reported")
    # The three lowest (Ada alone passed them) stand out by a marker and bold, not colour only.
    lowest = {rid for rid, (_, css, _) in shares.items() if "lowest" in css}
    assert lowest == {"CRED-05", "CRED-10", "CRED-15"}
    assert shares["CRED-05"] == (
        "▼ 1/3 33%", "share lowest",
        "CRED-05: 1 of 3 students with a report passed (33%); 1 not run, 1 not reported; "
        "the lowest share in this spec")
    assert shares["CRED-10"][2].startswith("CRED-10: 1 of 3 students with a report passed "
                                           "(33%); 1 fail, 1 not reported;")
    assert "1 skipped" in shares["CRED-15"][2]
    assert all(css == "share" for rid, (_, css, _) in shares.items() if rid not in lowest)
    assert cred[-1]["text"] == "3 of 5 graded"
    # The fight matrix: one student, who failed FIGHT-01.
    assert fight_row[1]["text"] == "▼ 0/1 0%" and "lowest" in fight_row[1]["attrs"]["class"]
    assert fight_row[2]["text"] == "1/1 100%" and fight_row[-1]["text"] == "1 of 1 graded"
    # The page says which rule it used.
    assert "out of\nthe graded students" in written.read_text(encoding="utf-8")


def test_class_row_marks_the_lowest_and_the_under_half(tmp_path: Path) -> None:
    reports = {
        "A": {},
        "B": {"CRED-02": "fail", "CRED-03": "fail", "CRED-04": "fail"},
        "C": {"CRED-02": "fail", "CRED-03": "fail", "CRED-04": "fail"},
        "D": {"CRED-02": "fail", "CRED-03": "fail"},
        "E": {"CRED-02": "fail"},
    }
    grades = [grade(name, "credentials", make_report("credentials", v))
              for name, v in reports.items()]
    grades += [grade("F", "credentials", None, exit_code=None, problem="stopped"),
               grade("G", "credentials", None, exit_code=3, problem="broke")]
    index = write_batch(grades, tmp_path)
    shares = _shares(Page(index.read_text(encoding="utf-8")).class_rows()[0])
    assert shares["CRED-01"][:2] == ("5/5 100%", "share")
    assert shares["CRED-02"][:2] == ("▼ 1/5 20%", "share lowest")
    assert shares["CRED-02"][2].endswith("4 fail; the lowest share in this spec")
    assert shares["CRED-03"][:2] == ("2/5 40%", "share low")
    assert shares["CRED-03"][2].endswith("fewer than half passed")
    assert shares["CRED-04"][:2] == ("3/5 60%", "share")


def test_class_row_without_any_report_and_without_a_failure(tmp_path: Path) -> None:
    grades = [grade("F", "credentials", None, exit_code=None, problem="stopped"),
              grade("A", "fight", make_report("fight", {}))]
    index = write_batch(grades, tmp_path)
    cred, fight_row = Page(index.read_text(encoding="utf-8")).class_rows()
    assert {c["text"] for c in cred[1:-1]} == {"—"}
    assert cred[1]["attrs"]["title"] == "no student of this spec has a report"
    assert cred[-1]["text"] == "0 of 1 graded"
    # Everyone passed everything: nothing is marked as lowest (a bonus's share is its own).
    fight = load_spec("fight")
    assert [c["attrs"]["class"] for c in fight_row[1:len(fight.requirements) + 1]] == [
        "share bonus" if r.bonus else "share" for r in fight.requirements]


@pytest.mark.parametrize(("won", "total", "shown"), [
    (2, 3, "67%"), (1, 8, "13%"), (0, 5, "0%"), (5, 5, "100%"),
    (299, 300, "99%"), (1, 300, "1%"),  # never 100% with a miss, never 0% with a pass
])
def test_share_percent_rounding(won: int, total: int, shown: str) -> None:
    assert _percent(won, total) == shown


def _histogram(page: Page, i: int) -> tuple[list[str], list[int], list[str]]:
    """(bin labels, counts, bar heights) of the i-th histogram of the page."""
    rows = page.of_class("histogram")[i][0]
    bars, counts, bins = (r for r in rows if r)
    return ([c["text"] for c in bins[1:]], [int(c["text"]) for c in counts[1:]],
            [c["text"] for c in bars[1:]])


def test_histogram_counts_every_line_by_score(grades: list[Grade], written: Path) -> None:
    text = written.read_text(encoding="utf-8")
    page = Page(text)
    assert len(page.of_class("histogram")) == 2  # one per spec
    labels, counts, _ = _histogram(page, 0)
    assert labels == ["0-9.9", "10-19.9", "20-29.9", "30-39.9", "40-49.9", "50-59.9",
                      "60-69.9", "70-79.9", "80-89.9", "90-100"]
    # Sam and Bob score 0 (no report), Pat 15.4, Mallory 76.9, Ada 100.
    assert [g.score for g in grades[:4]] + [grades[5].score] == [100.0, 76.9, 0.0, 0.0, 15.4]
    assert counts == [2, 1, 0, 0, 0, 0, 0, 1, 0, 1]
    assert "Scores of credentials: 5 students, 2 with no report (scored 0)" in text
    _, fight_counts, _ = _histogram(page, 1)
    assert fight_counts == [0] * 9 + [1]  # 13 of 14: 92.9
    # The bars are divs sized in em (the tallest 4em), inline; empty bins have none.
    assert 'style="height: 4.00em"' in text and 'style="height: 2.00em"' in text
    assert "<img" not in text and "<svg" not in text
    # Each count is also written out in words, for a screen reader or a printout.
    rows = page.of_class("histogram")[0][0]
    counts_row = [r for r in rows if r][1]
    assert counts_row[0]["text"] == "students"
    assert counts_row[1]["attrs"]["title"] == "2 with scores from 0 to under 10"
    assert counts_row[10]["attrs"]["title"] == "1 with scores from 90 to 100"


def test_histogram_bins_edges() -> None:
    bins = _histogram_bins([0.0, 9.9, 10.0, 19.9, 99.9, 100.0, 50.0])
    assert [b.count for b in bins] == [2, 2, 0, 0, 0, 1, 0, 0, 0, 2]
    assert [b.height for b in bins][:3] == ["4.00em", "4.00em", ""]
    assert bins[5].height == "2.00em"


def test_isolation_is_shown_when_the_report_says_it(written: Path) -> None:
    text = written.read_text(encoding="utf-8")
    page = Page(text)
    rows = {r[0]["text"]: r for r in page.matrices()[0]}
    ada, mal = rows["Ada Lovelace"][-1], rows[f"Mallory {EVIL}"][-1]
    assert (ada["text"], ada["attrs"]["title"]) == ("[1]", NETNS)
    assert (mal["text"], mal["attrs"]["title"]) == ("[2]", f"shared {EVIL} & co")
    for name in ("Slow Sam", "Broken Bob", "Partial Pat"):  # nothing said: nothing shown
        assert rows[name][-1]["text"] == "" and "title" not in rows[name][-1]["attrs"]
    # The key under the matrix, in the run's own words (escaped).
    assert f"<dt>isolation [1]</dt><dd>{NETNS}</dd>" in text
    assert ("<dt>isolation [2]</dt><dd>shared &lt;script&gt;alert(1)&lt;/script&gt; &amp; co"
            "</dd>") in text
    students = written.parent / "students"
    ada_page = (students / "ada-lovelace.html").read_text(encoding="utf-8")
    assert f'<dt>isolation</dt><dd class="isolation">{NETNS}</dd>' in ada_page
    assert "<dt>target</dt><dd><code>http://127.0.0.1:8000/</code></dd>" in ada_page
    mal_page = (students / "mallory.html").read_text(encoding="utf-8")
    assert "shared &lt;script&gt;alert(1)&lt;/script&gt; &amp; co</dd>" in mal_page
    # "" (the fight run), a report without the key (Pat) and no report: no isolation line.
    for slug in ("ada-lovelace-2", "partial-pat", "slow-sam", "broken-bob"):
        assert "<dt>isolation" not in (students / f"{slug}.html").read_text(encoding="utf-8")


def test_same_isolation_shares_a_key(tmp_path: Path) -> None:
    grades = [grade(n, "credentials", make_report("credentials", {}, isolation=iso))
              for n, iso in (("A", "net one"), ("B", ""), ("C", "net two"), ("D", "net one"))]
    index = write_batch(grades, tmp_path)
    rows = Page(index.read_text(encoding="utf-8")).matrices()[0]
    assert [r[-1]["text"] for r in rows] == ["[1]", "", "[2]", "[1]"]


def test_evil_roster_and_report_text_stays_inert(tmp_path: Path) -> None:
    evil_report = make_report("credentials", {"CRED-02": "fail"}, isolation=EVIL + '"\'')
    grades = [grade(EVIL, "credentials", evil_report),
              grade(f'x" onmouseover="{EVIL}', "credentials", evil_report)]
    index = write_batch(grades, tmp_path / "out", title=EVIL, note=EVIL)
    files = [index, *(index.parent / "students").iterdir()]
    assert len(files) == 3
    for file in files:
        text = file.read_text(encoding="utf-8")
        assert "<script" not in text and 'onmouseover="' not in text, file.name
    page = Page(index.read_text(encoding="utf-8"))
    assert [r[-1]["attrs"]["title"] for r in page.matrices()[0]] == [EVIL + '"\''] * 2
    assert page.matrices()[0][1][0]["text"] == f'x" onmouseover="{EVIL}'


def test_not_implemented_and_bonus_have_cells_columns_and_shares_of_their_own(
        tmp_path: Path) -> None:
    fight = load_spec("fight")
    bonus = [r.id for r in fight.requirements if r.bonus]
    grades = [
        grade("All", "fight", make_report("fight", {})),
        grade("None", "fight", make_report("fight", dict.fromkeys(bonus, "not_implemented"))),
        grade("Most", "fight", make_report("fight", {bonus[-1]: "fail"})),
    ]
    index = write_batch(grades, tmp_path)
    text = index.read_text(encoding="utf-8")
    page = Page(text)
    n = len(fight.requirements)
    rows = {r[0]["text"]: r for r in page.matrices()[0]}
    first = 1 + [r.id for r in fight.requirements].index(bonus[0])
    absent = rows["None"][first]
    assert (absent["text"], absent["attrs"]["title"], absent["attrs"]["class"]) == (
        "∅", "not implemented", "not_implemented")
    failed = rows["Most"][first + len(bonus) - 1]
    assert failed["attrs"]["title"] == "fail (does not gate)"
    assert "nongating" in failed["attrs"]["class"]
    # The bonus is scored apart: the score is 100 for all three, the bonus column differs.
    musts = f"{sum(r.level == 'MUST' and not r.bonus for r in fight.requirements)}"
    assert [[c["text"] for c in rows[s][n + 1:n + 5]] for s in ("All", "None", "Most")] == [
        ["100.0", "100.0", f"{musts}/{musts}", "PASS"],
        ["100.0", "0.0 not attempted", f"{musts}/{musts}", "PASS"],
        ["100.0", "75.0", f"{musts}/{musts}", "PASS"]]
    assert rows["Most"][n + 2]["attrs"]["title"] == "bonus: attempted, 3/4 passed (1 fail)"
    shares = {r.id: c for r, c in zip(fight.requirements, page.class_rows()[0][1:n + 1],
                                      strict=True)}
    # A bonus two of three missed is no requirement the class missed: never marked lowest.
    assert shares[bonus[-1]]["attrs"]["class"] == "share bonus"
    assert shares[bonus[-1]]["text"] == "1/3 33%"
    assert "1 fail, 1 not implemented; a bonus: optional" in shares[bonus[-1]]["attrs"]["title"]
    assert not any("lowest" in c["attrs"]["class"] for c in shares.values())
    assert "∅</span> not implemented" in text
    student = (tmp_path / "students" / "none.html").read_text(encoding="utf-8")
    assert "<h2>Not implemented</h2>" in student
    assert all(f'<li id="{rid}"><strong>{rid}</strong> MUST, bonus' in student for rid in bonus)
    assert "no such feature &lt;script&gt;" in student
    assert '<dd class="bonus">not attempted; bonus score 0.0</dd>' in student
    assert "Failures (0)" in student
