"""The reference server_cached.py on fakeredis and on a real redis-server: cache, expiry, purge,
shared fetches, domain counters, options, and (real Redis only) riding out a Redis outage."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import fakeredis
import httpx
import pytest
import redis.asyncio as aioredis

from conformance._target import Process, free_port, wait_until_listening
from conformance.specs.crawler._web import FixtureWeb
from reference import crawler as base
from reference import server_cached as cached
from tests._redis import RedisServer, require_redis_server
from tests.conftest import ROOT
from tests.test_reference_crawler import API, Server

SCRIPT = ROOT / "reference" / "server_cached.py"
DOMAINS = "/api/v1/domains"
T = TypeVar("T")


# --- the web, the backends --------------------------------------------------------------------

@pytest.fixture(scope="module")
def web() -> Iterator[FixtureWeb]:
    """The fixture web the crawler crawls; `web.token()` keeps one test's requests apart."""
    with FixtureWeb() as server:
        yield server


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One real redis-server for the whole session (the outage test starts its own)."""
    server = RedisServer(require_redis_server())
    try:
        server.start()
        yield server
    finally:
        server.close()


@dataclass(frozen=True)
class Backend:
    """Where the cache lives: an in-process fakeredis (url None) or the real redis-server."""

    name: str
    url: str | None
    server: RedisServer | None = None

    def client(self) -> Any:
        """A new asyncio client; make it inside the event loop that uses it."""
        if self.url is None:
            return fakeredis.FakeAsyncRedis(decode_responses=True)
        return aioredis.from_url(self.url, decode_responses=True, socket_timeout=5,
                                 socket_connect_timeout=5)

    def server_args(self, prefix: str) -> list[str]:
        """The options that point a server process at this backend (none: its own fakeredis)."""
        return [] if self.url is None else ["--redis-url", self.url, "--redis-prefix", prefix]


@pytest.fixture(scope="module", params=["fakeredis", "redis-server"])
def backend(request: pytest.FixtureRequest) -> Backend:
    """Each test that takes it runs once per backend."""
    if request.param == "fakeredis":
        return Backend("fakeredis", None)
    server: RedisServer = request.getfixturevalue("redis_server")
    return Backend("redis-server", server.url, server)


@pytest.fixture
def prefix() -> str:
    """A key prefix of the test's own, so tests sharing the real Redis never see each other."""
    return f"test-{uuid.uuid4().hex[:12]}:"


def run(coro: Awaitable[T], limit: float = 20) -> T:
    """Run an async test body with a time limit, so a hang fails instead of blocking."""
    async def bounded() -> T:
        return await asyncio.wait_for(coro, limit)
    return asyncio.run(bounded())


# --- Store and purge_expired ------------------------------------------------------------------

def test_store_serves_a_code_only_while_it_is_fresh(backend: Backend, prefix: str) -> None:
    async def body() -> None:
        client = backend.client()
        store = cached.Store(client, 10.0, prefix)
        try:
            await store.store("http://a.test/", 204, now=1000.0)
            assert await client.get(f"{prefix}cache:http://a.test/") == "204 1000.0"
            assert await client.zscore(f"{prefix}cache-times", "http://a.test/") == 1000.0
            assert await store.cached("http://a.test/", now=1009.9) == 204
            # Exactly the timeout old is expired, as purge_expired has it.
            assert await store.cached("http://a.test/", now=1010.0) is None
            assert await store.cached("http://a.test/", now=5000.0) is None
            # No purge ran: the entry is still there, and the read alone refused it.
            assert await client.exists(f"{prefix}cache:http://a.test/") == 1
            assert await store.cached("http://never.test/") is None
            await store.store("http://b.test/", 301)  # stamped with the real time
            assert await store.cached("http://b.test/") == 301
            await client.set(f"{prefix}cache:http://c.test/", "garbage")
            assert await store.cached("http://c.test/") is None
        finally:
            await client.aclose()
    run(body())


