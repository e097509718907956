"""Evidence a person can read: a reproducer's curl line carries a small text body itself and
sends a large or binary one from a file of the run's body folder (next to the JSON report, or a
temporary folder it names); a binary answer is summarised by its size, type and first bytes; a
failure never says "actual: None"."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import httpx
import pytest

from conformance._checks import NOTHING_CAME, CheckFailure
from conformance._http import INLINE_BODY_MAX, BodyFiles, Exchange, bodies_in, curl_line
from tests.conftest import twin_command

URL = "http://127.0.0.1:9/api/v1/tasks/"
JSON = {"Content-Type": "application/json"}


def _data(line: str) -> str:
    """The argument of --data-binary in a curl line."""
    words = shlex.split(line)
    return words[words.index("--data-binary") + 1]


def test_a_small_text_body_stays_on_the_line(tmp_path: Path) -> None:
    body = json.dumps(["http://127.0.0.1:9/a"]).encode()
    with bodies_in(tmp_path / "bodies"):
        line = curl_line("POST", URL, JSON, body)
    assert _data(line) == body.decode()
    assert not (tmp_path / "bodies").exists()  # nothing written, no folder made


def test_a_large_body_goes_to_a_file_the_line_names(tmp_path: Path) -> None:
    # The crawler's task of 1,000 URLs: its curl line was 100,000 characters.
    body = json.dumps([f"http://127.0.0.1:9/status/200?n={i}" for i in range(1000)]).encode()
    assert len(body) > INLINE_BODY_MAX
    folder = tmp_path / "report.bodies"
    with bodies_in(folder):
        line = curl_line("POST", URL, JSON, body)
        again = curl_line("POST", URL, JSON, body)
    assert len(line) < 300, line
    data = _data(line)
    assert data.startswith(f"@{folder}/body-") and data.endswith(".json"), data
    assert Path(data[1:]).read_bytes() == body
    assert again == line and len(list(folder.iterdir())) == 1  # one file per distinct body


def test_a_binary_body_goes_to_a_file_even_when_small(tmp_path: Path) -> None:
    request = httpx.Request("POST", URL,
                            files={"file": ("tone.wav", b"RIFF\x00\x01\xff", "audio/wav")})
    body = request.read()
    headers = {"Content-Type": request.headers["content-type"]}
    with bodies_in(tmp_path):
        line = curl_line("POST", URL, headers, body)
    data = _data(line)
    assert data.startswith("@") and data.endswith(".multipart"), data
    assert Path(data[1:]).read_bytes() == body
    assert "RIFF" not in line


def test_without_a_folder_a_temporary_one_is_made_when_needed() -> None:
    files = BodyFiles()
    assert files.folder is None
    path = files.write(b"\x00" * 10)
    try:
        assert files.folder is not None and path.parent == files.folder
        assert files.folder.name.startswith("conformance-bodies-")
        assert path.read_bytes() == b"\x00" * 10 and path.suffix == ".bin"
    finally:
        path.unlink()
        files.folder.rmdir()


def _answer(body: bytes, ctype: str) -> Exchange:
    return Exchange("GET", "http://127.0.0.1:9/files/tone.wav", {}, None, 200, "OK",
                    httpx.Headers({"content-type": ctype}), body, 0.01, 5.0)


def test_a_binary_answer_is_summarised_not_dumped() -> None:
    wav = b"RIFF$\x00\x00\x00WAVEfmt " + bytes(range(256)) * 40
    summary = _answer(wav, "audio/wav").summary(80)
    assert summary.startswith("200 OK; Content-Type: audio/wav; body: 10,256 bytes of audio/wav,"
                              " starting b'RIFF$\\x00\\x00\\x00WAVEfmt ")
    assert len(summary) < 250 and "\ufffd" not in summary
    # Undeclared bytes that are not text are summarised too; text stays text.
    assert "bytes of an unknown type" in _answer(b"\xff\xfe\x00", "").summary()
    assert _answer(b'{"a": 1}', "application/json").summary().endswith("""body: '{"a": 1}'""")


def test_a_failure_never_says_actual_none() -> None:
    assert CheckFailure("x", actual=None).actual == NOTHING_CAME
    assert CheckFailure("x").actual == ""  # nothing said, nothing shown
    assert CheckFailure("x", actual=0).actual == "0"


@pytest.mark.slow(60)
def test_a_run_puts_large_bodies_next_to_its_json_report(run_conformance,
                                                         tmp_path: Path) -> None:
    # A student's crawler that fails the 1,000-URL task: its reproducer submits that task again.
    run = run_conformance("run", "crawler", "--only", "CRAWL-22", "--command",
                          twin_command("crawler", "student-httpx"), timeout=170)
    entry = run.requirement("CRAWL-22")
    assert entry["verdict"] == "fail", entry
    reproduce = entry["failures"][0]["reproduce"]
    assert len(reproduce) < 1000, reproduce
    files = list((tmp_path / "report.bodies").iterdir())
    assert len(files) == 1 and f"--data-binary @{files[0]}" in reproduce, reproduce
    assert len(json.loads(files[0].read_bytes())) == 1000
