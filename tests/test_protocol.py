"""Tests of protocol descriptions (conformance/_protocol.py, schemas/protocol.schema.json): the
loader and its errors, the templates and locators, and the operations over HTTP and over TCP
lines against small servers on loopback, each with its evidence."""

from __future__ import annotations

import json
import socket
import socketserver
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from conformance import _protocol
from conformance._cli import main
from conformance._http import Http
from conformance._protocol import ProtocolError, Speaker, default_path, fill, fill_json, load
from conformance.specs.taskqueue import OPERATIONS

TASKS: dict[str, dict[str, Any]] = {}


def write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "p.protocol.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def ours() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(default_path("taskqueue").read_text(encoding="utf-8"))
    return data


# Loading -------------------------------------------------------------------------------------

def test_the_default_loads_and_is_the_default() -> None:
    protocol = load(default_path("taskqueue"), spec="taskqueue", operations=OPERATIONS)
    assert protocol.transport == "http"
    assert protocol.is_default
    assert set(protocol.operations) == {"submit", "status", "result"}


def test_a_copy_is_not_the_default(tmp_path: Path) -> None:
    assert not load(write(tmp_path, ours())).is_default


@pytest.mark.parametrize(("change", "says"), [
    (lambda d: d.pop("transport"), "'transport' is a required property"),
    (lambda d: d.update(transport="udp"), "transport"),
    (lambda d: d["operations"]["status"].pop("path"), "needs path"),
    (lambda d: d["operations"]["status"]["answer"].update(status={"regex": "("}),
     "not a regular expression"),
    (lambda d: d["operations"]["status"]["answer"].update(status={"xpath": "/a"}), "status"),
    (lambda d: d["operations"].pop("result"), "needs the operation 'result'"),
    (lambda d: d["operations"]["submit"].update(answer={}), "must say where its answer has id"),
    (lambda d: d.update(spec="crawler"), "describes the spec 'crawler'"),
    (lambda d: d["operations"]["submit"].update(form={"a": "b"}), "submit"),
    (lambda d: d["operations"]["submit"].update(line="X"), "has a line"),
])
def test_a_bad_description_is_refused_with_the_reason(tmp_path: Path, change: Any,
                                                      says: str) -> None:
    data = ours()
    change(data)
    with pytest.raises(ProtocolError, match=None) as info:
        load(write(tmp_path, data), spec="taskqueue", operations=OPERATIONS)
    assert says in str(info.value)
    assert str(tmp_path) in str(info.value)


def test_tcp_refuses_http_fields(tmp_path: Path) -> None:
    data = ours()
    data["transport"] = "tcp"
    with pytest.raises(ProtocolError, match=r"which only http has|needs line or json"):
        load(write(tmp_path, data))


def test_not_yaml_and_missing_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [", encoding="utf-8")
    with pytest.raises(ProtocolError, match="not YAML"):
        load(bad)
    with pytest.raises(ProtocolError, match="cannot be read"):
        load(tmp_path / "none.yaml")


def test_templates_keep_types_and_quote_paths() -> None:
    assert fill_json({"t": "{type}", "d": "{data}", "x": "n={type}", "l": ["{id}"]},
                     {"type": 3, "data": "кот", "id": "7"}) == {
        "t": 3, "d": "кот", "x": "n=3", "l": ["7"]}
    assert fill("/tasks/{id}", {"id": "a/b c"}, quote=True) == "/tasks/a%2Fb%20c"
    assert fill("SUBMIT {type} {data}", {"type": 1, "data": "x"}) == "SUBMIT 1 x"


def test_json_pointer() -> None:
    doc = {"a": {"b/c": [10, {"d": None}]}}
    assert _protocol.pointer(doc, "/a/b~1c/0") == 10
    assert _protocol.pointer(doc, "/a/b~1c/1/d") is None
    assert _protocol.pointer(doc, "/a/x") is _protocol._MISSING
    assert _protocol.pointer(doc, "") is doc


# Over HTTP: a server of another shape (form body, text result, Russian words) ---------------

class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, text: str, kind: str = "application/json") -> None:
        raw = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", f"{kind}; charset=utf-8")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_POST(self) -> None:
        form = parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
        task_id = str(len(TASKS) + 1)
        TASKS[task_id] = {"type": int(form["type"][0]), "data": form["data"][0]}
        self._send(200, json.dumps({"task": {"number": int(task_id)}}))

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        task_id = parse_qs(url.query).get("id", [""])[0]
        task = TASKS.get(task_id)
        if task is None:
            self._send(404, "нет такой задачи", "text/plain")
        elif url.path == "/status":
            self._send(200, json.dumps({"состояние": "завершено"}, ensure_ascii=False))
        elif task["data"] == "wait":
            self._send(425, "ещё не готово", "text/plain")
        else:
            self._send(200, f"Результат: {task['data'][::-1]}\n", "text/plain")


