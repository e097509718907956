"""Checks of the `crawler-cached` spec (openapi/crawler-cached.requirements.yaml).

Every check of `crawler` runs too, before these (the spec extends `crawler`: same ids, each
check with URLs of its own, so the cache never answers one of them), with the crawler's
fixtures; its checks that load the server run after these too. Then the cache is judged from
outside: the fixture web counts the requests a URL gets, so "answered from the cache" is "not
requested again". The counters are read, before and after, wherever they can be: in the Redis
given with --redis-url (read only, never written) or over HTTP at GET /api/v1/domains/{domain},
for the fixture host (127.0.0.1, or --fixture-host), whose domain only the counters' check
submits URLs of (crawler/_web.py's FixtureHosts), so no other check's tasks count there.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

import pytest

from conformance._checks import CheckFailure, NotImplementedFeature, NotRun, requirement
from conformance._http import Exchange, Http
from conformance._options import RunOptions
from conformance.specs.crawler._task_api import Api, Created
from conformance.specs.crawler._web import FixtureHosts, FixtureWeb
from conformance.specs.crawler.fixtures import run_task, submitted
from conformance.specs.crawler_cached import Options

MAX_KEYS = 20_000  # keys of the student's Redis looked at, at most
DOMAINS_PATH = "/api/v1/domains/{domain}"


def _counts_over_http(http: Http, domains: list[str]) -> dict[str, int] | None:
    """Each domain's count at GET /api/v1/domains/{domain}, or None when that is not offered."""
    found = {}
    for domain in domains:
        try:
            ex = http.get(DOMAINS_PATH.format(domain=quote(domain, safe="")))
        except CheckFailure:
            return None
        try:
            body = ex.json()
        except ValueError:
            return None
        if ex.status != 200 or not isinstance(body, dict) or not isinstance(
                body.get("count"), int):
            return None
        found[domain] = body["count"]
    return found


def _whole(value: object) -> int | None:
    """A counter's value as Redis gave it (text, as the client decodes answers), or None."""
    return int(value) if isinstance(value, str) and value.lstrip("-").isdigit() else None


def _counts_in_redis(url: str, domains: list[str], timeout: float) -> dict[str, int]:
    """Every counter-looking place in the student's Redis that names one of `domains`: a hash
    field, a string key ending in the name, a sorted-set member; "KEY[field]" -> value."""
    import redis

    try:
        client = redis.Redis.from_url(url, socket_timeout=timeout,
                                      socket_connect_timeout=timeout, decode_responses=True)
    except ValueError as exc:
        raise NotRun(f"--redis-url {url!r} is not a Redis URL: {exc}") from None
    found: dict[str, int] = {}
    try:
        for n, key in enumerate(client.scan_iter(count=500)):
            if n >= MAX_KEYS:
                break
            if "://" in key:
                continue  # a cache entry of a URL, not a counter
            kind = client.type(key)
            if kind == "hash":
                for domain in domains:
                    count = _whole(client.hget(key, domain))
                    if count is not None:
                        found[f"{key}[{domain}]"] = count
            elif kind == "string" and any(key == d or key.endswith((f":{d}", f"/{d}", f"_{d}"))
                                          for d in domains):
                count = _whole(client.get(key))
                if count is not None:
                    found[key] = count
            elif kind == "zset":
                for domain in domains:
                    score = client.zscore(key, domain)
                    if score is not None:
                        found[f"{key}[{domain}]"] = int(score)
    except (redis.RedisError, OSError, UnicodeDecodeError) as exc:
        # A Redis that cannot be read says nothing about the counters: not run, with the reason.
        raise NotRun(f"cannot read the counters in the Redis at {url}: {exc}") from None
    finally:
        client.close()
    return found


@dataclass
class Counters:
    """Where the counters can be read, and how."""

    how: str
    read: Callable[[list[str]], dict[str, int]]


@pytest.fixture(scope="session")
def counters(http: Http, options: RunOptions[Options], hosts: FixtureHosts) -> Counters | None:
    """How this server's domain counters can be read; None when they cannot."""
    if options.spec.redis_url:
        url = options.spec.redis_url
        return Counters(f"the Redis at {url}",
                        lambda domains: _counts_in_redis(url, domains, options.timeout))
    host = hosts.counted()[0].url_host
    if _counts_over_http(http, [host]) is not None:
        return Counters("GET /api/v1/domains/{domain}",
                        lambda domains: _counts_over_http(http, domains) or {})
    return None


def _wait_requests(web: FixtureWeb, path: str, at_least: int, limit: float) -> int:
    """How many GETs `path` has had, waiting up to `limit` s for `at_least` of them."""
    deadline = time.monotonic() + limit
    while web.count(path) < at_least and time.monotonic() < deadline:
        time.sleep(0.05)
    return web.count(path)


@requirement("CACHE-01")
def test_recent_url_is_answered_from_the_cache(api: Api, web: FixtureWeb) -> None:
    """Submitted again at once, a URL is not requested again and keeps its code."""
    path = f"{web.token()}/status/203"
    url = web.url(path)
    created, first = run_task(api, [url])
    created_again, again = run_task(api, [url])
    requests = web.count(path)
    if requests != 1:
        raise CheckFailure(
            f"{url} was requested {requests} times for two tasks submitted one after the other",
            expected="one request: the second task answered from the cache",
            actual=f"{requests} GET requests at the fixture web",
            reproduce=submitted(web, created, created_again))
    if again.codes != [203]:
        raise CheckFailure("the cached answer is not the code the URL gave",
                           expected="[203] both times", actual=f"{first.codes}, then {again.codes}",
                           reproduce=submitted(web, created, created_again))


