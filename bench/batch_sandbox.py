"""Benchmark: what does the sandbox (issue 24) cost a batch, against one with `--no-sandbox`?

The sandbox: bubblewrap, an unprivileged user, limits (conformance/_sandbox.py). In one run:
(a) `conformance batch` of the roster of `batch_crawler.py` (TARGETS (30) crawler targets: every
variant of `fixtures/crawler`, topped up with copies of our reference), graded ROUNDS (2) times
each way, every line with `--no-sandbox` in its args (the baseline) and every line sandboxed
(the default), in the order off, on, on, off, ... so that a drift of the machine's load weighs
on both alike; same options as batch_crawler (seed 0, fuzzing paced at 20 requests a second for
FUZZ_SECONDS). Prints each batch's time, the ratio of the totals (sandboxed / unsandboxed)
against the aim (at most 1.10) and that of the best of each, the isolation each way's reports
name, how many targets passed each way, and every line whose verdicts (its pass/fail and each
requirement's) differ between the two ways: a sandbox that changes a verdict is a bug. (b) The
launch cost alone: `python -c pass` started LAUNCHES (1,000) times each way through
`conformance._isolation.launched()`, one way then the other, in median ms per launch; and what
the sandboxed launch's parts cost (the /bin/sh step, bwrap itself, our launcher's Python start,
the Python work of `Sandbox.command()`: `_shown()`, `_hidden()`, `_private()`, `give()`), each
timed alone, in turn, against /bin/true started bare. Loopback only; every batch has TIME_LIMIT
seconds.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from _batch import TIME_LIMIT, Line, arguments, graded, wrong_verdicts
from batch_crawler import FUZZ_SECONDS, JOBS, TARGETS, roster
from rich.console import Console
from rich.table import Table

from conformance import _sandbox as sandbox
from conformance._isolation import LAUNCHER, launched, target_env

AIM = 1.10
ROUNDS = 2
LAUNCHES = 1000
OFF = ["--no-sandbox"]

Verdicts = dict[str, dict[str, str]]  # student -> 'passed' or requirement -> verdict


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rounds", type=int, default=ROUNDS,
                        help="batches each way (alternately: off, on, on, off, ...)")
    parser.add_argument("--launches", type=int, default=LAUNCHES,
                        help="launches of `python -c pass` each way (0: none)")


def verdicts(results: dict[str, list[dict[str, object]]]) -> Verdicts:
    """Each student's pass/fail and every requirement's verdict, from a batch's results."""
    out: Verdicts = {}
    for s in results["students"]:
        report = s["report"] if isinstance(s["report"], dict) else {}
        out[str(s["student"])] = {"passed": str(s["passed"]), **{
            str(r["id"]): str(r["verdict"]) for r in report.get("requirements", [])}}
    return out


def _isolation(student: dict[str, object]) -> str:
    """How a student's target was contained, as its report says, without the limits."""
    report = student["report"] if isinstance(student["report"], dict) else {}
    return str(report.get("isolation", "(no report)")).partition("; limits:")[0]


def compared(off: list[Verdicts], on: list[Verdicts]) -> tuple[list[str], list[str]]:
    """What differs between the batches graded without the sandbox (`off`) and with it (`on`):
    each student's verdict (pass/fail, a requirement's) whose values seen one way are not those
    seen the other, and apart, those that varied within each way alike (a check's own noise)."""
    differ: list[str] = []
    noisy: list[str] = []
    students = sorted({student for batch in (*off, *on) for student in batch})
    for student in students:
        keys = sorted({k for batch in (*off, *on) for k in batch.get(student, {})})
        for key in keys:
            seen_off = {batch.get(student, {}).get(key, "-") for batch in off}
            seen_on = {batch.get(student, {}).get(key, "-") for batch in on}
            if seen_off != seen_on:
                varies = " (varies within a way too)" if max(len(seen_off),
                                                              len(seen_on)) > 1 else ""
                differ.append(f"{student} {key}: no sandbox {'/'.join(sorted(seen_off))}, "
                              f"sandbox {'/'.join(sorted(seen_on))}{varies}")
            elif len(seen_off) > 1:
                noisy.append(f"{student} {key}: {'/'.join(sorted(seen_off))} both ways")
    return differ, noisy


