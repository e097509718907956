"""The reference crawl.py against a fake crawler server run here: what it sends, what it prints,
how it waits, and how it fails (server down, garbage answers, a task never ready, Ctrl+C, no URL)
with one line on stderr and never a traceback. (Its conformance is in the verdict tests.)"""

from __future__ import annotations

import ast
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from conformance._target import free_port
from conformance.specs.crawl_client._fake_crawler import TASKS_PATH, FakeCrawler, Reply, Script
from reference import crawl
from tests.conftest import ROOT

SCRIPT = ROOT / "reference" / "crawl.py"
URLS = ["http://127.0.0.1:9/a", "http://127.0.0.1:9/b?x=1&y=%20z", "http://127.0.0.1:9/c"]
CODES = {URLS[0]: 200, URLS[1]: 404}  # URLS[2] gets null: the server could not fetch it


@contextmanager
def fake(script: Script) -> Iterator[FakeCrawler]:
    with FakeCrawler(free_port(), script) as server:
        yield server


def run_crawl(server: str, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), "--server", server, *args],
                          capture_output=True, text=True, timeout=timeout)


def assert_one_line_error(done: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    assert done.returncode == code, (done.stdout, done.stderr)
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("crawl: error: ")
    for word in words:
        assert word in lines[0], lines[0]


def test_prints_code_tab_url_in_the_given_order_with_a_dash_for_null() -> None:
    with fake(Script(codes=CODES)) as server:
        done = run_crawl(server.url, *URLS)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"200\t{URLS[0]}\n404\t{URLS[1]}\n-\t{URLS[2]}\n"
    assert done.stderr == ""


def test_posts_the_bare_list_once_then_polls_its_task_until_ready() -> None:
    with fake(Script(codes=CODES, running_polls=3)) as server:
        done = run_crawl(server.url + "/", *URLS)  # a trailing slash on --server is fine
        seen, (task,) = server.requests(), server.tasks()
    assert done.returncode == 0, done.stderr
    post, *polls = seen
    assert (post.method, post.path, post.content_type) == ("POST", TASKS_PATH,
                                                            "application/json")
    assert post.json() == URLS
    assert [(r.method, r.path) for r in polls] == [("GET", TASKS_PATH + task.id)] * 4
    assert task.ready


def test_one_url_is_a_list_of_one() -> None:
    with fake(Script(codes={URLS[0]: 301}, running_polls=0)) as server:
        done = run_crawl(server.url, URLS[0])
        post = server.requests()[0]
    assert json.loads(post.body) == [URLS[0]]
    assert done.stdout == f"301\t{URLS[0]}\n"


def test_poll_intervals_grow_from_a_tenth_of_a_second_to_one_second() -> None:
    intervals = crawl.poll_intervals()
    first = [next(intervals) for _ in range(8)]
    assert first == pytest.approx([0.1, 0.15, 0.225, 0.3375, 0.50625, 0.759375, 1.0, 1.0])


def test_a_long_task_is_polled_at_most_a_few_times_a_second() -> None:
    with fake(Script(codes=CODES, running_polls=0, running_for=1.5)) as server:
        done = run_crawl(server.url, *URLS)
        polls = [r for r in server.requests() if r.method == "GET"]
    assert done.returncode == 0, done.stderr
    assert 3 <= len(polls) <= 8, len(polls)


def test_no_server_is_one_line_and_status_1() -> None:
    done = run_crawl(f"http://127.0.0.1:{free_port()}", *URLS)
    assert_one_line_error(done, 1, "cannot connect", "is it running?")


@pytest.mark.parametrize(("script", "words"), [
    (Script(post_reply=Reply(200, b"<html>It works!</html>", "text/html")), ["not JSON"]),
    (Script(post_reply=Reply(201, b'{"status": "running"}')), ["not a task with an id"]),
    (Script(post_reply=Reply(201, b'["not", "an", "object"]')), ["not a task with an id"]),
    (Script(post_reply=Reply(500, b"Internal Server Error", "text/plain")), ["answered 500"]),
    (Script(post_reply=Reply(422, b'{"detail": "bad"}')), ["answered 422", "bad"]),
    (Script(poll_reply=Reply(200, b"{oops", "text/plain")), ["GET", "not JSON"]),
    (Script(poll_reply=Reply(404, b'{"detail": "Task not found"}')), ["answered 404"]),
    (Script(poll_reply=Reply(200, b'{"id": "x", "state": "ready"}')), ["no status"]),
    (Script(poll_reply=Reply(200, b'{"id": "x", "status": "ready", "result": [200]}')),
     ["should list 3 codes"]),
    (Script(poll_reply=Reply(200, b'{"id": "x", "status": "ready", "result": [1, 2, [3]]}')),
     ["not a status code"]),
], ids=["post-html", "post-no-id", "post-list", "post-500", "post-422", "poll-garbage",
        "poll-404", "poll-no-status", "poll-short-result", "poll-odd-code"])
def test_garbage_from_the_server_is_one_line_and_status_1(script: Script,
                                                          words: list[str]) -> None:
    with fake(script) as server:
        done = run_crawl(server.url, *URLS)
    assert_one_line_error(done, 1, *words)


def test_wait_bounds_a_task_that_never_gets_ready() -> None:
    with fake(Script(running_polls=10**9)) as server:
        t0 = time.monotonic()
        done = run_crawl(server.url, "--wait", "0.6", *URLS)
        elapsed = time.monotonic() - t0
    assert_one_line_error(done, 1, "not ready after 0.6 s", "'running'")
    # Unbounded, it would poll without end; a loaded CI machine took 5.6 s to start the client,
    # wait 0.6 s and end it.
    assert elapsed < 15, elapsed


def test_ctrl_c_while_waiting_is_a_message_and_status_130() -> None:
    with fake(Script(running_polls=10**9)) as server:
        proc = subprocess.Popen([sys.executable, str(SCRIPT), "--server", server.url, *URLS],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            for _ in range(200):
                if any(r.method == "GET" for r in server.requests()):
                    break
                time.sleep(0.05)
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=10)
    assert proc.returncode == 130
    assert (out, err) == ("", "crawl: interrupted\n")


def test_no_url_is_a_usage_error_and_asks_nothing() -> None:
    with fake(Script()) as server:
        done = run_crawl(server.url)
        assert server.requests() == []
    assert done.returncode == 2
    assert "usage: crawl.py" in done.stderr and "Traceback" not in done.stderr


def test_server_address_defaults_to_127_0_0_1_8888() -> None:
    args = crawl.build_parser().parse_args(["http://example.invalid/"])
    assert args.server == "http://127.0.0.1:8888"
    assert args.wait == 300


@pytest.mark.parametrize("bad", [["--server", "ftp://x"], ["--wait", "0"], ["--wait", "x"]])
def test_bad_options_are_usage_errors(bad: list[str]) -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), *bad, URLS[0]], capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 2 and "usage: crawl.py" in done.stderr, done.stderr


