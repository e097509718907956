"""Tests of the pipeline's protocol descriptions (openapi/pipeline.protocol.yaml, --protocol for
pipeline): which services and files a description may name, the usage errors of a bad one or of
a table read from a file without --output-dir, and the tables read where a description says,
from the writer or from a folder."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from conformance._cli import main
from conformance._http import Http
from conformance._protocol import ProtocolError, Speaker, default_path, load
from conformance.specs.pipeline import OPERATIONS, ROLES
from conformance.specs.pipeline._observation import Tables

STUDENT = Path(__file__).resolve().parents[1] / "fixtures" / "pipeline" / \
    "student_own_routes.protocol.yaml"


def ours() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(default_path("pipeline").read_text(encoding="utf-8"))
    return data


def write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "mine.protocol.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def load_pipeline(path: Path) -> Any:
    return load(path, spec="pipeline", operations=OPERATIONS, services=ROLES)


def test_ours_and_the_students_load() -> None:
    protocol = load_pipeline(default_path("pipeline"))
    assert protocol.is_default
    assert {op["service"] for op in protocol.operations.values()} == {
        "processor", "receiver", "writer"}
    student = load_pipeline(STUDENT)
    assert not student.is_default
    assert student.operations["records"] == {"file": "log_full.md", "answer": {}}


@pytest.mark.parametrize(("change", "says"), [
    (lambda d: d["operations"]["process"].update(service="worker"),
     "names the service 'worker'; the spec's services are client, receiver, processor, writer"),
    (lambda d: d["operations"]["receive"].pop("service"), "must say which service answers it"),
    (lambda d: d["operations"]["records"].update(file="../records.txt"),
     "a file is named relative to --output-dir"),
    (lambda d: d["operations"]["records"].update(file="/tmp/records.txt"), "records"),
    (lambda d: d["operations"].pop("received"), "needs the operation 'received'"),
    (lambda d: d["operations"]["records"].pop("file") and d["operations"]["records"].pop("path"),
     "'records' over http needs path"),
])
def test_a_bad_description_is_refused_with_the_reason(tmp_path: Path, change: Any,
                                                      says: str) -> None:
    data = ours()
    change(data)
    with pytest.raises(ProtocolError) as info:
        load_pipeline(write(tmp_path, data))
    assert says in str(info.value)


def test_a_bad_description_is_a_usage_error(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    data = ours()
    data["operations"]["process"]["service"] = "worker"
    assert main(["run", "pipeline", "--protocol", str(write(tmp_path, data))]) == 2
    err = " ".join(capsys.readouterr().err.split())  # the message is wrapped to the terminal
    assert "the spec's services are client, receiver, processor, writer" in err, err


def test_a_table_read_from_a_file_needs_the_folder(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "pipeline", "--protocol", str(STUDENT)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "records (log_full.md)" in err and "give --output-dir DIR" in err, err


def test_the_protocol_command_prints_ours(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["protocol", "pipeline"]) == 0
    out = capsys.readouterr().out
    assert out == default_path("pipeline").read_text(encoding="utf-8")
    assert "--protocol mine.protocol.yaml" in out


# The tables, where the description says ---------------------------------------------------------

TABLE = "| id | receive_time |\n|----|----|\n| 7 | 23.11.2026 17:30:00.5 |\n"


class _Writer(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        found = self.path == "/logs/short"
        raw = TABLE.encode() if found else json.dumps({"detail": "no"}).encode()
        self.send_response(200 if found else 404)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


@pytest.fixture
def writer() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Writer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_tables_are_read_from_the_writers_routes(tmp_path: Path, writer: str) -> None:
    data = ours()
    data["operations"]["received"] = {"service": "writer", "method": "GET", "path": "/logs/short",
                                      "answer": {}}
    data["operations"]["records"] = {"service": "writer", "method": "GET", "path": "/logs/full",
                                     "answer": {}}
    protocol = load_pipeline(write(tmp_path, data))
    with Http("http://127.0.0.1:9/", 2.0) as nowhere, Http(writer, 2.0) as at_writer:
        tables = Tables(Speaker(protocol, nowhere, services={"writer": at_writer}))
        snap = tables.snapshot()
    assert [r.id for r in snap.received.rows] == ["7"]
    # A 404 is a table not there yet, whatever the description says of it.
    assert snap.missing == ["records"]
    assert "GET /logs/full on the writer answered 404" in snap.records.absent
    assert tables.show("received").startswith("curl -sS ")
    assert tables.show("received").endswith("/logs/short")


def test_tables_are_read_from_the_folder(tmp_path: Path) -> None:
    (tmp_path / "log_short.md").write_text(TABLE, encoding="utf-8")
    protocol = load_pipeline(STUDENT)
    with Http("http://127.0.0.1:9/", 2.0) as nowhere:
        tables = Tables(Speaker(protocol, nowhere, folder=tmp_path))
        snap = tables.snapshot()
    assert [r.id for r in snap.received.rows] == ["7"]
    assert snap.received.describe().startswith("log_short.md read with the header line")
    assert snap.missing == ["records"]
    assert snap.records.absent == f"no file {tmp_path / 'log_full.md'}"
    assert tables.where == f"the folder {tmp_path}"
    assert tables.show("records", 3) == f"cat {tmp_path / 'log_full.md'} | tail -n 3"


def test_our_tables_are_read_from_the_folder_when_one_is_given(tmp_path: Path) -> None:
    (tmp_path / "records.txt").write_text("id | receive_time | write_time\n", encoding="utf-8")
    protocol = load_pipeline(default_path("pipeline"))
    with Http("http://127.0.0.1:9/", 2.0) as nowhere:
        speaker = Speaker(protocol, nowhere, services={"writer": nowhere}, folder=tmp_path)
        got = speaker.call("records")
        assert (got.kind, got.text) == ("ok", "id | receive_time | write_time\n")
        assert got.reproduce == f"cat {tmp_path / 'records.txt'}"
        assert speaker.call("received").kind == "not_found"
        # Without the folder the same description asks the writer (here: nothing listens).
        assert Speaker(protocol, nowhere).call("records").kind == "no_answer"


def test_a_service_is_one_of_the_pipelines(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["run", "pipeline", "--service", "worker=http://127.0.0.1:5002/"])
    assert info.value.code == 2
    assert "'worker' is no service of the pipeline's" in " ".join(capsys.readouterr().err.split())