def test_purge_removes_exactly_the_expired_entries(backend: Backend, prefix: str) -> None:
    async def body() -> None:
        client = backend.client()
        store = cached.Store(client, 10.0, prefix)
        neighbour = cached.Store(client, 10.0, prefix + "other:")
        try:
            stamps = {"http://old.test/": 900.0, "http://edge.test/": 990.0,
                      "http://fresh.test/": 995.0, "http://new.test/": 1000.0}
            for url, stamp in stamps.items():
                await store.store(url, 200, now=stamp)
            await neighbour.store("http://old.test/", 200, now=1.0)

            assert await cached.purge_expired(store, now=1000.0) == 2
            for url, alive in [("http://old.test/", 0), ("http://edge.test/", 0),
                               ("http://fresh.test/", 1), ("http://new.test/", 1)]:
                assert await client.exists(store.cache_key(url)) == alive, url
            times = await client.zrange(store.times_key, 0, -1, withscores=True)
            assert [tuple(t) for t in times] == [("http://fresh.test/", 995.0),
                                                 ("http://new.test/", 1000.0)]
            assert await cached.purge_expired(store, now=1000.0) == 0
            assert await cached.purge_expired(store, now=1005.0) == 1
            assert await client.zrange(store.times_key, 0, -1) == ["http://new.test/"]
            assert await store.cached("http://new.test/", now=1005.0) == 200
            # Another prefix is another cache: untouched.
            assert await client.exists(neighbour.cache_key("http://old.test/")) == 1
            assert await client.zcard(neighbour.times_key) == 1
        finally:
            await client.aclose()
    run(body())


def test_counts_each_url_for_its_host(backend: Backend, prefix: str) -> None:
    async def body() -> None:
        client = backend.client()
        store = cached.Store(client, 10.0, prefix)
        try:
            assert await store.domains() == {}
            await store.count(["http://Example.COM:8080/x", "example.com/y",
                               "HTTPS://user:pw@Other.ORG:443/", "localhost:8000/z",
                               "http://[::1]:8080/", "", "http://", "http://[::1"])
            await store.count(["http://example.com/x"])  # seen before: counts again
            assert await store.domains() == {"::1": 1, "example.com": 3, "localhost": 1,
                                             "other.org": 1}
            assert await store.domain("EXAMPLE.com") == 3
            assert await store.domain("nowhere.test") == 0
            assert await client.hgetall(f"{prefix}domains") == {
                "::1": "1", "example.com": "3", "localhost": "1", "other.org": "1"}
        finally:
            await client.aclose()
    run(body())


# --- CachedCrawler ----------------------------------------------------------------------------

@asynccontextmanager
async def crawler_on(backend: Backend, prefix: str, client: Any = None,
                     **settings: Any) -> AsyncIterator[cached.CachedCrawler]:
    """A started CachedCrawler on the backend (or on `client`), closed afterwards."""
    config = cached.CachedConfig(crawler=base.CrawlerConfig(timeout=5, concurrency=8),
                                 prefix=prefix, **settings)
    crawler = cached.CachedCrawler(config, client if client is not None else backend.client())
    await crawler.start()
    try:
        yield crawler
    finally:
        await crawler.close()


async def submit(crawler: cached.CachedCrawler, urls: list[str]) -> base.Task:
    """Submit a task as the API does: create it, then count it."""
    task = crawler.submit(urls)
    await crawler.submitted(task)
    return task


async def finished(task: base.Task, limit: float = 5) -> list[int | None]:
    """The task's result once it is finished; fails after `limit` seconds."""
    deadline = time.monotonic() + limit
    while task.body is None:
        if time.monotonic() > deadline:
            pytest.fail(f"task not finished within {limit} s")
        await asyncio.sleep(0.01)
    return task.result


