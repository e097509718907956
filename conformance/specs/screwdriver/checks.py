"""Checks of the `screwdriver` spec (openapi/screwdriver.requirements.yaml) against any client
of the audio server.

The suite plays the server with our reference (reference/audio.py, a Flask app), run in-process
(_live_audio.py) on the port where the client expects its server. Every run of the
client gets a server of its own, storing into a fresh temporary folder, so no run sees another's
files; where a run needs files on the server the suite uploads them first, over HTTP. What the
client sent is judged by the files the server then holds (name and bytes) and by the requests it
recorded; for the error cases the suite plays servers that answer garbage, or none at all.

The files the client is given are made here, not read from the repository: WAV tones written
with the `wave` module and a few bytes of JPEG. Every run is memoized for the suite run, so the
client runs fourteen times at most. A run may take 3 x --timeout seconds (15 by default), one that
must fail fast 2 x --timeout; a client still running then is stopped (Ctrl+C, then SIGKILL) and
fails the check with that reason, and one that crashes fails with the end of its output. Proxy
settings are removed from the client's environment, since its server is on this machine.
"""

from __future__ import annotations

import array
import math
import re
import shlex
import shutil
import sys
import tempfile
import unicodedata
import wave
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path

import pytest

from conformance._checks import NotRun, raise_all, requirement
from conformance._client_run import (
    TRACEBACK,
    ClientRun,
    client_env,
    expect_clean_failure,
    found_note,
    nonblank,
    tail,
    unreached_hint,
)
from conformance._options import RunOptions
from conformance._servers import HOST, App, InProcessServer, Seen, canned_app
from conformance._target import ProgramTarget, is_listening
from conformance.specs.screwdriver import Options
from conformance.specs.screwdriver._live_audio import FIELD, FILES_PATH, LiveAudio
from reference import audio

DEFAULT_PORT = 8888
ASCII_NAME = "tone.wav"
UNICODE_NAME = "мелодия.wav"  # uploaded by the client (SCR-08)
LISTED = ("alpha.wav", "beta-2.wav", "song_3.wav", "песня.wav")  # on the server for `list`
ASCII_LISTED = LISTED[:3]
UNICODE_LISTED = LISTED[3]
DUPLICATE = LISTED[0]
NON_AUDIO_NAME = "picture.jpg"
MISSING_NAME = "no-such-song.wav"
LARGE_NAME = "long.wav"
SMALL_LIMIT = 64 * 1024  # bytes the server takes where a file must be too large (SCR-11)
NON_AUDIO_MESSAGE = "Non-audio file detected"
REFUSAL = re.compile(r"refus|reject|non-audio|not (an )?audio|error|fail|\b415\b", re.IGNORECASE)
MAX_USAGE_LINES = 10  # a usage message may wrap (SCR-16)
# A JPEG's first bytes (SOI, a JFIF APP0 segment) and its end: an image by content.
JPEG = (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
        + bytes(range(256)) * 2 + b"\xff\xd9")


def tone(seconds: float, pitch: float) -> bytes:
    """A mono 16-bit 8 kHz WAV of a sine tone: valid audio, its bytes set by `pitch`."""
    rate = 8000
    samples = array.array("h", (int(12000 * math.sin(2 * math.pi * pitch * i / rate))
                                for i in range(int(rate * seconds))))
    if sys.byteorder == "big":  # WAV samples are little-endian
        samples.byteswap()
    buffer = BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())
    return buffer.getvalue()


def nfc(text: str) -> str:
    """`text` in Unicode's composed form, as the server stores names."""
    return unicodedata.normalize("NFC", text)


def server_command(port: int, max_bytes: int | None = None) -> str:
    """How to start our reference server as a run had it, for a reproducer."""
    path = Path(audio.__file__).resolve()
    with suppress(ValueError):
        path = path.relative_to(Path.cwd())
    words = ["python", str(path), "--port", str(port), "--folder", "FOLDER"]
    if max_bytes is not None:
        words += ["--max-mb", f"{max_bytes / 2**20:g}"]
    return shlex.join(words) + "  # FOLDER: a new, empty folder"


