"""The fake crawler server the crawl-client suite plays: it answers like a FastAPI crawler by its
script (tasks, polls, 422, FastAPI's slash redirects, canned garbage), takes the URLs in the
body shapes servers take, records every request, and forgets everything on reset."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from conformance._target import free_port
from conformance.specs.crawl_client._fake_crawler import (
    BARE_LIST,
    TASKS_PATH,
    FakeCrawler,
    Reply,
    Script,
)

URLS = ["http://127.0.0.1:9/a", "http://127.0.0.1:9/b"]


@pytest.fixture(scope="module")
def running() -> Iterator[FakeCrawler]:
    """One server for the module: started once, reset for each test."""
    with FakeCrawler(free_port()) as fake:
        yield fake


@pytest.fixture
def server(running: FakeCrawler) -> FakeCrawler:
    running.reset(Script(codes={URLS[0]: 200}, running_polls=1))
    return running


@pytest.fixture
def http(server: FakeCrawler) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=5, trust_env=False) as client:
        yield client


def test_a_task_runs_for_the_scripted_polls_then_is_ready(server: FakeCrawler,
                                                          http: httpx.Client) -> None:
    created = http.post(TASKS_PATH, json=URLS)
    assert created.status_code == 201
    task = created.json()
    assert task["status"] == "running" and task["result"] is None
    first = http.get(TASKS_PATH + task["id"]).json()
    second = http.get(TASKS_PATH + task["id"]).json()
    assert (first["status"], second["status"]) == ("running", "ready")
    assert second["result"] == [200, None]
    seen = server.requests()
    assert [r.line for r in seen] == [f"POST {TASKS_PATH} -> 201"] + [
        f"GET {TASKS_PATH}{task['id']} -> 200"] * 2
    assert seen[0].json() == URLS and seen[0].content_type == "application/json"


@pytest.mark.parametrize(("body", "shape"), [
    ({"urls": URLS}, '{"urls": [...]}'),
    ([{"url": u} for u in URLS], '[{"url": ...}]'),
])
def test_the_shapes_servers_take_make_a_task_answered_in_the_default_shape(
        server: FakeCrawler, http: httpx.Client, body: object, shape: str) -> None:
    created = http.post(TASKS_PATH, json=body)
    assert created.status_code == 201
    assert set(created.json()) == {"id", "status", "result"}
    (task,) = server.tasks()
    assert (task.urls, task.shape) == (URLS, shape)
    http.get(TASKS_PATH + task.id)
    assert http.get(TASKS_PATH + task.id).json()["result"] == [200, None]


def test_a_bare_list_is_the_assignments_shape(server: FakeCrawler, http: httpx.Client) -> None:
    http.post(TASKS_PATH, json=URLS)
    assert server.tasks()[0].shape == BARE_LIST == "a bare JSON list"


@pytest.mark.parametrize("body", [b'{"urls": []}', b"[]", b"[1, 2]", b"not json", b'"x"',
                                  b'{"links": ["http://127.0.0.1:9/a"]}',
                                  b'{"urls": ["http://127.0.0.1:9/a"], "depth": 2}',
                                  b'[["http://127.0.0.1:9/a"]]'])
def test_a_body_that_is_not_a_list_of_urls_is_422(server: FakeCrawler, http: httpx.Client,
                                                  body: bytes) -> None:
    assert http.post(TASKS_PATH, content=body).status_code == 422
    assert server.tasks() == []


def test_slash_redirects_unknown_ids_and_methods_answer_like_fastapi(http: httpx.Client) -> None:
    moved = http.post(TASKS_PATH.rstrip("/"), json=URLS)
    assert moved.status_code == 307 and moved.headers["location"].endswith(TASKS_PATH)
    task_id = http.post(TASKS_PATH, json=URLS).json()["id"]
    moved = http.get(f"{TASKS_PATH}{task_id}/")
    assert moved.status_code == 307
    assert moved.headers["location"].endswith(TASKS_PATH + task_id)
    assert http.get(TASKS_PATH + "no-such-task").status_code == 404
    assert http.get(TASKS_PATH).status_code == 405
    assert http.delete(TASKS_PATH + task_id).status_code == 405
    assert http.get("/elsewhere").status_code == 404


def test_canned_replies_and_reset(server: FakeCrawler, http: httpx.Client) -> None:
    server.reset(Script(post_reply=Reply(200, b"<html/>", "text/html"),
                        poll_reply=Reply(404, b"{}")))
    assert server.requests() == []
    answer = http.post(TASKS_PATH, json=URLS)
    assert (answer.status_code, answer.text, answer.headers["content-type"]) == (
        200, "<html/>", "text/html")
    assert http.get(TASKS_PATH + "anything").status_code == 404
    server.reset()
    assert server.requests() == [] and server.tasks() == []
    assert http.post(TASKS_PATH, json=URLS).status_code == 201
    assert len(server.tasks()) == 1


def test_a_large_body_is_recorded_whole(server: FakeCrawler, http: httpx.Client) -> None:
    urls = [f"http://127.0.0.1:9/{i:06d}" for i in range(2000)]  # some 60 kB of JSON
    assert http.post(TASKS_PATH, json=urls).status_code == 201
    assert server.requests()[0].json() == urls


def test_a_taken_port_is_an_os_error(server: FakeCrawler) -> None:
    with pytest.raises(OSError), FakeCrawler(server.port):
        pass
