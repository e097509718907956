"""Benchmark: reference/loadtest.py's highest sustainable rate against wrk's and hey's at one local
nginx, and its rate accuracy at 1,000 RPS for 10 s, in one run.

The target is nginx (Debian's package) on a loopback port, answering every GET with a tiny
static 200 (`return 200 "ok"`), its access log holding each request's time ($msec, 1 ms
resolution), so every tester is judged by what the target received. Its CPU (master and workers,
psutil) is measured during each measurement and printed, so the reader sees whether it was the
bottleneck; the tester's own CPU too (its process's rusage). On a small machine the tester and
the target share the cores: the line `cores:` says how many.

(1) Highest rate with errors below 1%:
    - hey, closed loop at full speed (`-z` duration, `-c` workers, no `-q` rate limit), at each
      of HEY_WORKERS; its best rate whose errors (failed requests and non-2xx/3xx answers, of all)
      stay below 1%;
    - wrk, the same (`-t 2 -c N -d`), at each of WRK_CONNECTIONS;
    - a bare aiohttp closed loop in a process of its own (BARE_WORKERS coroutines sharing one
      ClientSession, each GET after the last answer, nothing else): what aiohttp itself can do
      in one Python process here, the ceiling of any tester built on it;
    - the reference, open model: `loadtest.py URL RPS STEP_SECONDS STEP_WAIT --json` at RPS
      doubling from START_RPS until a step fails, then bisected until the bounds are within
      10%; a step passes when failed/sent < 1%, sent >= 99% of RPS x T, and the target received
      at least 99% of RPS x T within T of the first arrival (in time, not late behind a lagging
      schedule); its rate is the highest RPS that passed.
    hey's, wrk's and aiohttp's rates are those the target saw (arrivals over their span), their
    own figures printed beside. Ratios reference / hey (aim at least 0.5), reference / wrk and
    reference / aiohttp.
(2) Rate accuracy: the reference at 1,000 RPS for 10 s: `sent` within 1% of 10,000 (its --json),
    and the start-time error measured at the target: the k-th arrival minus (anchor +
    k/1000), p99 of its absolute value below 5 ms. The anchor judged is the smallest
    (k-th arrival - k/1000): no request arrives before it is due, so that is the schedule's
    start as the target sees it (plus the least delay on the way), and each error is that
    request's lateness. Anchored at the first arrival (printed too) every error is off by that
    one request's own lateness (its connection is the run's first, opened while nothing is
    warm: 2-3 ms); anchored at the median it is measured from a typical lateness, not from
    none. The log's 1 ms resolution adds up to 1 ms to each. And, from the
    reference's own JSON, p99 from the scheduled start minus p99 from the actual send (a
    difference of percentiles, not a percentile of differences: a hint only).

Missing wrk, hey or nginx are installed with apt-get when run as root (else the command to run is
printed, and a missing wrk or hey is skipped; nginx is required). Every subprocess has a timeout;
the whole run takes 75-90 s (the search stops past SEARCH_BUDGET: under 3 minutes in all).
`--tester FILE` benches another tester with the same command line (a student's, say).
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from conformance._target import free_port, wait_until_listening

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "reference" / "loadtest.py"
PACKAGES = {"wrk": "wrk", "hey": "hey", "nginx": "nginx"}  # command -> Debian package
NGINX_WORKERS = 1  # one worker holds tens of thousands of tiny answers a second
TOOL_SECONDS = 4  # each run of hey or wrk
HEY_WORKERS = (50, 200)
WRK_CONNECTIONS = (50, 200)
BARE_WORKERS = 50
START_RPS = 500.0
STEP_SECONDS = 3.0
STEP_WAIT = 2.0
SEARCH_BUDGET = 90.0  # seconds for the reference's search; it stops at the next step past this
MAX_RPS = 64_000.0
ACCURACY_RPS = 1_000.0
ACCURACY_SECONDS = 10.0
ACCURACY_WAIT = 2.0
AIM_VS_HEY = 0.5
MAX_ERROR = 0.01
AIM_P99_MS = 5.0
LOG_FLUSH = 0.1  # nginx writes its access log buffer at least this often (seconds)
SLACK = 20.0  # beyond a run's own length, before its subprocess is stopped

NGINX_CONF = """
daemon off;
master_process on;
worker_processes {workers};
worker_rlimit_nofile {files};
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections {connections}; }}
http {{
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_requests 10000000;
    log_format arrivals '$msec $connection';
    server {{
        listen 127.0.0.1:{port};
        access_log {dir}/access.log arrivals buffer=64k flush={flush_ms}ms;
        location / {{ default_type text/plain; return 200 "ok\\n"; }}
    }}
}}
"""


def ensure_tools() -> dict[str, str | None]:
    """Each command's path, None for one missing; installs what is missing when root."""
    missing = [cmd for cmd in PACKAGES if shutil.which(cmd) is None]
    if missing:
        packages = " ".join(PACKAGES[cmd] for cmd in missing)
        if os.geteuid() == 0:
            print(f"installing {packages} (apt-get)", flush=True)
            env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq",
                                                         *packages.split()]):
                done = subprocess.run(argv, env=env, capture_output=True, text=True,
                                      timeout=300, check=False)
                if done.returncode != 0:
                    print(f"{' '.join(argv)} failed: {done.stderr[-500:]}")
                    break
        else:
            print(f"missing: {', '.join(missing)}; install them with "
                  f"`apt-get update && apt-get install -y {packages}` (as root)")
    return {cmd: shutil.which(cmd) for cmd in PACKAGES}


