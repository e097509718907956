"""The reference `loadtest.py`: load one URL at a fixed rate for a fixed time, wait for the answers
still owed, and print a summary of what came back (seed 002's load tester for sites).

Run it as `python loadtest.py URL RPS TEST_TIME WAIT_TIMEOUT [--json] [--config FILE]` (or with
the keys url, rps, test_time, wait_timeout in a JSON or TOML --config file; the command line wins).
Rules, as openapi/loadtest.requirements.yaml states them:
- open model: request i (0 <= i < round(RPS x TEST_TIME)) is due at t0 + i/RPS whatever has been
  answered. The scheduler sleeps until each absolute due time (so errors never add up), starts
  every request due when it wakes, late or not, each in a task of its own, and never waits for
  an answer before starting the next; the connection pool has no cap (the rate decides how many
  are open), connections are kept alive, redirects are not followed (a 301 counts as 301), and a
  failed request is not retried behind our back (aiohttp retries a reset GET once by default);
- deadline: t0 + TEST_TIME + WAIT_TIMEOUT is the only timeout (the seed's "then wait test_time
  seconds" read as the wait timeout its parameter names). A request not answered by then (status
  line, headers and body read) is cancelled and counted as a timeout; none is started after it;
- what counts as what: sent = requests started; completed = answered with a status below 500
  (1xx-4xx); failed = timeouts + connection errors (any aiohttp.ClientError or OSError that is
  not a timeout: refused, reset, disconnected, a broken body) + 5xx answers; sent == completed +
  failed;
- latency, in ms, over the answered requests (any status): from each request's scheduled start
  (the primary figure: it includes any delay in starting, so it does not hide coordinated
  omission) and from its actual send (the time just before the request was handed to aiohttp,
  to the end of its body). Percentiles are exact, by nearest rank on the sorted values: pP is
  the value at rank ceil(P/100 x n) (so the median of an even count is the lower middle value);
- Ctrl+C stops starting requests, cancels those in flight (counted as timeouts) and prints the
  summary so far with the line `Interrupted after N.N s` (JSON: "interrupted": true).
Exit status: 0 after a run, whatever failed; 2 for a bad command line or config; 130 on Ctrl+C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import resource
import signal
import sys
import tomllib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any, Literal

import aiohttp
from yarl import URL

# Passed to TCPConnector(limit=...): 0 is no cap, so the rate alone decides how many connections
# are open. aiohttp's default of 100 would make a slow target's answers hold back the schedule.
CONNECTION_LIMIT = 0

TIMEOUT: Literal["timeout"] = "timeout"
CONNECTION: Literal["connection"] = "connection"
STATS = ("min", "max", "mean", "median", "p75", "p90", "p95", "p99")
INTERRUPTED_EXIT = 130  # 128 + SIGINT, as a shell reports a program Ctrl+C ended
LAG_WARNING = 100.0  # ms of p99 start lag past which the run warns it measured itself


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one request: its status code, or "timeout", or "connection"; for an answer,
    its latency in ms from the scheduled start and from the actual send."""

    result: int | Literal["timeout", "connection"]
    latency_ms: float | None = None
    send_latency_ms: float | None = None


TIMED_OUT = Outcome(TIMEOUT)


@dataclass(frozen=True, slots=True)
class Stats:
    """Latency statistics in ms (percentiles by nearest rank)."""

    min: float
    max: float
    mean: float
    median: float
    p75: float
    p90: float
    p95: float
    p99: float


@dataclass(frozen=True, slots=True)
class Summary:
    """The whole run in numbers, as printed."""

    url: str
    rps: float
    test_time: float
    wait_timeout: float
    planned: int  # round(RPS x TEST_TIME): what the run was to send
    sent: int
    completed: int
    failed: int
    timeouts: int
    connection_errors: int
    http_5xx: int
    latency: Stats | None  # from the scheduled start; None when nothing was answered
    latency_from_send: Stats | None  # from the actual send
    status_codes: dict[int, int]  # by code, ascending
    interrupted: bool = False
    elapsed: float | None = None  # seconds from the start to the end of the run
    # How late the tester itself started the answered requests (send - scheduled), in ms: its
    # p99 and max, None when nothing was answered. Large, the numbers measure the tester.
    start_lag_p99: float | None = None
    start_lag_max: float | None = None


# -- the run -------------------------------------------------------------------------------------