def _answer(status: int, content: bytes) -> httpx.Response:
    return httpx.Response(status, content=content,
                          request=httpx.Request("POST", "http://127.0.0.1:8888/api/v1/tasks/"))


def test_a_task_answered_200_is_accepted_too() -> None:
    task = crawl.CrawlClient.read_task(_answer(200, b'{"id": "abc", "status": "running"}'),
                                       expected=(200, 201))
    assert task["id"] == "abc"


def test_a_result_may_hold_a_short_word_instead_of_a_code() -> None:
    task = {"status": "ready", "result": [200, None, "error"]}
    assert crawl.CrawlClient.result_of(task, 3) == [200, None, "error"]
    with pytest.raises(crawl.CrawlError):
        crawl.CrawlClient.result_of({"result": [200, "two words", 1]}, 3)
    with pytest.raises(crawl.CrawlError):
        crawl.CrawlClient.result_of({"result": [True]}, 1)


def test_all_io_is_async() -> None:
    # Blocking I/O (requests, urllib, sockets, threads, time.sleep) would stall the event loop.
    tree = ast.parse(SCRIPT.read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    assert not imported & {"requests", "urllib.request", "socket", "threading", "http.client",
                           "subprocess", "concurrent.futures", "multiprocessing"}, imported
    calls = {ast.unparse(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    assert "time.sleep" not in calls and "asyncio.sleep" in calls
    assert "httpx.AsyncClient" in calls and "httpx.Client" not in calls
