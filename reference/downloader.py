"""The reference `downloader.py`: download every image a CSV lists into a folder, asynchronously,
at most N at a time, with progress and every failure reported (seed 002's image downloader).

Run it as `python downloader.py CSV FOLDER [N] [--timeout SECONDS] [--quiet]`. Rules, as
openapi/downloader.requirements.yaml states them:
- the CSV: one URL a line, or rows whose first http(s) URL field is the URL (`id,url` and the
  like); blank lines and `#` comments are skipped, and so is a first row without a URL (a
  header); any later row without one is skipped with a warning naming its line; a URL listed
  twice is downloaded once (a warning names both lines).
- FOLDER is created with its parents. N (default 20) must be an integer >= 1; 0, negative or not
  a number is a usage error (exit 2), and so is a CSV that cannot be read.
- at most N downloads are in flight at once (a semaphore; one ClientSession whose connector has
  no limit of its own, so the semaphore is the one bound) and, with N > 1, more than one.
  https is verified against the system's CAs, or the file SSL_CERT_FILE names; redirects are
  followed (aiohttp's default, at most 10).
- a file's name is the last segment of the URL's path, percent-decoded and made safe (no `/`,
  `\\`, NUL or control characters, no leading dot, so never `..`; at most 200 bytes; a name
  ending `.part` gets `_` added); the query never counts. A URL without a last segment (`/`,
  `/dir/`) is named `image` + the extension of its Content-Type (else of what its bytes are).
  Names are decided before any download, in CSV order: a name already planned (compared without
  case) makes the later one `NAME-2.EXT`, `-3`...; `image` of a URL without a segment counts as
  taken by any planned `image.*`. So runs are repeatable.
- the body is streamed in CHUNK-sized pieces to `NAME.part`, renamed to NAME (os.replace) only
  when all of it came (as many bytes as Content-Length says, when it says); the first bytes
  must be an image by their magic bytes (puremagic: JPEG, PNG, GIF, WebP, BMP, TIFF, ICO,
  AVIF/HEIF...). Any failure (HTTP status >= 400, connection errors, a body cut short, no byte
  for --timeout seconds, not an image) is reported and removes the `.part`; none stops the rest.
  Memory is O(N x CHUNK): no body is ever held whole.
- a file already under its name in FOLDER is never overwritten: it is counted "already there".
  A `NAME.part` left by an interrupted run (Ctrl+C leaves it; a failure does not; `image.part`
  for a URL without a segment) is resumed with `Range: bytes=SIZE-`: a 206 whose Content-Range
  starts at SIZE is appended, a 200 (Range ignored) restarts the file from zero; any other 206,
  or a 416, restarts without Range.
- progress: on a terminal, a rich progress bar on stderr (failures still printed as lines);
  otherwise one line per URL on stderr, `[k/n] ok URL -> NAME (BYTES bytes)`, `[k/n] failed URL:
  REASON` or `[k/n] already there URL -> NAME (BYTES bytes)`; `--quiet` keeps only failures. At
  the end, on stdout: `downloaded X of N images into FOLDER (Y failed, Z already there)`.
Exit status: 0 when every listed image is in the folder, 1 when any failed, 2 for usage errors,
130 on Ctrl+C.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import errno
import mimetypes
import os
import re
import ssl
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Literal
from urllib.parse import unquote, urlsplit

import aiohttp
import puremagic
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

LIMIT_DEFAULT = 20
CHUNK = 65536
TIMEOUT_DEFAULT = 30.0
SNIFF = 512  # bytes looked at to tell an image by its magic bytes
NAME_BYTES = 200
PART = ".part"
NO_SEGMENT = "image"  # the name (stem) of a URL whose path has no last segment

# Extensions for the image types aiohttp reports; mimetypes knows most, not all (AVIF, HEIC).
_EXTENSIONS = {
    "image/jpeg": ".jpg", "image/pjpeg": ".jpg", "image/png": ".png", "image/gif": ".gif",
    "image/webp": ".webp", "image/bmp": ".bmp", "image/x-ms-bmp": ".bmp",
    "image/tiff": ".tif", "image/x-icon": ".ico", "image/vnd.microsoft.icon": ".ico",
    "image/avif": ".avif", "image/heic": ".heic", "image/heif": ".heif",
    "image/svg+xml": ".svg",
}
_UNSAFE = re.compile(r"[/\\\x00-\x1f\x7f]")
_CONTENT_RANGE = re.compile(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Job:
    """One URL to download and the name planned for it. `typed`: the URL has no last segment,
    so `name` is a stem and the answer's Content-Type gives the extension."""

    url: str
    name: str
    typed: bool = False


