"""`Http` sends a request once more, on a new connection, only when the kept-alive connection
it went out on had been closed by the server before any part of an answer; it says so
(`Http.retries`), and the run's report shows it as a note of the check that sent the request.
A timeout, a fresh connection that fails, a connection that breaks once an answer has begun and
an answer that is not HTTP are never sent again: they stay failures with their reasons."""

from __future__ import annotations

import json
import socket
import socketserver
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conformance._checks import CheckFailure
from conformance._http import Http

OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n"
# A script says what the server does with the n-th request (from 0) of its c-th connection.
Script = Callable[[int, int], str]


class Scripted(socketserver.ThreadingTCPServer):
    """A loopback HTTP/1.1 server that keeps connections alive and does what its script says
    with each request: "answer" (200), "close" or "reset" (no answer at all), "hang" (until
    stopped), "garbage" (bytes that are not HTTP), "reset-mid-answer" (a head and part of the
    body, then a reset). It records (connection, request, path) for every request it read."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, script: Script) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.script = script
        self.seen: list[tuple[int, int, str]] = []
        self.connections = 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(socketserver.BaseRequestHandler):
    server: Scripted

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.settimeout(10)
        with self.server.lock:
            conn = self.server.connections
            self.server.connections += 1
        buffer = b""
        for n in range(100):
            while b"\r\n\r\n" not in buffer:
                try:
                    data = sock.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                buffer += data
            head, buffer = buffer.split(b"\r\n\r\n", 1)
            path = head.split(b" ")[1].decode()
            with self.server.lock:
                self.server.seen.append((conn, n, path))
            action = self.server.script(conn, n)
            if action == "answer":
                sock.sendall(OK)
                continue
            if action == "hang":
                self.server.stopping.wait(10)
            elif action == "garbage":
                sock.sendall(b"\x00\x01 this is not HTTP at all \xff\r\n\r\n")
            elif action == "reset-mid-answer":
                sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
                time.sleep(0.2)  # the head arrives, then the reset
                _reset(sock)
                return
            elif action == "reset":
                _reset(sock)
                return
            sock.close()
            return


def _reset(sock: socket.socket) -> None:
    # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


@pytest.fixture
def serve() -> Iterator[Callable[[Script], Scripted]]:
    servers: list[Scripted] = []

    def start(script: Script) -> Scripted:
        server = Scripted(script)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stopping.set()
        server.shutdown()
        server.server_close()


def second_request_gets(action: str) -> Script:
    """Answer everything but the second request of the first connection."""
    return lambda conn, n: action if (conn, n) == (0, 1) else "answer"


@pytest.mark.parametrize("action", ["close", "reset"])
def test_a_kept_alive_connection_closed_before_any_answer_is_retried_once(
        serve: Callable[[Script], Scripted], action: str) -> None:
    server = serve(second_request_gets(action))
    with Http(server.url, 5.0, sender=lambda: "check-b") as http:
        assert http.get("/a").status == 200
        assert http.get("/b?x=1").status == 200
        (retry,) = http.retries()
    assert server.seen == [(0, 0, "/a"), (0, 1, "/b?x=1"), (1, 0, "/b?x=1")]
    assert (retry.method, retry.sender, retry.then) == ("GET", "check-b", "answered 200")
    expected = {"close": "closed the connection without answering", "reset": "reset"}[action]
    assert expected in retry.first
    assert retry.note().startswith("GET /b?x=1 went out on a kept-alive connection")
    assert "sent once more on a new connection, which answered 200" in retry.note()


def test_a_post_is_sent_again_with_its_body(serve: Callable[[Script], Scripted]) -> None:
    server = serve(second_request_gets("close"))
    with Http(server.url, 5.0) as http:
        http.get("/a")
        ex = http.request("POST", "/tasks", content=b"[1]",
                          headers={"Content-Type": "application/json"})
        assert ex.status == 200 and ex.request_content == b"[1]"
        assert [r.method for r in http.retries()] == ["POST"]


def test_only_once(serve: Callable[[Script], Scripted]) -> None:
    server = serve(lambda conn, n: "answer" if (conn, n) == (0, 0) else "close")
    with Http(server.url, 5.0) as http:
        http.get("/a")
        with pytest.raises(CheckFailure) as failed:
            http.get("/b")
        (retry,) = http.retries()
    assert "closed the connection without answering" in failed.value.actual
    assert retry.then.startswith("got no answer either: the server closed the connection")
    assert [(c, n) for c, n, _ in server.seen] == [(0, 0), (0, 1), (1, 0)]


@pytest.mark.parametrize(("action", "reason"), [
    ("hang", "no complete answer within 0.5 s"),
    ("reset-mid-answer", "reset"),
    ("garbage", "not a valid HTTP answer"),
])
def test_never_retried_on_a_kept_alive_connection(serve: Callable[[Script], Scripted],
                                                  action: str, reason: str) -> None:
    server = serve(second_request_gets(action))
    with Http(server.url, 0.5) as http:
        http.get("/a")
        with pytest.raises(CheckFailure) as failed:
            http.get("/b")
        assert http.retries() == []
    assert reason in failed.value.actual
    assert len(server.seen) == 2


@pytest.mark.parametrize(("action", "reason"), [
    ("close", "closed the connection without answering"),
    ("reset", "reset"),
])
def test_a_new_connection_that_fails_is_not_retried(serve: Callable[[Script], Scripted],
                                                    action: str, reason: str) -> None:
    server = serve(lambda conn, n: action)
    with Http(server.url, 2.0) as http:
        with pytest.raises(CheckFailure) as failed:
            http.get("/a")
        assert http.retries() == []
    assert reason in failed.value.actual
    assert len(server.seen) == 1


def test_the_retry_keeps_the_requests_deadline(serve: Callable[[Script], Scripted]) -> None:
    server = serve(lambda conn, n: "answer" if (conn, n) == (0, 0) else
                   "close" if conn == 0 else "hang")
    with Http(server.url, 0.5) as http:
        http.get("/a")
        t0 = time.monotonic()
        with pytest.raises(CheckFailure) as failed:
            http.get("/b")
        took = time.monotonic() - t0
        (retry,) = http.retries()
    assert took < 1.5
    assert "no complete answer within 0.5 s" in failed.value.actual
    assert retry.then == "got no complete answer either, by the request's deadline"


# The report: a retry is a note of the check that sent the request. -----------------------

TOY_SUITE = '''
from conformance import requirement

@requirement("T-01")
def test_first(http):
    http.get("/a")

@requirement("T-02")
def test_second(http):
    http.get("/b")

@requirement("T-03")
def test_third(http):
    http.get("/c")
'''

DRIVER = '''
import json, sys
from pathlib import Path
from conformance._options import RunOptions
from conformance._plugin import ConformancePlugin
from conformance._run import _pytest
from conformance._spec import Requirement, Spec
from conformance._suites import Suite
from conformance._target import ServerTarget

reqs = tuple(Requirement(f"T-0{i}", "MUST", f"statement {i}", "source") for i in range(1, 4))
spec = Spec(name="toy", title="toy", kind="http-server", seed="000", section="toy",
            requirements=reqs, reference_command=("none",))
plugin = ConformancePlugin(spec, ServerTarget(sys.argv[2], "toy"), RunOptions())
code, _ = _pytest(Suite((Path(sys.argv[1]),), ()), plugin)
print(json.dumps({r.requirement.id: [r.verdict, r.notes] for r in plugin.results()}))
'''


def test_the_report_notes_a_retry_on_the_check_that_sent_it(
        serve: Callable[[Script], Scripted], tmp_path: Path) -> None:
    server = serve(second_request_gets("close"))
    suite = tmp_path / "toy_suite.py"
    suite.write_text(TOY_SUITE)
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    done = subprocess.run([sys.executable, str(driver), str(suite), server.url],
                          capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["T-01"] == ["pass", []]
    assert out["T-03"] == ["pass", []]
    verdict, notes = out["T-02"]
    assert verdict == "pass"
    assert len(notes) == 1 and notes[0].startswith("GET /b went out on a kept-alive connection")
