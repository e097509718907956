"""Benchmark: reference/probe.py on 10,000 domains over HTTP and HTTPS in the box
(conformance/_box), against a bare aiohttp loop over the same list in the same box, in one run.

(a) the limit: a bare aiohttp loop in a process of its own, under the box's launcher as the
    prober is: asyncio.gather over the 20,000 URLs (`http://D/` and `https://D/` of each
    domain) with a semaphore of 1,000, GET each, read the body, nothing else (no records, no
    file; one session with the reference's connector limit and force_close, since keep-alive
    connections to 20,000 distinct hosts are never reused and would only pile up);
(1) the reference, `python reference/probe.py domains.csv`: its records streamed to its
    `domain_status`, HTTP then HTTPS per domain, at most 1,000 domains at once.

Rules: it runs inside a network namespace of its own (entered first thing: the box binds
port 53 and ports 80/443 of 10,000 loopback addresses); every site answers at once and
correctly, so the work measured is the probing, not a fault's timeout. The box serves from
threads of this process, so what it costs is measured too (the process's CPU time minus its
main thread's, which only waits for the contestant): a box whose CPU time nears the wall time
is the bottleneck, and the ratio then says little (a slow box must never hide a slow prober).
Each contestant runs ROUNDS times, alternately, and the faster round counts; each has
TIME_LIMIT seconds. Prints both wall times, the prober's and the box's CPU, how many answers
were complete, and the ratio reference / bare loop (aim at most 1.3).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from conformance._box import Box, Site
from conformance._isolation import enter_own_network, target_env

ROOT = Path(__file__).resolve().parent.parent
DOMAINS = 10_000
CONCURRENCY = 1_000
TIME_LIMIT = 300.0
ROUNDS = 2
AIM = 1.3

# The bare loop, run as `python -c BARE DOMAINS_FILE` under the box's launcher; prints how many
# of its GETs read a whole body.
BARE = """
import asyncio, collections, json, sys
import aiohttp

async def main(path):
    domains = [line.split(",")[-1].strip() for line in open(path) if line.strip()]
    urls = [f"{scheme}://{d}/" for d in domains for scheme in ("http", "https")]
    turns = asyncio.Semaphore(CONCURRENCY)
    connector = aiohttp.TCPConnector(limit=CONCURRENCY, force_close=True)
    async with aiohttp.ClientSession(connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=10)) as session:
        async def get(url):
            async with turns:
                try:
                    async with session.get(url) as answer:
                        await answer.read()
                        return "complete"
                except Exception as exc:
                    host = url.split("/")[2]
                    return f"{type(exc).__name__}: {exc}".replace(host, "D")[:90]
        done = collections.Counter(await asyncio.gather(*(get(url) for url in urls)))
    complete = done.pop("complete", 0)
    print(json.dumps({"complete": complete, "requests": len(urls), "failures": done}))

