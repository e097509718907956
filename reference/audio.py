"""The reference `audio.py`: a Flask server that stores sound files on disk and shows them on a
page with players and an upload form; anything that is not audio is refused.

Run it as `python audio.py [--host H] [--port P] [--folder DIR] [--max-mb N] [--quiet]`; it
listens on 127.0.0.1:8888 by default and keeps the files in `./audio-files` (created if missing).
No database: the folder is the whole state.

Rules, as `openapi/audio.yaml` states them:
- `GET /` is the page: `<ul id="files">` with one `<li>` per stored file (its name, a link to
  `/files/<name>` percent-encoded, and an `<audio controls>` player), and the upload form
  (`multipart/form-data`, field `file`, posted to `/`). The form's audio answers 303 to `/`;
  anything else answers 415 with the page showing exactly `Non-audio file detected` in
  `#message`; no file 400, a name already stored 409, too big 413, each with the page and a
  message.
- `GET /api/files` answers `{"files": [{"name", "size", "type", "url"}]}`, sorted by name
  (code point order). `POST /api/files` (multipart, field `file`) answers 201 with the stored
  file and a Location header, or 400/409/413/415 with `{"detail": "..."}`; 415 is
  `{"detail": "Non-audio file detected"}`.
- `GET /files/<name>` answers the bytes with their audio MIME type, `Accept-Ranges: bytes`; a
  Range answers 206 with Content-Range, one outside the file 416; an unknown name 404. Only
  regular files directly in the folder are served: no symlink, nothing outside it.
- Audio is recognised by content (puremagic, plus a check of our own for bare MPEG frames and
  for the codec inside an Ogg file), never by the client's file name or Content-Type: mp3 (ID3
  or bare frames), Ogg Vorbis/Opus/FLAC/Speex, WAV and FLAC.
- Names are made safe by `safe_name`: the last path component only, NFC, no control
  characters, no leading dot, Unicode letters kept, at most 200 UTF-8 bytes.
- An upload is written to a hidden temporary name in the folder and renamed (`os.replace`) to
  its final name once complete, so an interrupted upload leaves no half file; hidden names are
  never listed. A file bigger than `--max-mb` MiB answers 413.
- Ctrl+C or SIGTERM stops the server with exit status 0; a port already taken is a one-line error
  and exit status 1.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import signal
import socket
import sys
import tempfile
import threading
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO
from urllib.parse import quote

import puremagic
from flask import Flask, Response, jsonify, redirect, render_template_string, request, send_file
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.serving import BaseWSGIServer, make_server

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8888
DEFAULT_FOLDER = Path("audio-files")
NON_AUDIO = "Non-audio file detected"

# Every signature we rely on sits in the first bytes; two MPEG frames take at most 3,456.
SNIFF_BYTES = 4096
MAX_NAME_BYTES = 200
_CHUNK = 64 * 1024
# The multipart envelope around the file (boundaries, part headers) is not the file's size.
_FORM_OVERHEAD = 64 * 1024
_TEMP_PREFIX = ".upload-"

log = logging.getLogger("audio")


@dataclass(frozen=True)
class AudioConfig:
    """Everything the command line sets; `create_app` reads nothing else."""

    folder: Path = DEFAULT_FOLDER
    max_bytes: int = 20 * 2**20
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    quiet: bool = False


# ---------------------------------------------------------------------------------------------
# Recognising audio by its content.

# puremagic's best guess (its extension) -> the MIME type we serve. Ogg is a container that may
# hold video too, so an Ogg guess is only taken after `_ogg_is_audio` has looked inside.
_AUDIO_BY_EXTENSION = {
    ".mp3": "audio/mpeg",  # puremagic finds an ID3v2 tag; bare frames are ours to find
    ".wav": "audio/wav",
    ".flac": "audio/flac",
}
_OGG_EXTENSIONS = {".ogg", ".oga", ".opus", ".ogv", ".ogx"}
# The first packet of an Ogg stream names its codec.
_OGG_AUDIO_CODECS = (b"\x01vorbis", b"OpusHead", b"\x7fFLAC", b"Speex   ")

# MPEG audio bit rates (kbit/s) for indexes 1-14, by (is MPEG-1, layer).
_MPEG2_LOW = (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)
_MPEG_BITRATES = {
    (True, 1): (32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): _MPEG2_LOW,
    (False, 3): _MPEG2_LOW,
}
# Sample rates by the header's version bits: 0 MPEG-2.5, 2 MPEG-2, 3 MPEG-1 (1 is reserved).
_MPEG_RATES = {0: (11025, 12000, 8000), 2: (22050, 24000, 16000), 3: (44100, 48000, 32000)}


def _mpeg_frame(head: bytes, at: int) -> tuple[int, bytes] | None:
    """The length and the fixed header fields of the MPEG audio frame at `head[at:]`, if any."""
    if at + 4 > len(head) or head[at] != 0xFF or head[at + 1] & 0xE0 != 0xE0:
        return None
    b1, b2 = head[at + 1], head[at + 2]
    version, layer = (b1 >> 3) & 3, 4 - ((b1 >> 1) & 3)
    bitrate_index, rate_index, padding = b2 >> 4, (b2 >> 2) & 3, (b2 >> 1) & 1
    # Reserved values; bit rate 0 ("free format") is legal but too rare to be worth the doubt.
    if version == 1 or layer == 4 or bitrate_index in (0, 15) or rate_index == 3:
        return None
    mpeg1 = version == 3
    bitrate = _MPEG_BITRATES[mpeg1, layer][bitrate_index - 1] * 1000
    rate = _MPEG_RATES[version][rate_index]
    if layer == 1:
        length = (12 * bitrate // rate + padding) * 4
    else:
        length = (144 if mpeg1 or layer == 2 else 72) * bitrate // rate + padding
    return length, bytes((b1, b2 & 0x0C))


def _bare_mpeg(head: bytes) -> bool:
    """Whether `head` starts with two consecutive MPEG audio frames of the same kind.

    puremagic knows bare frames only by `FF FB` (MPEG-1 layer III without CRC), so an MPEG-2
    file, such as lame's output at 16 kHz, goes unrecognised. Its 11 sync bits alone would let
    one random binary in 2,000 through, so a second frame must follow exactly where the first
    one's header says it ends, with the same version, layer and sample rate.
    """
    first = _mpeg_frame(head, 0)
    if first is None:
        return False
    second = _mpeg_frame(head, first[0])
    return second is not None and second[1] == first[1]


def _ogg_is_audio(head: bytes) -> bool:
    """Whether an Ogg stream's first packet is an audio codec's header (not Theora video)."""
    if head[:4] != b"OggS" or len(head) < 27:
        return False
    packet = 27 + head[26]  # after the page header and its segment table
    return head[packet:packet + 8].startswith(_OGG_AUDIO_CODECS)


def audio_type(head: bytes) -> str | None:
    """The audio MIME type of content that starts with `head`, or None if it is not audio."""
    try:
        guess = puremagic.magic_string(head)[0].extension
    except (puremagic.PureError, IndexError, ValueError):
        guess = ""
    if guess in _OGG_EXTENSIONS:
        return "audio/ogg" if _ogg_is_audio(head) else None
    if guess in _AUDIO_BY_EXTENSION:
        return _AUDIO_BY_EXTENSION[guess]
    return "audio/mpeg" if _bare_mpeg(head) else None


def file_audio_type(path: Path) -> str | None:
    """The audio MIME type of the file at `path`, from its content, or None."""
    with path.open("rb") as file:
        return audio_type(file.read(SNIFF_BYTES))


# ---------------------------------------------------------------------------------------------
# Names.

# Not forbidden on Linux, but on Windows and in many tools; a student may run this anywhere.
_AWKWARD = str.maketrans(dict.fromkeys('<>:"|?*', "_"))
# Format characters that some scripts need (Persian, Indic, emoji sequences); the other Cf
# characters, bidirectional overrides among them, could make `exe.mp3` look like `3pm.exe`.
_JOINERS = {"\u200c", "\u200d"}
_EDGES = re.compile(r"^[\s.]+|[\s.]+$")


def _trim(name: str) -> str:
    return _EDGES.sub("", name)


def safe_name(raw: str) -> str:
    """`raw` made safe to store and serve: "" if nothing is left (the caller answers 400).

    The last component of a `/` or `\\` path (browsers on Windows once sent `C:\\...\\x.mp3`),
    NFC, without control, private-use or unassigned characters, `<>:"|?*` made `_`, without
    leading or trailing dots and spaces (so no hidden name, no `..`), at most MAX_NAME_BYTES in
    UTF-8 with the extension kept. Letters of every script are kept: `песня.mp3` stays so.
    """
    name = unicodedata.normalize("NFC", raw).replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name
                   if unicodedata.category(ch)[0] != "C" or ch in _JOINERS)
    name = _trim(name.translate(_AWKWARD))
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        stem, dot, extension = name.rpartition(".")
        suffix = dot + extension if stem and len(extension) <= 16 else ""
        if not suffix:
            stem = name
        room = MAX_NAME_BYTES - len(suffix.encode("utf-8"))
        # Cut on a byte boundary, then drop the half character the cut may leave.
        stem = _trim(stem.encode("utf-8")[:room].decode("utf-8", "ignore"))
        name = unicodedata.normalize("NFC", stem + suffix) if stem else ""
    return name


def file_url(name: str) -> str:
    """Where a stored file is served: `/files/` and its name, percent-encoded."""
    return "/files/" + quote(name, safe="")


# ---------------------------------------------------------------------------------------------
# The folder.


class Refused(Exception):
    """An upload refused: `status` and a message for the person or program that sent it."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class StoredFile:
    """One stored file as the API shows it."""

    name: str
    size: int
    type: str

    @property
    def url(self) -> str:
        """Where it is served."""
        return file_url(self.name)

    def as_json(self) -> dict[str, object]:
        """The API's StoredFile object."""
        return {"name": self.name, "size": self.size, "type": self.type, "url": self.url}


