"""Checks of the `loadtest` spec (openapi/loadtest.requirements.yaml) against any load tester of
seed 002, judged from the target's side.

The suite plays the site under test (_target.py): for each run a fresh target whose answers are
scripted by arrival order, so it knows when every request came, which answers it delivered and
what they took, and so every number the tester must print. Runs are made when a check first
needs them and kept for the suite run: steady (rate, spread, counts, latencies), slow (answers
2.5 s late: the open model and the wait), errors (404, 500), holds (never answered), resets, json,
usage and interrupt. Each check judges one run's evidence: arrival times for the rate and the
spread, the summary's numbers (read leniently by their labels, _summary.py) against what the
target did, within the tolerances the spec states.

Rules: a run that could not start at all makes its checks "not run" (nothing to observe); any
other run is judged as far as it goes, so a tester that crashed or hung fails the check whose
situation made it do so. Every failure shows the target's record beside what the tester
printed, and reproduces with two lines: the target (`python -m
conformance.specs.loadtest._target PLAN --port N`) and the tester's command line.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Callable

import pytest

from conformance._checks import CheckFailure, NotImplementedFeature, NotRun, requirement
from conformance._client_run import TRACEBACK
from conformance._target import ProgramTarget
from conformance.specs.loadtest._runs import INTERRUPT_GRACE, Run, run_plan
from conformance.specs.loadtest._summary import LABELS, STATS, Summary, parse
from conformance.specs.loadtest._target import PLANS, SLACK, Reply

WINDOW = 0.1  # seconds: the spread is judged over every window this long
BURST_SHARE = 4  # a window may hold four times its even share of requests
LATE = 0.75  # seconds a request may arrive after its time, in the slow run
SPAN_SLACK = 1.0  # seconds past the test time the last request may arrive after the first
BELOW = 2.0  # ms a latency may read below the script's (rounding)
ABOVE_SHARE, ABOVE = 0.10, 60.0  # and above it: the tester's own overhead
ABOVE_MAX = 250.0  # the maximum: one slow moment of a busy machine
MESSAGE_LINES = 4
OWED_MARGIN = 0.5  # seconds before the tester's deadline an answer is surely waited for
# Once a run was stopped at its limit, the tester does not end by itself (LOAD-01's failure, or
# the check of that run's): its later runs are stopped once, past its deadline, it has been still
# this long, as what it printed and sent by then is what it would have at the limit.
QUIET = 2.0


def tolerance(count: float, least: int = 1) -> int:
    """How far a count may be off: 1% of it, at least `least`."""
    return max(least, round(count * 0.01))


class Runs:
    """The runs of one suite run, each made when a check first needs it."""

    def __init__(self, program: ProgramTarget) -> None:
        self.program = program
        self._runs: dict[str, Run] = {}

    def get(self, name: str, **how: bool) -> Run:
        """The run `name` (a plan of _target.PLANS); NotRun when the tester could not start."""
        if name not in self._runs:
            quiet = QUIET if any(r.timed_out for r in self._runs.values()) else 0.0
            self._runs[name] = run_plan(self.program, PLANS[name], quiet=quiet, **how)
        run = self._runs[name]
        if run.code == 127 and not run.stdout and not run.requests:
            raise NotRun(f"the tester could not be started: {run.stderr.strip()[:300]}")
        return run


@pytest.fixture(scope="session")
def runs(program: ProgramTarget) -> Runs:
    """Every run of this suite run."""
    return Runs(program)


def fail(run: Run, message: str, expected: str, actual: str = "") -> CheckFailure:
    """A failure about one run: what it did beside what was expected, and how to repeat it."""
    return CheckFailure(f"{run.plan.name} run ({run.plan.story}): {message}", expected=expected,
                        actual=run.actual(actual), reproduce=run.reproduce())


def summary_of(run: Run, names: tuple[str, ...], why: str) -> Summary:
    """The run's summary with the counts `names`; a failure when the tester printed none of
    them (it crashed, hung, or labels them in words the lenient reading does not know)."""
    summary = run.summary
    missing = summary.missing(names)
    if missing:
        wanted = ", ".join(f"{n} ({LABELS[n]!r})" for n in missing)
        if TRACEBACK in run.stderr:
            problem = "the tester crashed (a traceback on stderr)"
        elif run.timed_out:
            problem = "the tester was stopped at its limit"
        else:
            problem = f"its summary gives no {wanted}"
        raise fail(run, f"{problem}, so {why} cannot be told",
                   f"a summary with {wanted} by its label", f"read: {summary.shown()}")
    return summary


def within(value: float, target: float, tol: int) -> bool:
    """Whether a count is `target` give or take `tol`."""
    return abs(value - target) <= tol


def _count(value: float) -> str:
    return f"{value:g}"


# -- the rate -------------------------------------------------------------------------------------


@requirement("LOAD-01")
def test_runs_and_ends_by_itself(runs: Runs, note: Callable[[str], None]) -> None:
    """The tester takes the four parameters, prints a summary and ends by itself."""
    run = runs.get("steady")
    plan = run.plan
    if run.timed_out:
        raise fail(run, f"the tester did not end within {plan.limit:g} s (test {plan.test_time:g}"
                        f" s + wait {plan.wait:g} s + {SLACK:g} s)",
                   "the tester ends by itself once the wait timeout is over")
    if not run.requests:
        raise fail(run, "the target received no request",
                   f"{plan.count} requests to {run.url}")
    summary = run.summary
    if not summary.counts and not summary.latency:
        raise fail(run, "the tester printed no summary the suite could read on stdout",
                   "a summary on stdout: numbers by their labels (`Total requests sent: 200`) "
                   "or one JSON object")
    note(f"steady run: the tester {run.ending()}; it printed {summary.shown()}")


@requirement("LOAD-02")
def test_sends_rps_times_seconds(runs: Runs, note: Callable[[str], None]) -> None:
    """The target receives RPS x test seconds requests for the URL, within the test time."""
    run = runs.get("steady")
    plan = run.plan
    wanted = run.for_url()
    others = len(run.requests) - len(wanted)
    expected = (f"{plan.count} requests (give or take {tolerance(plan.count)}) for "
                f"{run.url}, the last at most {plan.test_time + SPAN_SLACK:g} s after the first")
    other_note = (f", and {others} for other paths ({run.requests[0].path} first)"
                  if others else "")
    if not within(len(wanted), plan.count, tolerance(plan.count)):
        raise fail(run, f"the target received {len(wanted)} requests for the URL{other_note}",
                   expected)
    span = wanted[-1].at - wanted[0].at
    if span > plan.test_time + SPAN_SLACK:
        raise fail(run, f"the requests arrived over {span:.2f} s", expected)
    note(f"steady run: {len(wanted)} requests over {span:.2f} s")


@requirement("LOAD-03")
def test_starts_requests_evenly(runs: Runs, note: Callable[[str], None]) -> None:
    """Requests are spread evenly: no burst, gaps near 1/RPS."""
    run = runs.get("steady")
    plan = run.plan
    times = [r.at for r in run.requests]
    if len(times) < 10:
        raise fail(run, f"only {len(times)} requests arrived, too few to be spread",
                   f"{plan.count} requests, one every {1000 / plan.rps:g} ms")
    share = plan.rps * WINDOW
    most, at = _densest(times, WINDOW)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    median = statistics.median(gaps)
    expected = (f"at most {BURST_SHARE * share:g} requests in any {WINDOW * 1000:g} ms (its even "
                f"share is {share:g}), a median gap between {500 / plan.rps:g} and "
                f"{1500 / plan.rps:g} ms")
    if most > max(5, BURST_SHARE * share):
        raise fail(run, f"{most} requests arrived within {WINDOW * 1000:g} ms, "
                        f"{at - times[0]:.2f} s after the first", expected)
    if not 0.5 / plan.rps <= median <= 1.5 / plan.rps:
        raise fail(run, f"the median gap between arrivals is {median * 1000:.1f} ms", expected)
    note(f"steady run: at most {most} requests in {WINDOW * 1000:g} ms, median gap "
         f"{median * 1000:.1f} ms")


def _densest(times: list[float], window: float) -> tuple[int, float]:
    """The most arrivals within `window` seconds, and when that window starts."""
    most, at, j = 0, times[0], 0
    for i, start in enumerate(times):
        while times[j] < start - window:
            j += 1
        if i - j + 1 > most:
            most, at = i - j + 1, times[j]
    return most, at


@requirement("LOAD-04")
def test_rate_holds_while_answers_are_slow(runs: Runs, note: Callable[[str], None]) -> None:
    """The open model: slow answers do not slow the rate."""
    run = runs.get("slow")
    plan = run.plan
    times = [r.at for r in run.requests]
    expected = (f"{plan.count} requests (give or take {tolerance(plan.count)}), the i-th "
                f"arriving at most {LATE:g} s after the first + i/{plan.rps}, though every "
                f"answer takes 2.5 s")
    if not times:
        raise fail(run, "the target received no request", expected)
    lateness = [t - times[0] - i / plan.rps for i, t in enumerate(times)]
    worst = max(range(len(times)), key=lambda i: lateness[i])
    if len(times) < plan.count - tolerance(plan.count):
        raise fail(run, f"the target received {len(times)} requests in all (request {len(times)}"
                        f" arrived {times[-1] - times[0]:.2f} s after the first)", expected)
    if lateness[worst] > LATE:
        late = sum(1 for x in lateness if x > LATE)
        raise fail(run, f"request {worst + 1} arrived {lateness[worst]:.2f} s after its time "
                        f"({late} requests more than {LATE:g} s late): the tester waited for "
                        f"answers before it started more", expected)
    if len(times) > plan.count + tolerance(plan.count):
        raise fail(run, f"the target received {len(times)} requests", expected)
    note(f"slow run: {len(times)} requests, at most {max(lateness) * 1000:.0f} ms late")


@requirement("LOAD-05")
def test_waits_for_late_answers(runs: Runs) -> None:
    """Answers after the test time, within the wait timeout, are counted as completed."""
    run = runs.get("slow")
    plan = run.plan
    delivered = run.outcomes.get("200", 0)
    tol = tolerance(len(run.requests))
    # The answers due well within the wait (from the first arrival, as the tester's start is
    # not seen): a tester that waits is still there to take them.
    if run.requests:
        until = run.requests[0].at + plan.test_time + plan.wait - OWED_MARGIN
        owed = [r for i, r in enumerate(run.requests) if r.at + _delay(run, i) <= until]
    else:
        owed = []
    gone = [r for r in owed if r.status is None]
    expected = (f"the tester there to take the {len(owed)} answers due within the wait, and "
                f"completed: the {delivered} answers the target delivered (give or take {tol})")
    if len(gone) > tol:
        first = gone[0].at - run.requests[0].at + _delay(run, 0)
        raise fail(run, f"{len(gone)} of the {len(owed)} answers due within the wait found the "
                        f"tester gone (the first {first:.1f} s after the first request)",
                   expected)
    summary = summary_of(run, ("completed",), "whether it waited for the answers")
    completed = summary.counts["completed"]
    if not within(completed, delivered, tol):
        raise fail(run, f"the summary says {_count(completed)} completed", expected,
                   f"read: {summary.shown()}")


def _delay(run: Run, index: int) -> float:
    answer = run.plan.answer(index)
    return answer.delay if isinstance(answer, Reply) else 0.0


# -- the summary's numbers ------------------------------------------------------------------------


@requirement("LOAD-06")
def test_summary_counts_are_the_targets(runs: Runs) -> None:
    """Sent, completed and failed are printed and agree with the target."""
    run = runs.get("steady")
    summary = summary_of(run, ("sent", "completed", "failed"), "the totals")
    received = len(run.requests)
    delivered = run.outcomes.get("200", 0)
    tol = tolerance(received)
    problems = []
    if not within(summary.counts["sent"], received, tol):
        problems.append(f"sent {_count(summary.counts['sent'])}")
    if not within(summary.counts["completed"], delivered, tol):
        problems.append(f"completed {_count(summary.counts['completed'])}")
    if not within(summary.counts["failed"], received - delivered, tol):
        problems.append(f"failed {_count(summary.counts['failed'])}")
    if problems:
        raise fail(run, "the summary says " + ", ".join(problems),
                   f"sent {received}, completed {delivered}, failed {received - delivered} "
                   f"(the target's counts, give or take {tol})", f"read: {summary.shown()}")


@requirement("LOAD-07")
def test_5xx_is_a_failure(runs: Runs) -> None:
    """5xx answers are counted as HTTP errors, among the failed."""
    run = runs.get("errors")
    summary = summary_of(run, ("http_5xx", "failed"), "how it counted 500 answers")
    errors = run.outcomes.get("500", 0)
    tol = tolerance(len(run.requests))
    got, failed = summary.counts["http_5xx"], summary.counts["failed"]
    if not within(got, errors, tol) or failed < errors - tol:
        raise fail(run, f"the summary says 5xx {_count(got)}, failed {_count(failed)}",
                   f"5xx: the {errors} answers 500 the target delivered (give or take {tol}), "
                   f"and failed at least that", f"read: {summary.shown()}")


@requirement("LOAD-08")
def test_unanswered_requests_are_timeouts(runs: Runs) -> None:
    """Requests still unanswered at the end of the wait are timeouts, among the failed."""
    run = runs.get("holds")
    # An answer that found the tester gone came after it gave up: a timeout too.
    held = run.outcomes.get("held", 0) + run.outcomes.get("undelivered", 0)
    tol = tolerance(len(run.requests))
    expected = (f"timeouts: the {held} requests the target did not answer in time (give or take "
                f"{tol}), failed at least that, and an end within {run.plan.limit:g} s")
    if run.before_stop is not None and "timeouts" not in parse(run.before_stop).counts:
        raise fail(run, f"the tester was still waiting for the requests the target never "
                        f"answers {run.plan.limit:g} s after it started, and had printed no "
                        f"timeouts", expected)
    summary = summary_of(run, ("timeouts", "failed"), "how it counted unanswered requests")
    got, failed = summary.counts["timeouts"], summary.counts["failed"]
    if not within(got, held, tol) or failed < held - tol:
        raise fail(run, f"the summary says timeouts {_count(got)}, failed {_count(failed)}",
                   expected, f"read: {summary.shown()}")


@requirement("LOAD-09")
def test_resets_are_connection_errors(runs: Runs) -> None:
    """A reset connection is a connection error, and the test goes on."""
    run = runs.get("resets")
    plan = run.plan
    resets = run.outcomes.get("reset", 0)
    tol = tolerance(plan.count)
    expected = (f"all {plan.count} requests sent (give or take {tol}), and connection errors: "
                f"the {resets} connections the target reset")
    if len(run.requests) < plan.count - tol:
        raise fail(run, f"the target received {len(run.requests)} requests: the test stopped "
                        f"after a reset", expected)
    summary = summary_of(run, ("connection",), "how it counted reset connections")
    got = summary.counts["connection"]
    if not within(got, resets, tol):
        raise fail(run, f"the summary says connection errors {_count(got)}", expected,
                   f"read: {summary.shown()}")


def script_stats(run: Run) -> dict[str, tuple[float, float]]:
    """Each statistic of the delays (ms) of the answers the target delivered in `run`: the
    lowest and the highest a tester may rightly compute (nearest rank, interpolated)."""
    delays = []
    for index, seen in enumerate(run.requests):
        answer = run.plan.answer(index)
        if isinstance(answer, Reply) and seen.status is not None:
            delays.append(answer.delay * 1000)
    if not delays:
        return {}
    values = sorted(delays)
    out = {"min": (values[0], values[0]), "max": (values[-1], values[-1]),
           "mean": (statistics.fmean(values),) * 2}
    for name, p in (("median", 50), ("p75", 75), ("p90", 90), ("p95", 95), ("p99", 99)):
        nearest = values[max(0, math.ceil(p / 100 * len(values)) - 1)]
        position = (len(values) - 1) * p / 100
        low = values[math.floor(position)]
        interpolated = low + (values[math.ceil(position)] - low) * (position % 1)
        out[name] = (min(nearest, interpolated), max(nearest, interpolated))
    return out


@requirement("LOAD-10")
def test_latencies_are_the_targets(runs: Runs, note: Callable[[str], None]) -> None:
    """Min, max, mean, median, p75, p90, p95, p99 in ms, as the target's delays."""
    run = runs.get("steady")
    stats = script_stats(run)
    if not stats:
        raise fail(run, "the target delivered no answer", "answers to measure")
    summary = run.summary
    missing = [s for s in STATS if s not in summary.latency]
    expected = "; ".join(f"{name} {_range(name, *stats[name])}" for name in STATS)
    if missing:
        raise fail(run, f"the summary gives no {', '.join(missing)}",
                   f"every response time statistic in ms: {expected}",
                   f"read: {summary.shown()}")
    wrong = [f"{name} {'/'.join(f'{v:g}' for v in summary.latency[name])}" for name in STATS
             if not all(_fits(name, v, *stats[name]) for v in summary.latency[name])]
    if wrong:
        raise fail(run, "the summary says " + ", ".join(wrong) + " ms",
                   f"the delays of the answers delivered, in ms: {expected}",
                   f"read: {summary.shown()}")
    note("steady run: " + ", ".join(f"{s} {summary.latency[s][0]:g}" for s in STATS) + " ms")