RUSSIAN: dict[str, Any] = {
    "spec": "taskqueue", "transport": "http",
    "words": {"status": {"queued": ["в очереди"], "running": ["выполняется"],
                         "done": ["завершено"]}},
    "operations": {
        "submit": {"method": "POST", "path": "/create",
                   "form": {"type": "{type}", "data": "{data}"},
                   "answer": {"id": {"pointer": "/task/number"}}},
        "status": {"method": "GET", "path": "/status", "query": {"id": "{id}"},
                   "answer": {"status": {"pointer": "/состояние"}},
                   "not_found": {"status": [404]}},
        "result": {"method": "GET", "path": "/result", "query": {"id": "{id}"},
                   "answer": {"result": {"regex": "^Результат: (.*)$"}},
                   "not_found": {"status": [404]}, "not_ready": {"status": [425]}},
    },
}


@pytest.fixture
def http_server() -> Iterator[str]:
    TASKS.clear()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_http_operations_read_as_described(tmp_path: Path, http_server: str) -> None:
    protocol = load(write(tmp_path, RUSSIAN), spec="taskqueue", operations=OPERATIONS)
    with Http(http_server, timeout=2.0) as http:
        speaker = Speaker(protocol, http)
        sub = speaker.call("submit", type=1, data="пример")
        assert (sub.kind, sub.value("id")) == ("ok", "1")  # a number is taken as its text
        assert sub.reproduce.startswith("curl ") and "/create" in sub.reproduce
        status = speaker.call("status", id="1")
        assert status.kind == "ok"
        assert status.value("status") == "done"
        assert status.value("status_shown") == "завершено"
        result = speaker.call("result", id="1")
        assert (result.kind, result.value("result")) == ("ok", "ремирп")
        speaker.call("submit", type=1, data="wait")
        assert speaker.call("result", id="2").kind == "not_ready"
        missing = speaker.call("status", id="nope")
        assert missing.kind == "not_found"
        assert "404" in missing.describe()
        assert "id=nope" in missing.request


def test_http_answer_without_the_value_is_unreadable(tmp_path: Path, http_server: str) -> None:
    data = json.loads(json.dumps(RUSSIAN))
    data["operations"]["submit"]["answer"] = {"id": {"pointer": "/id"}}
    protocol = load(write(tmp_path, data))
    with Http(http_server, timeout=2.0) as http:
        got = Speaker(protocol, http).call("submit", type=1, data="x")
    assert got.kind == "unreadable"
    assert "no id at '/id'" in got.describe()