@requirement("CACHE-02")
def test_every_submission_counts_for_its_domain(api: Api, counted_web: FixtureWeb,
                                                counters: Counters | None,
                                                note: Callable[[str], None]) -> None:
    """Three URLs of one host, one of them cached, count three (the fixture host's, whose
    domain no other check's URLs name)."""
    web = counted_web
    if counters is None:
        pytest.skip("the counters cannot be read: give --redis-url (the server's Redis) or "
                    "offer GET /api/v1/domains/{domain}")
    domains = [web.url_host, f"{web.url_host}:{web.port}"]
    token = web.token()
    urls = [web.url(f"{token}/status/200?n={i}") for i in range(2)]
    before = counters.read(domains)
    created, _ = run_task(api, urls)
    cached, _ = run_task(api, urls[:1])  # answered from the cache, and counts all the same
    after = counters.read(domains)
    deltas = {where: after.get(where, 0) - before.get(where, 0) for where in after}
    note(f"counters read from {counters.how}: {deltas or 'none found'}")
    if 3 not in deltas.values():
        shown = ", ".join(f"{w} went from {before.get(w, 0)} to {after[w]}" for w in after)
        raise CheckFailure(
            f"three URLs of {web.url_host} were submitted (one of them cached), but no counter "
            f"of that domain grew by 3",
            expected=f"a counter of {web.url_host} (or {domains[1]}) up by 3",
            actual=shown or f"no counter of {web.url_host} found in {counters.how}",
            reproduce=submitted(web, created, cached) + f"\n# then read the counters in "
                                                        f"{counters.how}")


@requirement("CACHE-03")
def test_cached_entry_expires(api: Api, web: FixtureWeb, options: RunOptions[Options],
                              note: Callable[[str], None]) -> None:
    """After the cache timeout, the URL is requested again (by 2 S + 2 s at the latest)."""
    if options.spec.cache_timeout is None:
        pytest.skip("give --cache-timeout S (the server's cache timeout) to check expiry")
    timeout = options.spec.cache_timeout
    path = f"{web.token()}/status/200"
    url = web.url(path)
    created, _ = run_task(api, [url])
    cached_at = time.monotonic()
    limit = 2 * timeout + 2
    time.sleep(timeout)
    while True:
        run_task(api, [url])
        if web.count(path) >= 2:
            note(f"requested again {time.monotonic() - cached_at:.1f} s after it was cached "
                 f"(cache timeout {timeout:g} s)")
            return
        if time.monotonic() - cached_at > limit:
            raise CheckFailure(
                f"{url} was still answered from the cache {limit:g} s after it was cached",
                expected=f"a new request once {timeout:g} s have passed (by {limit:g} s)",
                actual=f"no new request within {time.monotonic() - cached_at:.1f} s",
                reproduce=submitted(web, created) + f"\nsleep {limit:g}  # then again:\n"
                                                    f"{created.exchange.curl()}")
        time.sleep(0.25)


@requirement("CACHE-04")
def test_same_url_at_once_is_requested_once(api: Api, web: FixtureWeb) -> None:
    """Two tasks with the same slow URL, submitted together, make one request."""
    path = f"{web.token()}/delay/1/status/200"
    url = web.url(path)
    errors: list[BaseException] = []
    created: list[Created] = []

    def submit() -> None:
        try:
            created.append(run_task(api, [url])[0])
        except BaseException as exc:  # reported below, in the check's own thread
            errors.append(exc)

    threads = [threading.Thread(target=submit) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    if errors:
        raise errors[0]
    requests = _wait_requests(web, path, 2, 0.5)
    if requests != 1:
        raise CheckFailure(
            f"{url}, submitted in two tasks at once, was requested {requests} times",
            expected="one request, shared by both tasks", actual=f"{requests} GET requests",
            reproduce=submitted(web, *created[:1]) + "  # twice at once")


@requirement("CACHE-05")
def test_counters_can_be_read_over_http(http: Http, api: Api, own_web: FixtureWeb) -> None:
    """GET /api/v1/domains/{domain} answers {"domain": ..., "count": N}, for a domain a URL was
    just submitted for. Answered just as a path the server surely does not have, it is no
    endpoint of the server: not implemented (a MAY), not failed."""
    web = own_web  # its domain is this check's alone, so what it counts is this check's
    run_task(api, [web.url(f"{web.token()}/status/200")])  # counted: a 404 is no "unknown domain"
    path = DOMAINS_PATH.format(domain=quote(web.url_host, safe=""))
    ex = http.get(path)
    body: Any = None
    with contextlib.suppress(ValueError):
        body = ex.json()
    if ex.status == 200 and isinstance(body, dict) and isinstance(body.get("count"), int):
        return
    nowhere = f"/api/v1/conformance-no-such-path-{secrets.token_hex(6)}/{web.url_host}"
    absent = http.get(nowhere)
    if _same_answer(ex, path, absent, nowhere):
        raise NotImplementedFeature(
            f"GET {path} is answered as a path the server does not have ({ex.status}): the "
            f"counters cannot be read over HTTP",
            expected='200 and {"domain": ..., "count": N}',
            actual=f"{ex.summary()}, as GET {nowhere} is answered", reproduce=ex.curl())
    raise CheckFailure(f"GET {path} does not show the domain's counter",
                       expected='200 and {"domain": ..., "count": N}', actual=ex.summary(),
                       reproduce=ex.curl())


def _same_answer(one: Exchange, one_path: str, other: Exchange, other_path: str) -> bool:
    """Whether two requests got the same answer: status and body, each path in its body (an
    error page may name it) set aside."""
    def body(ex: Exchange, path: str) -> bytes:
        out = ex.body
        for form in {path, unquote(path)}:
            out = out.replace(form.encode("utf-8"), b"{path}")
        return out
    return one.status == other.status and body(one, one_path) == body(other, other_path)