def batches(lines: list[Line], args: argparse.Namespace, console: Console
            ) -> tuple[Table, bool]:
    """Grade `lines` args.rounds times each way, alternately; the table, and whether the aim is
    met with the same verdicts both ways and every verdict as expected."""
    ways = [w for r in range(args.rounds) for w in ((False, True) if r % 2 == 0 else
                                                     (True, False))]
    seconds: dict[bool, list[float]] = {False: [], True: []}
    seen: dict[bool, list[Verdicts]] = {False: [], True: []}
    isolation: dict[bool, set[str]] = {False: set(), True: set()}
    passed: dict[bool, list[int]] = {False: [], True: []}
    wrong: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-sandbox-") as tmp:
        for n, on in enumerate(ways):
            folder = Path(tmp) / f"{n:02d}-{'on' if on else 'off'}"
            took, code, results = graded("crawler", lines, args, [] if on else OFF, folder)
            console.print(f"batch {n + 1}/{len(ways)}, sandbox {'on' if on else 'off'}: "
                          f"{took:.1f} s, exit {code}")
            seconds[on].append(took)
            seen[on].append(verdicts(results))
            passed[on].append(sum(bool(s["passed"]) for s in results["students"]))
            isolation[on] |= {_isolation(s) for s in results["students"]}
            wrong += [f"{w} ({'on' if on else 'off'})"
                      for w in wrong_verdicts(folder, results, lines, console)]
    differ, noisy = compared(seen[False], seen[True])
    ratio = sum(seconds[True]) / sum(seconds[False])
    table = Table(title=f"{len(lines)} crawler targets, {args.jobs} at a time, "
                        f"{args.rounds} batches each way")
    for column in ("measure", "no sandbox", "sandbox"):
        table.add_column(column)
    table.add_row("batch times", *(", ".join(f"{t:.1f} s" for t in seconds[w])
                                   for w in (False, True)))
    table.add_row("passed", *(", ".join(f"{p}/{len(lines)}" for p in passed[w])
                              for w in (False, True)))
    table.add_row("isolation", *("; ".join(sorted(isolation[w])) for w in (False, True)))
    table.add_row("sandbox / no sandbox", f"{ratio:.3f}x time (aim at most {AIM:g}x)",
                  f"best of each {min(seconds[True]) / min(seconds[False]):.3f}x")
    table.add_row("verdicts differing between the ways", "-", "\n".join(differ) or "none")
    if noisy:
        table.add_row("verdicts varying within each way alike (noise)", "-",
                      "\n".join(noisy))
    table.add_row("verdicts not as expected", "-", ", ".join(wrong) or "none")
    # Each way as asked, or the ratio compares nothing.
    sandboxed = all("sandbox (bubblewrap)" in i for i in isolation[True]) and all(
        "--no-sandbox was given" in i for i in isolation[False])
    if not sandboxed:
        console.print("a batch did not run as asked (see the isolation row): not comparable")
    return table, ratio <= AIM and not differ and not wrong and sandboxed


# -- the launch cost ---------------------------------------------------------------------------


def _one(argv: Sequence[str], cwd: Path, env: dict[str, str]) -> float:
    """Seconds one start of `argv` took, to its exit."""
    started = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, check=True, timeout=30)
    return time.perf_counter() - started


