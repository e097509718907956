"""Fixtures of the `crawler` checks, and the helpers they share: the fixture web the server fetches
from, the task API found on the server, and tasks created by one check for a later one. Loaded
as a pytest plugin, so the checks of a spec that extends `crawler` (crawler-cached) have them too.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from conformance._checks import NotRun
from conformance._http import Http
from conformance._options import RunOptions
from conformance.specs.crawler import Options
from conformance.specs.crawler._task_api import Api, Created, Discovery, Ready, discover
from conformance.specs.crawler._web import FixtureWeb

READY_WITHIN = 20.0
# A task with URLs that fail: room for a server that retries them a few times, backing off.
UNREACHABLE_WITHIN = READY_WITHIN + 10
# Codes served in an order that the fetches do not finish in (the delays see to that).
MIXED = [("0.6", 201), ("0", 404), ("0.3", 500), ("0", 200), ("0.9", 418)]


@pytest.fixture(scope="session")
def web(options: RunOptions[Options]) -> Iterator[FixtureWeb]:
    """The fixture web the server under test fetches from."""
    url_host = options.spec.fixture_host
    host = "0.0.0.0" if url_host not in ("127.0.0.1", "localhost", "::1") else url_host
    with FixtureWeb(host, url_host=url_host) as server:
        yield server


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
    lines = [f"python -m fixtures.web --port {web.port} &  # the pages the task lists"]
    return "\n".join([*lines, *(c.exchange.curl() for c in created)])


def served(web: FixtureWeb, token: str) -> tuple[list[str], list[int]]:
    """The MIXED pages under `token`: their URLs and the codes they answer."""
    urls = [web.url(f"{token}/delay/{d}/status/{c}") for d, c in MIXED]
    return urls, [c for _, c in MIXED]
