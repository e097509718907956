"""The reference taskqueue_client.py against our reference server run here (in-process, delays
scaled down or up): each subcommand's output and exit status, Unicode data, how `wait` waits and
shows the status, and how it fails (server down, unknown id, not ready, failed task, garbage,
bad arguments, Ctrl+C) with one line on stderr and never a traceback. (Its conformance is in the
verdict tests.)"""

from __future__ import annotations

import os
import pty
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest

from conformance._servers import InProcessServer, canned_app
from conformance._target import free_port
from conformance.specs.taskqueue_client._live_queue import LiveQueue
from reference import taskqueue_client
from reference.taskqueue_server import Task
from tests.conftest import ROOT

SCRIPT = ROOT / "reference" / "taskqueue_client.py"
UNICODE = 'Пример: «кот» & ёж, 100% "ok" 🙂'


@contextmanager
def queue(scale: float) -> Iterator[LiveQueue]:
    with LiveQueue(0, scale) as server:
        yield server


@pytest.fixture(scope="module")
def idle() -> Iterator[LiveQueue]:
    """One server for the tests that change nothing on it."""
    with queue(100) as server:
        yield server


def client(server: str, *args: str, timeout: float = 30,
           cwd: str | None = None) -> subprocess.CompletedProcess[str]:
    # From another folder, as a user would run it: the script needs nothing beside it.
    return subprocess.run([sys.executable, str(SCRIPT), "--server", server, *args],
                          capture_output=True, text=True, timeout=timeout, cwd=cwd or "/")


