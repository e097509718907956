"""The reference audio.py (Flask): audio recognised by content, names made safe, uploads atomic,
the page, the JSON API and Range; then the command line (Ctrl+C, busy port) in a subprocess."""

from __future__ import annotations

import io
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from flask import Flask
from flask.testing import FlaskClient

from conformance._target import free_port, wait_until_listening
from fixtures.audio import AUDIO, AUDIO_TYPES, NOT_AUDIO, SAMPLES
from reference import audio
from reference.audio import AudioConfig, Folder, Refused, audio_type, create_app, safe_name
from tests.conftest import ROOT

SCRIPT = ROOT / "reference" / "audio.py"
WAV = SAMPLES["tone.wav"].read_bytes()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path / "files"


@pytest.fixture
def app(folder: Path) -> Flask:
    return create_app(AudioConfig(folder=folder, max_bytes=64 * 1024))


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def send(client: FlaskClient, path: str, name: str, data: bytes,
         content_type: str = "audio/mpeg"):
    return client.post(path, data={"file": (io.BytesIO(data), name, content_type)},
                       content_type="multipart/form-data")


def on_disk(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


class _Page(HTMLParser):
    """The bits of the page the tests look at."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.items: list[str] = []
        self.links: list[str] = []
        self.players: list[dict[str, str | None]] = []
        self.message: str | None = None
        self.forms: list[dict[str, str | None]] = []
        self.inputs: list[dict[str, str | None]] = []
        self.buttons: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.stack.append(found.get("id") or tag)
        if tag == "li" and "files" in self.stack:
            self.items.append("")
        elif tag == "a" and "files" in self.stack:
            self.links.append(found["href"] or "")
        elif tag == "audio":
            self.players.append(found)
        elif tag == "form":
            self.forms.append(found)
        elif tag == "input":
            self.inputs.append(found)
            self.stack.pop()

    def handle_endtag(self, tag: str) -> None:
        if self.stack:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        if self.stack and self.stack[-1] == "message":
            self.message = (self.message or "") + data
        elif self.stack and self.stack[-1] == "a" and "files" in self.stack:
            self.items[-1] += data
        elif self.stack and self.stack[-1] == "button":
            self.buttons.append(data.strip())


def page(client: FlaskClient, html: str | None = None) -> _Page:
    parsed = _Page()
    parsed.feed(html if html is not None else client.get("/").get_data(as_text=True))
    return parsed


# ---------------------------------------------------------------------------------------------
# Recognising audio.


@pytest.mark.parametrize("name", sorted(AUDIO))
def test_every_audio_sample_is_recognised(name: str) -> None:
    assert audio_type(SAMPLES[name].read_bytes()[:audio.SNIFF_BYTES]) == AUDIO_TYPES[name]


@pytest.mark.parametrize("name", sorted(NOT_AUDIO))
def test_no_other_sample_is(name: str) -> None:
    assert audio_type(SAMPLES[name].read_bytes()) is None


def test_samples_are_small_and_real() -> None:
    assert all(path.stat().st_size < 30_000 for path in SAMPLES.values())
    exe = SAMPLES["program.exe"].read_bytes()
    assert exe[:2] == b"MZ" and exe[exe[0x3C]:exe[0x3C] + 4] == b"PE\0\0"
    assert SAMPLES["program-renamed.mp3"].read_bytes() == exe
    assert SAMPLES["picture.jpg"].read_bytes()[:3] == b"\xff\xd8\xff"
    assert SAMPLES["letter.docx"].read_bytes()[:4] == b"PK\x03\x04"


def test_bare_mpeg_needs_two_frames_in_a_row() -> None:
    mp3 = SAMPLES["tone.mp3"].read_bytes()
    assert mp3[:2] == b"\xff\xf3"  # MPEG-2, which puremagic alone misses
    assert audio_type(mp3[:4] + bytes(4000)) is None  # a lone sync word is no frame
    assert audio_type(b"\xff\xfb\x90\x00" + os.urandom(2000)) is None


def test_ogg_holding_video_is_not_audio() -> None:
    ogg = bytearray(SAMPLES["tone.ogg"].read_bytes())
    packet = 27 + ogg[26]
    ogg[packet:packet + 7] = b"\x80theora"
    assert audio_type(bytes(ogg)) is None


def test_empty_content_is_not_audio() -> None:
    assert audio_type(b"") is None


# ---------------------------------------------------------------------------------------------
# Names.


@pytest.mark.parametrize(("raw", "safe"), [
    ("песня.mp3", "песня.mp3"),
    ("曲.ogg", "曲.ogg"),
    ("e\u0301te\u0301.wav", "\u00e9t\u00e9.wav"),  # NFC
    ("../../etc/passwd.mp3", "passwd.mp3"),
    ("a/b.mp3", "b.mp3"),
    ("C:\\Users\\me\\song.mp3", "song.mp3"),
    ("..\\..\\boot.ini", "boot.ini"),
    (".hidden.mp3", "hidden.mp3"),
    ("...mp3", "mp3"),
    ("so\x00ng\x1b\n.mp3", "song.mp3"),
    ("\u202eexe.mp3", "exe.mp3"),  # a right-to-left override could disguise the name
    ("a?b:c*.mp3", "a_b_c_.mp3"),
    ("  tune.mp3  ", "tune.mp3"),
    ("..", ""),
    ("/", ""),
    (".", ""),
    ("\x01\x02", ""),
])
def test_names_are_made_safe(raw: str, safe: str) -> None:
    assert safe_name(raw) == safe


def test_long_names_are_cut_keeping_the_extension() -> None:
    for raw in ("x" * 500 + ".mp3", "я" * 500 + ".mp3"):
        name = safe_name(raw)
        assert len(name.encode("utf-8")) <= audio.MAX_NAME_BYTES
        assert name.endswith(".mp3") and len(name) > 50


# ---------------------------------------------------------------------------------------------
# The page.


def test_page_has_the_list_and_the_form(client: FlaskClient) -> None:
    answer = client.get("/")
    assert answer.status_code == 200
    assert answer.mimetype == "text/html"
    html = answer.get_data(as_text=True)
    assert '<ul id="files">' in html
    seen = page(client, html)
    assert seen.forms == [{"method": "post", "action": "/", "enctype": "multipart/form-data"}]
    assert seen.inputs == [{"type": "file", "name": "file", "accept": "audio/*", "required": None}]
    assert "Upload" in seen.buttons
    assert seen.items == [] and seen.message is None
    assert "http" not in re.sub(r'xmlns="[^"]*"', "", html)  # nothing external


@pytest.mark.parametrize("name", sorted(AUDIO))
def test_page_upload_of_audio_redirects_and_lists_it(client: FlaskClient, folder: Path,
                                                     name: str) -> None:
    answer = send(client, "/", name, SAMPLES[name].read_bytes(), "application/octet-stream")
    assert answer.status_code == 303
    assert answer.headers["Location"] == "/"
    seen = page(client)
    assert seen.items == [name]
    assert seen.links == [f"/files/{name}"]
    assert seen.players == [{"controls": None, "preload": "none", "src": f"/files/{name}"}]
    assert on_disk(folder) == [name]
    assert (folder / name).read_bytes() == SAMPLES[name].read_bytes()


@pytest.mark.parametrize("name", sorted(NOT_AUDIO))
def test_page_refuses_non_audio_with_the_exact_message(client: FlaskClient, folder: Path,
                                                       name: str) -> None:
    answer = send(client, "/", name, SAMPLES[name].read_bytes())
    assert answer.status_code == 415
    assert answer.mimetype == "text/html"
    seen = page(client, answer.get_data(as_text=True))
    assert seen.message == "Non-audio file detected"
    assert seen.items == []
    assert on_disk(folder) == []


def test_client_content_type_is_not_trusted(client: FlaskClient, folder: Path) -> None:
    assert send(client, "/api/files", "song.mp3", SAMPLES["program.exe"].read_bytes(),
                "audio/mpeg").status_code == 415
    assert send(client, "/api/files", "x.exe", WAV, "application/x-msdownload").status_code == 201
    assert on_disk(folder) == ["x.exe"]


def test_page_lists_files_sorted_with_unicode_names_encoded(client: FlaskClient) -> None:
    for name in ("ж.wav", "a b.wav", "песня.wav", "#1?.wav"):
        assert send(client, "/", name, WAV).status_code == 303
    seen = page(client)
    assert seen.items == ["#1_.wav", "a b.wav", "ж.wav", "песня.wav"]
    assert seen.links == ["/files/%231_.wav", "/files/a%20b.wav", "/files/%D0%B6.wav",
                          "/files/%D0%BF%D0%B5%D1%81%D0%BD%D1%8F.wav"]


def test_page_escapes_names(client: FlaskClient) -> None:
    assert send(client, "/", "<b>&.wav", WAV).status_code == 303
    html = client.get("/").get_data(as_text=True)
    assert "<b>" not in html and "_b_&amp;.wav" in html


def test_page_errors_keep_the_page(client: FlaskClient, folder: Path) -> None:
    none = client.post("/", data={}, content_type="multipart/form-data")
    assert none.status_code == 400 and page(client, none.get_data(as_text=True)).message
    empty = send(client, "/", "", b"")  # the form sent with no file chosen
    assert empty.status_code == 400
    nameless = send(client, "/", "..", WAV)
    assert nameless.status_code == 400
    assert send(client, "/", "tone.wav", WAV).status_code == 303
    again = send(client, "/", "tone.wav", WAV)
    assert again.status_code == 409
    seen = page(client, again.get_data(as_text=True))
    assert seen.message is not None and "tone.wav" in seen.message
    assert seen.items == ["tone.wav"]
    big = send(client, "/", "big.wav", WAV + bytes(200 * 1024))
    assert big.status_code == 413
    assert "MiB" in (page(client, big.get_data(as_text=True)).message or "")
    assert on_disk(folder) == ["tone.wav"]


# ---------------------------------------------------------------------------------------------
# The JSON API.


def test_api_lists_nothing_at_first(client: FlaskClient) -> None:
    answer = client.get("/api/files")
    assert answer.status_code == 200 and answer.json == {"files": []}


def test_api_upload_and_list(client: FlaskClient) -> None:
    for name in sorted(AUDIO):
        answer = send(client, "/api/files", name, SAMPLES[name].read_bytes())
        assert answer.status_code == 201
        size = SAMPLES[name].stat().st_size
        assert answer.json == {"name": name, "size": size, "type": AUDIO_TYPES[name],
                               "url": f"/files/{name}"}
        assert answer.headers["Location"] == f"/files/{name}"
    listed = client.get("/api/files").json["files"]
    assert [entry["name"] for entry in listed] == sorted(AUDIO)
    assert {entry["name"]: entry["type"] for entry in listed} == AUDIO_TYPES


def test_api_unicode_name_is_kept(client: FlaskClient) -> None:
    answer = send(client, "/api/files", "песня.mp3", SAMPLES["tone.mp3"].read_bytes())
    assert answer.status_code == 201
    assert answer.json["name"] == "песня.mp3"
    assert answer.json["url"] == "/files/%D0%BF%D0%B5%D1%81%D0%BD%D1%8F.mp3"
    assert client.get(answer.json["url"]).data == SAMPLES["tone.mp3"].read_bytes()


@pytest.mark.parametrize("name", sorted(NOT_AUDIO))
def test_api_refuses_non_audio(client: FlaskClient, folder: Path, name: str) -> None:
    answer = send(client, "/api/files", name, SAMPLES[name].read_bytes())
    assert answer.status_code == 415
    assert answer.json == {"detail": "Non-audio file detected"}
    assert on_disk(folder) == []


def test_api_traversal_and_hidden_names_stay_in_the_folder(client: FlaskClient, folder: Path,
                                                           tmp_path: Path) -> None:
    # werkzeug reads the filename as an HTTP quoted string, where `\\b` means `b`, so what
    # reaches the server for `a\\b\\c.wav` depends on the client; none of it may be a folder.
    names = ["../../escape.wav", ".hidden.wav", "a\\b\\c.wav", "dir/sub.wav", "..\\up.wav"]
    stored = []
    for raw in names:
        answer = send(client, "/api/files", raw, WAV)
        assert answer.status_code == 201, raw
        name = answer.json["name"]
        assert not {"/", "\\"} & set(name) and not name.startswith(".") and name.endswith("wav")
        stored.append(name)
    assert stored[:2] == ["escape.wav", "hidden.wav"] and stored[3] == "sub.wav"
    assert on_disk(folder) == sorted(stored)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["files"]


def test_api_errors(client: FlaskClient, folder: Path) -> None:
    missing = client.post("/api/files", data={"other": "x"}, content_type="multipart/form-data")
    assert missing.status_code == 400 and "file" in missing.json["detail"]
    assert send(client, "/api/files", "\x00/", WAV).status_code == 400
    assert send(client, "/api/files", "t.wav", WAV).status_code == 201
    duplicate = send(client, "/api/files", "t.wav", SAMPLES["tone.flac"].read_bytes())
    assert duplicate.status_code == 409 and "t.wav" in duplicate.json["detail"]
    assert (folder / "t.wav").read_bytes() == WAV  # the first one is untouched
    big = send(client, "/api/files", "big.wav", WAV + bytes(100 * 1024))
    assert big.status_code == 413 and big.json["detail"]
    huge = send(client, "/api/files", "huge.wav", WAV + bytes(300 * 1024))  # over the request
    assert huge.status_code == 413 and huge.json == big.json
    nowhere = client.get("/api/nothing")
    assert nowhere.status_code == 404 and set(nowhere.json) == {"detail"}
    assert client.delete("/api/files").status_code == 405
    assert on_disk(folder) == ["t.wav"]


def test_a_file_just_over_the_limit_is_refused(client: FlaskClient, folder: Path) -> None:
    # The request limit has room for the multipart envelope; the file's own size decides.
    limit = 64 * 1024
    assert send(client, "/api/files", "fits.wav", WAV + bytes(limit - len(WAV))).status_code == 201
    over = send(client, "/api/files", "over.wav", WAV + bytes(limit - len(WAV) + 1))
    assert over.status_code == 413
    assert on_disk(folder) == ["fits.wav"]


# ---------------------------------------------------------------------------------------------
# Serving files.


def test_file_is_served_with_its_audio_type(client: FlaskClient) -> None:
    for name in sorted(AUDIO):
        send(client, "/api/files", name, SAMPLES[name].read_bytes())
        answer = client.get(f"/files/{name}")
        assert answer.status_code == 200
        assert answer.mimetype == AUDIO_TYPES[name]
        assert answer.headers["Accept-Ranges"] == "bytes"
        assert answer.data == SAMPLES[name].read_bytes()


def test_range_requests(client: FlaskClient) -> None:
    send(client, "/api/files", "t.wav", WAV)
    part = client.get("/files/t.wav", headers={"Range": "bytes=10-19"})
    assert part.status_code == 206
    assert part.headers["Content-Range"] == f"bytes 10-19/{len(WAV)}"
    assert part.data == WAV[10:20]
    tail = client.get("/files/t.wav", headers={"Range": "bytes=-4"})
    assert tail.status_code == 206 and tail.data == WAV[-4:]
    outside = client.get("/files/t.wav", headers={"Range": f"bytes={len(WAV) + 10}-"})
    assert outside.status_code == 416


def test_unknown_and_outside_files_are_404(client: FlaskClient, folder: Path,
                                           tmp_path: Path) -> None:
    (tmp_path / "secret.wav").write_bytes(WAV)
    (folder / "link.wav").symlink_to(tmp_path / "secret.wav")
    (folder / ".hidden.wav").write_bytes(WAV)
    (folder / "stray.txt").write_bytes(b"not audio")
    for path in ("/files/nothing.wav", "/files/..%2Fsecret.wav", "/files/../secret.wav",
                 "/files/link.wav", "/files/.hidden.wav", "/files/stray.txt", "/files/"):
        assert client.get(path).status_code == 404, path
    assert client.get("/api/files").json == {"files": []}


# ---------------------------------------------------------------------------------------------
# Temporary name, then rename.


class _Breaks(io.RawIOBase):
    """A stream that gives `good` bytes, then fails as a client that hangs up does."""

    def __init__(self, good: bytes) -> None:
        self.data = io.BytesIO(good)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        chunk = self.data.read(size if size and size > 0 else 1024)
        if not chunk:
            raise ConnectionResetError("the client went away")
        return chunk


def test_an_interrupted_upload_leaves_nothing(folder: Path) -> None:
    store = Folder(folder, 2**20)
    with pytest.raises(ConnectionResetError):
        store.add("half.wav", _Breaks(WAV[:6000]))
    assert on_disk(folder) == []


def test_the_temporary_file_is_hidden_until_renamed(folder: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    store = Folder(folder, 2**20)
    seen: list[tuple[list[str], list[str]]] = []
    real_replace = os.replace

    def watching_replace(source: str, target: Path) -> None:
        seen.append((on_disk(folder), [found.name for found in store.files()]))
        real_replace(source, target)

    monkeypatch.setattr(audio.os, "replace", watching_replace)
    stored = store.add("t.wav", io.BytesIO(WAV))
    [(during, listed)] = seen
    assert len(during) == 1 and during[0].startswith(".") and during[0].endswith(".part")
    assert listed == []
    assert on_disk(folder) == ["t.wav"] and stored.size == len(WAV)


def test_an_interrupted_request_stores_nothing(client: FlaskClient, folder: Path) -> None:
    body = (b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"t.wav\"\r\n"
            b"Content-Type: audio/wav\r\n\r\n" + WAV[:3000])
    answer = client.post("/api/files", input_stream=io.BytesIO(body),
                         content_type="multipart/form-data; boundary=b",
                         headers={"Content-Length": str(len(body) + 5000)})
    assert answer.status_code == 400
    assert on_disk(folder) == []


def test_refusals_are_refused_exceptions(folder: Path) -> None:
    store = Folder(folder, 2**20)
    with pytest.raises(Refused) as caught:
        store.add("x.mp3", io.BytesIO(SAMPLES["program.exe"].read_bytes()))
    assert (caught.value.status, caught.value.detail) == (415, "Non-audio file detected")


def test_the_folder_is_created(tmp_path: Path) -> None:
    create_app(AudioConfig(folder=tmp_path / "a" / "b"))
    assert (tmp_path / "a" / "b").is_dir()


# ---------------------------------------------------------------------------------------------
# The command line.


def test_defaults() -> None:
    config = audio.config_from(audio.build_parser().parse_args([]))
    assert (config.host, config.port) == ("127.0.0.1", 8888)
    assert config.folder == Path("audio-files") and config.max_bytes == 20 * 2**20
    assert AudioConfig(folder=Path("x")).max_bytes == 20 * 2**20


def _started(folder: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(SCRIPT), "--port", str(port), "--folder",
                             str(folder)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert wait_until_listening("127.0.0.1", port, 10, lambda: proc.poll() is not None), \
            proc.communicate()
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_serves_then_stops_cleanly(folder: Path, sig: signal.Signals) -> None:
    for proc, port in _started(folder):
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", trust_env=False,
                          timeout=5) as http:
            stored = http.post("/api/files", files={"file": ("t.wav", WAV, "audio/wav")})
            assert stored.status_code == 201
            assert http.get("/files/t.wav", headers={"Range": "bytes=0-3"}).content == b"RIFF"
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err
        assert "Traceback" not in err and "stopped" in err
    assert on_disk(folder) == ["t.wav"]


def test_busy_port_is_a_one_line_error(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        done = subprocess.run([sys.executable, str(SCRIPT), "--port", str(port), "--folder",
                               str(tmp_path / "f")], capture_output=True, text=True, timeout=10)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "cannot listen" in done.stderr, done.stderr
