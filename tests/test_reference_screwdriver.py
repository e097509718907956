"""The reference screwdriver.py against our reference audio server run here (in-process, a fresh
folder each time): what `upload` and `list` print and the exit statuses, Unicode names, and how
it fails (not audio, duplicate, too large, missing file, server down, garbage, bad arguments,
Ctrl+C) with one line on stderr and never a traceback. (Its conformance is in the verdict
tests.)"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance._servers import InProcessServer, Message, Receive, Scope, Send, canned_app
from conformance._target import free_port
from conformance.specs.screwdriver._live_audio import LiveAudio
from conformance.specs.screwdriver.checks import JPEG, tone
from reference import screwdriver
from tests.conftest import ROOT

SCRIPT = ROOT / "reference" / "screwdriver.py"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveAudio]:
    """Our reference server with an empty folder of its own."""
    with LiveAudio(0, tmp_path / "stored") as live:
        yield live


@pytest.fixture
def local(tmp_path: Path) -> Path:
    """A folder for the files given to the client."""
    folder = tmp_path / "local"
    folder.mkdir()
    return folder


def client(server: str, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    # From another folder, as a user would run it: the script needs nothing beside it.
    return subprocess.run([sys.executable, str(SCRIPT), "--server", server, *args],
                          capture_output=True, text=True, timeout=timeout, cwd="/")


def assert_one_line_error(done: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    assert done.returncode == code, (done.stdout, done.stderr)
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("screwdriver: error: ")
    for word in words:
        assert word in lines[0], lines[0]


def test_upload_prints_the_stored_name_alone_and_the_bytes_arrive(server: LiveAudio,
                                                                  local: Path) -> None:
    content = tone(0.1, 440)
    (local / "tone.wav").write_bytes(content)
    done = client(server.url, "upload", str(local / "tone.wav"))
    assert (done.returncode, done.stdout, done.stderr) == (0, "tone.wav\n", "")
    assert server.stored() == {"tone.wav": content}


def test_unicode_names_go_up_and_come_back_in_the_list(server: LiveAudio, local: Path) -> None:
    for name, pitch in (("песня.wav", 500), ("b side.wav", 600), ("a.wav", 700)):
        (local / name).write_bytes(tone(0.05, pitch))
        assert client(server.url, "upload", str(local / name)).returncode == 0
    done = client(server.url, "list")
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.splitlines() == ["a.wav", "b side.wav", "песня.wav"]
    assert set(server.stored()) == {"a.wav", "b side.wav", "песня.wav"}


def test_list_of_an_empty_server_prints_nothing(server: LiveAudio) -> None:
    done = client(server.url, "list")
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_non_audio_is_status_3_with_the_servers_words(server: LiveAudio, local: Path) -> None:
    (local / "picture.mp3").write_bytes(JPEG)  # an audio name does not make it audio
    done = client(server.url, "upload", str(local / "picture.mp3"))
    assert_one_line_error(done, 3, "refused picture.mp3", "Non-audio file detected")
    assert server.stored() == {}


def test_duplicate_is_status_4_and_keeps_the_stored_file(server: LiveAudio, local: Path) -> None:
    first = tone(0.05, 300)
    assert server.upload("same.wav", first).status_code == 201
    (local / "same.wav").write_bytes(tone(0.05, 900))
    done = client(server.url, "upload", str(local / "same.wav"))
    assert_one_line_error(done, 4, "already stored")
    assert server.stored() == {"same.wav": first}


def test_too_large_is_status_5(tmp_path: Path, local: Path) -> None:
    (local / "long.wav").write_bytes(tone(4, 330))  # 64 KB of samples
    with LiveAudio(0, tmp_path / "small", max_bytes=16 * 1024) as small:
        done = client(small.url, "upload", str(local / "long.wav"))
        assert small.stored() == {}
    assert_one_line_error(done, 5, "too large")


@pytest.mark.parametrize("what", ["missing", "folder"])
def test_unreadable_local_file_is_status_2_and_sends_nothing(server: LiveAudio, local: Path,
                                                             what: str) -> None:
    path = local / "nothing.wav" if what == "missing" else local
    done = client(server.url, "upload", str(path))
    assert_one_line_error(done, 2, str(path))
    assert server.requests() == []


def test_no_server_is_status_1_and_one_line(local: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    assert_one_line_error(client(url, "list"), 1, "cannot connect", "is it running?")
    (local / "tone.wav").write_bytes(tone(0.05, 440))
    assert_one_line_error(client(url, "upload", str(local / "tone.wav")), 1, "cannot connect")


@pytest.mark.parametrize(("answer", "args", "words"), [
    ((200, b"<html>It works!</html>", "text/html"), ["list"], ["not JSON"]),
    ((200, b'{"files": [{"size": 3}]}', "application/json"), ["list"], ["without a name"]),
    ((200, b'{"names": []}', "application/json"), ["list"], ["no list of files"]),
    ((500, b"Internal Server Error", "text/plain"), ["upload"], ["answered 500"]),
    ((201, b'{"size": 3}', "application/json"), ["upload"], ["without a name"]),
], ids=["list-html", "list-no-names", "list-no-files", "upload-500", "upload-no-name"])
def test_garbage_from_the_server_is_status_1_and_one_line(
        local: Path, answer: tuple[int, bytes, str], args: list[str], words: list[str]) -> None:
    if args == ["upload"]:
        (local / "tone.wav").write_bytes(tone(0.05, 440))
        args = ["upload", str(local / "tone.wav")]
    with InProcessServer(0, canned_app(lambda method, path: answer)) as canned:
        done = client(canned.url, *args)
    assert_one_line_error(done, 1, *words)


@pytest.mark.parametrize("args", [[], ["upload"], ["upload", "a", "b"], ["fetch"],
                                  ["list", "extra"]])
def test_bad_command_lines_are_usage_errors_that_ask_nothing(server: LiveAudio,
                                                            args: list[str]) -> None:
    done = client(server.url, *args)
    assert server.requests() == []
    assert done.returncode == 2, done.stderr
    assert "usage: screwdriver.py" in done.stderr and "Traceback" not in done.stderr


async def _never_answers(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        message: Message = await receive()
        await send({"type": "lifespan.startup.complete"})
        message = await receive()
        await send({"type": f"{message['type']}.complete"})
        return
    await asyncio.sleep(60)


def test_ctrl_c_is_status_130_and_one_line() -> None:
    with InProcessServer(0, _never_answers) as silent:
        proc = subprocess.Popen([sys.executable, str(SCRIPT), "--server", silent.url, "list"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not silent.requests():
                time.sleep(0.02)
            os.killpg(proc.pid, signal.SIGINT)
            out, err = proc.communicate(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=10)
    assert (proc.returncode, out, err) == (130, "", "screwdriver: interrupted\n")


def test_defaults_and_a_trailing_slash_on_the_server(server: LiveAudio) -> None:
    args = screwdriver.build_parser().parse_args(["list"])
    assert args.server == "http://127.0.0.1:8888"
    assert client(server.url + "/", "list").returncode == 0
    assert [r.path for r in server.requests()] == ["/api/files"]