def _per_call(call: Callable[[], object], count: int) -> float:
    """Median seconds of a call of `call`, over `count` calls."""
    times = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def launches(count: int) -> Table:
    """`python -c pass` launched `count` times each way, one way then the other (this machine's
    load moves faster than a block of launches), and the sandboxed launch's parts each timed
    alone, the same way; the table (median ms per launch: a start of 50-100 ms meets the other
    jobs' bursts, which a median leaves out)."""
    program = [sys.executable, "-c", "pass"]
    off, on = sandbox.Sandbox(enabled=False), sandbox.Sandbox()
    times: dict[bool, list[float]] = {False: [], True: []}
    with tempfile.TemporaryDirectory(prefix="bench-launch-") as tmp:
        cwd = Path(tmp)
        for n in range(count):
            for enabled in ((False, True) if n % 2 == 0 else (True, False)):
                with sandbox.using(on if enabled else off):
                    # As a run does: the command line asked for at each start.
                    started = time.perf_counter()
                    argv = launched(program, cwd=cwd)
                    asked = time.perf_counter() - started
                    times[enabled].append(asked + _one(argv, cwd, target_env()))
        # The parts, each timed alone beside /bin/true started bare, in turn.
        with sandbox.using(on):
            env = target_env()
            full = launched(["/bin/true"], cwd=cwd)
            shell, words = full[:4], full[4:]
            chdir = words.index("--chdir")
            variants = {
                "/bin/true alone": ["/bin/true"],
                "/bin/sh step": [*shell, "/bin/true"],
                # bwrap with all its binds, then /bin/true in place of our launcher.
                "bwrap itself": [*words[:chdir + 3], "/bin/true"],
                # Our launcher with the limits and --user (outside bwrap), then /bin/true.
                "our launcher's Python start, as nobody": words[chdir + 3:],
                "our launcher's Python start, no user": [
                    sys.executable, "-I", "-S", str(LAUNCHER), "--", "/bin/true"],
                "the whole sandboxed start": full,
                "the whole start with no sandbox": off.command(
                    ["/bin/true"], cwd=cwd, launcher=words[chdir + 3:chdir + 7]),
            }
            parts = max(20, count // 5)
            took: dict[str, list[float]] = {name: [] for name in variants}
            for n in range(parts):
                for name in (list(variants) if n % 2 == 0 else reversed(variants)):
                    took[name].append(_one(variants[name], cwd, env))
            median = {name: statistics.median(t) for name, t in took.items()}
            launcher = words[chdir + 3:chdir + 7]  # interpreter, -I, -S, _launch.py
            calls = [
                ("Sandbox.command() (all its Python work)",
                 _per_call(lambda: on.command(program, cwd=cwd, launcher=launcher), parts)),
                ("  of which _shown() (path work)",
                 _per_call(lambda: on._shown(program, launcher), parts)),
                ("  of which _hidden()", _per_call(on._hidden, parts)),
                ("  of which _private() (mkdtemp, 3 folders)", _per_call(on._private, parts)),
                ("  of which give() (chown walk of the working folder)",
                 _per_call(lambda: sandbox.give(cwd), parts)),
                ("Sandbox(enabled=False).command()",
                 _per_call(lambda: off.command(program, cwd=cwd, launcher=launcher), parts)),
            ]
    mid = {w: statistics.median(times[w]) for w in (False, True)}
    mean = {w: statistics.fmean(times[w]) for w in (False, True)}
    table = Table(title=f"launch cost: `python -c pass`, {count} launches each way, "
                        f"alternately; its parts {parts} times each (ms)")
    for column in ("measure", "median ms", "mean ms"):
        table.add_column(column)
    table.add_row("launched(), no sandbox", f"{mid[False] * 1000:.1f}",
                  f"{mean[False] * 1000:.1f}")
    table.add_row("launched(), sandbox", f"{mid[True] * 1000:.1f}", f"{mean[True] * 1000:.1f}")
    table.add_row("sandbox - no sandbox", f"{(mid[True] - mid[False]) * 1000:+.1f} "
                  f"({mid[True] / mid[False]:.2f}x)",
                  f"{(mean[True] - mean[False]) * 1000:+.1f} ({mean[True] / mean[False]:.2f}x)")
    bare = median["/bin/true alone"]
    for name, seconds in median.items():
        table.add_row(name, f"{seconds * 1000:.1f}" if name == "/bin/true alone" else
                      f"{(seconds - bare) * 1000:+.1f} beyond /bin/true alone", "")
    for name, seconds in calls:
        table.add_row(name, f"{seconds * 1000:.2f}", "")
    return table


def main(argv: list[str] | None = None) -> int:
    """Run both measurements and print the tables; 0 when the aim is met with the same verdicts
    both ways."""
    args = arguments(__doc__ or "", TARGETS, JOBS, FUZZ_SECONDS, argv, more=_options)
    console = Console()
    if sandbox.Sandbox().why_not:
        console.print(f"no sandbox can be made here: {sandbox.Sandbox().why_not}")
        return 1
    ok = True
    if args.rounds > 0:
        lines = roster(args.targets)
        started = time.monotonic()
        table, ok = batches(lines, args, console)
        console.print(table)
        console.print(f"({time.monotonic() - started:.0f} s in all; each batch bounded by "
                      f"{TIME_LIMIT:g} s)")
    if args.launches > 0:
        console.print(launches(args.launches))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