@dataclass(frozen=True)
class Result:
    """How one job ended: `ok` (saved now), `present` (already in the folder) or `failed`
    (`reason` says why); `name` is the file's name ('' when none was decided), `size` its bytes."""

    url: str
    outcome: Literal["ok", "present", "failed"]
    name: str = ""
    size: int = 0
    reason: str = ""


class Failure(Exception):
    """A download failed for a reason already put in words (the exception's message)."""


# --- the list and the names -------------------------------------------------------------------

def _is_http_url(text: str) -> bool:
    parts = urlsplit(text)
    return parts.scheme.lower() in ("http", "https") and bool(parts.netloc)


def read_csv(path: str | os.PathLike[str]) -> tuple[list[str], list[str]]:
    """The URLs the CSV at `path` lists, in order and each once, and warnings about the rows
    skipped. OSError and UnicodeDecodeError come through: the caller makes them usage errors."""
    urls: list[str] = []
    warnings: list[str] = []
    first_line: dict[str, int] = {}
    header_possible = True
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        for row in reader:
            line = reader.line_num
            fields = [field.strip() for field in row]
            if not any(fields) or fields[0].startswith("#"):
                continue
            url = next((field for field in fields if _is_http_url(field)), None)
            if url is None:
                if not header_possible:
                    warnings.append(f"line {line}: no http(s) URL, skipped")
                header_possible = False
                continue
            header_possible = False
            if url in first_line:
                warnings.append(f"line {line}: {url} already listed on line {first_line[url]}, "
                                "downloaded once")
                continue
            first_line[url] = line
            urls.append(url)
    return urls, warnings


def _fit(stem: str, ext: str) -> str:
    """stem + ext in at most NAME_BYTES bytes of UTF-8, cutting the stem (never mid-character)."""
    room = NAME_BYTES - len(ext.encode())
    if room < 1:  # an absurd "extension": cut the whole name instead
        stem, ext, room = stem + ext, "", NAME_BYTES
    return stem.encode()[:room].decode(errors="ignore") + ext


def _split(name: str) -> tuple[str, str]:
    """(stem, extension with its dot); a name without a dot has extension ''."""
    stem, dot, ext = name.rpartition(".")
    return (stem, dot + ext) if dot and stem else (name, "")


def safe_name(url: str) -> str:
    """The file name for `url`: its path's last segment, percent-decoded and made safe; '' when
    the path has no last segment (or nothing of it is left)."""
    segment = urlsplit(url).path.rsplit("/", 1)[-1]
    name = _UNSAFE.sub("_", unquote(segment)).strip().lstrip(".")
    if name.lower().endswith(PART):
        name += "_"  # never mistaken for a download in progress
    return _fit(*_split(name)) if name else ""


def plan_names(urls: Iterable[str], folder: str | os.PathLike[str]) -> list[Job]:
    """A job for each URL, its name decided in order: a name taken (case aside) by an earlier
    URL is numbered `-2`, `-3`... before the extension. `folder` is where the files will be;
    a file already there keeps its name (it is "already there"), so it does not count here."""
    del folder  # names depend on the list alone, so that a run is repeatable
    taken: set[str] = set()   # planned names, case-folded
    stems: set[str] = set()   # their stems: a typed job's name is stem + an extension unknown yet
    typed_stems: set[str] = set()
    jobs: list[Job] = []
    for url in urls:
        name = safe_name(url)
        typed = not name
        stem, ext = (NO_SEGMENT, "") if typed else _split(name)
        number = 1
        while True:
            candidate = _fit(stem if number == 1 else f"{stem}-{number}", ext)
            key = candidate.casefold()
            cstem = _split(candidate)[0].casefold() if not typed else key
            clash = (key in stems or key in typed_stems) if typed else (
                key in taken or cstem in typed_stems)
            if not clash:
                break
            number += 1
        if typed:
            typed_stems.add(key)
        else:
            taken.add(key)
            stems.add(cstem)
        jobs.append(Job(url, candidate, typed))
    return jobs