def test_crawler_answers_a_repeated_url_from_the_cache(backend: Backend, prefix: str,
                                                       web: FixtureWeb) -> None:
    path = web.token() + "/status/203"

    async def body() -> None:
        async with crawler_on(backend, prefix) as crawler:
            assert await finished(await submit(crawler, [web.url(path)])) == [203]
            # Cached under the normalized URL: the form without a scheme finds it too.
            bare = web.url(path).removeprefix("http://")
            assert await finished(await submit(crawler, [web.url(path), bare])) == [203, 203]
            assert crawler.requests == 1
    run(body())
    assert web.count(path) == 1


def test_crawler_fetches_a_url_wanted_at_once_only_once(backend: Backend, prefix: str,
                                                        web: FixtureWeb) -> None:
    path = web.token() + "/delay/0.5/status/202"

    async def body() -> None:
        async with crawler_on(backend, prefix) as crawler:
            first = await submit(crawler, [web.url(path), web.url(path)])
            second = await submit(crawler, [web.url(path)])
            assert await finished(first) == [202, 202]
            assert await finished(second) == [202]
            assert crawler.requests == 1
    run(body())
    assert web.count(path) == 1


class SlowReads:
    """A Redis client whose GET answers arrive `delay` seconds late, as from a distant Redis."""

    def __init__(self, client: Any, delay: float) -> None:
        self._client = client
        self._delay = delay

    async def get(self, key: str) -> Any:
        value = await self._client.get(key)
        await asyncio.sleep(self._delay)
        return value

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_crawler_shares_a_fetch_in_flight_while_its_cache_read_is_slow(
        backend: Backend, prefix: str, web: FixtureWeb) -> None:
    # The first fetch reads the cache (0.4 s), then fetches (0.3 s): in flight from 0.4 to 0.7 s.
    # The second asks at 0.5 s, while it is in flight; its own cache read ends after the first
    # fetch did, and it must still not request the URL again.
    path = web.token() + "/delay/0.3/status/200"

    async def body() -> None:
        client = SlowReads(backend.client(), 0.4)
        async with crawler_on(backend, prefix, client) as crawler:
            first = await submit(crawler, [web.url(path)])
            await asyncio.sleep(0.5)
            second = await submit(crawler, [web.url(path)])
            assert await finished(first) == [200]
            assert await finished(second) == [200]
    run(body())
    assert web.count(path) == 1


def test_crawler_does_not_cache_a_null(backend: Backend, prefix: str, web: FixtureWeb) -> None:
    reset = web.token() + "/reset"
    refused = "http://127.0.0.1:9/"  # the discard port: nothing listens there

    async def body() -> None:
        async with crawler_on(backend, prefix) as crawler:
            assert crawler.store is not None
            for _ in range(2):
                assert await finished(await submit(crawler, [refused, web.url(reset)])) \
                    == [None, None]
            assert crawler.requests == 4
            assert await crawler.store.client.exists(crawler.store.cache_key(refused)) == 0
            assert await crawler.store.client.zcard(crawler.store.times_key) == 0
    run(body())
    assert web.count(reset) == 2


def test_purger_removes_expired_entries_periodically(backend: Backend, prefix: str) -> None:
    async def body() -> None:
        async with crawler_on(backend, prefix, cache_timeout=5.0, purge_every=0.1) as crawler:
            store = crawler.store
            assert store is not None
            await store.store("http://old.test/", 200, now=time.time() - 60)
            await store.store("http://fresh.test/", 200)
            deadline = time.monotonic() + 3
            while await store.client.exists(store.cache_key("http://old.test/")):
                if time.monotonic() > deadline:
                    pytest.fail("the purger did not remove an expired entry within 3 s")
                await asyncio.sleep(0.05)
            assert await store.client.zrange(store.times_key, 0, -1) == ["http://fresh.test/"]
            assert await store.cached("http://fresh.test/") == 200
    run(body())


