"""Tests of protocol descriptions (conformance/_protocol.py, schemas/protocol.schema.json): the
loader and its errors, the templates and locators, and the operations over HTTP and over TCP
lines against small servers on loopback, each with its evidence; drafts from an OpenAPI
document (conformance/_draft.py), the docs pages on describing a protocol, and a roster's
relative --protocol."""

from __future__ import annotations

import json
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from conformance import _docs, _draft, _protocol
from conformance._cli import main
from conformance._http import Http
from conformance._protocol import ProtocolError, Speaker, default_path, fill, fill_json, load
from conformance._target import free_port, is_listening
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


def test_protocol_command_refuses_a_spec_without_one(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["protocol", "crawler"]) == 2
    assert "the assignment fixes the protocol" in " ".join(capsys.readouterr().err.split())


def test_protocol_command_sends_a_client_of_an_open_protocol_to_its_own_server(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["protocol", "screwdriver"]) == 2
    assert "--server-command" in " ".join(capsys.readouterr().err.split())


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


# Optional values ---------------------------------------------------------------------------------

def test_optional_values_are_read_where_present_and_from_not_ready_answers(
        tmp_path: Path, http_server: str) -> None:
    data = json.loads(json.dumps(RUSSIAN))
    data["operations"]["status"]["answer"]["since"] = {"pointer": "/since", "optional": True}
    data["operations"]["result"]["answer"]["status"] = {"regex": "(ещё)", "optional": True}
    protocol = load(write(tmp_path, data), spec="taskqueue", operations=OPERATIONS)
    with Http(http_server, timeout=2.0) as http:
        speaker = Speaker(protocol, http)
        speaker.call("submit", type=1, data="wait")
        status = speaker.call("status", id="1")
        assert status.kind == "ok" and "since" not in status.values  # absent: not unreadable
        early = speaker.call("result", id="1")
        assert early.kind == "not_ready" and early.values["status"] == "ещё"


def test_a_value_the_spec_needs_cannot_be_optional(tmp_path: Path) -> None:
    data = ours()
    data["operations"]["submit"]["answer"]["id"]["optional"] = True
    with pytest.raises(ProtocolError, match="must say where its answer has id"):
        load(write(tmp_path, data), spec="taskqueue", operations=OPERATIONS)


# Drafts from an OpenAPI document ------------------------------------------------------------------

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "taskqueue"