# --- one download -----------------------------------------------------------------------------

# The types nearly every image on the web is, known by their first bytes at once; puremagic,
# which tries every signature it knows (0.5 ms an image), only for the rest.
_COMMON = ((b"\xff\xd8\xff", "image/jpeg"), (b"\x89PNG\r\n\x1a\n", "image/png"),
           (b"GIF87a", "image/gif"), (b"GIF89a", "image/gif"))


def is_image(first_bytes: bytes) -> str | None:
    """The image type (a MIME type such as 'image/png') the bytes start with, or None."""
    if not first_bytes:
        return None
    for signature, mime in _COMMON:
        if first_bytes.startswith(signature):
            return mime
    if first_bytes[:4] == b"RIFF" and first_bytes[8:12] == b"WEBP":
        return "image/webp"
    try:
        matches = puremagic.magic_string(first_bytes)
    except (puremagic.PureError, ValueError):
        return None
    for match in matches:
        if match.mime_type.startswith("image/"):
            return str(match.mime_type)
    return None


def _extension(mime: str | None) -> str:
    if not mime:
        return ""
    mime = mime.lower()
    if mime in _EXTENSIONS:
        return _EXTENSIONS[mime]
    return (mimetypes.guess_extension(mime) or "") if mime.startswith("image/") else ""


