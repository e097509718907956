"""Fixtures of the `crawler` checks, and the helpers they share: the fixture webs the server
fetches from, the task API found on the server, and tasks created by one check for a later one.
Loaded as a pytest plugin, so the checks of a spec that extends `crawler` (crawler-cached) have
them too, and are put in order with the crawler's by its hook.

Rules: one check's load, counters or leftovers never decide another's verdict.
- A check that counts, observes or loads what one host gets takes a fixture web of its own
  (`own_web`; the counters' check the fixture host's, `counted_web`), on an address no other
  check's URLs name (_web.py's FixtureHosts); where there is none, its notes say so.
- A check that loads the server (`@makes_load`: fuzzing, the 1,000-URL task) runs after every
  other check, of this spec and of any that extends it, so no judgement waits behind its work;
  what it leaves running is waited out, within bounds, before the next one, or noted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest

from conformance._checks import NotRun
from conformance._http import Http
from conformance._options import RunOptions
from conformance.specs.crawler import Options
from conformance.specs.crawler._task_api import Api, Created, Discovery, Ready, discover
from conformance.specs.crawler._web import FixtureHosts, FixtureWeb

READY_WITHIN = 20.0
# A task with URLs that fail: room for a server that retries them a few times, backing off.
UNREACHABLE_WITHIN = READY_WITHIN + 10
# Codes served in an order that the fetches do not finish in (the delays see to that).
MIXED = [("0.6", 201), ("0", 404), ("0.3", 500), ("0", 200), ("0.9", 418)]
# How long a load check waits for what it started to end before the next check runs.
SETTLE_WITHIN = 10.0

Check = TypeVar("Check", bound=Callable[..., None])


def makes_load(check: Check) -> Check:
    """Mark a check that loads the server: it runs after every check that does not (see the
    rules above). An attribute, not a pytest mark: modules that import the checks outside a
    run (this project's tests) know no marks of ours."""
    setattr(check, "makes_load", True)  # noqa: B010  # a function's attribute, read below
    return check


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Checks that make load after all others, each part in its order (the run's plugin, after
    this, then orders by needs, which none of them is of another check)."""
    items.sort(key=lambda item: getattr(getattr(item, "obj", None), "makes_load", False))


@pytest.fixture(scope="session")
def hosts(options: RunOptions[Options]) -> Iterator[FixtureHosts]:
    """The fixture webs of the run, one per address, stopped at its end."""
    found = FixtureHosts(options.spec.fixture_host)
    try:
        yield found
    finally:
        found.stop()


@pytest.fixture(scope="session")
def web(hosts: FixtureHosts) -> FixtureWeb:
    """The fixture web the checks that observe nothing per host share."""
    return hosts.shared()


@pytest.fixture
def own_web(hosts: FixtureHosts, note: Callable[[str], None]) -> FixtureWeb:
    """A fixture web of this check's own: no other check's URLs name its host."""
    own, shared = hosts.own()
    if shared:
        note(f"shares its host {own.url_host} with the other checks ({shared}): what they "
             f"submit or leave running there may show in what it observes")
    return own


@pytest.fixture
def counted_web(hosts: FixtureHosts, note: Callable[[str], None]) -> FixtureWeb:
    """The fixture host's web, whose domain's counters the suite reads: no other check's URLs
    name it."""
    counted, shared = hosts.counted()
    if shared:
        note(f"shares its host {counted.url_host} with the other checks ({shared}): what they "
             f"submit or leave running there may be counted with its own")
    return counted


@pytest.fixture(scope="session")
def discovery(http: Http, web: FixtureWeb) -> Discovery:
    """How the server takes a task, tried once with one fixture URL."""
    return discover(http, [web.url(web.token() + "/status/200")])


@pytest.fixture(scope="session")
def api(discovery: Discovery) -> Api:
    """The task API through the shape found; not run when no shape creates a task."""
    if discovery.api is None:
        raise NotRun("no way of creating a task worked: " + discovery.explain())
    return discovery.api


@pytest.fixture(scope="session")
def started() -> dict[str, tuple[Created, float]]:
    """Tasks a check created to be judged by a later one, by name, with when each was created."""
    return {}


def run_task(api: Api, urls: list[str], limit: float = READY_WITHIN) -> tuple[Created, Ready]:
    """Create a task and wait until it is ready."""
    created = api.create(urls)
    return created, api.wait_ready(created, limit)


def submitted(web: FixtureWeb, *created: Created) -> str:
    """How to see what a server fetched again: the fixture web on the same port (in a checkout
    of this kit), then the same task submissions."""
    lines = [f"{web.serve_again()} &  # the pages the task lists"]
    return "\n".join([*lines, *(c.exchange.curl() for c in created)])


def served(web: FixtureWeb, token: str) -> tuple[list[str], list[int]]:
    """The MIXED pages under `token`: their URLs and the codes they answer."""
    urls = [web.url(f"{token}/delay/{d}/status/{c}") for d, c in MIXED]
    return urls, [c for _, c in MIXED]
