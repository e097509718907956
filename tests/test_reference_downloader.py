"""The reference downloader.py against a small image host of our own (an aiohttp app on a loopback
port, in a thread of this test process): files byte for byte, failures reported and survived,
the bound on downloads at once, names, the CSV, usage errors and resume. (Its conformance to the
whole spec is the suite's business.)"""

from __future__ import annotations

import asyncio
import io
import random
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trustme
from aiohttp import web
from aiohttp.typedefs import Handler

from reference import downloader as reference
from tests.conftest import ROOT

SCRIPT = ROOT / "reference" / "downloader.py"


# --- small real images ------------------------------------------------------------------------

def png(seed: int) -> bytes:
    """A valid 1x1 RGB PNG whose one pixel's colour comes from `seed`."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc
    pixel = bytes([0, seed % 256, seed // 256 % 256, 7])  # filter byte 0, then R, G, B
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(pixel)) + chunk(b"IEND", b""))


def gif(seed: int) -> bytes:
    """A minimal 1x1 GIF89a with a two-colour palette, the first colour from `seed`."""
    palette = bytes([seed % 256, seed // 256 % 256, 0, 255, 255, 255])
    return (b"GIF89a\x01\x00\x01\x00\x80\x00\x00" + palette
            + b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")


def jpeg(seed: int, size: int) -> bytes:
    """A JPEG's SOI + APP0 (JFIF) header, padded with `size` bytes seeded by `seed`, then EOI:
    enough for magic bytes, and as big as a test needs."""
    header = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    return header + random.Random(seed).randbytes(size) + b"\xff\xd9"


HTML = b"<!DOCTYPE html><html><head><title>Not here</title></head><body>gone</body></html>"
BIG = jpeg(99, 200_000)  # over three CHUNKs


# --- the image host ---------------------------------------------------------------------------

@dataclass
class Host:
    """The image host: its base URL, what it serves, and what it saw."""

    base: str = ""
    tls_base: str = ""  # the same, over https with a certificate `ca` signed
    ca_pem: bytes = b""
    files: dict[str, tuple[bytes, str]] = field(default_factory=dict)  # path -> body, type
    requests: Counter[str] = field(default_factory=Counter)  # path?query -> count
    ranges: list[tuple[str, str, int]] = field(default_factory=list)  # path, Range, status
    in_flight: int = 0
    peak: int = 0

    def url(self, path: str) -> str:
        """An absolute URL on the host."""
        return self.base + path

    def reset_counts(self) -> None:
        """Forget what was seen so far."""
        self.requests.clear()
        self.ranges.clear()
        self.peak = 0


def _abort(request: web.Request, reset: bool) -> None:
    transport = request.transport
    assert transport is not None
    if reset:
        # SO_LINGER with a zero timeout makes the close a TCP reset instead of a FIN.
        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    else:
        transport.close()


def _host_app(host: Host) -> web.Application:
    @web.middleware
    async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
        host.requests[request.path_qs] += 1
        host.in_flight += 1
        host.peak = max(host.peak, host.in_flight)
        try:
            return await handler(request)
        finally:
            host.in_flight -= 1

    async def serve(request: web.Request) -> web.StreamResponse:
        path = request.path
        if path.startswith("/status/"):
            return web.Response(status=int(path.split("/")[2]), body=HTML, content_type="text/html")
        if path.startswith("/slow/"):
            await asyncio.sleep(0.25)
        if path.startswith(("/reset/", "/short/")):
            # Content-Length 5000, 1000 bytes of a JPEG, then a reset or a clean close.
            answer = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
            answer.content_length = 5000
            await answer.prepare(request)
            await answer.write(BIG[:1000])
            await asyncio.sleep(0.05)  # let those bytes leave before the connection goes
            _abort(request, reset=path.startswith("/reset/"))
            raise asyncio.CancelledError  # nothing more to answer on a connection that is gone
        if path.startswith("/stall/"):  # headers, then nothing
            answer = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
            answer.content_length = len(BIG)
            await answer.prepare(request)
            await asyncio.sleep(5)
            return answer
        if path.startswith("/trickle/"):  # a byte of news every 0.1 s, 0.8 s in all
            body = jpeg(5, 2000)
            answer = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
            answer.content_length = len(body)
            await answer.prepare(request)
            for piece in range(8):
                await answer.write(body[piece * 250:(piece + 1) * 250])
                await asyncio.sleep(0.1)
            await answer.write(body[2000:])
            return answer
        if path not in host.files:
            return web.Response(status=404, body=HTML, content_type="text/html")
        body, kind = host.files[path]
        wanted = request.headers.get("Range", "")
        if path.startswith(("/range/", "/norange/")):
            status = 206 if wanted and path.startswith("/range/") else 200
            host.ranges.append((path, wanted, status))
            if status == 206:
                start = int(wanted.removeprefix("bytes=").rstrip("-"))
                return web.Response(status=206, body=body[start:], content_type=kind, headers={
                    "Content-Range": f"bytes {start}-{len(body) - 1}/{len(body)}"})
        return web.Response(body=body, content_type=kind)

    app = web.Application(middlewares=[count])
    app.router.add_get("/{tail:.*}", serve)
    return app


@pytest.fixture(scope="module")
def host() -> Iterator[Host]:
    """The image host, served from a thread with its own event loop for the whole module."""
    state = Host()
    ca = trustme.CA()
    state.ca_pem = ca.cert_pem.bytes()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_tls)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(_host_app(state), access_log=None, handler_cancellation=True)

    async def start() -> None:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_tls).start()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=10)
    (address, port), (_, tls_port) = (found[:2] for found in runner.addresses)
    state.base = f"http://{address}:{port}"
    state.tls_base = f"https://{address}:{tls_port}"
    try:
        yield state
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


def write_csv(path: Path, lines: list[str]) -> Path:
    """A CSV file of these lines."""
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def folder_contents(folder: Path) -> dict[str, bytes]:
    """Every file in the folder, name -> bytes."""
    return {entry.name: entry.read_bytes() for entry in folder.iterdir()}


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """The reference's main in this process: exit status, stdout, stderr."""
    status = reference.main(argv)
    out, err = capsys.readouterr()
    return status, out, err