# --- options ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("env", "argv", "timeout", "redis_url"), [
    ({}, [], cached.DEFAULT_CACHE_TIMEOUT, None),
    ({"TIMEOUT": "42"}, [], 42.0, None),
    ({"TIMEOUT": "42"}, ["--cache-timeout", "7.5"], 7.5, None),
    ({"REDIS_URL": "redis://127.0.0.1:1/2"}, [], cached.DEFAULT_CACHE_TIMEOUT,
     "redis://127.0.0.1:1/2"),
    ({"REDIS_URL": "redis://127.0.0.1:1/2"}, ["--redis-url", "redis://127.0.0.1:3/0"],
     cached.DEFAULT_CACHE_TIMEOUT, "redis://127.0.0.1:3/0"),
    ({"REDIS_URL": ""}, [], cached.DEFAULT_CACHE_TIMEOUT, None),
], ids=["defaults", "env", "option-over-env", "redis-env", "redis-option-over-env",
        "empty-redis-env"])
def test_cache_timeout_and_redis_come_from_env_or_options(
        env: dict[str, str], argv: list[str], timeout: float, redis_url: str | None) -> None:
    args = cached.build_parser(env).parse_args(argv)
    assert (args.cache_timeout, args.redis_url) == (timeout, redis_url)


@pytest.mark.parametrize(("env", "argv"), [
    ({"TIMEOUT": "soon"}, []),
    ({"TIMEOUT": ""}, []),
    ({"TIMEOUT": "0"}, []),
    ({"TIMEOUT": "-5"}, []),
    ({"TIMEOUT": "nan"}, []),
    ({}, ["--cache-timeout", "0"]),
    ({}, ["--cache-timeout", "soon"]),
    ({}, ["--purge-every", "-1"]),
], ids=["env-word", "env-empty", "env-zero", "env-negative", "env-nan", "option-zero",
        "option-word", "purge-negative"])
