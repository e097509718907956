"""Benchmark: one task of 10,000 URLs, three ways, in one run, against one local fixture site.

(a) the limit: a bare aiohttp loop in a process of its own, 200 workers sharing one session,
    doing the same 10,000 GETs directly, with no server around it;
(1) the reference, `reference/crawler.py` (concurrency 200): POST the list, poll every 50 ms
    until the task is ready;
(b) the straightforward solution most students write, `bench/_straightforward_crawler.py`
    (FastAPI + httpx + asyncio.gather, no limit of its own): the same POST and polling.

Each runs in its own process; the fixture (`bench/_fixture.py`, aiohttp.web answering 200) in
another. Wall time runs from the POST to the first poll that sees "ready" (for the bare loop:
first GET to last answer); memory is the process's peak resident set (VmHWM in /proc/PID/status)
next to its resident set before the work. (a) and (1) run twice, alternately, each time in a
fresh process, and the faster round counts; (b) runs once. Every contestant has 120 s; one that
takes longer is stopped and reported as such. Prints the rates, how many entries were 200 (all
10,000 should be), and the ratios reference / bare loop (aim at least 0.70) and reference /
straightforward (aim at least 10x).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import httpx
from _fixture import running_fixture, vm_kib

from conformance._target import free_port, wait_until_listening

ROOT = Path(__file__).resolve().parent.parent
URLS = 10_000
CONCURRENCY = 200
TIME_LIMIT = 120.0
POLL = 0.05
ROUNDS = 2


@dataclass
class Outcome:
    """How one contestant did; seconds is None when it was stopped at the time limit."""

    name: str
    seconds: float | None
    ok: int
    entries: int
    idle_kib: int
    peak_kib: int

    @property
    def rate(self) -> float | None:
        """URLs per second, or None when stopped."""
        return None if self.seconds is None else URLS / self.seconds


def _urls(base: str, n: int) -> list[str]:
    return [f"{base}/page/{i}" for i in range(n)]


async def _bare_loop(base: str, n: int) -> dict[str, float | int]:
    urls = _urls(base, n)
    result: list[int | None] = [None] * n
    indexes = iter(range(n))
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=10)) as session:
        async def worker() -> None:
            for i in indexes:
                try:
                    async with session.get(urls[i], allow_redirects=False) as answer:
                        result[i] = answer.status
                except (aiohttp.ClientError, TimeoutError):
                    result[i] = None

        idle = vm_kib(os.getpid(), "VmRSS")
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        seconds = time.perf_counter() - t0
    return {"seconds": seconds, "ok": result.count(200), "entries": len(result),
            "idle_kib": idle, "peak_kib": vm_kib(os.getpid(), "VmHWM")}


def bare_loop(base: str, n: int) -> Outcome:
    """(a): the bare loop in a subprocess of its own (this script with --bare-loop)."""
    name = "(a) bare aiohttp loop (the limit)"
    try:
        done = subprocess.run([sys.executable, __file__, "--bare-loop", base, str(n)],
                              capture_output=True, text=True, timeout=TIME_LIMIT, check=True)
    except subprocess.TimeoutExpired:
        return Outcome(name, None, 0, 0, 0, 0)
    return Outcome(name, **json.loads(done.stdout))


def _stop(proc: subprocess.Popen[bytes]) -> None:
    for sig, grace in ((signal.SIGINT, 10), (signal.SIGKILL, 10)):
        if proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            continue


def server(name: str, argv: list[str], base: str) -> Outcome:
    """(1) and (b): start the server, POST the URLs, poll until ready or the time limit."""
    port = free_port()
    proc = subprocess.Popen([*argv, "--port", str(port)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    api = f"http://127.0.0.1:{port}/api/v1/tasks/"
    try:
        if not wait_until_listening("127.0.0.1", port, 15, lambda: proc.poll() is not None):
            raise SystemExit(f"{name}: the server did not start")
        idle = vm_kib(proc.pid, "VmRSS")
        with httpx.Client(trust_env=False, timeout=TIME_LIMIT) as client:
            t0 = time.perf_counter()
            created = client.post(api, json=_urls(base, URLS))
            if created.status_code != 201:
                raise SystemExit(f"{name}: POST answered {created.status_code}")
            task_url = api + created.json()["id"]
            while (left := TIME_LIMIT - (time.perf_counter() - t0)) > 0:
                try:
                    task = client.get(task_url, timeout=left).json()
                except httpx.TimeoutException:
                    break
                if task["status"] == "ready":
                    seconds = time.perf_counter() - t0
                    return Outcome(name, seconds, task["result"].count(200),
                                   len(task["result"]), idle, vm_kib(proc.pid, "VmHWM"))
                time.sleep(POLL)
            return Outcome(name, None, 0, 0, idle, vm_kib(proc.pid, "VmHWM"))
    finally:
        _stop(proc)


def _faster(a: Outcome | None, b: Outcome) -> Outcome:
    if a is None or a.seconds is None:
        return b
    return a if b.seconds is None or a.seconds <= b.seconds else b


def _row(o: Outcome) -> str:
    wall = f"{o.seconds:8.2f}" if o.seconds is not None else f">{TIME_LIMIT:7.0f}"
    rate = f"{o.rate:9.0f}" if o.rate is not None else "  stopped"
    entries = f"{o.ok:>6}/{o.entries:<6}" if o.seconds is not None else f"{'-':>13}"
    return (f"{o.name:<42} {wall} {rate} {entries} "
            f"{o.idle_kib / 1024:8.1f} {o.peak_kib / 1024:9.1f}")


def _ratio(label: str, a: Outcome, b: Outcome, aim: float) -> str:
    if a.rate is None:
        return f"{label}: the reference was stopped at {TIME_LIMIT:g} s"
    if b.rate is None:
        # b took more than TIME_LIMIT, so the true ratio is at least this.
        at_least = a.rate / (URLS / TIME_LIMIT)
        return f"{label}: at least {at_least:.1f}x (it was stopped at {TIME_LIMIT:g} s; " \
               f"aim {aim:g}x) {'OK' if at_least >= aim else 'BELOW AIM?'}"
    ratio = a.rate / b.rate
    return f"{label}: {ratio:.2f}x (aim at least {aim:g}x) {'OK' if ratio >= aim else 'BELOW AIM'}"


def main() -> int:
    """Run the three contestants against one fixture and print the table and the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bare-loop", nargs=2, metavar=("BASE", "N"),
                        help=argparse.SUPPRESS)  # internal: the bare loop's own process
    args = parser.parse_args()
    if args.bare_loop:
        print(json.dumps(asyncio.run(_bare_loop(args.bare_loop[0], int(args.bare_loop[1])))))
        return 0
    reference = [sys.executable, str(ROOT / "reference" / "crawler.py"), "--quiet"]
    with running_fixture() as base:
        bare_loop(base, 1_000)  # warm-up of the fixture, not counted
        bare, ref = None, None
        for _ in range(ROUNDS):  # alternately, each in a fresh process; the faster round counts
            bare = _faster(bare, bare_loop(base, URLS))
            ref = _faster(ref, server("(1) reference/crawler.py", reference, base))
        assert bare is not None and ref is not None
        naive = server("(b) straightforward FastAPI+httpx+gather",
                       [sys.executable, str(ROOT / "bench" / "_straightforward_crawler.py")],
                       base)
    print(f"one task of {URLS} URLs, concurrency {CONCURRENCY}, local aiohttp fixture; "
          f"(a) and (1): best of {ROUNDS}")
    print(f"{'':<42} {'wall s':>8} {'URLs/s':>9} {'200s/entries':>13} "
          f"{'idle MiB':>8} {'peak MiB':>9}")
    for outcome in (bare, ref, naive):
        print(_row(outcome))
    print(_ratio("reference / bare loop", ref, bare, 0.70))
    print(_ratio("reference / straightforward", ref, naive, 10))
    return 0


if __name__ == "__main__":
    sys.exit(main())
