"""The suite's verdicts on caching crawlers: our reference passes everything (all the crawler's
requirements too), each broken twin fails exactly what it breaks, and a server whose counters
only its Redis holds is judged through --redis-url (a fakeredis TCP server here, standing in for
a student's Redis) and skipped, saying why, without it."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from fakeredis import TcpFakeServer

from conformance import load_spec
from conformance._target import free_port
from fixtures.crawler_cached import VARIANTS
from tests.conftest import fixture_command

SPEC = "crawler-cached"
FAST = ("--fuzz-seconds", "3", "--fuzz-examples", "20", "--cache-timeout", "2")


@pytest.fixture
def fake_redis_url() -> Iterator[str]:
    """A Redis (fakeredis over TCP) on a free loopback port, for the server and the suite."""
    port = free_port()
    server = TcpFakeServer(("127.0.0.1", port), server_type="redis")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_reference_passes_everything(run_conformance) -> None:
    run = run_conformance("run", SPEC, "--strict", "--fuzz-seconds", "5")
    assert run.code == 0, run.stdout
    assert set(run.verdicts().values()) == {"pass"}, run.verdicts()
    crawl = {r.id for r in load_spec("crawler").requirements}
    assert crawl < set(run.verdicts()), "every crawler requirement is judged too"
    assert "GET /api/v1/domains/{domain}" in run.requirement("CACHE-02")["notes"][0]


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_variant_fails_exactly_what_it_breaks(run_conformance, name: str) -> None:
    variant = VARIANTS[name]
    run = run_conformance("run", SPEC, "--command",
                          fixture_command("fixtures.crawler_cached", name), *FAST)
    assert run.failed() == set(variant.fails), run.stdout
    assert {r for r, v in run.verdicts().items() if v == "skipped"} == set(variant.skips)
    assert run.code == (1 if variant.broken else 0), run.stdout
    for rid in variant.fails:
        failure = run.requirement(rid)["failures"][0]
        assert failure["message"] and failure["expected"] and failure["actual"], failure


def test_counters_are_read_from_the_servers_redis(run_conformance, fake_redis_url) -> None:
    command = fixture_command("fixtures.crawler_cached", "host-and-port-counters",
                              "--redis-url", fake_redis_url)
    run = run_conformance("run", SPEC, "--only", "CACHE-02", "--redis-url", fake_redis_url,
                          "--command", command, *FAST)
    assert run.code == 0, run.stdout
    assert run.verdicts()["CACHE-02"] == "pass"
    note = run.requirement("CACHE-02")["notes"][0]
    assert f"the Redis at {fake_redis_url}" in note and "domain:127.0.0.1:" in note


def test_counters_that_skip_cached_urls_fail_through_redis(run_conformance,
                                                           fake_redis_url) -> None:
    command = fixture_command("fixtures.crawler_cached", "counts-uncached-only",
                              "--redis-url", fake_redis_url)
    run = run_conformance("run", SPEC, "--only", "CACHE-02", "--redis-url", fake_redis_url,
                          "--command", command, *FAST)
    assert run.code == 1
    actual = run.requirement("CACHE-02")["failures"][0]["actual"]
    assert "crawler:domains[127.0.0.1] went from" in actual, actual


def test_every_must_of_the_cache_has_a_broken_twin() -> None:
    own = {r.id for r in load_spec(SPEC).requirements if r.level == "MUST"} - {
        r.id for r in load_spec("crawler").requirements}
    covered = {rid for v in VARIANTS.values() if v.broken for rid in v.fails}
    assert own <= covered, f"MUSTs with no broken twin: {sorted(own - covered)}"


def test_unreadable_redis_is_not_run_with_the_reason(run_conformance) -> None:
    # Something that is not Redis (our fixture web's port would do; a closed port is simpler).
    url = f"redis://127.0.0.1:{free_port()}/0"
    run = run_conformance("run", SPEC, "--only", "CACHE-02", "--redis-url", url, *FAST)
    assert run.code == 1, run.stdout
    assert run.verdicts()["CACHE-02"] == "not_run"
    assert f"cannot read the counters in the Redis at {url}" in \
        run.requirement("CACHE-02")["reason"]
