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

import sys

from _batch import arguments, filled, measure

from conformance import load_spec
from conformance._run import reference_command
from fixtures._twins import command
from fixtures.crawler import CRAWLERS

TARGETS = 30
JOBS = 20
FUZZ_SECONDS = 5.0


def roster(count: int) -> list[tuple[str, str, bool]]:
    """(student, command, should pass): every crawler variant, then reference copies."""
    reference = reference_command(load_spec("crawler"))
    lines = [(f"twin-{t.name}", command(t), not t.broken)
             for t in sorted(CRAWLERS, key=lambda t: t.name)]
    return filled(lines, count, reference)


def main(argv: list[str] | None = None) -> int:
    """Run both measurements and print the table; 0 when the aim is met and verdicts are right."""
    args = arguments(__doc__ or "", TARGETS, JOBS, FUZZ_SECONDS, argv)
    lines = roster(args.targets)
    return measure("crawler", reference_command(load_spec("crawler")), lines, args,
                   f"{len(lines)} crawler targets, {args.jobs} at a time")


if __name__ == "__main__":
    sys.exit(main())
