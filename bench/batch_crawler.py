"""Benchmark: how long does grading a class take, against grading one student (issue goal)?

In one run: (a) `conformance run crawler` against our reference, started by the suite (`--command`
with `{port}`), timed from start to exit: one target's run time, the baseline; (b) `conformance
batch` of a roster of TARGETS (30) crawler targets, our reference several times over and every
variant of `fixtures/crawler` (broken twins and correct servers that chose differently), each
started by its own run on a free port, JOBS (20) at a time, timed the same way. Both use the same
run options (the batch's defaults: seed 0, fuzzing paced at 20 requests a second, FUZZ_SECONDS
of fuzzing), so the ratio says what grading many at once costs beyond one. Prints both times,
the ratio against the aim (at most 4x), and how many targets passed (the reference copies and
the correct variants must, the twins must not: a batch that got faster by judging wrong is no
gain). Everything talks to loopback only and has TIME_LIMIT seconds.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from conformance import load_spec
from conformance._run import reference_command
from fixtures._twins import command
from fixtures.crawler import CRAWLERS

ROOT = Path(__file__).resolve().parent.parent
TARGETS = 30
JOBS = 20
FUZZ_SECONDS = 5.0
TIME_LIMIT = 900.0
AIM = 4.0


def roster(count: int) -> list[tuple[str, str, bool]]:
    """(student, command, should pass): every crawler variant, then reference copies."""
    reference = reference_command(load_spec("crawler"))
    lines = [(f"twin-{t.name}", command(t), not t.broken)
             for t in sorted(CRAWLERS, key=lambda t: t.name)]
    lines = lines[:count]
    n = 1
    while len(lines) < count:
        lines.append((f"reference-{n:02d}", reference, True))
        n += 1
    return lines


def timed(argv: list[str], limit: float) -> tuple[float, int]:
    """Seconds `argv` took from the repository root, and its exit status."""
    started = time.monotonic()
    done = subprocess.run(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          timeout=limit, check=False)
    return time.monotonic() - started, done.returncode


def main(argv: list[str] | None = None) -> int:
    """Run both measurements and print the table; 0 when the aim is met and verdicts are right."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--targets", type=int, default=TARGETS)
    parser.add_argument("--jobs", type=int, default=JOBS)
    parser.add_argument("--fuzz-seconds", type=float, default=FUZZ_SECONDS)
    args = parser.parse_args(argv)
    console = Console()
    common = ["--seed", "0", "--fuzz-seconds", f"{args.fuzz_seconds:g}"]
    lines = roster(args.targets)
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        one, code = timed([sys.executable, "-m", "conformance", "run", "crawler", "--command",
                           reference_command(load_spec("crawler")), "--max-rate", "20",
                           *common], TIME_LIMIT / 4)
        if code != 0:
            console.print(f"the single run of the reference exited {code}: not comparable")
            return 1
        path = Path(tmp) / "roster.csv"
        with path.open("w", newline="", encoding="utf-8") as f:
            out = csv.writer(f)
            out.writerow(["student", "spec", "target"])
            out.writerows([student, "crawler", command] for student, command, _ in lines)
        many, code = timed([sys.executable, "-m", "conformance", "batch", str(path), "--out",
                            str(Path(tmp) / "grading"), "--jobs", str(args.jobs), "--rate",
                            "20", *common], TIME_LIMIT)
        results = json.loads((Path(tmp) / "grading" / "results.json").read_text())
        logs = {log.stem: log.read_text(encoding="utf-8")
                for log in (Path(tmp) / "grading" / "logs").glob("*.log")}
    passed = {s["student"]: s["passed"] for s in results["students"]}
    wrong = [student for student, _, should in lines if passed.get(student) != should]
    for s in results["students"]:
        if s["student"] not in wrong:
            continue
        # Why a verdict went wrong is the whole point of looking: say all we know of it.
        console.print(f"{s['student']}: exit {s['exit_code']}, {s['duration_s']} s, "
                      f"problem {s['problem']!r}")
        for r in (s["report"] or {}).get("requirements", []):
            if r["verdict"] not in ("pass", "skipped"):
                first = r["failures"][0]["message"] if r["failures"] else ""
                console.print(f"  {r['id']} {r['verdict']}: {first}", markup=False)
        console.print(logs.get(s["slug"], "(no log)")[-3000:], markup=False)
    table = Table(title=f"{len(lines)} crawler targets, {args.jobs} at a time")
    for column in ("measure", "value"):
        table.add_column(column)
    table.add_row("one target (reference)", f"{one:.1f} s")
    table.add_row(f"batch of {len(lines)}", f"{many:.1f} s (exit {code})")
    table.add_row("batch / one", f"{many / one:.2f}x (aim at most {AIM:g}x)")
    table.add_row("verdicts as expected", f"{len(lines) - len(wrong)}/{len(lines)}"
                  + (f" (wrong: {', '.join(wrong)})" if wrong else ""))
    console.print(table)
    return 0 if many / one <= AIM and not wrong else 1


if __name__ == "__main__":
    sys.exit(main())
