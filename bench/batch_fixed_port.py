"""Benchmark: grading a class whose servers all bind the assignment's fixed port (issue 15).

In one run: (a) `conformance run credentials` of our reference started as a student starts it,
with no port given (it binds 127.0.0.1:8888), timed from start to exit: one target, the
baseline; (b) `conformance batch` of TARGETS (30) credentials servers that all bind 8888: every
served twin of `fixtures/credentials` (broken and correct), the students' servers, one program
that exits at once with an error, and copies of our reference, JOBS (10) at a time, each run in
a network of its own. Prints both times, the ratio (aim: at most 4x), the isolation the runs
had, and how many verdicts came out as expected: a server that exits at once must fail, and no
broken server may pass on another's answers. Loopback only; every run has TIME_LIMIT seconds.
"""

from __future__ import annotations

import shlex
import sys

from _batch import ROOT, arguments, filled, measure

from fixtures._twins import PY, Misbehaving, script_path
from fixtures.credentials import TWINS

TARGETS = 30
JOBS = 10
FUZZ_SECONDS = 5.0
REFERENCE = f"{PY} {ROOT / 'reference' / 'credentials.py'}"


def roster(count: int) -> list[tuple[str, str, bool]]:
    """(student, command with no port, should pass): the twins, one that exits, the reference."""
    lines = []
    for t in sorted(TWINS, key=lambda t: t.name):
        if isinstance(t.recipe, Misbehaving):
            continue  # not a credentials server: `fixtures.misbehaving` takes a port
        head = f"{PY} {script_path(t)}" if t.script else f"{PY} -m fixtures credentials {t.name}"
        lines.append((f"twin-{t.name}", head, not t.broken))
    lines.append(("exits-at-once", f"{PY} -c {shlex.quote('import sys; sys.exit(1)')}", False))
    return filled(lines, count, REFERENCE)


def main(argv: list[str] | None = None) -> int:
    """Run both measurements and print the table; 0 when the aim is met and verdicts are right."""
    args = arguments(__doc__ or "", TARGETS, JOBS, FUZZ_SECONDS, argv)
    lines = roster(args.targets)
    return measure("credentials", REFERENCE, lines, args,
                   f"{len(lines)} credentials servers on port 8888, {args.jobs} at a time")


if __name__ == "__main__":
    sys.exit(main())
