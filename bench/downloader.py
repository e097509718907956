"""Benchmark: reference/downloader.py fetching 1,000 images of mixed sizes (about 200 MB) from the
box (conformance/_box) with N = 20, against a bare aiohttp loop doing the same, in one run.

(a) the limit: a bare aiohttp loop in a process of its own, under the box's launcher as the
    reference is: one session, asyncio.Semaphore(N), GET each URL and stream its body in 64 KiB
    chunks to a file named after the URL's last segment; nothing else (no check, no progress);
(1) the reference, `python reference/downloader.py urls.csv FOLDER 20` (its progress lines on
    stderr go to a file, as when a user redirects them).

The images: sizes drawn with a fixed seed (exponential, mean 200 KB, clipped to 10 KB - 1 MB),
each a real sample from conformance/specs/downloader/samples/ (PNG or JPEG, so the reference's
magic-byte check passes) padded with random bytes, so every file differs; spread over HOSTS
hosts, half of the URLs over HTTP and half over HTTPS (the box's CA). The box serves from threads
of this process and holds every body, so this process holds about 200 MB (on purpose: that is
the box, not a contestant); its CPU time (the process's minus its main thread's, which only
waits and samples) is printed, since a box near the wall time would be what limits both.

Each contestant runs ROUNDS times, alternately, each time into a fresh folder, and the faster
round counts; each has TIME_LIMIT seconds. After every round each of the 1,000 files is compared
byte for byte with what the box served (and nothing else may be in the folder). Each is run
by a small watcher process (WATCH) that times it and reads its peak resident set, the kernel's
high-water mark (ru_maxrss of its children), shown next to psutil's samples every 50 ms.
Prints wall times, CPU, peaks, and the ratios reference / bare (aims: wall at most 1.2x; the
reference's peak below 100 MB, since it streams). About 10 s in all.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from conformance._box import Answer, Box, Site
from conformance._isolation import enter_own_network, target_env

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "conformance" / "specs" / "downloader" / "samples"
IMAGES = 1_000
HOSTS = 10
LIMIT = 20  # N: downloads at once, for both contestants
SEED = 20
MEAN, SMALLEST, LARGEST = 200_000, 10_000, 1_000_000
ROUNDS = 2
TIME_LIMIT = 60.0
SAMPLE_EVERY = 0.05
AIM_WALL = 1.2
AIM_PEAK_MB = 100.0

# The bare loop, run as `python bare.py URLS_FILE FOLDER` under the box's launcher.
BARE = """
import asyncio, sys
from pathlib import Path
import aiohttp

async def main(urls_file, folder):
    urls = [line.strip() for line in open(urls_file) if line.strip()]
    turns = asyncio.Semaphore(LIMIT)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async def get(url):
            async with turns:
                async with session.get(url) as answer:
                    answer.raise_for_status()
                    with open(Path(folder) / url.rsplit("/", 1)[-1], "wb") as sink:
                        async for chunk in answer.content.iter_chunked(65536):
                            sink.write(chunk)
        await asyncio.gather(*(get(url) for url in urls))

asyncio.run(main(sys.argv[1], sys.argv[2]))
""".replace("LIMIT", str(LIMIT))

# Runs a contestant as `python -c WATCH REPORT ARGV...`: the contestant's peak RSS is the
# kernel's high-water mark for the children of this small process. Taken for a child of the
# bench itself it would be wrong: the fork holds the box's 200 MB of bodies until it execs.
# The wall time is the child's alone (this process's own start left out).
WATCH = """
import json, resource, subprocess, sys, time
started = time.perf_counter()
code = subprocess.call(sys.argv[2:])
seconds = time.perf_counter() - started
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(sys.argv[1], "w") as report:
    json.dump({"seconds": seconds, "cpu": usage.ru_utime + usage.ru_stime,
               "maxrss_kib": usage.ru_maxrss}, report)