def curl_upload(port: int, name: str) -> str:
    """The curl line that uploads a file, for a reproducer."""
    return shlex.join(["curl", "-s", "-F", f"{FIELD}=@{name}", f"http://{HOST}:{port}{FILES_PATH}"])


@dataclass
class Observed(ClientRun):
    """One run of the client, and the server's files before and after it."""

    before: dict[str, bytes] = field(default_factory=dict)  # the server's files before the run
    after: dict[str, bytes] = field(default_factory=dict)  # and after it

    @property
    def created(self) -> dict[str, bytes]:
        """The files the run added to the server, or changed there."""
        return {n: b for n, b in self.after.items() if self.before.get(n) != b}

    @property
    def posts(self) -> list[Seen]:
        """The POST requests the run sent."""
        return [r for r in self.requests if r.method == "POST"]


class Runs:
    """Runs the client, each run against a fresh server of its own; each run happens once."""

    def __init__(self, program: ProgramTarget, options: RunOptions[Options], workdir: Path) -> None:
        self.program = program
        self.options = options
        self.workdir = workdir
        self.local = workdir / "local"  # the files the client is given
        self.local.mkdir()
        self.contents = {
            ASCII_NAME: tone(0.1, 440), UNICODE_NAME: tone(0.1, 523),
            NON_AUDIO_NAME: JPEG, LARGE_NAME: tone(2 * SMALL_LIMIT / 16000, 330),
        }
        for name, content in self.contents.items():
            (self.local / name).write_bytes(content)
        # The server's files for `list`, and another file of the first one's name to upload.
        self.listed = {name: tone(0.05, 600 + 100 * i) for i, name in enumerate(LISTED)}
        again = workdir / "again"
        again.mkdir()
        self.again = again / DUPLICATE
        self.again.write_bytes(tone(0.1, 880))
        self._runs: dict[str, Observed] = {}
        self._servers = 0

    @property
    def long(self) -> float:
        """Seconds a run that does its work may take."""
        return 3 * self.options.timeout

    @property
    def short(self) -> float:
        """Seconds a run that should end at once may take."""
        return 2 * self.options.timeout

    def path(self, name: str) -> str:
        """The local path of a file the client is given."""
        return str(self.local / name)

    def described(self, name: str) -> str:
        """A reproducer's line saying what the file given is."""
        size = len(self.contents[name])
        what = "a JPEG picture" if name == NON_AUDIO_NAME else "a WAV tone"
        return f"# {self.path(name)}: {what} of {size} bytes (any such file will do)"

    def get(self, name: str) -> Observed:
        """The run called `name`, made the first time a check asks for it."""
        if name not in self._runs:
            self._runs[name] = getattr(self, "_" + name.replace(" ", "_").replace("-", "_"))()
        return self._runs[name]

    def run(self, server: InProcessServer | None, args: list[str], timeout: float,
            setup: str) -> Observed:
        """Run the client with `args` while `server` (None: nothing) listens."""
        live = server if isinstance(server, LiveAudio) else None
        before = live.stored() if live else {}
        seen = len(server.requests()) if server is not None else 0  # the suite's own uploads
        done = self.program.run(*args, timeout=timeout, env=client_env())
        obs = Observed(args, done, timeout, setup, before=before)
        if server is not None:
            obs.requests = server.requests()[seen:]
        if live:
            obs.after = live.stored()
        return obs

    def served(self, app: InProcessServer, args: list[str], timeout: float,
               setup: str) -> Observed:
        """One run while `app` listens on the client's port; NotRun when it cannot listen."""
        try:
            app.start()
        except OSError as exc:
            raise NotRun(f"the suite could not listen on {HOST}:{app.port} to play the audio "
                         f"server: {exc}") from None
        try:
            return self.run(app, args, timeout, setup)
        finally:
            app.stop()

    def live(self, args: list[str], *, timeout: float, given: str | None = None,
             prepared: dict[str, bytes] | None = None,
             max_bytes: int | None = None) -> Observed:
        """One run against our reference server in a fresh folder, holding `prepared` first."""
        self._servers += 1
        folder = self.workdir / f"server-{self._servers}"
        server = LiveAudio(self.program.port, folder, max_bytes)
        port = self.program.port
        lines = [f"# start our reference audio server: {server_command(port, max_bytes)}"]
        if prepared:
            lines.append("# upload the files it holds (WAV tones; any will do):")
            lines += [curl_upload(port, name) for name in prepared]
        if given:
            lines.append(given)
        try:
            server.start()
        except OSError as exc:
            raise NotRun(f"the suite could not listen on {HOST}:{port} to play the audio "
                         f"server: {exc}") from None
        try:
            for name, content in (prepared or {}).items():
                answer = server.upload(name, content)
                if answer.status_code != 201:
                    raise NotRun(f"our own server refused the file {name!r} the suite "
                                 f"prepared: {answer.status_code} {answer.text[:200]}")
            return self.run(server, args, timeout, "\n".join(lines))
        finally:
            server.stop()

    # the runs ---------------------------------------------------------------------------

    def _upload(self) -> Observed:
        return self.live(["upload", self.path(ASCII_NAME)], timeout=self.long,
                         given=self.described(ASCII_NAME))

    def _unicode(self) -> Observed:
        return self.live(["upload", self.path(UNICODE_NAME)], timeout=self.long,
                         given=self.described(UNICODE_NAME))

    def _non_audio(self) -> Observed:
        return self.live(["upload", self.path(NON_AUDIO_NAME)], timeout=self.long,
                         given=self.described(NON_AUDIO_NAME))

    def _list(self) -> Observed:
        return self.live(["list"], timeout=self.long, prepared=self.listed)

    def _duplicate(self) -> Observed:
        return self.live(["upload", str(self.again)], timeout=self.short,
                         prepared={DUPLICATE: self.listed[DUPLICATE]},
                         given=f"# {self.again}: another WAV tone of the name {DUPLICATE}")

    def _too_large(self) -> Observed:
        return self.live(["upload", self.path(LARGE_NAME)], timeout=self.short,
                         max_bytes=SMALL_LIMIT, given=self.described(LARGE_NAME))

    def _missing(self) -> Observed:
        return self.live(["upload", self.path(MISSING_NAME)], timeout=self.short,
                         given=f"# {self.path(MISSING_NAME)} does not exist")

    def _no_subcommand(self) -> Observed:
        return self.live([], timeout=self.short)

    def _upload_without_path(self) -> Observed:
        return self.live(["upload"], timeout=self.short)

    def _garbage(self, situation: str, answer: Callable[[str, str], tuple[int, bytes, str]],
                 args: list[str]) -> Observed:
        app: App = canned_app(answer)
        server = InProcessServer(self.program.port, app)
        return self.served(server, args, self.short,
                           f"# with a server on {HOST}:{server.port} where {situation}")

    def _garbage_html(self) -> Observed:
        page = b"<!doctype html><title>Welcome</title><p>It works!</p>"
        return self._garbage("every request is answered 200 with an HTML page",
                             lambda m, p: (200, page, "text/html"), ["list"])

    def _garbage_no_names(self) -> Observed:
        body = b'{"files": [{"size": 1234, "type": "audio/wav"}, {"size": 99}]}'
        return self._garbage("the list of files is answered with JSON that has no names",
                             lambda m, p: (200, body, "application/json"), ["list"])

    def _garbage_500(self) -> Observed:
        return self._garbage("every request is answered 500 Internal Server Error",
                             lambda m, p: (500, b"Internal Server Error", "text/plain"),
                             ["upload", self.path(ASCII_NAME)])

    def no_server(self, name: str, args: list[str]) -> Observed:
        """`args` with nothing listening on the client's port."""
        key = f"no server {name}"
        if key not in self._runs:
            port = self.program.port
            if is_listening(HOST, port):
                raise NotRun(f"something listens on {HOST}:{port}, so the client cannot be "
                             f"run with no server there")
            self._runs[key] = self.run(None, args, self.short,
                                       f"# with nothing listening on {HOST}:{port}")
        return self._runs[key]


