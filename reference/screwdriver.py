"""The reference screwdriver client: upload a local sound file to the audio server, or list the
files it holds (assignment seed 001 "Flask", over the JSON API of openapi/audio.yaml).

Run it as `python screwdriver.py [--server URL] COMMAND ...`:
    upload PATH     send the file at PATH (POST /api/files, multipart field `file`); print the
                    name the server stored it under
    list            print the name of every file on the server, one per line (GET /api/files)

Rules, as openapi/screwdriver.requirements.yaml states them:
- The server is http://127.0.0.1:8888 unless --server names another. Every request has a
  timeout (30 s: an upload may be large).
- stdout holds the answer alone (the stored name; the names, one a line), so a script can read
  it; every message goes to stderr, one line `screwdriver: error: ...`, never a traceback.
- Exit statuses: 0 done; 1 the server cannot be reached or answers something the protocol does
  not allow; 2 a bad command line, or a local file that cannot be read (then nothing is sent);
  3 not audio (415, "Non-audio file detected"); 4 a file of that name is already stored (409);
  5 the file is too large for the server (413); 130 Ctrl+C.
"""

from __future__ import annotations

import argparse
import mimetypes
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

try:
    import httpx
except KeyboardInterrupt:  # Ctrl+C while httpx loads (a tenth of a second) ends quietly too
    sys.stderr.write("screwdriver: interrupted\n")
    raise SystemExit(130) from None

PROG = "screwdriver"
DEFAULT_SERVER = "http://127.0.0.1:8888"
FILES_PATH = "/api/files"
FIELD = "file"
REQUEST_TIMEOUT = 30.0
NON_AUDIO = "Non-audio file detected"
# The assignment's subcommands; a variant of this client (fixtures/screwdriver) may rename one.
SUBCOMMANDS = ("upload", "list")
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_NOT_AUDIO, EXIT_DUPLICATE, EXIT_TOO_LARGE = 0, 1, 2, 3, 4, 5
EXIT_INTERRUPTED = 130


class ScrewdriverError(Exception):
    """Something the user must be told in one line, and the exit status it ends with."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def excerpt(data: bytes | str, limit: int = 80) -> str:
    """The start of a body, on one line, for an error message."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    text = " ".join(text.split())
    return repr(text if len(text) <= limit else text[:limit] + "...")


class AudioClient:
    """Talks to one audio server over an open httpx.Client. Each step is a method, so a variant
    (see fixtures/screwdriver) can change one and keep the rest."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http

    def send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request; every transport problem becomes a one-line ScrewdriverError."""
        where = str(self.http.base_url).rstrip("/") + path
        try:
            return self.http.request(method, path, **kwargs)
        except httpx.ConnectError:
            raise ScrewdriverError(f"cannot connect to the audio server at {where} "
                                   f"(is it running?)") from None
        except httpx.TimeoutException:
            raise ScrewdriverError(f"the audio server did not answer {method} {where} within "
                                   f"{REQUEST_TIMEOUT:g} s") from None
        except httpx.HTTPError as exc:
            raise ScrewdriverError(f"{method} {where} failed: "
                                   f"{exc or type(exc).__name__}") from None

    @staticmethod
    def json_object(response: httpx.Response) -> dict[str, Any]:
        """The answer's JSON object, or ScrewdriverError saying what came instead."""
        what = f"{response.request.method} {response.request.url.path}"
        try:
            body = response.json()
        except ValueError:
            raise ScrewdriverError(f"{what} answered {response.status_code} with something "
                                   f"that is not JSON: {excerpt(response.content)}") from None
        if not isinstance(body, dict):
            raise ScrewdriverError(f"{what} answered {response.status_code} with JSON that is "
                                   f"not an object: {excerpt(response.text)}")
        return body

    @classmethod
    def detail(cls, response: httpx.Response) -> str:
        """The server's own explanation of a refusal (its `detail`), else the body's start."""
        try:
            detail = response.json().get("detail")
        except (ValueError, AttributeError):
            detail = None
        return detail if isinstance(detail, str) and detail else excerpt(response.content)

    @staticmethod
    def unexpected(response: httpx.Response) -> ScrewdriverError:
        """The error for an answer the protocol does not allow there."""
        return ScrewdriverError(f"{response.request.method} {response.request.url.path} "
                                f"answered {response.status_code} {response.reason_phrase}: "
                                f"{excerpt(response.content)}")

    def upload(self, name: str, content: bytes) -> str:
        """Store `content` under `name`; the name the server stored it under."""
        # The type is a hint only (the server judges the content): the name's, else generic.
        kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
        response = self.send("POST", FILES_PATH, files={FIELD: (name, content, kind)})
        if response.status_code == 415:
            raise ScrewdriverError(f"the server refused {name}: {self.detail(response)}",
                                   EXIT_NOT_AUDIO)
        if response.status_code == 409:
            raise ScrewdriverError(f"the server refused {name}: a file of that name is already "
                                   f"stored ({self.detail(response)})", EXIT_DUPLICATE)
        if response.status_code == 413:
            raise ScrewdriverError(f"the server refused {name}: the file is too large "
                                   f"({len(content)} bytes; {self.detail(response)})",
                                   EXIT_TOO_LARGE)
        if response.status_code == 400:
            raise ScrewdriverError(f"the server refused {name} (400): {self.detail(response)}")
        if response.status_code not in (200, 201):
            raise self.unexpected(response)
        stored = self.json_object(response).get("name")
        if not isinstance(stored, str) or not stored:
            raise ScrewdriverError(f"POST {FILES_PATH} answered a file without a name: "
                                   f"{excerpt(response.text)}")
        return stored

    def names(self) -> list[str]:
        """The names of the files the server holds, in its order."""
        response = self.send("GET", FILES_PATH)
        if response.status_code != 200:
            raise self.unexpected(response)
        files = self.json_object(response).get("files")
        if not isinstance(files, list):
            raise ScrewdriverError(f"GET {FILES_PATH} answered no list of files: "
                                   f"{excerpt(response.text)}")
        names = [f.get("name") if isinstance(f, dict) else None for f in files]
        if not all(isinstance(n, str) and n for n in names):
            raise ScrewdriverError(f"GET {FILES_PATH} answered a file without a name: "
                                   f"{excerpt(response.text)}")
        return [str(n) for n in names]

    def name_lines(self, names: list[str]) -> list[str]:
        """The stdout lines that show the names."""
        return names

    def stored_line(self, stored: str) -> str:
        """The stdout line that shows an uploaded file's stored name."""
        return stored