sys.exit(code)
"""


@dataclass
class Outcome:
    """One round of one contestant: wall seconds (None: stopped at the limit), its CPU seconds
    (user + system), the box's CPU seconds meanwhile, its peak RSS in MB (kernel's, sampled),
    and how many files came out byte-identical."""

    name: str
    seconds: float | None
    cpu: float
    box_cpu: float
    peak_mb: float
    sampled_mb: float
    identical: int = 0
    problems: str = ""


def make_images(seed: int = SEED) -> dict[str, tuple[bytes, str]]:
    """path -> (body, content type) of IMAGES images; the same for the same seed."""
    rng = random.Random(seed)
    samples = [((SAMPLES / "cat.png").read_bytes(), "image/png", ".png"),
               ((SAMPLES / "dog.jpg").read_bytes(), "image/jpeg", ".jpg")]
    images: dict[str, tuple[bytes, str]] = {}
    for number in range(IMAGES):
        size = int(min(LARGEST, max(SMALLEST, rng.expovariate(1 / MEAN))))
        head, ctype, ext = samples[number % 2]
        images[f"/img/{number:04d}{ext}"] = (head + rng.randbytes(size - len(head)), ctype)
    return images


def plan(images: dict[str, tuple[bytes, str]]) -> tuple[list[Site], list[str]]:
    """The box's sites (image i on host i % HOSTS) and the URLs in order, HTTPS for every
    other image of a host (so half of them, on every host)."""
    paths: list[list[tuple[str, Answer]]] = [[] for _ in range(HOSTS)]
    urls = []
    for number, (path, (body, ctype)) in enumerate(images.items()):
        host = number % HOSTS
        paths[host].append((path, Answer(body=body, content_type=ctype)))
        scheme = "https" if (number // HOSTS) % 2 else "http"
        urls.append(f"{scheme}://img{host:02d}.bench.test{path}")
    sites = [Site(f"img{host:02d}.bench.test", paths=tuple(paths[host]))
             for host in range(HOSTS)]
    return sites, urls


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(name: str, argv: list[str], cwd: Path, env: dict[str, str]) -> Outcome:
    """Run `argv` in `cwd` under WATCH to its end or TIME_LIMIT, sampling its RSS every
    SAMPLE_EVERY s; its wall time, CPU and peak RSS as WATCH measured them."""
    own, main_thread = _own_cpu(), time.thread_time()
    report = cwd / "watch.json"
    report.unlink(missing_ok=True)
    log = cwd / f"{name.split()[1]}.log"
    with open(log, "wb") as out:
        child = subprocess.Popen([sys.executable, "-c", WATCH, str(report), *argv], cwd=cwd,
                                 env=env, stdout=out, stderr=out, start_new_session=True)
    watcher = psutil.Process(child.pid)
    sampled = 0
    try:
        deadline = time.monotonic() + TIME_LIMIT
        while child.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(psutil.Error):  # it has just ended
                sampled = max([sampled, *(p.memory_info().rss
                                          for p in watcher.children(recursive=True))])
            time.sleep(SAMPLE_EVERY)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
    # This thread only waited and sampled: the rest of this process's CPU is the box's threads'.
    spent = (_own_cpu() - own) - (time.thread_time() - main_thread)
    if not report.exists():
        return Outcome(name, None, 0.0, spent, 0.0, sampled / 2**20, problems="stopped")
    watched = json.loads(report.read_text(encoding="utf-8"))
    outcome = Outcome(name, watched["seconds"], watched["cpu"], spent,
                      watched["maxrss_kib"] / 1024, sampled / 2**20)
    if child.returncode != 0:
        tail = log.read_text(errors="replace")[-1500:]
        outcome.problems = f"exited {child.returncode}: {tail}"
    return outcome


def verify(outcome: Outcome, folder: Path, images: dict[str, tuple[bytes, str]]) -> None:
    """Count the files in `folder` identical to what the box served; note what is not."""
    expected = {path.rsplit("/", 1)[-1]: body for path, (body, _) in images.items()}
    found = {p.name for p in folder.iterdir()}
    bad = [name for name, body in expected.items()
           if name not in found or (folder / name).read_bytes() != body]
    outcome.identical = len(expected) - len(bad)
    extra = sorted(found - set(expected))
    if bad or extra:
        outcome.problems += f" {len(bad)} missing or different (e.g. {bad[:3]}); extra {extra[:3]}"


def show(o: Outcome) -> str:
    """One contestant's line."""
    wall = "stopped" if o.seconds is None else f"{o.seconds:5.2f} s"
    share = "" if not o.seconds else f" ({o.box_cpu / o.seconds:.0%} of wall)"
    return (f"{o.name:<24} wall {wall}, CPU {o.cpu:5.2f} s, box CPU {o.box_cpu:5.2f} s{share}, "
            f"peak RSS {o.peak_mb:5.1f} MB (sampled {o.sampled_mb:5.1f}), "
            f"identical {o.identical}/{IMAGES}" + (f"\n    {o.problems}" if o.problems else ""))


