"""What the batch benchmarks share: one run of the reference against a batch of a roster, timed
in the same run, with every verdict read back (a faster batch that judges wrong is no gain)."""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
TIME_LIMIT = 900.0
AIM = 4.0

Line = tuple[str, str, bool]  # student, command, whether it should pass


def arguments(doc: str, targets: int, jobs: int, fuzz_seconds: float,
              argv: list[str] | None,
              more: Callable[[argparse.ArgumentParser], None] | None = None
              ) -> argparse.Namespace:
    """The options every batch benchmark takes, and those `more` adds (a benchmark's own)."""
    parser = argparse.ArgumentParser(description=doc.split("\n", 1)[0])
    if more is not None:
        more(parser)
    parser.add_argument("--targets", type=int, default=targets)
    parser.add_argument("--jobs", type=int, default=jobs)
    parser.add_argument("--fuzz-seconds", type=float, default=fuzz_seconds)
    parser.add_argument("--shared-network", action="store_true",
                        help="every run on this machine's network (as before issue 15), not "
                             "in one of its own: the cost of the namespaces, by comparison")
    return parser.parse_args(argv)


def filled(lines: list[Line], count: int, reference: str) -> list[Line]:
    """The first `count` of `lines`, then copies of our reference up to `count`."""
    copies = [(f"reference-{n:02d}", reference, True) for n in range(1, count + 1)]
    return [*lines, *copies][:count] if len(lines) < count else lines[:count]


def timed(argv: list[str], limit: float) -> tuple[float, int]:
    """Seconds `argv` took from the repository root, and its exit status."""
    started = time.monotonic()
    done = subprocess.run(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          timeout=limit, check=False)
    return time.monotonic() - started, done.returncode


def measure(spec: str, reference: str, lines: list[Line], args: argparse.Namespace,
            title: str) -> int:
    """Time one run of `reference` and a batch of `lines`, print the table; 0 when the batch
    takes at most AIM times one run and every verdict is as expected."""
    console = Console()
    network = ["--shared-network"] if args.shared_network else []
    common = ["--seed", "0", "--fuzz-seconds", f"{args.fuzz_seconds:g}"]
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        one, code = timed([sys.executable, "-m", "conformance", "run", spec, "--command",
                           reference, "--max-rate", "20", *common, *network], TIME_LIMIT / 4)
        if code != 0:
            console.print(f"the single run of the reference exited {code}: not comparable")
            return 1
        roster = Path(tmp) / "roster.csv"
        with roster.open("w", newline="", encoding="utf-8") as f:
            out = csv.writer(f)
            out.writerow(["student", "spec", "target", "args"])
            out.writerows([student, spec, command, " ".join(network)]
                          for student, command, _ in lines)
        grading = Path(tmp) / "grading"
        many, code = timed([sys.executable, "-m", "conformance", "batch", str(roster), "--out",
                            str(grading), "--jobs", str(args.jobs), "--rate", "20", *common],
                           TIME_LIMIT)
        results = json.loads((grading / "results.json").read_text())
        wrong = _wrong_verdicts(grading, results, {s: ok for s, _, ok in lines}, console)
    kept = {(s["report"] or {}).get("isolation", "(no report)") for s in results["students"]}
    table = Table(title=title)
    for column in ("measure", "value"):
        table.add_column(column)
    table.add_row("one target (reference)", f"{one:.1f} s")
    table.add_row(f"batch of {len(lines)}", f"{many:.1f} s (exit {code})")
    table.add_row("batch / one", f"{many / one:.2f}x (aim at most {AIM:g}x)")
    table.add_row("isolation", "; ".join(sorted(kept)))
    table.add_row("verdicts as expected", f"{len(lines) - len(wrong)}/{len(lines)}"
                  + (f" (wrong: {', '.join(wrong)})" if wrong else ""))
    console.print(table)
    return 0 if many / one <= AIM and not wrong else 1


def graded(spec: str, lines: list[Line], args: argparse.Namespace, line_args: list[str],
           folder: Path) -> tuple[float, int, dict[str, list[dict[str, object]]]]:
    """Grade `lines` in one `conformance batch` (`line_args` in every line's args column, the
    options `measure` gives), its roster and results in `folder`: its seconds, its exit status
    and its results.json."""
    common = ["--seed", "0", "--fuzz-seconds", f"{args.fuzz_seconds:g}"]
    network = ["--shared-network"] if args.shared_network else []
    folder.mkdir(parents=True, exist_ok=True)
    roster = folder / "roster.csv"
    with roster.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["student", "spec", "target", "args"])
        out.writerows([student, spec, command, " ".join([*network, *line_args])]
                      for student, command, _ in lines)
    grading = folder / "grading"
    seconds, code = timed([sys.executable, "-m", "conformance", "batch", str(roster), "--out",
                           str(grading), "--jobs", str(args.jobs), "--rate", "20", *common],
                          TIME_LIMIT)
    return seconds, code, json.loads((grading / "results.json").read_text())


def wrong_verdicts(folder: Path, results: dict[str, list[dict[str, object]]],
                   lines: list[Line], console: Console) -> list[str]:
    """The students of a batch `graded` in `folder` whose pass/fail is not what `lines` expect,
    each explained with all that is known."""
    return _wrong_verdicts(folder / "grading", results, {s: ok for s, _, ok in lines}, console)


def _wrong_verdicts(grading: Path, results: dict[str, list[dict[str, object]]],
                    expected: dict[str, bool], console: Console) -> list[str]:
    """The students whose pass/fail is not `expected`, each explained with all that is known."""
    logs = {log.stem: log.read_text(encoding="utf-8") for log in (grading / "logs").glob("*.log")}
    students: list[dict[str, object]] = results["students"]
    passed = {s["student"]: s["passed"] for s in students}
    wrong = [student for student, should in expected.items() if passed.get(student) != should]
    for s in students:
        if s["student"] not in wrong:
            continue
        console.print(f"{s['student']}: exit {s['exit_code']}, {s['duration_s']} s, "
                      f"problem {s['problem']!r}")
        report = s["report"] if isinstance(s["report"], dict) else {}
        for r in report.get("requirements", []):
            if r["verdict"] not in ("pass", "skipped"):
                first = r["failures"][0]["message"] if r["failures"] else ""
                console.print(f"  {r['id']} {r['verdict']}: {first}", markup=False)
        console.print(logs.get(str(s["slug"]), "(no log)")[-3000:], markup=False)
    return wrong