class Folder:
    """The stored files: a plain folder, where only complete audio files have visible names."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        path.mkdir(parents=True, exist_ok=True)
        # Absolute, because Flask's send_file takes a relative path from the package's folder.
        self.path = path.resolve()
        self.max_bytes = max_bytes
        # Between "is the name free?" and the rename, no other upload thread may take it.
        self._lock = threading.Lock()

    def find(self, name: str) -> StoredFile | None:
        """The stored file called `name`; None for anything else, a path or a symlink included."""
        if not name or safe_name(name) != name:
            return None
        path = self.path / name
        try:
            if path.is_symlink() or not path.is_file():
                return None
            kind = file_audio_type(path)
            size = path.stat().st_size
        except OSError:
            return None
        return StoredFile(name, size, kind) if kind else None

    def files(self) -> list[StoredFile]:
        """Every stored file, sorted by name; temporary files and strays are left out."""
        with os.scandir(self.path) as entries:
            names = sorted(entry.name for entry in entries if not entry.name.startswith("."))
        return [found for name in names if (found := self.find(name)) is not None]

    def add(self, raw_name: str, stream: IO[bytes]) -> StoredFile:
        """Store what `stream` holds under `raw_name` made safe; raise Refused if we may not."""
        name = safe_name(raw_name)
        if not name:
            raise Refused(400, "The file name is empty once made safe; rename the file.")
        head = stream.read(SNIFF_BYTES)
        kind = audio_type(head)
        if kind is None:
            raise Refused(415, NON_AUDIO)
        final = self.path / name
        if os.path.lexists(final):  # early, so that a duplicate is not copied for nothing
            raise Refused(409, f"A file named {name!r} is already stored.")
        descriptor, temporary = tempfile.mkstemp(prefix=_TEMP_PREFIX, suffix=".part",
                                                 dir=self.path)
        try:
            with os.fdopen(descriptor, "wb") as out:
                size = len(head)
                out.write(head)
                while chunk := stream.read(_CHUNK):
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise Refused(413, self.too_big())
                    out.write(chunk)
            os.chmod(temporary, 0o644)  # mkstemp's 0600 would hide the file from other users
            with self._lock:
                if os.path.lexists(final):
                    raise Refused(409, f"A file named {name!r} is already stored.")
                os.replace(temporary, final)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise
        return StoredFile(name, size, kind)

    def too_big(self) -> str:
        """The message for a file over the limit."""
        return f"The file is larger than {self.max_bytes / 2**20:g} MiB."


# ---------------------------------------------------------------------------------------------
# The application.

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Audio files</title>
<style>
  body { font-family: system-ui, sans-serif; max-width: 44rem; margin: 2rem auto;
         padding: 0 1rem; color: #222; background: #fafafa; }
  h1 { font-size: 1.6rem; }
  #message { padding: .6rem .8rem; border-radius: .3rem; background: #fde8e8;
             border: 1px solid #e0a0a0; }
  form { display: flex; gap: .6rem; align-items: center; margin: 1rem 0 1.5rem;
         padding: .8rem; background: #fff; border: 1px solid #ddd; border-radius: .3rem; }
  button { padding: .35rem 1rem; }
  #files { list-style: none; padding: 0; }
  #files li { display: flex; flex-wrap: wrap; gap: .4rem 1rem; align-items: center;
              justify-content: space-between; padding: .5rem 0; border-bottom: 1px solid #eee; }
  #files a { word-break: break-all; }
  .empty { color: #777; }
</style>
</head>
<body>
<h1>Audio files</h1>
{% if message %}<p id="message" role="alert">{{ message }}</p>{% endif %}
<form method="post" action="/" enctype="multipart/form-data">
  <input type="file" name="file" accept="audio/*" required>
  <button type="submit">Upload</button>
</form>
<ul id="files">
{% for file in files %}
  <li><a href="{{ file.url }}">{{ file.name }}</a>
    <audio controls preload="none" src="{{ file.url }}"></audio></li>
{% endfor %}
</ul>
{% if not files %}<p class="empty">No files yet.</p>{% endif %}
</body>
</html>
"""