def _bounds(name: str, low: float, high: float) -> tuple[float, float]:
    above = ABOVE_MAX if name == "max" else ABOVE
    return low - BELOW, high * (1 + ABOVE_SHARE) + above


def _fits(name: str, value: float, low: float, high: float) -> bool:
    lo, hi = _bounds(name, low, high)
    return lo <= value <= hi


def _range(name: str, low: float, high: float) -> str:
    lo, hi = _bounds(name, low, high)
    return f"{low:.1f}" + (f"-{high:.1f}" if high != low else "") + f" ({lo:.0f}..{hi:.0f})"


@requirement("LOAD-11")
def test_status_code_distribution(runs: Runs) -> None:
    """Each status code's count, as the target delivered them."""
    run = runs.get("errors")
    summary = run.summary
    tol = tolerance(len(run.requests))
    wanted = {code: run.outcomes.get(str(code), 0) for code in (200, 404, 500)}
    expected = ", ".join(f"{c}: {n}" for c, n in wanted.items()) + f" (give or take {tol})"
    wrong = [f"{code}: {_count(summary.codes[code]) if code in summary.codes else 'none'}"
             for code, n in wanted.items()
             if code not in summary.codes or not within(summary.codes[code], n, tol)]
    if wrong:
        raise fail(run, "the status code distribution says " + ", ".join(wrong), expected,
                   f"read: {summary.shown()}")


