"""Benchmark: which async HTTP client should the reference crawler use?

10,000 GETs at concurrency 200 (200 worker coroutines sharing one client) against the local
aiohttp fixture (`bench/_fixture.py`, a subprocess), once with httpx.AsyncClient and once with
aiohttp.ClientSession, each used the way the crawler uses it: get the status, do not keep the
body. After a warm-up, each client runs twice, alternately; the better round counts. Prints
req/s for each and the ratio aiohttp / httpx.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable

import aiohttp
import httpx
from _fixture import running_fixture

REQUESTS = 10_000
CONCURRENCY = 200
WARM_UP = 1_000
ROUNDS = 2
TIME_LIMIT = 120.0

Get = Callable[[str], Awaitable[int]]


async def _drive(get: Get, base: str, n: int) -> tuple[float, int]:
    """Run n GETs with CONCURRENCY workers; return (seconds, how many answered 200)."""
    urls = iter([f"{base}/page/{i}" for i in range(n)])
    ok = 0

    async def worker() -> None:
        nonlocal ok
        for url in urls:  # one shared iterator: each URL is taken by exactly one worker
            if await get(url) == 200:
                ok += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return time.perf_counter() - t0, ok


async def with_aiohttp(base: str, n: int) -> tuple[float, int]:
    """n GETs through one aiohttp.ClientSession."""
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=30)) as session:
        async def get(url: str) -> int:
            async with session.get(url, allow_redirects=False) as answer:
                return answer.status
        return await _drive(get, base, n)


async def with_httpx(base: str, n: int) -> tuple[float, int]:
    """n GETs through one httpx.AsyncClient with as many connections as workers."""
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(limits=limits, timeout=30, trust_env=False) as client:
        async def get(url: str) -> int:
            return (await client.get(url)).status_code
        return await _drive(get, base, n)


async def _measure(base: str) -> dict[str, float]:
    clients = {"aiohttp": with_aiohttp, "httpx": with_httpx}
    best = dict.fromkeys(clients, 0.0)
    for run in clients.values():
        await run(base, WARM_UP)
    for _ in range(ROUNDS):
        for name, run in clients.items():
            seconds, ok = await run(base, REQUESTS)
            if ok != REQUESTS:
                raise SystemExit(f"{name}: only {ok} of {REQUESTS} GETs answered 200")
            best[name] = max(best[name], REQUESTS / seconds)
    return best


def main() -> int:
    """Measure both clients against one fixture server and print the ratio."""
    with running_fixture() as base:
        try:
            rates = asyncio.run(asyncio.wait_for(_measure(base), TIME_LIMIT))
        except TimeoutError:
            print(f"stopped: the measurement took more than {TIME_LIMIT:g} s")
            return 1
    print(f"{REQUESTS} GETs, concurrency {CONCURRENCY}, best of {ROUNDS} rounds each")
    print(f"aiohttp.ClientSession: {rates['aiohttp']:8.0f} req/s")
    print(f"httpx.AsyncClient:     {rates['httpx']:8.0f} req/s")
    print(f"ratio aiohttp / httpx: {rates['aiohttp'] / rates['httpx']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