def create_app(config: AudioConfig) -> Flask:
    """Return the Flask application keeping its files in `config.folder`."""
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = config.max_bytes + _FORM_OVERHEAD
    folder = Folder(config.folder, config.max_bytes)
    app.extensions["audio_folder"] = folder

    def page(message: str = "", status: int = 200) -> tuple[str, int]:
        return render_template_string(PAGE, files=folder.files(), message=message), status

    def upload() -> StoredFile:
        part = request.files.get("file")
        if part is None:
            raise Refused(400, "No file was sent: the form field is called 'file'.")
        if not part.filename:
            raise Refused(400, "No file was chosen.")
        return folder.add(part.filename, part.stream)

    @app.get("/")
    def show() -> tuple[str, int]:
        return page()

    @app.post("/")
    def upload_from_page() -> Response | tuple[str, int]:
        try:
            upload()
        except Refused as refused:
            return page(refused.detail, refused.status)
        return redirect("/", code=303)

    @app.get("/api/files")
    def list_files() -> Response:
        return jsonify(files=[found.as_json() for found in folder.files()])

    @app.post("/api/files")
    def upload_file() -> tuple[Response, int, dict[str, str]] | tuple[Response, int]:
        try:
            stored = upload()
        except Refused as refused:
            return jsonify(detail=refused.detail), refused.status
        return jsonify(stored.as_json()), 201, {"Location": stored.url}

    @app.get("/files/<name>")
    def fetch_file(name: str) -> Response | tuple[Response, int]:
        found = folder.find(name)
        if found is None:
            return jsonify(detail="No such file."), 404
        # conditional=True: Range gives 206 with Content-Range, a range outside the file 416.
        return send_file(folder.path / found.name, mimetype=found.type,
                         conditional=True)

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(
        error: RequestEntityTooLarge,
    ) -> RequestEntityTooLarge | tuple[str, int] | tuple[Response, int]:
        # Flask raises it before the view runs, when the request is larger than the file may be.
        if request.path == "/" and request.method == "POST":
            return page(folder.too_big(), 413)
        if request.path.startswith("/api/"):
            return jsonify(detail=folder.too_big()), 413
        return error

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response | HTTPException:
        return _json_error(error) if request.path.startswith("/api/") else error

    return app