# -- what the seed leaves open --------------------------------------------------------------------


@requirement("LOAD-12")
def test_json_summary(runs: Runs, note: Callable[[str], None]) -> None:
    """A JSON summary with `--json` (or by default)."""
    steady = runs.get("steady")
    run = steady if steady.summary.json else runs.get("json")
    summary = run.summary
    expected = ("stdout is one JSON object with sent, completed, failed, timeouts, connection "
                "errors, 5xx, the eight latency statistics and the status codes")
    if not summary.json:
        raise fail(run, "stdout is not one JSON object", expected)
    missing = summary.missing(("sent", "completed", "failed", "timeouts", "connection",
                               "http_5xx"))
    missing += [s for s in STATS if s not in summary.latency]
    if not summary.codes:
        missing.append("status codes")
    if missing:
        raise fail(run, f"the JSON object has no {', '.join(missing)} the suite could find",
                   expected, f"read: {summary.shown()}")
    received, delivered = len(run.requests), run.outcomes.get("200", 0)
    tol = tolerance(received)
    if not (within(summary.counts["sent"], received, tol)
            and within(summary.counts["completed"], delivered, tol)):
        raise fail(run, f"the JSON says sent {_count(summary.counts['sent'])}, completed "
                        f"{_count(summary.counts['completed'])}",
                   f"sent {received}, completed {delivered} (give or take {tol})",
                   f"read: {summary.shown()}")
    note("the JSON summary came " + ("by default" if run is steady else "with --json"))