def _reason(exc: BaseException, timeout: float) -> str:
    """A short reason for a failed download."""
    if isinstance(exc, Failure):
        return str(exc)
    if isinstance(exc, TimeoutError):
        return f"timed out after {timeout:g} s"
    if isinstance(exc, aiohttp.TooManyRedirects):
        return "too many redirects"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "name not resolved"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        why = getattr(exc.certificate_error, "verify_message", None) or exc.certificate_error
        return f"TLS certificate not accepted: {why}"
    if isinstance(exc, aiohttp.ClientSSLError):
        return "TLS error"
    if isinstance(exc, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
        return "not a valid http(s) URL"
    seen: BaseException | None = exc
    while seen is not None:  # what a ClientError wraps says most: reset, refused...
        if isinstance(seen, ConnectionResetError):
            return "connection reset"
        if isinstance(seen, ConnectionRefusedError):
            return "connection refused"
        if isinstance(seen, OSError) and seen.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
            return "host unreachable"
        seen = seen.__cause__ or seen.__context__
    if isinstance(exc, aiohttp.ClientPayloadError) and "ConnectionResetError" in str(exc):
        return "connection reset"  # aiohttp names the reset in the message only, not chained
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "server disconnected"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "body cut short"
    if isinstance(exc, aiohttp.ClientError):
        return f"connection error ({type(exc).__name__})"
    if isinstance(exc, OSError):
        return f"cannot write the file: {exc.strerror or exc}"
    return f"{type(exc).__name__}: {exc}"


def _resume_start(response: aiohttp.ClientResponse) -> int | None:
    """Where a 206's Content-Range starts, or None when it has none we understand."""
    found = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
    return int(found.group(1)) if found else None


async def _request(session: aiohttp.ClientSession, url: str,
                   offset: int) -> tuple[aiohttp.ClientResponse, int]:
    """GET `url`, asking for the bytes from `offset` on when it is not 0; the response (its body
    not read yet) and where its body starts in the file: `offset` for a 206 that starts there,
    else 0 (a 200: the server ignored Range; a 416 or another range: asked again without)."""
    if offset:
        response = await session.get(url, headers={"Range": f"bytes={offset}-",
                                                   "Accept-Encoding": "identity"})
        if response.status == 206 and _resume_start(response) == offset:
            return response, offset
        if response.status not in (206, 416):
            return _whole(response), 0
        response.release()
    return _whole(await session.get(url)), 0


def _whole(response: aiohttp.ClientResponse) -> aiohttp.ClientResponse:
    """The response when it is a 200, else a Failure (and the connection released)."""
    if response.status != 200:
        response.release()
        raise Failure(f"HTTP {response.status}" if response.status >= 400 else
                      f"unexpected HTTP {response.status}")
    return response


async def _save(response: aiohttp.ClientResponse, job: Job, folder: Path, part: Path,
                offset: int, timeout: float) -> Result:
    """Stream the body to `part` (appended at `offset`, else from zero) once its first bytes
    show an image, then rename it to the job's name; a Failure when the body is cut short."""
    expected = response.content_length
    if response.headers.get("Content-Encoding", "identity").lower() != "identity":
        expected = None  # Content-Length counts the encoded bytes; aiohttp checks those itself
    body = response.content
    received = 0
    try:
        first = b""
        while len(first) < SNIFF and (more := await body.read(SNIFF - len(first))):
            first += more
            received += len(more)
        start = b""
        if offset:
            with open(part, "rb") as old:
                start = old.read(SNIFF)  # a resumed file is told by its own first bytes
        kind = is_image((start + first)[:SNIFF])
        if kind is None:
            raise Failure(f"not an image ({response.content_type})")
        name = job.name
        if job.typed:
            ctype = response.content_type
            name += _extension(ctype if ctype.startswith("image/") else kind)
            if (folder / name).exists():
                return Result(job.url, "present", name, (folder / name).stat().st_size)
        with open(part, "ab" if offset else "wb") as sink:
            sink.write(first)
            async for chunk in body.iter_chunked(CHUNK):
                received += len(chunk)
                sink.write(chunk)
    except aiohttp.ClientPayloadError as exc:
        if expected is not None and received < expected and \
                _reason(exc, timeout) == "body cut short":
            raise Failure(f"body cut short: {offset + received} of {offset + expected} "
                          "bytes") from exc
        raise
    if expected is not None and received != expected:
        raise Failure(f"body cut short: {offset + received} of {offset + expected} bytes")
    size = part.stat().st_size
    os.replace(part, folder / name)
    return Result(job.url, "ok", name, size)


async def fetch(session: aiohttp.ClientSession, job: Job, folder: Path, timeout: float) -> Result:
    """Download one job into `folder`: stream the body to NAME.part (resuming one left there),
    check it is an image, rename it to NAME. Every failure becomes a `failed` Result and removes
    the .part; cancellation (Ctrl+C) leaves it, for a later run to resume."""
    final = folder / job.name
    if not job.typed and final.exists():
        return Result(job.url, "present", job.name, final.stat().st_size)
    # A typed job's .part is its stem's (`image.part`): its extension is not known yet.
    part = folder / (job.name + PART)
    try:
        offset = part.stat().st_size if part.is_file() else 0
        response, offset = await _request(session, job.url, offset)
        async with response:
            return await _save(response, job, folder, part, offset, timeout)
    except Exception as exc:  # one failure never stops the rest: it becomes a Result
        part.unlink(missing_ok=True)
        return Result(job.url, "failed", "" if job.typed else job.name, 0, _reason(exc, timeout))


# --- all of them ------------------------------------------------------------------------------

def _ssl_context() -> ssl.SSLContext:
    """The system's CAs, or those in the file SSL_CERT_FILE names."""
    return ssl.create_default_context(cafile=os.environ.get("SSL_CERT_FILE") or None)


async def download_all(jobs: list[Job], folder: Path, limit: int, timeout: float, *,
                       on_done: Callable[[Result], None] | None = None) -> list[Result]:
    """Download every job into `folder`, at most `limit` at once; the results in job order.
    `on_done` is called with each result as it comes (the progress display)."""
    semaphore = asyncio.Semaphore(limit)
    # limit=0: the connector sets no bound of its own, so the semaphore is the one that counts.
    connector = aiohttp.TCPConnector(limit=0, ssl=_ssl_context())
    timeouts = aiohttp.ClientTimeout(total=None, connect=timeout, sock_connect=timeout,
                                     sock_read=timeout)

    async with aiohttp.ClientSession(connector=connector, timeout=timeouts) as session:
        async def one(job: Job) -> Result:
            async with semaphore:
                result = await fetch(session, job, folder, timeout)
            if on_done is not None:
                on_done(result)
            return result

        return list(await asyncio.gather(*(one(job) for job in jobs)))


# --- progress and the command line ------------------------------------------------------------

class Reporter:
    """Progress on stderr: a rich bar on a terminal, else a line per finished URL."""

    def __init__(self, total: int, quiet: bool, stream: IO[str] | None = None) -> None:
        self.total = total
        self.quiet = quiet
        self.stream = stream if stream is not None else sys.stderr
        self.count = 0
        self.bytes = 0
        self.progress: Progress | None = None
        if not quiet and self.stream.isatty():
            self.progress = Progress(
                TextColumn("downloading"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[mb]:.1f} MB"), TimeElapsedColumn(),
                console=Console(file=self.stream), transient=False)
            self.task = self.progress.add_task("", total=total, mb=0.0)

    def __enter__(self) -> Reporter:
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self.progress is not None:
            self.progress.stop()

    def line(self, text: str) -> None:
        """One line on stderr, above the bar when there is one."""
        if self.progress is not None:
            self.progress.console.print(text, markup=False, highlight=False)
        else:
            print(text, file=self.stream, flush=True)

    def done(self, result: Result) -> None:
        """One URL has finished."""
        self.count += 1
        self.bytes += result.size if result.outcome == "ok" else 0
        where = f"[{self.count}/{self.total}]"
        if result.outcome == "failed":
            self.line(f"{where} failed {result.url}: {result.reason}")
        elif self.progress is None and not self.quiet:
            verb = "ok" if result.outcome == "ok" else "already there"
            self.line(f"{where} {verb} {result.url} -> {result.name} ({result.size} bytes)")
        if self.progress is not None:
            self.progress.update(self.task, advance=1, mb=self.bytes / 1e6)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="downloader.py", description="Download the images a CSV lists into a folder, "
        "at most N at a time.")
    parser.add_argument("csv", metavar="CSV", help="a file of image URLs (one a line, or the "
                        "first http(s) URL field of each row)")
    parser.add_argument("folder", metavar="FOLDER", help="where the images go (created)")
    parser.add_argument("n", metavar="N", nargs="?", type=_positive_int, default=LIMIT_DEFAULT,
                        help=f"downloads at once (default {LIMIT_DEFAULT})")
    parser.add_argument("--timeout", metavar="SECONDS", type=_positive_float,
                        default=TIMEOUT_DEFAULT, help="fail a download that gets no byte for "
                        f"that long (default {TIMEOUT_DEFAULT:g})")
    parser.add_argument("--quiet", action="store_true", help="print failures only")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the downloader; the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        urls, warnings = read_csv(args.csv)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        parser.error(f"cannot read the CSV {args.csv}: {why}")
    folder = Path(args.folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _ssl_context()  # a bad SSL_CERT_FILE is a usage error, not a failure per URL
    except (OSError, ssl.SSLError) as exc:
        parser.error(str(exc))
    for warning in warnings:
        print(f"{args.csv}: {warning}", file=sys.stderr)
    jobs = plan_names(urls, folder)
    try:
        with Reporter(len(jobs), args.quiet) as reporter:
            results = asyncio.run(download_all(jobs, folder, args.n, args.timeout,
                                               on_done=reporter.done))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    ok = sum(r.outcome == "ok" for r in results)
    failed = sum(r.outcome == "failed" for r in results)
    present = sum(r.outcome == "present" for r in results)
    print(f"downloaded {ok} of {len(results)} images into {args.folder} "
          f"({failed} failed, {present} already there)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
