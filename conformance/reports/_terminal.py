"""The terminal report: a table of verdicts, then every failure with expected, actual and the
commands that reproduce it, then one summary line per spec.

Rules: colour only decorates (a verdict is always spelt out); a gating problem is red, a
non-gating one yellow; the summary line is plain words a person or a grep can read, the bonus
a group of its own at its end (`bonus: attempted, 2/3 passed`, `bonus: not attempted`).
"""

from __future__ import annotations

import shlex

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from conformance._result import WORDS, RequirementResult, RunResult

_STYLE = {"pass": "green", "fail": "red", "not_run": "magenta", "skipped": "dim",
          "not_implemented": "blue"}


def _verdict_text(r: RequirementResult, strict: bool) -> Text:
    word = WORDS[r.verdict]
    style = _STYLE[r.verdict]
    if r.verdict in ("fail", "not_run") and not r.gating(strict):
        style = "yellow"
    return Text(word, style=style)


def summary_line(result: RunResult) -> str:
    """`credentials: PASS - MUST 8/8 passed; SHOULD 5/5 ...` in plain words."""
    if result.error:
        return f"{result.spec.name}: ERROR - the suite itself could not run"
    parts = []
    for level, c in result.counts().items():
        total = sum(c.values())
        if not total:
            continue
        extra = ", ".join(f"{n} {WORDS[v]}" for v, n in c.items() if v != "pass" and n)
        parts.append(f"{level} {c['pass']}/{total} passed" + (f" ({extra})" if extra else ""))
    bonus = result.bonus()
    if bonus is not None:
        parts.append(f"bonus: {bonus.words()}")
    word = "PASS" if result.passed else "FAIL"
    mode = "strict" if result.strict else "SHOULD and MAY do not gate"
    return f"{result.spec.name}: {word} - {'; '.join(parts)} [{mode}, {result.duration_s:.1f} s]"


def render(result: RunResult, console: Console) -> None:
    """Print one run's report."""
    spec = result.spec
    console.rule(f"[bold]{escape(spec.name)}[/] - {escape(spec.title)} "
                 f"(seed {spec.seed}, {escape(spec.section)})")
    console.print(f"target: {escape(result.target)}", highlight=False)
    if result.isolation:
        console.print(f"[dim]isolation: {escape(result.isolation)}[/]", highlight=False)
    for stopped in result.stopped:
        console.print(Text(f"the target was {stopped}", style="red"), highlight=False)
    if result.target_output:
        # Once, here: the rows and failures below say it in a line and point up to it.
        console.print(Text("the target's own output: " + result.target_output, style="red"),
                      highlight=False)
    if result.error:
        console.print(Text(result.error, style="red"))
    table = Table(show_header=True, header_style="bold", expand=False, box=None, pad_edge=False)
    table.add_column("id", no_wrap=True)
    table.add_column("level", no_wrap=True)
    table.add_column("verdict", no_wrap=True)
    table.add_column("requirement")
    for r in result.results:
        text = escape(r.requirement.statement)
        if r.verdict in ("not_run", "skipped", "not_implemented") and r.reason:
            text += f"\n[dim]{escape(r.reason)}[/]"
        for n in r.notes:
            text += f"\n[cyan]{escape(n)}[/]"
        table.add_row(r.requirement.id, r.requirement.label, _verdict_text(r, result.strict),
                      text)
    console.print(table)
    failed = [r for r in result.results if r.verdict == "fail"]
    for r in failed:
        req = r.requirement
        gate = "" if r.gating(result.strict) else " (does not gate)"
        console.print()
        console.print(Text(f"{req.id} {req.label}{gate}: {req.statement}", style="bold"))
        for f in r.failures[:3]:
            console.print(f"  {escape(f.message)}", highlight=False)
            if f.expected:
                console.print(f"  [bold]expected[/]: {escape(f.expected)}", highlight=False)
            if f.actual:
                console.print(f"  [bold]actual[/]:   {escape(f.actual)}", highlight=False)
            if f.reproduce:
                console.print(f"  [bold]reproduce[/]: {escape(f.reproduce)}", highlight=False,
                              soft_wrap=True)
        if len(r.failures) > 3:
            console.print(f"  ... and {len(r.failures) - 3} more failures of {req.id}")
        rerun = f"{result.rerun} --only {shlex.quote(req.id)}"
        console.print(f"  [bold]re-run[/]:   {escape(rerun)}", highlight=False, soft_wrap=True)
    console.print()
    style = "green" if result.passed else "red"
    console.print(Text(summary_line(result), style=f"bold {style}"))