def emit(line: str) -> None:
    """Print one answer line on stdout."""
    try:
        print(line, flush=True)
    except UnicodeEncodeError:
        raise ScrewdriverError("cannot print a name in this output's encoding (set "
                               "PYTHONIOENCODING=utf-8)") from None


def read_local(path: str) -> tuple[str, bytes]:
    """The file's name and bytes; ScrewdriverError (status 2) when it cannot be read."""
    try:
        content = Path(path).read_bytes()
    except IsADirectoryError:
        raise ScrewdriverError(f"{path} is a folder, not a file", EXIT_USAGE) from None
    except FileNotFoundError:
        raise ScrewdriverError(f"no such file: {path}", EXIT_USAGE) from None
    except OSError as exc:
        raise ScrewdriverError(f"cannot read {path}: {exc.strerror or exc}", EXIT_USAGE) from None
    return os.path.basename(path), content


def run_upload(client: AudioClient, args: argparse.Namespace) -> int:
    """`upload PATH`: read the file first (nothing is sent if it cannot be), send it, print the
    stored name."""
    name, content = read_local(args.path)
    emit(client.stored_line(client.upload(name, content)))
    return EXIT_OK


def run_list(client: AudioClient, args: argparse.Namespace) -> int:
    """`list`: print every name, one per line."""
    for line in client.name_lines(client.names()):
        emit(line)
    return EXIT_OK


def _server_url(text: str) -> str:
    try:
        url = httpx.URL(text)
    except httpx.InvalidURL:
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.host:
        raise argparse.ArgumentTypeError(f"not an http(s) URL: {text!r}")
    return text.rstrip("/")


def build_parser(names: Sequence[str] = SUBCOMMANDS) -> argparse.ArgumentParser:
    """The command line; `names` are the subcommands upload and list (the assignment's, unless
    a variant renames one)."""
    parser = argparse.ArgumentParser(
        prog=f"{PROG}.py",
        description="Client of the audio server: upload a sound file, or list the stored ones.",
        epilog="Exit statuses: 0 done, 1 server unreachable or answering wrongly, 2 bad command "
               "line or unreadable file, 3 not audio, 4 name already stored, 5 too large, "
               "130 Ctrl+C.",
    )
    parser.add_argument("--server", type=_server_url, default=DEFAULT_SERVER, metavar="URL",
                        help="the audio server (default: %(default)s)")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    upload_name, list_name = names
    upload = commands.add_parser(upload_name, help="upload a sound file; print its stored name",
                                 description="Upload a sound file; print its stored name.")
    upload.add_argument("path", metavar="PATH", help="the local file (mp3, ogg, wav, flac...)")
    upload.set_defaults(handler=run_upload)
    listing = commands.add_parser(list_name, help="print the names of the stored files",
                                  description="Print the names of the stored files, one a line.")
    listing.set_defaults(handler=run_list)
    return parser


Handler = Callable[[AudioClient, argparse.Namespace], int]


def main(argv: Sequence[str] | None = None, client_class: type[AudioClient] = AudioClient,
         names: Sequence[str] = SUBCOMMANDS) -> int:
    """Parse the command line and run the command; the exit status."""
    try:
        args = build_parser(names).parse_args(argv)
        # trust_env=False: the server is a known address (loopback by default), and a proxy
        # from the environment would only stand between this client and it.
        with httpx.Client(base_url=args.server, timeout=REQUEST_TIMEOUT, trust_env=False,
                          verify=args.server.startswith("https:")) as http:
            handler: Handler = args.handler
            return handler(client_class(http), args)
    except ScrewdriverError as exc:
        print(f"{PROG}: error: {exc.message}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # stdout's reader went away (`... | head`): nothing more to say, and nowhere to say it;
        # stdout goes to /dev/null so that Python's final flush does not complain either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