# --- the tests --------------------------------------------------------------------------------

def test_mixed_run_saves_every_image_byte_for_byte_and_reports_each_failure(
        host: Host, tmp_path: Path) -> None:
    expected: dict[str, bytes] = {}
    lines = ["id,url", ""]
    for i in range(200):
        kind = ("png", "gif", "jpg")[i % 3]
        body = png(i) if kind == "png" else gif(i) if kind == "gif" else \
            jpeg(i, 150_000 if i % 40 == 2 else 100 + i)
        host.files[f"/img/{i}.{kind}"] = (body, f"image/{'jpeg' if kind == 'jpg' else kind}")
        expected[f"{i}.{kind}"] = body
        lines.append(f"{i},{host.url(f'/img/{i}.{kind}')}")
        if i % 50 == 0:
            lines.append("")
    host.files["/a/photo.png"] = (png(1000), "image/png")
    host.files["/b/photo.png"] = (png(1001), "image/png")
    host.files["/q/pic.gif"] = (gif(1002), "image/gif")
    host.files["/dir/"] = (png(1003), "image/png")
    host.files["/html/page.jpg"] = (HTML, "text/html")
    expected |= {"photo.png": png(1000), "photo-2.png": png(1001), "pic.gif": gif(1002),
                 "image.png": png(1003)}
    extra = ["/a/photo.png", "/b/photo.png", "/q/pic.gif?size=big", "/dir/", "/img/8.jpg",
             "/status/404/gone.png", "/status/500/broken.png", "/reset/cut.jpg",
             "/short/short.jpg", "/html/page.jpg"]
    lines += [f"{200 + n},{host.url(path)}" for n, path in enumerate(extra)]
    csv_path = write_csv(tmp_path / "images.csv", lines)
    folder = tmp_path / "out"
    host.reset_counts()

    done = subprocess.run([sys.executable, str(SCRIPT), str(csv_path), str(folder), "20",
                           "--timeout", "5"], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL, cwd=ROOT)

    assert done.stdout == f"downloaded 204 of 209 images into {folder} (5 failed, 0 already " \
                          "there)\n", done.stderr
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert folder_contents(folder) == expected  # exact files, no .part, nothing partial
    assert host.requests["/img/8.jpg"] == 1  # listed twice, downloaded once
    assert host.requests["/q/pic.gif?size=big"] == 1
    lines_err = done.stderr.splitlines()
    second = len(lines) - extra[::-1].index("/img/8.jpg")  # the 1-based line of each listing
    first = lines.index(f"8,{host.url('/img/8.jpg')}") + 1
    assert f"{csv_path}: line {second}: {host.url('/img/8.jpg')} already listed on line " \
           f"{first}, downloaded once" in lines_err
    progress = [line for line in lines_err if line.startswith("[")]
    assert sorted(int(line[1:line.index("/")]) for line in progress) == list(range(1, 210))
    assert all(line.startswith(("[", f"{csv_path}: ")) for line in lines_err), lines_err
    failures = {line.split("] ", 1)[1] for line in progress if "] failed " in line}
    assert failures == {
        f"failed {host.url('/status/404/gone.png')}: HTTP 404",
        f"failed {host.url('/status/500/broken.png')}: HTTP 500",
        f"failed {host.url('/reset/cut.jpg')}: connection reset",
        f"failed {host.url('/short/short.jpg')}: body cut short: 1000 of 5000 bytes",
        f"failed {host.url('/html/page.jpg')}: not an image (text/html)",
    }
    assert f"ok {host.url('/b/photo.png')} -> photo-2.png ({len(png(1001))} bytes)" in \
        {line.split("] ", 1)[1] for line in progress}