asyncio.run(main(sys.argv[1]))
""".replace("CONCURRENCY", str(CONCURRENCY))


@dataclass
class Outcome:
    """One round of one contestant: wall seconds (None: stopped at the limit), its own CPU
    seconds (user + system, the child's), the box's CPU seconds meanwhile, and how many of its
    requests had a complete answer, of how many."""

    name: str
    seconds: float | None
    cpu: float
    box_cpu: float
    complete: int
    requests: int
    failures: dict[str, int] = field(default_factory=dict)  # what the others met, how often
    peak: int = 0  # most connections the box counted open at once during the round


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(box: Box, name: str, argv: list[str], cwd: Path, env: dict[str, str]
          ) -> tuple[Outcome, str]:
    """Run `argv` under `box` in `cwd` to its end or TIME_LIMIT; its outcome (complete counts
    left at 0) and its stdout."""
    if box.hosts is not None:
        box.hosts.reset()  # the peak of this round alone
    children, own, main_thread = _children_cpu(), _own_cpu(), time.thread_time()
    started = time.perf_counter()
    try:
        done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=TIME_LIMIT, check=False)
        seconds: float | None = time.perf_counter() - started
        out = done.stdout
        if done.returncode != 0:
            raise SystemExit(f"{name} exited {done.returncode}: {done.stderr[-2000:]}")
    except subprocess.TimeoutExpired:
        seconds, out = None, ""
    # This thread only waited: the rest of this process's CPU is the box's threads'.
    spent = (_own_cpu() - own) - (time.thread_time() - main_thread)
    return Outcome(name, seconds, _children_cpu() - children, spent, 0, 0,
                   peak=box.peak_connections), out


def reference_round(box: Box, folder: Path, env: dict[str, str], count: int) -> Outcome:
    """(1): the reference in `folder` (holding domains.csv); its records checked."""
    status = folder / "domain_status"
    status.unlink(missing_ok=True)
    argv = [sys.executable, str(ROOT / "reference" / "probe.py"), "domains.csv"]
    outcome, _ = timed(box, "(1) reference/probe.py", box.command(argv), folder, env)
    if outcome.seconds is not None:
        records = json.loads(status.read_text(encoding="utf-8"))
        outcome.requests = 2 * count
        outcome.complete = sum(
            (r["http_status"] == 200 and r["http_content_length"] is not None)
            + (r["https_status"] == "Ok" and r["https_content_length"] is not None)
            for r in records)
        failures: Counter[str] = Counter()
        for r in records:
            if r["http_status"] != 200:
                failures[f"http: {r['http_status']}"] += 1
            if r["https_status"] != "Ok":
                # The reason without the domain's name, so that alike failures add up.
                failures[f"https: {str(r['https_status']).replace(r['domain'], 'D')[:90]}"] += 1
        outcome.failures = dict(failures)
    return outcome


def bare_round(box: Box, folder: Path, env: dict[str, str]) -> Outcome:
    """(a): the bare loop in `folder`."""
    argv = [sys.executable, "-c", BARE, "domains.csv"]
    outcome, out = timed(box, "(a) bare aiohttp loop", box.command(argv), folder, env)
    if outcome.seconds is not None:
        counts = json.loads(out)
        outcome.complete, outcome.requests = counts["complete"], counts["requests"]
        outcome.failures = counts["failures"]
    return outcome


def best(outcomes: list[Outcome]) -> Outcome:
    """The fastest finished round, else the first."""
    finished = [o for o in outcomes if o.seconds is not None]
    return min(finished, key=lambda o: o.seconds or 0.0) if finished else outcomes[0]


def show(o: Outcome) -> str:
    """One contestant's line."""
    wall = "stopped" if o.seconds is None else f"{o.seconds:6.1f} s"
    share = "" if not o.seconds else f" ({o.box_cpu / o.seconds:.0%} of the wall time)"
    return (f"{o.name:<24} wall {wall}, its CPU {o.cpu:6.1f} s, box CPU {o.box_cpu:6.1f} s"
            f"{share}, peak {o.peak} connections, complete {o.complete}/{o.requests}"
            + "".join(f"\n    {n} x {what}" for what, n in sorted(o.failures.items(),
                                                              key=lambda kv: -kv[1])[:5]))


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 when the reference is within AIM of the bare loop."""
    why = enter_own_network()  # first: the box's ports are this namespace's
    if why:
        print(f"bench/probe.py needs a network namespace of its own: {why}", file=sys.stderr)
        return 2
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--domains", type=int, default=DOMAINS)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-probe-") as tmp:
        folder = Path(tmp)
        names = [f"site{n:05d}.bench.test" for n in range(1, args.domains + 1)]
        (folder / "domains.csv").write_text(
            "".join(f"{rank},{name}\n" for rank, name in enumerate(names, 1)), encoding="utf-8")
        clock = time.perf_counter()
        with Box([Site(name) for name in names], folder / "box") as box:
            print(f"box of {args.domains} sites started in {time.perf_counter() - clock:.1f} s "
                  f"({', '.join(f'{k} {v:.1f} s' for k, v in box.start_seconds.items())})")
            env = {**target_env(os.environ), **box.env()}
            bare: list[Outcome] = []
            ours: list[Outcome] = []
            for _ in range(args.rounds):
                bare.append(bare_round(box, folder, env))
                print(show(bare[-1]), flush=True)
                ours.append(reference_round(box, folder, env, args.domains))
                print(show(ours[-1]), flush=True)
    a, r = best(bare), best(ours)
    print(f"\nbest of {args.rounds} rounds")
    print(show(a))
    print(show(r))
    if a.seconds is None or r.seconds is None:
        print("a contestant was stopped at the time limit: no ratio")
        return 1
    ratio = r.seconds / a.seconds
    print(f"reference / bare loop: {ratio:.2f}x (aim at most {AIM}x)")
    for o, seconds in ((a, a.seconds), (r, r.seconds)):
        if o.box_cpu > 0.8 * seconds:
            print(f"note: the box's CPU was {o.box_cpu / seconds:.0%} of {o.name}'s wall "
                  "time: the box may be what limits it")
    complete = r.complete == r.requests and a.complete == a.requests
    if not complete:
        print("note: not every request had a complete answer (see the counts above)")
    return 0 if ratio <= AIM and complete else 1


if __name__ == "__main__":
    sys.exit(main())