def assert_one_line_error(done: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    assert done.returncode == code, (done.stdout, done.stderr)
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("taskqueue_client: error: ")
    for word in words:
        assert word in lines[0], lines[0]


def test_task_prints_the_id_alone_and_sends_the_type_and_data() -> None:
    with queue(100) as server:
        done = client(server.url, "task", "2", "hello world")
        (task,) = server.tasks()
    assert (done.returncode, done.stdout, done.stderr) == (0, f"{task.id}\n", "")
    assert (task.type, task.data) == (2, "hello world")


def test_unicode_data_arrives_unchanged_and_its_result_prints_unchanged() -> None:
    with queue(0.01) as server:
        done = client(server.url, "task", "1", UNICODE)
        (task,) = server.tasks()
        assert server.wait_for(task.id, {"done"}, 5)
        result = client(server.url, "result", task.id)
    assert task.data == UNICODE
    assert result.returncode == 0, result.stderr
    assert result.stdout == UNICODE[::-1] + "\n"
    assert done.stdout.strip() == task.id


def test_status_prints_the_bare_word_queued_running_or_done() -> None:
    with queue(100) as server:
        running, queued = server.submit(1, "кот"), server.submit(2, "кот")
        assert server.wait_for(running, {"running"}, 5)
        seen = [client(server.url, "status", task_id) for task_id in (running, queued)]
    with queue(0.01) as server:
        done = server.submit(3, "кот")
        assert server.wait_for(done, {"done"}, 5)
        seen.append(client(server.url, "status", done))
    assert [(d.returncode, d.stdout, d.stderr) for d in seen] == [
        (0, "running\n", ""), (0, "queued\n", ""), (0, "done\n", "")]


def test_result_prints_the_result_as_often_as_asked() -> None:
    with queue(0.01) as server:
        task_id = server.submit(3, "пример")
        assert server.wait_for(task_id, {"done"}, 5)
        seen = [client(server.url, "result", task_id) for _ in range(2)]
    assert [(d.returncode, d.stdout) for d in seen] == [(0, "прриииммммееееерррррр\n")] * 2


def test_result_before_done_is_status_4_naming_the_status() -> None:
    with queue(100) as server:
        running, queued = server.submit(1, "a"), server.submit(1, "b")
        assert server.wait_for(running, {"running"}, 5)
        early = [client(server.url, "result", task_id) for task_id in (running, queued)]
    assert_one_line_error(early[0], 4, running, "no result yet: it is running")
    assert_one_line_error(early[1], 4, queued, "no result yet: it is queued")


def test_failed_task_status_is_shown_and_its_result_is_status_5() -> None:
    with queue(100) as server:
        now = datetime.now(UTC)
        server.queue.tasks["broken"] = Task(id="broken", type=1, data="x", status="failed",
                                            started_at=now, finished_at=now,
                                            error="ValueError: a bug")
        status = client(server.url, "status", "broken")
        result = client(server.url, "result", "broken")
    assert (status.returncode, status.stdout) == (0, "failed\n")
    assert_one_line_error(result, 5, "task broken failed", "ValueError: a bug")


@pytest.mark.parametrize("command", ["status", "result"])
def test_unknown_id_is_status_3(idle: LiveQueue, command: str) -> None:
    done = client(idle.url, command, "no-such-task")
    assert_one_line_error(done, 3, "no task no-such-task on the server")


def test_wait_prints_the_id_then_the_result_and_the_statuses_on_stderr() -> None:
    with queue(0.3) as server:
        t0 = time.monotonic()
        done = client(server.url, "wait", "1", "пример")
        elapsed = time.monotonic() - t0
        (task,) = server.tasks()
        gets = [r for r in server.requests() if r.method == "GET"]
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [task.id, "ремирп"]
    assert done.stderr.splitlines() == [f"taskqueue_client: task {task.id} is running",
                                        f"taskqueue_client: task {task.id} is done"]
    # Polled every 0.25 s while the task ran 0.6 s: a few requests, then one for the result.
    assert 3 <= len(gets) <= 6, [r.line for r in gets]
    assert gets[-1].path.endswith("/result")
    assert elapsed < 5


def test_wait_shows_a_live_status_when_stderr_is_a_terminal() -> None:
    with queue(0.3) as server:
        leader, follower = pty.openpty()
        try:
            proc = subprocess.Popen([sys.executable, str(SCRIPT), "--server", server.url,
                                     "wait", "1", "кот"], stdout=subprocess.PIPE,
                                    stderr=follower, stdin=subprocess.DEVNULL)
            os.close(follower)
            out, _ = proc.communicate(timeout=30)
            shown = b""
            while True:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # the terminal's other end is closed: all is read
                    break
                if not chunk:
                    break
                shown += chunk
        finally:
            os.close(leader)
        (task,) = server.tasks()
    assert proc.returncode == 0
    assert out.decode().splitlines() == [task.id, "ток"]  # stdout stays the bare answer
    text = shown.decode("utf-8", "replace")
    assert f"task {task.id}: running" in text and "\x1b[" in text, text[-300:]


def test_ctrl_c_while_waiting_is_one_line_naming_the_task_and_status_130() -> None:
    with queue(100) as server:
        proc = subprocess.Popen([sys.executable, str(SCRIPT), "--server", server.url, "wait",
                                 "3", "пример"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not any(
                    r.method == "GET" for r in server.requests()):
                time.sleep(0.02)
            os.killpg(proc.pid, signal.SIGINT)
            out, err = proc.communicate(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=10)
        (task,) = server.tasks()
        assert task.status == "running"  # it goes on on the server
    assert proc.returncode == 130
    assert out == f"{task.id}\n"
    last = err.splitlines()[-1]
    assert last.startswith("taskqueue_client: interrupted; task " + task.id)
    assert "goes on on the server" in last and "Traceback" not in err


def test_no_server_is_status_1_and_one_line() -> None:
    done = client(f"http://127.0.0.1:{free_port()}", "task", "1", "x")
    assert_one_line_error(done, 1, "cannot connect", "is it running?")


@pytest.mark.parametrize(("answer", "args", "words"), [
    ((200, b"<html>It works!</html>", "text/html"), ["task", "1", "x"], ["not JSON"]),
    ((201, b'{"status": "queued"}', "application/json"), ["task", "1", "x"], ["without an id"]),
    ((422, b'{"detail": "data is too long"}', "application/json"), ["task", "1", "x"],
     ["refused the task (422)", "data is too long"]),
    ((200, b'{"id": "x"}', "application/json"), ["status", "x"], ["without a status"]),
    ((200, b"[1, 2]", "application/json"), ["status", "x"], ["not an object"]),
    ((500, b"Internal Server Error", "text/plain"), ["result", "x"], ["answered 500"]),
    ((200, b'{"id": "x"}', "application/json"), ["result", "x"], ["answered no result"]),
], ids=["post-html", "post-no-id", "post-422", "status-none", "status-list", "result-500",
        "result-none"])
def test_garbage_from_the_server_is_status_1_and_one_line(
        answer: tuple[int, bytes, str], args: list[str], words: list[str]) -> None:
    with InProcessServer(0, canned_app(lambda method, path: answer)) as server:
        done = client(server.url, *args)
    assert_one_line_error(done, 1, *words)


@pytest.mark.parametrize("args", [[], ["task", "4", "x"], ["task", "one", "x"], ["task", "1"],
                                  ["status"], ["status", " "], ["wait", "--interval", "0", "1",
                                                                 "x"], ["fetch", "x"]])
def test_bad_command_lines_are_usage_errors_that_ask_nothing(idle: LiveQueue,
                                                            args: list[str]) -> None:
    before = len(idle.requests())
    done = client(idle.url, *args)
    assert idle.requests()[before:] == []
    assert done.returncode == 2, done.stderr
    assert "usage: taskqueue_client.py" in done.stderr and "Traceback" not in done.stderr


def test_defaults_and_a_trailing_slash_on_the_server(idle: LiveQueue) -> None:
    args = taskqueue_client.build_parser().parse_args(["wait", "1", "x"])
    assert (args.server, args.interval) == ("http://127.0.0.1:8888", 0.25)
    done = client(idle.url + "/", "task", "1", "x")
    assert done.returncode == 0, done.stderr
    assert idle.task(done.stdout.strip()) is not None