def planned(rps: float, test_time: float) -> int:
    """How many requests a run of `test_time` seconds at `rps` a second sends."""
    return round(rps * test_time)


def offsets(rps: float, test_time: float) -> list[float]:
    """The scheduled start of each request, in seconds from the start of the test: evenly spaced,
    one every 1/rps seconds (never a burst at the start of each second)."""
    return [i / rps for i in range(planned(rps, test_time))]


async def fire(session: aiohttp.ClientSession, url: str, scheduled: float) -> Outcome:
    """GET `url` once, read the whole answer and return its Outcome; `scheduled` is the loop time
    the request was due. Errors become outcomes; cancellation (the deadline) is left to the
    caller, which counts it as a timeout."""
    clock = asyncio.get_running_loop().time
    sent = clock()
    try:
        async with session.get(url, allow_redirects=False) as response:
            await response.read()
            status = response.status
    except TimeoutError:  # before OSError: TimeoutError is one (aiohttp's timeouts too)
        return TIMED_OUT
    except (aiohttp.ClientError, OSError):
        return Outcome(CONNECTION)
    done = clock()
    return Outcome(status, (done - scheduled) * 1000, (done - sent) * 1000)


async def _sleep_until(when: float) -> None:
    """Sleep until the loop time `when` (an absolute time: no error adds up over a run)."""
    loop = asyncio.get_running_loop()
    woken = loop.create_future()
    handle = loop.call_at(when, _wake, woken)
    try:
        await woken
    finally:
        handle.cancel()


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def _schedule(session: aiohttp.ClientSession, url: str, t0: float, starts: list[float],
                    tasks: list[asyncio.Task[Outcome]], deadline: float) -> None:
    """Start a request at each loop time t0 + `starts` (ascending), appending its task to `tasks`.
    On waking it starts every request due by then at once, however late, each keeping the time
    it was due, so a late wake delays requests but never drops or re-times them; but none once
    the deadline has come (a tester too slow for its rate: those are never sent)."""
    loop = asyncio.get_running_loop()
    start = loop.create_task
    i, count = 0, len(starts)
    while i < count:
        now = loop.time()
        if now >= deadline:
            return
        while i < count and t0 + starts[i] <= now:
            tasks.append(start(fire(session, url, t0 + starts[i])))
            i += 1
        if i < count:
            await _sleep_until(t0 + starts[i])


async def _first(aws: set[asyncio.Future[Any]], until: float) -> None:
    """Wait until one of `aws` is done or the loop time `until` has come."""
    remaining = until - asyncio.get_running_loop().time()
    if remaining > 0:
        await asyncio.wait(aws, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)


async def load(url: str, rps: float, test_time: float, wait_timeout: float, *,
               stop: asyncio.Event | None = None) -> list[Outcome]:
    """Run the test: start the requests on schedule, wait for their answers until the deadline
    (test_time + wait_timeout after the start), cancel those still open and count them as
    timeouts. When `stop` is set (Ctrl+C), no more requests are started and those in flight are
    cancelled at once, as timeouts. The outcomes of the requests started, in schedule order."""
    loop = asyncio.get_running_loop()
    stop = stop if stop is not None else asyncio.Event()
    connector = aiohttp.TCPConnector(limit=CONNECTION_LIMIT, limit_per_host=0, force_close=False)
    # No timeout of aiohttp's own (its default is 300 s in all): the deadline below is the only one.
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=test_time + wait_timeout)
    tasks: list[asyncio.Task[Outcome]] = []
    # No cookies: every request is a fresh visitor, and none pays for a cookie jar.
    async with aiohttp.ClientSession(connector=connector, timeout=timeout,
                                     cookie_jar=aiohttp.DummyCookieJar()) as session:
        # aiohttp resends a GET whose connection was reset or closed; a load tester must see
        # (and count) that failure, and send no request the schedule did not ask for.
        session._retry_connection = False
        starts = offsets(rps, test_time)  # before t0: a long list takes a while to build
        t0 = loop.time()
        deadline = t0 + test_time + wait_timeout
        stopped = asyncio.ensure_future(stop.wait())
        scheduler = asyncio.ensure_future(_schedule(session, url, t0, starts, tasks, deadline))
        answered: asyncio.Future[Any] | None = None
        try:
            await _first({scheduler, stopped}, deadline)
            if scheduler.done():
                scheduler.result()  # a bug of the scheduler's surfaces here
                pending = [task for task in tasks if not task.done()]
                if pending and not stop.is_set():
                    answered = asyncio.ensure_future(asyncio.wait(pending))
                    await _first({answered, stopped}, deadline)
        finally:
            # The deadline, Ctrl+C or our own cancellation: whatever is still open is a timeout.
            for future in (scheduler, stopped, answered, *tasks):
                if future is not None and not future.done():
                    future.cancel()
            await asyncio.gather(scheduler, *tasks, return_exceptions=True)
    return [TIMED_OUT if task.cancelled() else task.result() for task in tasks]