def best(outcomes: list[Outcome]) -> Outcome:
    """The fastest finished round, else the first."""
    finished = [o for o in outcomes if o.seconds is not None]
    return min(finished, key=lambda o: o.seconds or 0.0) if finished else outcomes[0]


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 when every file came out right and both aims are met."""
    why = enter_own_network()  # first: the box binds ports 53, 80 and 443 of its addresses
    if why:
        print(f"bench/downloader.py needs a network namespace of its own: {why}",
              file=sys.stderr)
        return 2
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    args = parser.parse_args(argv)

    images = make_images()
    sites, urls = plan(images)
    sizes = [len(body) for body, _ in images.values()]
    print(f"{IMAGES} images, {sum(sizes) / 1e6:.1f} MB (smallest {min(sizes)}, largest "
          f"{max(sizes)} bytes), {HOSTS} hosts, HTTP and HTTPS half each, N = {LIMIT}")
    with tempfile.TemporaryDirectory(prefix="bench-downloader-") as tmp:
        work = Path(tmp)
        (work / "urls.csv").write_text("url\n" + "".join(f"{u}\n" for u in urls),
                                       encoding="utf-8")
        (work / "urls.txt").write_text("".join(f"{u}\n" for u in urls), encoding="utf-8")
        (work / "bare.py").write_text(BARE, encoding="utf-8")
        with Box(sites, work / "box") as box:
            env = {**target_env(os.environ), **box.env()}
            contestants = {
                "(a) bare aiohttp loop": [sys.executable, str(work / "bare.py"), "urls.txt"],
                "(1) reference": [sys.executable, str(ROOT / "reference" / "downloader.py"),
                                  "urls.csv"],
            }
            rounds: dict[str, list[Outcome]] = {name: [] for name in contestants}
            for turn in range(args.rounds):
                for name, command in contestants.items():
                    folder = work / f"out-{turn}-{name[1]}"
                    folder.mkdir()
                    extra = [str(folder)] + ([str(LIMIT)] if "reference" in name else [])
                    outcome = timed(name, box.command([*command, *extra]), work, env)
                    verify(outcome, folder, images)
                    shutil.rmtree(folder)  # a fresh folder each round, and the disk spared
                    rounds[name].append(outcome)
                    print(show(outcome), flush=True)
    a, r = best(rounds["(a) bare aiohttp loop"]), best(rounds["(1) reference"])
    print(f"\nbest of {args.rounds} rounds")
    print(show(a))
    print(show(r))
    if a.seconds is None or r.seconds is None:
        print("a contestant was stopped at the time limit: no ratio")
        return 1
    ratio = r.seconds / a.seconds
    peak = max(o.peak_mb for o in rounds["(1) reference"])
    print(f"reference / bare loop: wall {ratio:.2f}x (aim at most {AIM_WALL}x), "
          f"CPU {r.cpu / a.cpu:.2f}x, peak RSS {r.peak_mb / a.peak_mb:.2f}x; "
          f"the reference's highest peak {peak:.1f} MB (aim below {AIM_PEAK_MB:g} MB)")
    for o in (a, r):
        if o.seconds and o.box_cpu > 0.8 * o.seconds:
            print(f"note: the box's CPU was {o.box_cpu / o.seconds:.0%} of {o.name}'s wall "
                  "time: the box may be what limits it")
    right = all(o.identical == IMAGES and not o.problems for runs in rounds.values()
                for o in runs)
    if not right:
        print("note: some round did not bring every file right (see above)")
    return 0 if right and ratio <= AIM_WALL and peak < AIM_PEAK_MB else 1


if __name__ == "__main__":
    sys.exit(main())