@pytest.fixture(scope="session")
def runs(program: ProgramTarget, options: RunOptions[Options]) -> Iterator[Runs]:
    """The client's runs of this suite run, with their files in a temporary folder."""
    workdir = Path(tempfile.mkdtemp(prefix="screwdriver-suite-"))
    try:
        yield Runs(program, options, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def on_stderr_only(obs: Observed, text: str) -> str:
    """A hint for a failure about stdout, when `text` is on stderr instead."""
    return "; it is on stderr only, but the answer belongs on stdout" if (
        text in obs.done.stderr and text not in obs.done.stdout) else ""


# MUST ---------------------------------------------------------------------------------------

@requirement("SCR-01")
def test_client_reaches_its_server(runs: Runs, program: ProgramTarget,
                                   note: Callable[[str], None]) -> None:
    """`upload tone.wav` and `list` send at least one request to the server between them."""
    tried = [runs.get("upload"), runs.get("list")]
    if all(obs.refused() for obs in tried):
        raise NotRun(f"the client refused `{tried[0].what}` and `list` as usage errors "
                     f"({tried[0].refused()!r}), so it never tried to reach its server (see "
                     f"SCR-02)")
    if not any(obs.requests for obs in tried):
        hint = unreached_hint(program, DEFAULT_PORT)
        obs = next((o for o in tried if not o.refused()), tried[0])
        raise obs.failure(f"no request reached the audio server at {HOST}:{program.port}"
                          f"{hint}", f"HTTP requests to http://{HOST}:{program.port}")
    note(found_note(program, DEFAULT_PORT))


@requirement("SCR-02")
def test_subcommands_are_the_assignments(runs: Runs, note: Callable[[str], None]) -> None:
    """Neither `upload PATH` nor `list` is refused as a usage error."""
    tried = [runs.get("upload"), runs.get("list")]
    if not any(obs.requests or obs.refused() for obs in tried):
        raise NotRun("neither `upload` nor `list` reached the server or was refused as a "
                     "usage error (see SCR-01), so the subcommands cannot be judged")
    expected = ("`upload PATH` and `list` accepted (the client asks its server, or reports an "
                "error that is not a usage error)")
    raise_all([obs.failure(f"the client refused its command line as a usage error: "
                           f"{obs.refused()!r}", expected)
               for obs in tried if obs.refused()])
    note("upload and list were both accepted")


@requirement("SCR-03")
def test_upload_stores_the_file(runs: Runs) -> None:
    """`upload tone.wav` leaves one new file on the server: tone.wav, with the same bytes."""
    obs = runs.get("upload")
    content = runs.contents[ASCII_NAME]
    expected = f"one new file on the server, {ASCII_NAME!r}, with the {len(content)} bytes given"
    created = obs.created
    if len(created) != 1:
        sent = ""
        if obs.posts:
            first = obs.posts[0]
            body = first.body[:300].decode("utf-8", "replace")
            sent = f"; it sent {first.line}, its body starting {body!r}"
        elif obs.requests:
            sent = "; it sent no POST"
        raise obs.failure(f"{len(created)} new files on the server, expected one{sent}",
                          expected)
    (name, stored), = created.items()
    if name != ASCII_NAME:
        raise obs.failure(f"the server holds the file as {name!r}, expected {ASCII_NAME!r}",
                          expected)
    if stored != content:
        raise obs.failure(f"the file stored has {len(stored)} bytes that differ from the "
                          f"{len(content)} bytes of the local file", expected)


@requirement("SCR-04")
def test_list_prints_every_name(runs: Runs, note: Callable[[str], None]) -> None:
    """`list` with four files on the server: stdout contains each ASCII name."""
    obs = runs.get("list")
    missing = [name for name in ASCII_LISTED if name not in obs.done.stdout]
    if missing:
        where = on_stderr_only(obs, missing[0])
        raise obs.failure(f"stdout lacks {len(missing)} of the {len(ASCII_LISTED)} names "
                          f"({', '.join(missing)}){where}",
                          f"stdout contains each of {', '.join(ASCII_LISTED)}")
    note(f"list: {tail(obs.done.stdout, 120)!r}")


@requirement("SCR-05")
def test_refused_upload_is_not_reported_as_success(runs: Runs,
                                                   note: Callable[[str], None]) -> None:
    """`upload picture.jpg`, refused by the server: a non-zero status or words of refusal."""
    obs = runs.get("non-audio")
    expected = ("a non-zero exit status, or output that says the file was refused (refused, "
                "rejected, non-audio, not audio, error, failed or 415)")
    if obs.done.timed_out:
        raise obs.failure(f"the server refused the picture, and the client did not end within "
                          f"{obs.timeout:g} s", expected)
    if obs.done.code == 0 and not REFUSAL.search(obs.output):
        answered = ", ".join(r.line for r in obs.posts) or "no POST sent"
        raise obs.failure(f"the server refused the picture ({answered}), and the client "
                          f"exited with status 0 without saying so", expected)
    note(f"non-audio: status {obs.done.code}, {tail(obs.output, 200)!r}")


# SHOULD -------------------------------------------------------------------------------------

@requirement("SCR-06")
def test_exits_0_after_doing_its_work(runs: Runs) -> None:
    """`upload` that stored its file and `list` each end with status 0."""
    raise_all([obs.failure(f"having done its work, {obs.ending()}", "exit status 0")
               for obs in (runs.get("upload"), runs.get("list"))
               if obs.done.timed_out or obs.done.code != 0])


@requirement("SCR-07")
def test_list_prints_the_names_alone(runs: Runs) -> None:
    """Stdout of `list`: one line per file, each ASCII name a line of its own, nothing else."""
    obs = runs.get("list")
    lines = nonblank(obs.done.stdout)
    expected = f"the {len(LISTED)} names alone, one per line: {', '.join(LISTED)}"
    counts = Counter(lines)
    if len(lines) != len(LISTED) or any(counts[name] != 1 for name in ASCII_LISTED):
        raise obs.failure(f"stdout has the lines {lines!r}", expected)


@requirement("SCR-08")
def test_unicode_names_survive(runs: Runs) -> None:
    """`upload мелодия.wav` stores that name; `list` prints `песня.wav` unchanged."""
    failures = []
    up = runs.get("unicode")
    content = runs.contents[UNICODE_NAME]
    names = [nfc(n) for n in up.created]
    if names != [nfc(UNICODE_NAME)] or next(iter(up.created.values())) != content:
        failures.append(up.failure(f"the new files on the server are {names!r}",
                                   f"one new file, {UNICODE_NAME!r}, with the bytes given"))
    listing = runs.get("list")
    if nfc(UNICODE_LISTED) not in nfc(listing.done.stdout):
        failures.append(listing.failure(f"stdout does not contain the name {UNICODE_LISTED!r}"
                                        f"{on_stderr_only(listing, UNICODE_LISTED)}",
                                        f"stdout contains {UNICODE_LISTED!r}"))
    raise_all(failures)


@requirement("SCR-09")
def test_refusal_shows_the_servers_message(runs: Runs) -> None:
    """`upload picture.jpg`: a non-zero status, "Non-audio file detected", no traceback."""
    obs = runs.get("non-audio")
    expected = f"a non-zero exit status and the words {NON_AUDIO_MESSAGE!r}, no traceback"
    if TRACEBACK in obs.output:
        raise obs.failure("the server refused the picture, and the client printed a traceback",
                          expected)
    if obs.done.code == 0:
        raise obs.failure("the server refused the picture, and the client exited with "
                          "status 0", expected)
    if NON_AUDIO_MESSAGE not in obs.output:
        raise obs.failure(f"the server refused the picture, and the client did not show "
                          f"{NON_AUDIO_MESSAGE!r}", expected)


@requirement("SCR-10")
def test_duplicate_is_a_clear_error(runs: Runs) -> None:
    """A second file of a stored name: a short message, a non-zero status, the file kept."""
    obs = runs.get("duplicate")
    failure = expect_clean_failure(obs, f"the server already holds {DUPLICATE} (409)", "SCR-10")
    if failure is None and obs.after.get(DUPLICATE) != runs.listed[DUPLICATE]:
        failure = obs.failure(f"the stored {DUPLICATE} changed", f"{DUPLICATE} unchanged")
    if failure:
        raise failure


@requirement("SCR-11")
def test_too_large_is_a_clear_error(runs: Runs) -> None:
    """A file larger than the server takes (413): a short message, a non-zero status."""
    obs = runs.get("too-large")
    failure = expect_clean_failure(obs, f"the file is larger than the server takes "
                                        f"({SMALL_LIMIT} bytes; 413)", "SCR-11")
    if failure:
        raise failure


@requirement("SCR-12")
def test_missing_file_is_a_clear_error(runs: Runs) -> None:
    """`upload` of a path that does not exist: a message naming it, no upload sent."""
    obs = runs.get("missing")
    failure = expect_clean_failure(obs, "the local file does not exist", "SCR-12")
    if failure is None and MISSING_NAME not in obs.done.stderr:
        failure = obs.failure("the message does not name the missing file",
                              f"stderr names {MISSING_NAME}")
    if failure is None and obs.posts:
        failure = obs.failure(f"the file does not exist, and the client still sent "
                              f"{obs.posts[0].line}", "no upload sent")
    if failure:
        raise failure


@requirement("SCR-13")
def test_no_server_is_a_clear_error(runs: Runs, note: Callable[[str], None]) -> None:
    """With nothing listening, `list` and `upload`: a short message, a non-zero status."""
    tried = [runs.no_server("list", ["list"]),
             runs.no_server("upload", ["upload", runs.path(ASCII_NAME)])]
    raise_all([f for obs in tried if (f := expect_clean_failure(obs, "no server listens",
                                                                 "SCR-13"))])
    note(f"no server: status {tried[0].done.code}, {tail(tried[0].done.stderr, 200)!r}")


@requirement("SCR-14")
def test_garbage_answers_are_clear_errors(runs: Runs) -> None:
    """Three answers the protocol does not allow, each a short message and a non-zero status."""
    situations = {"garbage-html": "every request is answered 200 with an HTML page",
                  "garbage-no-names": "the list is JSON without the files' names",
                  "garbage-500": "the upload is answered 500"}
    raise_all([f for name, situation in situations.items()
               if (f := expect_clean_failure(runs.get(name), situation, "SCR-14"))])


@requirement("SCR-15")
def test_upload_prints_the_stored_name(runs: Runs) -> None:
    """Stdout of a successful `upload` contains the name the server stored the file under."""
    obs = runs.get("upload")
    (name,) = obs.created
    if name not in obs.done.stdout:
        raise obs.failure(f"stdout does not contain the stored name {name!r}"
                          f"{on_stderr_only(obs, name)}", f"stdout contains {name!r}")


@requirement("SCR-16")
def test_bad_command_lines_are_usage_errors(runs: Runs) -> None:
    """No subcommand, `upload` without a PATH: a message, a non-zero status, no upload."""
    failures = []
    for name, given in (("no-subcommand", "no subcommand"),
                        ("upload-without-path", "`upload` without a PATH")):
        obs = runs.get(name)
        failure = expect_clean_failure(obs, f"it is given {given}", "SCR-16", MAX_USAGE_LINES)
        if failure is None and (obs.posts or obs.created):
            failure = obs.failure(f"given {given}, the client sent "
                                  f"{obs.posts[0].line if obs.posts else 'an upload'}",
                                  "no upload sent")
        if failure:
            failures.append(failure)
    raise_all(failures)