def test_bad_timeouts_are_usage_errors(env: dict[str, str], argv: list[str],
                                       capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        cached.build_parser(env).parse_args(argv)
    assert stopped.value.code == 2
    assert ("TIMEOUT" if env else argv[0]) in capsys.readouterr().err


def test_bad_timeout_env_stops_the_program_with_status_2() -> None:
    done = subprocess_run({"TIMEOUT": "soon"}, "--port", str(free_port()))
    assert done.returncode == 2, done.stderr
    assert "TIMEOUT must be a number of seconds" in done.stderr
    assert "'soon'" in done.stderr


def subprocess_run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run the script to its end (15 s at most) with `env` over a clean environment."""
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=15, env={**clean_env(), **env})


def test_missing_redis_server_skips_but_fails_under_ci(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no redis-server on PATH
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="redis-server is not installed"):
        require_redis_server()
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception):
        require_redis_server()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        require_redis_server()


# --- the server process -----------------------------------------------------------------------

def clean_env() -> dict[str, str]:
    """This environment without the server's own variables, so a developer's never leak in."""
    return {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "TIMEOUT")}


@contextmanager
def started(*args: str, quiet: bool = True, env: dict[str, str] | None = None) -> Iterator[Server]:
    """server_cached.py on a free port with `args`; its output (stderr too) goes to a file."""
    port = free_port()
    argv = [sys.executable, str(SCRIPT), "--port", str(port), "--timeout", "5", *args]
    proc = Process.start(argv + (["--quiet"] if quiet else []), env={**clean_env(), **(env or {})})
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5, trust_env=False)
    try:
        assert wait_until_listening("127.0.0.1", port, 15, lambda: proc.exited() is not None), \
            proc.output_tail()
        yield Server(proc.popen, port, client, proc.log)
    finally:
        client.close()
        proc.stop()


@pytest.fixture(scope="module")
def server(backend: Backend) -> Iterator[Server]:
    """One server per backend for the tests that need no settings of their own."""
    with started(*backend.server_args(f"test-{uuid.uuid4().hex[:12]}:")) as running:
        yield running


def test_api_answers_a_repeated_url_from_the_cache(server: Server, web: FixtureWeb) -> None:
    path = web.token() + "/status/203"
    assert server.crawl([web.url(path)]) == [203]
    assert server.crawl([web.url(path)]) == [203]
    assert server.crawl([web.url(path).removeprefix("http://")]) == [203]
    assert web.count(path) == 1


def test_api_same_slow_url_in_two_tasks_at_once_is_fetched_once(server: Server,
                                                                 web: FixtureWeb) -> None:
    path = web.token() + "/delay/1/status/202"
    first = server.create([web.url(path)])
    second = server.create([web.url(path), web.url(path)])
    assert server.wait_ready(first, 4) == [202]
    assert server.wait_ready(second, 4) == [202, 202]
    assert web.count(path) == 1


def test_api_null_is_not_cached(server: Server, web: FixtureWeb) -> None:
    reset = web.token() + "/reset"
    for _ in range(2):
        assert server.crawl([web.url(reset), "http://127.0.0.1:9/"]) == [None, None]
    assert web.count(reset) == 2, "a URL that gave no answer was answered from the cache"


async def post_at_once(base_url: str, bodies: list[list[str]]) -> list[int]:
    """POST every body at the same time; their status codes."""
    async with httpx.AsyncClient(base_url=base_url, timeout=10, trust_env=False) as client:
        answers = await asyncio.gather(*(client.post(API, json=b) for b in bodies))
    return [a.status_code for a in answers]


def test_api_counts_every_submitted_url_for_its_domain(backend: Backend, prefix: str,
                                                       web: FixtureWeb) -> None:
    page = web.url(web.token() + "/status/200")  # host 127.0.0.1
    with started(*backend.server_args(prefix)) as srv:
        assert srv.client.get(DOMAINS).json() == {}
        assert srv.client.get(DOMAINS + "/localhost").json() == {"domain": "localhost",
                                                                 "count": 0}
        assert srv.crawl(["http://LocalHost:9/a", "localhost:9/b", page, page]) \
            == [None, None, 200, 200]
        # Counted before the POST is answered, and cached or not.
        srv.create([page])
        assert srv.client.get(DOMAINS).json() == {"127.0.0.1": 3, "localhost": 2}
        answer = srv.client.get(DOMAINS + "/LOCALHOST")
        assert (answer.status_code, answer.json()) == (200, {"domain": "localhost", "count": 2})
        assert srv.client.get(DOMAINS + "/unknown.test").json() == {"domain": "unknown.test",
                                                                    "count": 0}

        statuses = run(post_at_once(f"http://127.0.0.1:{srv.port}",
                                    [[page, "http://LOCALHOST:9/"]] * 50))
        assert statuses == [201] * 50
        assert srv.client.get(DOMAINS).json() == {"127.0.0.1": 53, "localhost": 52}
        assert srv.client.get(DOMAINS + "/127.0.0.1").json()["count"] == 53


def test_api_purges_periodically_and_says_which_redis(backend: Backend, prefix: str,
                                                      web: FixtureWeb) -> None:
    # TIMEOUT and REDIS_URL from the environment this time, as seed 001's .env gives them.
    env = {"TIMEOUT": "0.5"} | ({} if backend.url is None else {"REDIS_URL": backend.url})
    path = web.token() + "/status/200"
    with started("--purge-every", "0.2", "--redis-prefix", prefix, quiet=False, env=env) as srv:
        assert srv.crawl([web.url(path)]) == [200]
        deadline = time.monotonic() + 5
        while "purged 1 expired cache entries" not in srv.output():
            if time.monotonic() > deadline:
                pytest.fail(f"no purge within 5 s; the server said:\n{srv.output()}")
            time.sleep(0.05)
        if backend.server is not None:
            inside = backend.server.client()
            try:
                assert inside.keys(f"{prefix}cache:*") == []
                assert inside.zcard(f"{prefix}cache-times") == 0
            finally:
                inside.close()
        assert srv.crawl([web.url(path)]) == [200]
        output = srv.output()
    assert web.count(path) == 2, "an expired entry was served"
    if backend.url is None:
        assert "cache and counters in an embedded fakeredis" in output
    else:
        assert f"cache and counters in redis at {backend.url} " in output
    assert "(cache timeout 0.5 s)" in output
    assert "Traceback" not in output


# --- Redis going away and coming back ---------------------------------------------------------

def test_store_reconnects_its_pooled_connections_after_a_redis_restart(prefix: str) -> None:
    # Connections pooled before an outage are dead after it; the first calls that draw them
    # once Redis is back (calls at once do) must not take Redis for down again.
    redis = RedisServer(require_redis_server())

    async def body() -> None:
        store = cached.Store(cached.connect(redis.url), 300, prefix)
        try:
            urls = [f"http://127.0.0.1:9/{i}" for i in range(6)]
            await asyncio.gather(*(store.store(u, 200) for u in urls))
            assert store.down_since is None
            redis.stop()
            assert await store.cached(urls[0]) is None
            assert store.down_since is not None
            redis.start()
            await asyncio.sleep(cached.RETRY_AFTER + 0.1)
            await asyncio.gather(*(store.store(u, 201) for u in urls),
                                 *(store.count([u]) for u in urls))
            assert store.down_since is None, "a dead pooled connection was taken for an outage"
            assert await asyncio.gather(*(store.cached(u) for u in urls)) == [201] * 6
            assert await store.domains() == {"127.0.0.1": 6}
        finally:
            await store.client.aclose()
    try:
        redis.start()
        run(body())
    finally:
        redis.close()


def test_server_rides_out_a_redis_outage(web: FixtureWeb) -> None:
    redis = RedisServer(require_redis_server())
    tok = web.token()
    before, slow, down, after = (tok + p for p in ("/status/200", "/delay/1.5/status/201",
                                                   "/status/202", "/status/203"))
    try:
        redis.start()
        with started("--redis-url", redis.url, quiet=False) as srv:
            assert srv.crawl([web.url(before)]) == [200]

            # Redis goes while a task's slow URL is in flight: the task still finishes.
            task = srv.create([web.url(slow), web.url(before), web.url(tok + "/status/404")])
            time.sleep(0.3)
            redis.stop()
            assert srv.task(task).json()["status"] == "running", "Redis went too late"
            assert srv.wait_ready(task, 5) == [201, 200, 404]
            assert web.count(before) == 1, "the task did not read the cache before the outage"

            # While it is down (over two RETRY_AFTER periods): answered, uncached, no 5xx but
            # the domain endpoints' 503.
            crawls = 0
            deadline = time.monotonic() + 2.5
            while crawls < 2 or time.monotonic() < deadline:
                assert srv.crawl([web.url(down)]) == [202]
                crawls += 1
                for path in (DOMAINS, DOMAINS + "/127.0.0.1"):
                    answer = srv.client.get(path)
                    assert answer.status_code == 503, (path, answer.text)
                    assert answer.json() == {"detail": "redis unavailable"}
                assert srv.task(str(uuid.uuid4())).status_code == 404
                time.sleep(0.1)
            assert web.count(down) == crawls
            assert srv.output().count("redis unavailable") == 1, srv.output()

            # Back on the same port (empty: nothing was saved): the server uses it again.
            redis.start()
            deadline = time.monotonic() + 5
            while srv.client.get(DOMAINS).status_code != 200:
                if time.monotonic() > deadline:
                    pytest.fail(f"domains still unavailable 5 s after redis came back:\n"
                                f"{srv.output()}")
                time.sleep(0.1)
            assert srv.crawl([web.url(after)]) == [203]
            assert srv.crawl([web.url(after)]) == [203]
            assert web.count(after) == 1, f"not cached again after redis came back:\n{srv.output()}"
            assert srv.client.get(DOMAINS + "/127.0.0.1").json()["count"] == 2
            output = srv.output()
    finally:
        redis.close()
    assert output.count("redis unavailable") == 1, output
    assert output.count("redis is back") == 1, output
    assert "Traceback" not in output