@pytest.fixture(scope="module")
def fastapi_student() -> Iterator[str]:
    """The FastAPI student's server (fixtures/taskqueue/student_fastapi.py) on a free port."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(FIXTURES / "student_fastapi.py"), "--port",
                             str(port), "--time-scale", "0.1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not is_listening("127.0.0.1", port):
            assert proc.poll() is None and time.monotonic() < deadline, "it did not start"
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def drafted(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["protocol", "taskqueue", *args]) == 0
    return capsys.readouterr().out


def same_description(a: Path, b: Path) -> None:
    """Two descriptions that say the same (comments aside)."""
    left, right = (yaml.safe_load(p.read_text(encoding="utf-8")) for p in (a, b))
    assert left == right


def test_the_draft_of_the_fastapi_student_is_its_description(
        tmp_path: Path, fastapi_student: str, capsys: pytest.CaptureFixture[str]) -> None:
    text = drafted(capsys, "--from-url", fastapi_student)
    guesses = [line for line in text.splitlines() if "# guessed: check" in line]
    assert len(guesses) >= 8  # every choice of route, field and word is marked
    path = tmp_path / "draft.protocol.yaml"
    path.write_text(text, encoding="utf-8")
    load(path, spec="taskqueue", operations=OPERATIONS)  # it loads as it is
    # Its guesses are right here: it says what the hand-written description says.
    same_description(path, FIXTURES / "student_fastapi.protocol.yaml")


def test_the_draft_of_our_openapi_document_is_our_description(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "ours.protocol.yaml"
    path.write_text(drafted(capsys, "--from-openapi", str(default_path("taskqueue").parent /
                                                          "taskqueue.yaml")), encoding="utf-8")
    same_description(path, default_path("taskqueue"))


def test_a_wrong_guess_is_corrected_by_editing_the_marked_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A document whose result route names its field "payload": the draft cannot know it, falls
    # back on the route's place, and a teacher corrects the one marked line.
    document = yaml.safe_load((default_path("taskqueue").parent / "taskqueue.yaml").read_text(
        encoding="utf-8"))
    result = document["components"]["schemas"]["Result"]
    result["properties"]["payload"] = result["properties"].pop("result")
    source = tmp_path / "openapi.json"
    source.write_text(json.dumps(document), encoding="utf-8")
    text = drafted(capsys, "--from-openapi", str(source))
    line = next(x for x in text.splitlines() if x.strip().startswith("result: {"))
    assert "# guessed: check" in line
    path = tmp_path / "fixed.protocol.yaml"
    path.write_text(text.replace(line, "      result: {pointer: /payload}"), encoding="utf-8")
    fixed = load(path, spec="taskqueue", operations=OPERATIONS)
    assert fixed.operations["result"]["answer"]["result"] == {"pointer": "/payload"}
    assert fixed.operations["result"]["path"] == "/api/v1/tasks/{id}/result"


@pytest.mark.parametrize(("args", "says"), [
    (["--from-url", "http://10.1.2.3:8888/"], "loopback only"),
    (["--from-url", "ftp://127.0.0.1/"], "not an http(s) URL"),
    (["--from-openapi", "no-such-file.json"], "cannot be read"),
])
def test_a_draft_that_cannot_be_made_is_a_usage_error(
        args: list[str], says: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["protocol", "taskqueue", *args]) == 2
    assert says in " ".join(capsys.readouterr().err.split())


def test_a_document_with_nothing_like_a_task_queue_says_so(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "openapi.json"
    source.write_text(json.dumps({"openapi": "3.1.0", "paths": {"/ping": {"get": {}}}}))
    assert main(["protocol", "taskqueue", "--from-openapi", str(source)]) == 2
    assert "nothing looks like submitting a task" in " ".join(capsys.readouterr().err.split())
    source.write_text("[1]")
    assert main(["protocol", "taskqueue", "--from-openapi", str(source)]) == 2
    assert "not an OpenAPI document" in " ".join(capsys.readouterr().err.split())


def test_a_spec_without_drafting_says_so(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(_draft.DraftError, match="cannot draft"):
        _draft.draft("crawler", {"paths": {}}, "x")


def test_publishes_is_true_only_for_an_openapi_document(fastapi_student: str,
                                                        http_server: str) -> None:
    with Http(fastapi_student, timeout=2.0) as http:
        assert _draft.publishes(http)
    with Http(http_server, timeout=2.0) as http:
        assert not _draft.publishes(http)  # it answers 404 text there


# Docs: a page per spec with a default description, with the worked examples ---------------------

def test_a_protocol_page_per_default_description_with_every_example(tmp_path: Path) -> None:
    _docs.build(tmp_path)
    defaults = _docs.protocol_files()
    assert "taskqueue" in defaults
    for spec, default in defaults.items():
        page = (tmp_path / "api" / f"{spec}.protocol.md").read_text(encoding="utf-8")
        assert f"conformance protocol {spec} > mine.protocol.yaml" in page
        assert default.read_text(encoding="utf-8") in page
        for example in _docs.examples(spec, default):
            assert f"conformance run {spec} " in example.command, (
                f"{example.path.name}: its header comment names no `conformance run {spec}` "
                f"command (the docs show it)")
            assert f"### [{example.path.name}]" in page
            assert example.command in page
            assert example.path.read_text(encoding="utf-8") in page
            for text in (example.path.read_text(encoding="utf-8"), example.command,
                         example.about):
                page = page.replace(text, "")
        own = page.replace(default.read_text(encoding="utf-8"), "").replace(
            _docs.intro(default.read_text(encoding="utf-8")), "")
        for name in (spec, spec.replace("-", "_")):
            own = own.replace(name, "")
        assert "taskqueue" not in own, f"the page of {spec} names taskqueue in its own words"
    page = (tmp_path / "api" / "taskqueue.protocol.md").read_text(encoding="utf-8")
    for name in ("student_http_ru", "student_tcp_json", "student_fastapi"):
        assert f"### [{name}.protocol.yaml](../../fixtures/taskqueue/{name}.protocol.yaml)" in page
    assert "transport `tcp` (the default's: `http`)" in page
    assert "--from-url" in page
    assert "taskqueue.protocol.md" in (tmp_path / "index.md").read_text(encoding="utf-8")


# A roster's relative --protocol: next to the roster -------------------------------------------

def test_a_rosters_relative_paths_are_next_to_the_roster(tmp_path: Path) -> None:
    from conformance.batch import read_roster

    folder = tmp_path / "class"
    folder.mkdir()
    (folder / "queue.py").write_text((FIXTURES / "student_http_ru.py").read_text(
        encoding="utf-8"), encoding="utf-8")
    (folder / "queue.protocol.yaml").write_text(
        (FIXTURES / "student_http_ru.protocol.yaml").read_text(encoding="utf-8"),
        encoding="utf-8")
    roster = folder / "roster.csv"
    roster.write_text(
        "student,spec,target,args\n"
        f"Ada,taskqueue,{sys.executable} queue.py --port {{port}} --time-scale 0.1,"
        f"--protocol queue.protocol.yaml --time-scale 0.1 --fuzz-seconds 1 "
        f"--fuzz-examples 10\n", encoding="utf-8")
    (line,) = read_roster(roster)  # from here, where neither file is
    assert str(folder / "queue.protocol.yaml") in line.args
    assert str(folder / "queue.py") in line.target
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = subprocess.run([sys.executable, "-m", "conformance", "batch", str(roster), "--out",
                           str(elsewhere / "grading")], cwd=elsewhere, capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads((elsewhere / "grading" / "results.json").read_text(encoding="utf-8"))
    (ada,) = results["students"]
    assert ada["exit_code"] == 0
    report = json.loads((elsewhere / "grading" / "reports" / f"{ada['slug']}.json").read_text(
        encoding="utf-8"))
    verdicts = {r["id"]: r["verdict"] for r in report["runs"][0]["requirements"]} if "runs" in \
        report else {r["id"]: r["verdict"] for r in report["requirements"]}
    assert verdicts["TQ-01"] == "pass" and verdicts["TQ-12"] == "pass"