def test_http_nothing_listening_is_no_answer(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    protocol = load(default_path("taskqueue"))
    with Http(f"http://127.0.0.1:{port}/", timeout=1.0) as http:
        got = Speaker(protocol, http).call("status", id="1")
    assert got.kind == "no_answer"
    assert got.reproduce.startswith("curl ")


# Over TCP: JSON lines and text lines ----------------------------------------------------------

class _Lines(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        line = self.rfile.readline().decode().strip()
        if line.startswith("{"):
            request = json.loads(line)
            if request["op"] == "submit":
                answer = {"ok": True, "id": f"t-{request['type']}-{request['data']}"}
            elif request["id"] == "unknown":
                answer = {"ok": False, "error": "not found"}
            else:
                answer = {"ok": True, "state": "DONE"}
            self.wfile.write(json.dumps(answer).encode() + b"\n")
        elif line == "SILENT":
            self.rfile.readline()  # waits for the client to give up
        else:
            self.wfile.write(f"OK {line[::-1]}\r\n".encode())


@pytest.fixture
def tcp_server() -> Iterator[str]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Lines)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


JSON_LINES: dict[str, Any] = {
    "spec": "taskqueue", "transport": "tcp",
    "words": {"status": {"done": ["DONE"]}},
    "operations": {
        "submit": {"json": {"op": "submit", "type": "{type}", "data": "{data}"},
                   "answer": {"id": {"pointer": "/id"}}},
        "status": {"json": {"op": "status", "id": "{id}"},
                   "answer": {"status": {"pointer": "/state"}},
                   "not_found": {"pointer": "/error", "equals": "not found"}},
        "result": {"line": "{id}", "answer": {"result": {"regex": "^OK (.*)$"}},
                   "ok": {"regex": "^OK"}},
    },
}


def test_tcp_json_and_text_lines(tmp_path: Path, tcp_server: str) -> None:
    protocol = load(write(tmp_path, JSON_LINES), spec="taskqueue", operations=OPERATIONS)
    with Http(tcp_server, timeout=2.0) as http:
        speaker = Speaker(protocol, http)
        sub = speaker.call("submit", type=2, data="кот")
        assert (sub.kind, sub.value("id")) == ("ok", "t-2-кот")
        port = tcp_server.rsplit(":", 1)[1].rstrip("/")
        assert sub.reproduce.startswith("printf '%s\\n' ") and sub.reproduce.endswith(
            f"| nc -q 5 127.0.0.1 {port}")
        assert json.loads(sub.request) == {"op": "submit", "type": 2, "data": "кот"}
        assert speaker.call("status", id="x").value("status") == "done"
        assert speaker.call("status", id="unknown").kind == "not_found"
        result = speaker.call("result", id="abc")
        assert (result.kind, result.value("result")) == ("ok", "cba")  # \r stripped


def test_tcp_silence_is_no_answer_within_the_timeout(tmp_path: Path, tcp_server: str) -> None:
    data = json.loads(json.dumps(JSON_LINES))
    data["operations"]["result"]["line"] = "SILENT"
    protocol = load(write(tmp_path, data))
    with Http(tcp_server, timeout=0.5) as http:
        got = Speaker(protocol, http).call("result", id="x")
    assert got.kind == "no_answer"
    assert "within 0.5 s" in got.answer


# The command line ------------------------------------------------------------------------------

def test_protocol_command_prints_the_commented_default(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["protocol", "taskqueue"]) == 0
    out = capsys.readouterr().out
    assert out == default_path("taskqueue").read_text(encoding="utf-8")
    assert "--protocol" in out


def test_protocol_command_refuses_a_spec_without_one() -> None:
    assert main(["protocol", "crawler"]) == 2


def test_a_bad_protocol_flag_is_a_usage_error(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    data = ours()
    data.pop("operations")
    with pytest.raises(SystemExit) as info:
        main(["run", "taskqueue", "--protocol", str(write(tmp_path, data))])
    assert info.value.code == 2
    assert "'operations' is a required property" in capsys.readouterr().err


def test_arguments_are_mapped_and_ids_sent_as_numbers(tmp_path: Path, tcp_server: str) -> None:
    data = json.loads(json.dumps(JSON_LINES))
    data["arguments"] = {"type": {"1": "reverse", "2": "swap"}}
    data["operations"]["result"] = {"json": {"op": "result", "id": "{id:int}"},
                                    "answer": {"result": {"pointer": "/state"}}}
    protocol = load(write(tmp_path, data), spec="taskqueue", operations=OPERATIONS)
    with Http(tcp_server, timeout=2.0) as http:
        speaker = Speaker(protocol, http)
        assert speaker.call("submit", type=2, data="x").value("id") == "t-swap-x"
        assert json.loads(speaker.call("result", id="12").request) == {"op": "result", "id": 12}
        assert json.loads(speaker.call("result", id="n").request) == {"op": "result", "id": "n"}