# -- the summary ---------------------------------------------------------------------------------


def percentile(sorted_values: list[float], p: float) -> float:
    """The `p`th percentile (0 <= p <= 100) of ascending values by nearest rank: the value at rank
    ceil(p/100 x n), 1-based (the smallest for p = 0). An exact value of the list, never an
    interpolation."""
    if not sorted_values:
        raise ValueError("no values")
    if not 0 <= p <= 100:
        raise ValueError(f"percentile {p} is not within 0..100")
    rank = math.ceil(p * len(sorted_values) / 100)
    return sorted_values[max(rank, 1) - 1]


def stats(values: list[float]) -> Stats | None:
    """Min, max, mean and nearest-rank percentiles of `values`, or None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    return Stats(min=ordered[0], max=ordered[-1], mean=math.fsum(ordered) / len(ordered),
                 median=percentile(ordered, 50), p75=percentile(ordered, 75),
                 p90=percentile(ordered, 90), p95=percentile(ordered, 95),
                 p99=percentile(ordered, 99))


def summarize(outcomes: list[Outcome], url: str, rps: float, test_time: float,
              wait_timeout: float, *, interrupted: bool = False,
              elapsed: float | None = None) -> Summary:
    """Count the outcomes of a run by kind and compute its latency statistics."""
    kinds = Counter(outcome.result for outcome in outcomes)
    codes = {code: n for code, n in sorted(
        (code, n) for code, n in kinds.items() if isinstance(code, int))}
    http_5xx = sum(n for code, n in codes.items() if code >= 500)
    timeouts, connection_errors = kinds[TIMEOUT], kinds[CONNECTION]
    lags = sorted(o.latency_ms - o.send_latency_ms for o in outcomes
                  if o.latency_ms is not None and o.send_latency_ms is not None)
    return Summary(
        url=url, rps=rps, test_time=test_time, wait_timeout=wait_timeout,
        planned=planned(rps, test_time), sent=len(outcomes),
        completed=sum(n for code, n in codes.items() if code < 500),
        failed=timeouts + connection_errors + http_5xx,
        timeouts=timeouts, connection_errors=connection_errors, http_5xx=http_5xx,
        latency=stats([o.latency_ms for o in outcomes if o.latency_ms is not None]),
        latency_from_send=stats([o.send_latency_ms for o in outcomes
                                 if o.send_latency_ms is not None]),
        status_codes=codes, interrupted=interrupted, elapsed=elapsed,
        start_lag_p99=percentile(lags, 99) if lags else None,
        start_lag_max=lags[-1] if lags else None)


def _number(value: float) -> int | float:
    """A parameter as the user would write it: 100, not 100.0."""
    return int(value) if float(value).is_integer() else value


def _reason(code: int) -> str:
    """`200 OK`, or the bare code when it has no standard reason phrase."""
    try:
        return f"{code} {HTTPStatus(code).phrase}"
    except ValueError:
        return str(code)


def render_text(summary: Summary) -> str:
    """The summary in the seed's layout, every latency with one decimal."""
    s = summary
    lines = [f"Target URL: {s.url}",
             f"Test duration: {_number(s.test_time)}s, RPS: {_number(s.rps)} "
             f"(total {s.planned} requests)",
             f"Timeout for responses: {_number(s.wait_timeout)}s"]
    if s.interrupted:
        lines.append(f"Interrupted after {s.elapsed or 0:.1f} s (Ctrl+C): the summary so far, "
                     "requests in flight counted as timeouts")
    lines += ["", "=== Request Summary ==="]
    for label, count in (("Total requests sent:", s.sent), ("Completed successfully:", s.completed),
                         ("Failed requests:", s.failed), ("- Timeout errors:", s.timeouts),
                         ("- Connection errors:", s.connection_errors),
                         ("- HTTP errors (5xx):", s.http_5xx)):
        lines.append(f"{label:<24}{count}")
    lines += ["", "=== Response Time (ms) ===",
              "from each request's scheduled start (from its actual send in brackets); "
              "nearest-rank percentiles"]
    primary = [f"{getattr(s.latency, n):.1f}" if s.latency else "n/a" for n in STATS]
    sent = [f"{getattr(s.latency_from_send, n):.1f}" if s.latency_from_send else "n/a"
            for n in STATS]
    width = max(6, *map(len, primary))
    for name, value, from_send in zip(STATS, primary, sent, strict=True):
        label = f"{name.capitalize() if name[0] != 'p' else name}:"
        lines.append(f"{label:<7} {value:>{width}}  ({from_send})")
    if s.start_lag_p99 is not None and s.start_lag_max is not None:
        # No statistic's word after the number: a reader of the summary takes "max" for latency.
        lines.append(f"Start lag p99: {s.start_lag_p99:.1f} ms (max {s.start_lag_max:.1f} ms), "
                     f"how late the tester itself started them")
    lines += ["", "=== Status Code Distribution ==="]
    rows = [(f"{_reason(code)}:", n) for code, n in s.status_codes.items()]
    rows += [("Timeouts:", s.timeouts), ("Connection errors:", s.connection_errors)]
    width = max(4, 1 + max(len(str(n)) for _, n in rows))
    for label, n in rows:
        lines.append(f"{label:<19}{n:>{width}}" if len(label) < 19 else f"{label} {n}")
    return "\n".join(lines)