def test_at_most_n_downloads_at_once_and_more_than_one(
        host: Host, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for i in range(12):
        host.files[f"/slow/{i}.png"] = (png(2000 + i), "image/png")
    csv_path = write_csv(tmp_path / "slow.csv", [host.url(f"/slow/{i}.png") for i in range(12)])
    host.reset_counts()
    started = time.monotonic()
    status, out, _ = run_main([str(csv_path), str(tmp_path / "out"), "3"], capsys)
    elapsed = time.monotonic() - started
    assert (status, out) == (0, f"downloaded 12 of 12 images into {tmp_path / 'out'} "
                                "(0 failed, 0 already there)\n")
    assert host.peak == 3
    assert elapsed < 12 * 0.25  # not one at a time
    assert len(list((tmp_path / "out").iterdir())) == 12


@pytest.mark.parametrize("args", [["0"], ["-1"], ["x"], ["missing"]])
def test_usage_errors_exit_2_without_a_traceback(tmp_path: Path, args: list[str]) -> None:
    csv_path = write_csv(tmp_path / "list.csv", ["http://127.0.0.1:9/a.png"])
    argv = [str(tmp_path / "nowhere.csv"), str(tmp_path / "out")] if args == ["missing"] else \
        [str(csv_path), str(tmp_path / "out"), *args]
    done = subprocess.run([sys.executable, str(SCRIPT), *argv], capture_output=True, text=True,
                          timeout=30, stdin=subprocess.DEVNULL, cwd=ROOT)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "usage: downloader.py" in done.stderr
    assert ("nowhere.csv" if args == ["missing"] else "argument N") in done.stderr
    assert done.stdout == ""
    assert not (tmp_path / "out").exists()


def test_csv_header_blank_lines_comments_and_junk_rows(tmp_path: Path) -> None:
    csv_path = write_csv(tmp_path / "list.csv", [
        "id,url", "", "1,http://h.test/a.png", "# a comment", "   ", "2,not a url",
        '3,"https://h.test/b.jpg?x=1,2"', "http://h.test/c.gif", "4,http://h.test/a.png"])
    urls, warnings = reference.read_csv(csv_path)
    assert urls == ["http://h.test/a.png", "https://h.test/b.jpg?x=1,2", "http://h.test/c.gif"]
    assert warnings == ["line 6: no http(s) URL, skipped",
                        "line 9: http://h.test/a.png already listed on line 3, downloaded once"]


def test_names_are_safe_and_decided_in_csv_order() -> None:
    urls = ["http://h.test/x/Photo.PNG", "http://h.test/y/photo.png?v=2", "http://h.test/",
            "http://h.test/d/", "http://h.test/image.jpg", "http://h.test/%2E%2E%2Fetc%2Fpasswd",
            "http://h.test/a%20b.gif#frag", "http://h.test/" + "n" * 300 + ".png"]
    jobs = reference.plan_names(urls, "unused")
    assert [(job.name, job.typed) for job in jobs] == [
        ("Photo.PNG", False), ("photo-2.png", False), ("image", True), ("image-2", True),
        ("image-3.jpg", False), ("_etc_passwd", False), ("a b.gif", False),
        ("n" * 196 + ".png", False)]


def test_a_missing_folder_is_created(
        host: Host, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    host.files["/img/new.gif"] = (gif(3000), "image/gif")
    csv_path = write_csv(tmp_path / "one.csv", [host.url("/img/new.gif")])
    folder = tmp_path / "made" / "for" / "it"
    status, _, err = run_main([str(csv_path), str(folder)], capsys)
    assert status == 0, err
    assert folder_contents(folder) == {"new.gif": gif(3000)}


@pytest.mark.parametrize("honoured", [True, False], ids=["206", "200"])
def test_a_part_file_is_resumed_with_range(
        host: Host, tmp_path: Path, capsys: pytest.CaptureFixture[str], honoured: bool) -> None:
    path = "/range/big.jpg" if honoured else "/norange/big.jpg"
    host.files[path] = (BIG, "image/jpeg")
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "big.jpg.part").write_bytes(BIG[:70_000])
    host.reset_counts()
    status, _, err = run_main([str(write_csv(tmp_path / "big.csv", [host.url(path)])),
                               str(folder)], capsys)
    assert status == 0, err
    assert host.ranges == [(path, "bytes=70000-", 206 if honoured else 200)]
    assert folder_contents(folder) == {"big.jpg": BIG}  # appended, or restarted: never both
    assert f"ok {host.url(path)} -> big.jpg ({len(BIG)} bytes)" in err


def test_an_existing_file_is_kept_and_counted_already_there(
        host: Host, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    host.files["/img/keep.png"] = (png(4000), "image/png")
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "keep.png").write_bytes(b"an earlier keep.png")
    host.reset_counts()
    status, out, _ = run_main([str(write_csv(tmp_path / "k.csv", [host.url("/img/keep.png")])),
                               str(folder)], capsys)
    assert (status, out) == (0, f"downloaded 0 of 1 images into {folder} (0 failed, 1 already "
                                "there)\n")
    assert folder_contents(folder) == {"keep.png": b"an earlier keep.png"}
    assert host.requests["/img/keep.png"] == 0


def test_timeout_is_per_read_not_for_the_whole_download(
        host: Host, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv_path = write_csv(tmp_path / "t.csv", [host.url("/stall/s.jpg"), host.url("/trickle/t.jpg")])
    folder = tmp_path / "out"
    status, _, err = run_main([str(csv_path), str(folder), "--timeout", "0.4"], capsys)
    assert status == 1
    assert f"failed {host.url('/stall/s.jpg')}: timed out after 0.4 s" in err
    assert folder_contents(folder) == {"t.jpg": jpeg(5, 2000)}


def test_on_a_terminal_a_progress_bar_and_failure_lines() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    with reference.Reporter(2, quiet=False, stream=screen) as reporter:
        reporter.done(reference.Result("http://h.test/a.png", "ok", "a.png", 10))
        reporter.done(reference.Result("http://h.test/b.png", "failed", reason="HTTP 404"))
    shown = screen.getvalue()
    assert "[2/2] failed http://h.test/b.png: HTTP 404" in shown
    assert "2/2" in shown.replace("[2/2]", "")  # the bar's count
    assert "ok http://h.test/a.png" not in shown


def test_https_is_verified_against_ssl_cert_file(
        host: Host, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    host.files["/img/secure.png"] = (png(5000), "image/png")
    csv_path = write_csv(tmp_path / "s.csv", [host.tls_base + "/img/secure.png"])
    (tmp_path / "ca.pem").write_bytes(host.ca_pem)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    status, _, err = run_main([str(csv_path), str(tmp_path / "refused")], capsys)
    assert status == 1
    assert f"failed {host.tls_base}/img/secure.png: TLS certificate not accepted: unable to " \
           "get local issuer certificate" in err
    assert folder_contents(tmp_path / "refused") == {}
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))
    status, _, err = run_main([str(csv_path), str(tmp_path / "out")], capsys)
    assert status == 0, err
    assert folder_contents(tmp_path / "out") == {"secure.png": png(5000)}