def _json_error(error: HTTPException) -> Response:
    answer = jsonify(detail=error.description)
    answer.status_code = error.code or 500
    return answer


# ---------------------------------------------------------------------------------------------
# Serving.


def make(app: Flask, host: str, port: int) -> BaseWSGIServer:
    """Bind a threaded werkzeug server for `app` on host:port; OSError if the port is taken."""
    # werkzeug prints two lines and calls sys.exit itself when it cannot bind, so we bind.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.create_server((host, port), family=family) as sock:
        return make_server(host, port, app, threaded=True, fd=sock.fileno())


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def serve(server: BaseWSGIServer) -> int:
    """Serve until Ctrl+C or SIGTERM, then close the socket and return 0."""
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    host, port = server.server_address[:2]
    print(f"audio: serving on http://{host}:{port}/ (Ctrl+C to stop)", file=sys.stderr,
          flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()  # werkzeug's catches KeyboardInterrupt and closes the socket
    print("audio: stopped", file=sys.stderr, flush=True)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command line: --host, --port, --folder, --max-mb and --quiet."""
    parser = argparse.ArgumentParser(description="Audio files manager (Flask).")
    parser.add_argument("--host", default=DEFAULT_HOST, help="address to listen on (%(default)s)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (%(default)s)")
    parser.add_argument("--folder", type=Path, default=DEFAULT_FOLDER,
                        help="where the files are kept (%(default)s)")
    parser.add_argument("--max-mb", type=float, default=20.0,
                        help="largest file taken, in MiB (%(default)s)")
    parser.add_argument("--quiet", action="store_true", help="do not log each request")
    return parser


def config_from(args: argparse.Namespace) -> AudioConfig:
    """The configuration the parsed command line asks for."""
    return AudioConfig(folder=args.folder, max_bytes=int(args.max_mb * 2**20), host=args.host,
                       port=args.port, quiet=args.quiet)


def main(argv: list[str] | None = None) -> int:
    """Start the server from the command line."""
    config = config_from(build_parser().parse_args(argv))
    # werkzeug logs each request on its logger at INFO, adding a handler if there is none.
    logging.getLogger("werkzeug").setLevel(logging.WARNING if config.quiet else logging.INFO)
    try:
        app = create_app(config)
    except OSError as exc:
        print(f"audio: cannot use the folder {config.folder}: {exc.strerror}", file=sys.stderr)
        return 1
    try:
        server = make(app, config.host, config.port)
    except OSError as exc:
        print(f"audio: cannot listen on {config.host}:{config.port}: {exc.strerror}",
              file=sys.stderr)
        return 1
    return serve(server)


if __name__ == "__main__":
    sys.exit(main())