def _stats_json(latency: Stats | None, measured_from: str) -> dict[str, Any]:
    numbers = {n: None if latency is None else round(getattr(latency, n), 3) for n in STATS}
    return {"measured_from": measured_from, "percentiles": "nearest-rank", **numbers}


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def lag_warning(summary: Summary) -> str:
    """A warning when the tester fell behind its own schedule (its p99 start lag over
    LAG_WARNING ms, as k6 warns of dropped iterations), else ''."""
    lag = summary.start_lag_p99
    if lag is None or lag <= LAG_WARNING:
        return ""
    return (f"loadtest.py: warning: requests started up to {lag:.0f} ms late (p99; max "
            f"{summary.start_lag_max or lag:.0f} ms): this machine could not keep "
            f"{_number(summary.rps)} requests a second, so the numbers measure the tester as "
            f"much as the target")


def render_json(summary: Summary) -> str:
    """The summary as one JSON object (latencies in ms, null when nothing was answered)."""
    s = summary
    return json.dumps({
        "url": s.url, "rps": _number(s.rps), "test_time": _number(s.test_time),
        "wait_timeout": _number(s.wait_timeout),
        "sent": s.sent, "completed": s.completed, "failed": s.failed,
        "timeouts": s.timeouts, "connection_errors": s.connection_errors,
        "http_5xx": s.http_5xx,
        "latency_ms": _stats_json(s.latency, "scheduled start"),
        "latency_from_send_ms": _stats_json(s.latency_from_send, "actual send"),
        "status_codes": {str(code): n for code, n in s.status_codes.items()},
        "start_lag_ms": {"p99": _rounded(s.start_lag_p99), "max": _rounded(s.start_lag_max)},
        "interrupted": s.interrupted,
    }, indent=2)


# -- the command line ----------------------------------------------------------------------------


def _url(value: object) -> str:
    """An http:// or https:// URL with a host, kept as given (path and query too)."""
    text = str(value).strip()
    try:
        url = URL(text)
    except ValueError:  # a bad port or IPv6 address
        url = URL()
    if url.scheme not in ("http", "https") or not url.host:
        raise argparse.ArgumentTypeError(f"{text!r} is not an http:// or https:// URL")
    return text


def _number_at_least_0(value: object, *, positive: bool) -> float:
    """A number from the command line (a str) or the config (a str or a number)."""
    try:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not math.isfinite(number) or number < 0 or (positive and number == 0):
        raise argparse.ArgumentTypeError(
            f"{value!r} must be {'above' if positive else 'at least'} 0")
    return number


def _positive(value: object) -> float:
    return _number_at_least_0(value, positive=True)


def _non_negative(value: object) -> float:
    return _number_at_least_0(value, positive=False)