class Nginx:
    """nginx serving a tiny 200 on a loopback port from a folder of its own; its access log holds
    one arrival time per line."""

    def __init__(self, binary: str, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log = folder / "access.log"
        conf = folder / "nginx.conf"
        # As many connections as this process may open files (raising the hard limit needs a
        # capability a container may lack): a target short of them would fail the testers.
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        files = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
        conf.write_text(NGINX_CONF.format(workers=NGINX_WORKERS, dir=folder, port=self.port,
                                          flush_ms=int(LOG_FLUSH * 1000), files=files,
                                          connections=files - 100), encoding="utf-8")
        # -e: its own error log from the start (the default path may not be writable).
        self.proc = subprocess.Popen([binary, "-e", str(folder / "error.log"), "-p", str(folder),
                                      "-c", str(conf)], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if not wait_until_listening("127.0.0.1", self.port, 10,
                                    lambda: self.proc.poll() is not None):
            self.stop()
            errors = (folder / "error.log").read_text(errors="replace")[-1000:] \
                if (folder / "error.log").exists() else ""
            raise SystemExit(f"nginx did not start: {errors}")
        self.processes = [psutil.Process(self.proc.pid),
                          *psutil.Process(self.proc.pid).children()]

    def cpu(self) -> float:
        """CPU seconds (user + system) of the master and its workers so far."""
        total = 0.0
        for p in self.processes:
            times = p.cpu_times()
            total += times.user + times.system
        return total

    def mark(self) -> int:
        """Where the access log ends now: arrivals after this belong to what comes next."""
        time.sleep(LOG_FLUSH * 3)  # let the last buffer reach the file
        return self.log.stat().st_size if self.log.exists() else 0

    def arrivals(self, since: int) -> tuple[list[float], int]:
        """Arrival times (seconds, sorted) logged after the mark `since`, and over how many
        connections they came."""
        time.sleep(LOG_FLUSH * 3)
        with self.log.open("rb") as log:
            log.seek(since)
            lines = [line.split() for line in log.read().splitlines() if line.strip()]
        return sorted(float(line[0]) for line in lines), len({line[1] for line in lines})

    def problems(self) -> list[str]:
        """What nginx logged as a warning or worse so far (it would blame the target)."""
        log = self.folder / "error.log"
        lines = log.read_text(errors="replace").splitlines() if log.exists() else []
        return [line for line in lines if re.search(r"\[(warn|error|crit|alert|emerg)\]", line)]

    def stop(self) -> None:
        """Stop it (fast shutdown) and wait for it."""
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


@contextmanager
def running_nginx(binary: str) -> Iterator[Nginx]:
    """An Nginx in a temporary folder, stopped at the end."""
    with tempfile.TemporaryDirectory(prefix="bench-loadtest-") as tmp:
        os.chmod(tmp, 0o755)  # its workers (nobody, when root starts it) reach the folder
        target = Nginx(binary, Path(tmp))
        try:
            yield target
        finally:
            target.stop()


@dataclass
class Run:
    """One measurement of one tester: what it said and what the target saw."""

    tool: str
    setting: str
    wall: float  # seconds the tester ran
    tester_cpu: float  # its CPU seconds (user + system)
    target_cpu: float  # nginx's CPU seconds meanwhile
    arrivals: list[float]  # at the target, sorted
    connections: int  # how many connections those came over
    own_rate: float | None  # requests a second by the tester's own account
    requests: int  # by the tester's account: sent (reference) or done (hey, wrk)
    errors: int  # by the tester's account
    passed: bool = True
    why: str = ""

    @property
    def target_rate(self) -> float:
        """Requests a second the target received: arrivals over their span."""
        if len(self.arrivals) < 2:
            return 0.0
        span = self.arrivals[-1] - self.arrivals[0]
        return (len(self.arrivals) - 1) / span if span > 0 else 0.0

    def line(self) -> str:
        """One line for the report."""
        own = f"{self.own_rate:8.0f}/s" if self.own_rate is not None else "        -"
        span = self.arrivals[-1] - self.arrivals[0] if len(self.arrivals) > 1 else 0.0
        cpu_per_req = 1e6 * self.tester_cpu / max(len(self.arrivals), 1)
        verdict = "ok" if self.passed else f"FAIL ({self.why})"
        return (f"  {self.tool:<9} {self.setting:<14} target saw {len(self.arrivals):6d} in "
                f"{span:5.2f} s = {self.target_rate:7.0f}/s over {self.connections:5d} "
                f"connections (own figure {own}), "
                f"errors {self.errors}/{self.requests}; CPU: target "
                f"{self.target_cpu / self.wall:4.0%}, tester {self.tester_cpu / self.wall:4.0%} "
                f"({cpu_per_req:.0f} us/request); {verdict}")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measured(target: Nginx, argv: list[str], timeout: float
             ) -> tuple[str, float, float, float, list[float], int]:
    """Run `argv` to its end (or `timeout`): its stdout, wall and CPU seconds, nginx's CPU seconds
    meanwhile, the arrivals it caused and over how many connections."""
    since = target.mark()
    cpu, target_cpu, started = _children_cpu(), target.cpu(), time.perf_counter()
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False,
                              stdin=subprocess.DEVNULL)
        out = done.stdout if done.returncode == 0 else ""
        if done.returncode != 0:
            print(f"    {Path(argv[0]).name} exited {done.returncode}: {done.stderr[-300:]}")
    except subprocess.TimeoutExpired:
        out = ""
        print(f"    {Path(argv[0]).name} stopped after {timeout:g} s")
    wall = time.perf_counter() - started
    return (out, wall, _children_cpu() - cpu, target.cpu() - target_cpu,
            *target.arrivals(since))


def _number(pattern: str, text: str) -> float | None:
    found = re.search(pattern, text)
    return float(found.group(1)) if found else None


def run_hey(hey: str, target: Nginx, workers: int) -> Run:
    """hey at full speed with `workers` workers for TOOL_SECONDS."""
    out, wall, cpu, target_cpu, arrivals, used = measured(
        target, [hey, "-z", f"{TOOL_SECONDS}s", "-c", str(workers), "-disable-redirects",
                 target.url], TOOL_SECONDS + SLACK)
    # "[200]\t12345 responses" per status; "[N]\tGet ...: error" per kind of error.
    statuses = {int(code): int(n) for code, n in re.findall(r"\[(\d{3})\]\s+(\d+) responses", out)}
    failures = sum(int(n) for n in re.findall(
        r"^\s*\[(\d+)\]\s+(?!\d+ responses)", out.split("Error distribution:")[-1], re.M)
    ) if "Error distribution:" in out else 0
    bad = sum(n for code, n in statuses.items() if code >= 400) + failures
    total = sum(statuses.values()) + failures
    return Run("hey", f"-c {workers}", wall, cpu, target_cpu, arrivals, used,
               _number(r"Requests/sec:\s+([\d.]+)", out), total, bad)


def run_wrk(wrk: str, target: Nginx, connections: int) -> Run:
    """wrk at full speed with 2 threads and `connections` connections for TOOL_SECONDS."""
    out, wall, cpu, target_cpu, arrivals, used = measured(
        target, [wrk, "-t", "2", "-c", str(connections), "-d", f"{TOOL_SECONDS}s", target.url],
        TOOL_SECONDS + SLACK)
    total = int(_number(r"(\d+) requests in", out) or 0)
    socket_errors = re.search(r"connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    bad = (sum(int(n) for n in socket_errors.groups()) if socket_errors else 0) + int(
        _number(r"Non-2xx or 3xx responses: (\d+)", out) or 0)
    return Run("wrk", f"-t 2 -c {connections}", wall, cpu, target_cpu, arrivals, used,
               _number(r"Requests/sec:\s+([\d.]+)", out), total, bad)


# The bare aiohttp closed loop, run as `python -c BARE URL WORKERS SECONDS`; prints its counts.
BARE = """
import asyncio, json, sys, time
import aiohttp

async def main(url, workers, seconds):
    counts = {"answered": 0, "errors": 0}
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        end = time.perf_counter() + seconds
        async def worker():
            while time.perf_counter() < end:
                try:
                    async with session.get(url, allow_redirects=False) as answer:
                        await answer.read()
                        counts["answered" if answer.status < 400 else "errors"] += 1
                except (aiohttp.ClientError, OSError):
                    counts["errors"] += 1
        await asyncio.gather(*(worker() for _ in range(workers)))
    print(json.dumps(counts))

asyncio.run(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3])))
"""


def run_bare(python: str, target: Nginx, workers: int) -> Run:
    """The bare aiohttp closed loop with `workers` coroutines for TOOL_SECONDS."""
    out, wall, cpu, target_cpu, arrivals, used = measured(
        target, [python, "-c", BARE, target.url, str(workers), str(TOOL_SECONDS)],
        TOOL_SECONDS + SLACK)
    counts = json.loads(out) if out.strip() else {"answered": 0, "errors": 0}
    total = counts["answered"] + counts["errors"]
    return Run("aiohttp", f"{workers} workers", wall, cpu, target_cpu, arrivals, used,
               total / TOOL_SECONDS, total, counts["errors"])


def run_reference(tester: Path, target: Nginx, rps: float, seconds: float, wait: float
                  ) -> tuple[Run, dict[str, Any]]:
    """The tester at `rps` for `seconds` (then `wait`), judged as a step of the search; its JSON
    summary too."""
    out, wall, cpu, target_cpu, arrivals, used = measured(
        target, [sys.executable, str(tester), target.url, f"{rps:g}", f"{seconds:g}",
                 f"{wait:g}", "--json"], seconds + wait + SLACK)
    summary: dict[str, Any] = json.loads(out) if out.strip() else {}
    sent, failed = int(summary.get("sent", 0)), int(summary.get("failed", 0))
    run = Run("reference", f"{rps:.0f} RPS", wall, cpu, target_cpu, arrivals, used, None, sent,
              failed)
    planned = round(rps * seconds)
    if not summary:
        run.passed, run.why = False, "no JSON summary"
    elif failed >= MAX_ERROR * max(sent, 1):
        run.passed, run.why = False, (
            f"{failed} of {sent} failed: {summary.get('timeouts')} timeouts, "
            f"{summary.get('connection_errors')} connection errors, {summary.get('http_5xx')} 5xx")
    elif sent < (1 - MAX_ERROR) * planned or len(arrivals) < (1 - MAX_ERROR) * planned:
        run.passed, run.why = False, f"sent {sent}, target saw {len(arrivals)} of {planned}"
    else:
        # In time: 99% of them within the test time of the first arrival (a lone late request
        # at the end must not fail a step; a tester lagging behind its schedule does).
        on_time = bisect.bisect_right(arrivals, arrivals[0] + seconds)
        if on_time < (1 - MAX_ERROR) * planned:
            run.passed, run.why = False, (f"target saw {on_time} of {planned} within "
                                          f"{seconds:g} s of the first")
    return run, summary


def search_reference(tester: Path, target: Nginx) -> float | None:
    """The RPS of the highest passing step: doubling from START_RPS, then bisecting to within
    10%; None when no step passed."""
    started = time.perf_counter()
    best: float | None = None
    low, high, rps = 0.0, 0.0, START_RPS
    while time.perf_counter() - started < SEARCH_BUDGET:
        run, _ = run_reference(tester, target, rps, STEP_SECONDS, STEP_WAIT)
        print(run.line(), flush=True)
        if run.passed:
            best, low = rps, rps
        else:
            high = rps
        if high == 0.0:
            if rps >= MAX_RPS:
                break
            rps *= 2
        elif low == 0.0:  # the first step failed: go down
            rps /= 2
            if rps < 50:
                break
        elif high / low <= 1.1:
            break
        else:
            rps = round((low + high) / 2, -1)
    return best


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile of `values` (sorted here)."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))
    return ordered[int(rank) - 1]


def accuracy(tester: Path, target: Nginx) -> bool:
    """(2): the tester at ACCURACY_RPS for ACCURACY_SECONDS; True when within the aims."""
    run, summary = run_reference(tester, target, ACCURACY_RPS, ACCURACY_SECONDS, ACCURACY_WAIT)
    print(run.line())
    planned = round(ACCURACY_RPS * ACCURACY_SECONDS)
    sent = run.requests
    sent_ok = abs(sent - planned) <= MAX_ERROR * planned
    print(f"  sent {sent} of {planned} ({(sent - planned) / planned:+.2%}; aim within 1%): "
          f"{'ok' if sent_ok else 'FAIL'}")
    a = run.arrivals
    if len(a) < 2:
        print("  the target saw nothing: no start-time error")
        return False
    offsets = [t - k / ACCURACY_RPS for k, t in enumerate(a)]
    from_first = [1000 * abs(o - offsets[0]) for o in offsets]
    earliest, median = min(offsets), percentile(offsets, 50)
    lateness = [1000 * (o - earliest) for o in offsets]
    p99 = percentile(lateness, 99)
    print(f"  start-time error at the target (k-th arrival - (anchor + k/{ACCURACY_RPS:g})), "
          "1 ms log resolution:")
    print(f"    anchored at the earliest offset (lateness): p50 {percentile(lateness, 50):.1f} ms, "
          f"p99 {p99:.1f} ms, max {max(lateness):.1f} ms (aim p99 < {AIM_P99_MS:g} ms): "
          f"{'ok' if p99 < AIM_P99_MS else 'FAIL'}")
    from_median = [1000 * abs(o - median) for o in offsets]
    print(f"    anchored at the first arrival: p50 {percentile(from_first, 50):.1f} ms, "
          f"p99 {percentile(from_first, 99):.1f} ms, max {max(from_first):.1f} ms (it came "
          f"{1000 * (offsets[0] - earliest):.1f} ms late); at the median offset: p50 "
          f"{percentile(from_median, 50):.1f} ms, p99 {percentile(from_median, 99):.1f} ms")
    scheduled, send = summary.get("latency_ms"), summary.get("latency_from_send_ms")
    if isinstance(scheduled, dict) and isinstance(send, dict) and scheduled.get("p99") is not None:
        print(f"  its own JSON: latency p99 from the scheduled start {scheduled['p99']:.2f} ms, "
              f"from the actual send {send['p99']:.2f} ms (difference "
              f"{scheduled['p99'] - send['p99']:.2f} ms: the scheduler's lag, roughly)")
    return sent_ok and p99 < AIM_P99_MS


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 when the reference reaches the aims."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tester", type=Path, default=REFERENCE,
                        help="the load tester to bench (default: reference/loadtest.py)")
    args = parser.parse_args(argv)
    if not args.tester.exists():
        print(f"no tester at {args.tester}")
        return 2
    tools = ensure_tools()
    nginx, hey, wrk = tools["nginx"], tools["hey"], tools["wrk"]
    if nginx is None:
        print("nginx is needed as the target")
        return 2
    print(f"cores: {os.cpu_count()}, shared by the tester and the target (nginx, "
          f"{NGINX_WORKERS} worker); CPU shares below are of one core; load average "
          f"{os.getloadavg()[0]:.2f} before the run")
    clock = time.perf_counter()
    rates: dict[str, float] = {}
    with running_nginx(nginx) as target:
        print(f"target {target.url}; tester {args.tester}")
        print(f"\n(1) highest rate with errors below {MAX_ERROR:.0%}")
        for name, binary, runner, settings in (("hey", hey, run_hey, HEY_WORKERS),
                                               ("wrk", wrk, run_wrk, WRK_CONNECTIONS),
                                               ("aiohttp", sys.executable, run_bare,
                                                (BARE_WORKERS,))):
            if binary is None:
                print(f"  {name}: not installed, skipped")
                continue
            for setting in settings:
                run = runner(binary, target, setting)
                if run.requests == 0 or run.errors >= MAX_ERROR * run.requests:
                    run.passed, run.why = False, "errors" if run.requests else "no output"
                print(run.line(), flush=True)
                if run.target_cpu > 0.8 * NGINX_WORKERS * run.wall:
                    print(f"    note: the target used {run.target_cpu / run.wall:.0%} of one core "
                          f"with {NGINX_WORKERS} worker(s): it may be what limits {name} here")
                if run.passed:
                    rates[name] = max(rates.get(name, 0.0), run.target_rate)
        best = search_reference(args.tester, target)
        if best is not None:
            rates["reference"] = best
        print()
        for name, rate in rates.items():
            print(f"  {name:<9} highest rate {rate:7.0f}/s")
        ours = rates.get("reference")
        verdict = ours is not None
        if ours is None:
            print("  the reference passed no step")
        for name in ("hey", "wrk", "aiohttp"):
            if name not in rates:
                print(f"  {name}: no rate (not installed, or every run failed): no ratio")
            elif ours is not None:
                ratio = ours / rates[name]
                aim = f" (aim at least {AIM_VS_HEY})" if name == "hey" else ""
                print(f"  reference / {name}: {ratio:.2f}{aim}")
                if name == "hey":
                    verdict = verdict and ratio >= AIM_VS_HEY
        print(f"\n(2) rate accuracy: {ACCURACY_RPS:g} RPS for {ACCURACY_SECONDS:g} s")
        verdict = accuracy(args.tester, target) and verdict
        problems = target.problems()
        if problems:
            print(f"\nthe target logged {len(problems)} problems, e.g. {problems[-1][:200]}")
    print(f"\nwhole run {time.perf_counter() - clock:.0f} s")
    return 0 if verdict else 1


if __name__ == "__main__":
    sys.exit(main())