@requirement("LOAD-13")
def test_4xx_counts_as_completed(runs: Runs) -> None:
    """A 404 is completed, not failed."""
    run = runs.get("errors")
    summary = summary_of(run, ("completed",), "how it counted 404 answers")
    answered = run.outcomes.get("200", 0) + run.outcomes.get("404", 0)
    tol = tolerance(len(run.requests))
    if not within(summary.counts["completed"], answered, tol):
        raise fail(run, f"the summary says completed {_count(summary.counts['completed'])}",
                   f"completed: the {answered} answers 200 and 404 (give or take {tol})",
                   f"read: {summary.shown()}")


@requirement("LOAD-14")
def test_bad_rate_is_refused(runs: Runs) -> None:
    """A rate that is not a number gets a short usage error."""
    run = runs.get("usage")
    expected = ("a non-zero exit status and a short message (at most 4 lines), no traceback, "
                "no request")
    lines = [x for x in (run.stderr + "\n" + run.stdout).splitlines() if x.strip()]
    if run.timed_out:
        raise fail(run, "the tester did not end", expected)
    if run.requests:
        raise fail(run, f"the tester sent {len(run.requests)} requests at the rate `fast`",
                   expected)
    if TRACEBACK in run.stderr:
        raise fail(run, "the tester printed a traceback", expected)
    if run.code == 0:
        raise fail(run, "the tester exited with status 0", expected)
    if not lines or len(lines) > MESSAGE_LINES:
        raise fail(run, f"the tester said {len(lines)} lines", expected)


@requirement("LOAD-15")
def test_ctrl_c_prints_the_summary_so_far(runs: Runs) -> None:
    """Ctrl+C ends the test at once with the summary so far."""
    run = runs.get("interrupt", interrupt=True)
    expected = (f"the tester ends within {INTERRUPT_GRACE:g} s of Ctrl+C and prints its summary, "
                f"sent being what the target received (give or take 2)")
    if run.interrupted_at is None:
        raise fail(run, "the tester ended before Ctrl+C could be sent", expected)
    if run.timed_out:
        raise fail(run, f"the tester did not end within {INTERRUPT_GRACE:g} s of Ctrl+C",
                   expected)
    summary = run.summary
    if "sent" not in summary.counts:
        raise NotImplementedFeature(
            f"interrupt run: Ctrl+C ended the tester without a summary "
            f"({'a traceback' if TRACEBACK in run.stderr else 'none printed'})",
            expected=expected, actual=run.actual(), reproduce=run.reproduce())
    tol = tolerance(len(run.requests), least=2)
    if not within(summary.counts["sent"], len(run.requests), tol):
        raise fail(run, f"the summary says sent {_count(summary.counts['sent'])}", expected,
                   f"read: {summary.shown()}")

