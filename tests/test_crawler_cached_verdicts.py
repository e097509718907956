"""The suite's verdicts on caching crawlers that no twin's data can say (the twins themselves,
and our reference's run: tests/test_twins.py): a server whose counters only its Redis holds is
judged through --redis-url (a fakeredis TCP server here, standing in for a student's Redis),
and a Redis that cannot be read is "not run", saying why."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from fakeredis import TcpFakeServer

from conformance._target import free_port
from fixtures._twins import command, twin

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


def with_redis(name: str, url: str) -> str:
    """The --command of one twin that keeps its cache and counters in the Redis at `url`."""
    return command(twin(SPEC, name), "--redis-url", url)


def test_counters_are_read_from_the_servers_redis(run_conformance, fake_redis_url) -> None:
    run = run_conformance("run", SPEC, "--only", "CACHE-02", "--redis-url", fake_redis_url,
                          "--command", with_redis("host-and-port-counters", fake_redis_url),
                          *FAST)
    assert run.code == 0, run.stdout
    assert run.verdicts()["CACHE-02"] == "pass"
    note = run.requirement("CACHE-02")["notes"][0]
    assert f"the Redis at {fake_redis_url}" in note and "domain:127.0.0.1:" in note


def test_counters_that_skip_cached_urls_fail_through_redis(run_conformance,
                                                           fake_redis_url) -> None:
    run = run_conformance("run", SPEC, "--only", "CACHE-02", "--redis-url", fake_redis_url,
                          "--command", with_redis("counts-uncached-only", fake_redis_url),
                          *FAST)
    assert run.code == 1
    actual = run.requirement("CACHE-02")["failures"][0]["actual"]
    assert "crawler:domains[127.0.0.1] went from" in actual, actual


def test_unreadable_redis_is_not_run_with_the_reason(run_conformance) -> None:
    # Something that is not Redis (our fixture web's port would do; a closed port is simpler).
    url = f"redis://127.0.0.1:{free_port()}/0"
    run = run_conformance("run", SPEC, "--only", "CACHE-02", "--redis-url", url, *FAST)
    assert run.code == 1, run.stdout
    assert run.verdicts()["CACHE-02"] == "not_run"
    assert f"cannot read the counters in the Redis at {url}" in \
        run.requirement("CACHE-02")["reason"]