PARAMETERS: dict[str, Callable[[object], Any]] = {
    "url": _url, "rps": _positive, "test_time": _positive, "wait_timeout": _non_negative}


def _read_config(path: str) -> dict[str, Any]:
    """The keys of a JSON or TOML config file (by its suffix)."""
    file = Path(path)
    text = file.read_text(encoding="utf-8")
    if file.suffix.lower() == ".json":
        config = json.loads(text)
    elif file.suffix.lower() == ".toml":
        config = tomllib.loads(text)
    else:
        raise ValueError("a config file is .json or .toml")
    if not isinstance(config, dict):
        raise ValueError("a config file holds one object (url, rps, test_time, wait_timeout)")
    unknown = sorted(set(config) - set(PARAMETERS))
    if unknown:
        raise ValueError(f"unknown keys {', '.join(unknown)} (known: {', '.join(PARAMETERS)})")
    return config


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The four parameters from the command line, then from --config; a usage error (exit 2)
    when one is missing or bad."""
    parser = argparse.ArgumentParser(
        prog="loadtest.py", description=(__doc__ or "").split("\n\n")[0],
        epilog="Ctrl+C ends the test early and prints the summary so far.")
    parser.add_argument("url", nargs="?", type=_url, metavar="URL", help="the page to load")
    parser.add_argument("rps", nargs="?", type=_positive, metavar="RPS",
                        help="requests started a second (> 0)")
    parser.add_argument("test_time", nargs="?", type=_positive, metavar="TEST_TIME",
                        help="seconds of starting requests (> 0)")
    parser.add_argument("wait_timeout", nargs="?", type=_non_negative, metavar="WAIT_TIMEOUT",
                        help="seconds to wait for answers after TEST_TIME (>= 0)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--config", metavar="FILE",
                        help="a .json or .toml file with keys url, rps, test_time, "
                             "wait_timeout; values on the command line take precedence")
    args = parser.parse_args(argv)
    if args.config is not None:
        try:
            config = _read_config(args.config)
        except (OSError, UnicodeError, ValueError) as error:  # JSON/TOML errors are ValueErrors
            parser.error(f"--config {args.config}: {error}")
        for key, value in config.items():
            if getattr(args, key) is None:
                try:
                    setattr(args, key, PARAMETERS[key](value))
                except argparse.ArgumentTypeError as error:
                    parser.error(f"--config {args.config}: {key}: {error}")
    missing = [key.upper() for key in PARAMETERS if getattr(args, key) is None]
    if missing:
        parser.error(f"missing {', '.join(missing)} (give them on the command line or in "
                     "--config)")
    if planned(args.rps, args.test_time) < 1:
        parser.error("RPS x TEST_TIME rounds to no request at all")
    return args


def _raise_open_file_limit() -> None:
    """Raise the soft limit of open files to the hard one: at a high rate against a slow target
    every request in flight holds a socket, and 1,024 (a common soft limit) is soon reached."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        # An unlimited hard limit may be refused as a soft one: then the soft one stays.
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def _run(url: str, rps: float, test_time: float,
               wait_timeout: float) -> tuple[list[Outcome], bool, float]:
    """`load` with Ctrl+C setting its stop event: the outcomes, whether Ctrl+C ended the run, and
    the seconds it took."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    try:
        loop.add_signal_handler(signal.SIGINT, stop.set)
        handled = True
    except (ValueError, RuntimeError, NotImplementedError):  # not the main thread, or Windows
        handled = False
    started = loop.time()
    try:
        outcomes = await load(url, rps, test_time, wait_timeout, stop=stop)
    finally:
        if handled:
            loop.remove_signal_handler(signal.SIGINT)
    return outcomes, stop.is_set(), loop.time() - started


def main(argv: list[str] | None = None) -> int:
    """Run the load test the command line asks for and print its summary; the exit status."""
    args = parse_args(argv)
    _raise_open_file_limit()
    outcomes, interrupted, elapsed = asyncio.run(
        _run(args.url, args.rps, args.test_time, args.wait_timeout))
    summary = summarize(outcomes, args.url, args.rps, args.test_time, args.wait_timeout,
                        interrupted=interrupted, elapsed=elapsed)
    print(render_json(summary) if args.json else render_text(summary), flush=True)
    warning = lag_warning(summary)
    if warning:
        print(warning, file=sys.stderr)
    return INTERRUPTED_EXIT if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
