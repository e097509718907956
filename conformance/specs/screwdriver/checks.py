"""Checks of the `screwdriver` spec (openapi/screwdriver.requirements.yaml) against any client
of the audio server.

The suite plays the server with our reference (reference/audio.py, a Flask app), run in-process
(_live_audio.py) on the port where the client expects its server. Every run of the
client gets a server of its own, storing into a fresh temporary folder, so no run sees another's
files; where a run needs files on the server the suite uploads them first, over HTTP. What the
client sent is judged by the files the server then holds (name and bytes) and by the requests it
recorded; for the error cases the suite plays servers that answer garbage, or none at all.

The assignment leaves the server's routes and field names open, so a client may speak its own
server's protocol rather than ours. Given the student's own server (--server-command,
--server-url), the suite starts it once, where the client expects its server, and observes it as
the audio spec observes a server (_own_server.py): the files `list` needs are uploaded through
the page's upload form, what an `upload` stored is what the page then lists (its bytes compared
where the page links or plays it), and `list` must print what the page lists. That server keeps
its files for the whole run, so every name carries the run's token. What needs our server's
controlled answers (a 409, a 413, garbage) is then not run, with the reason; the runs with no
server listening are made before it starts.

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
import secrets
import shlex
import shutil
import sys
import tempfile
import unicodedata
import wave
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, suppress
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
    own_server,
    tail,
    unreached_hint,
)
from conformance._options import RunOptions
from conformance._servers import HOST, App, InProcessServer, Seen, canned_app
from conformance._target import ProgramTarget, TargetError, is_listening
from conformance.specs.audio._page import Page
from conformance.specs.screwdriver import Options
from conformance.specs.screwdriver._live_audio import FIELD, FILES_PATH, LiveAudio
from conformance.specs.screwdriver._own_server import Stored, StudentServer
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
# What a failure against our reference says when the client never asked our API's route.
ROUTES_OPEN = ("the assignment leaves the server's routes and field names open, so give the "
               "student's own server with --server-command \"python app.py\" (or --server-url "
               "URL) and the client is judged through it")
OUR_SERVER = "our reference audio server (reference/audio.py: POST and GET /api/files)"
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
    # Through the student's own server (None with ours): the names of this run's files its
    # page lists afterwards and did not before, with their bytes where the page links them.
    fresh: dict[str, Stored] | None = None
    new_entries: list[str] = field(default_factory=list)  # links and players new on the page
    page: Page | None = None  # the page afterwards
    unlisted: list[str] = field(default_factory=list)  # files put there that the page lacked
    touched: bool = False  # the student's server saw the run: its page or its log changed

    @property
    def created(self) -> dict[str, bytes | None]:
        """The files the run added to the server, or changed there (through the student's own
        server: the new files its page lists, bytes None where it does not link them)."""
        if self.fresh is not None:
            return {name: s.content for name, s in self.fresh.items()}
        return {n: b for n, b in self.after.items() if self.before.get(n) != b}

    @property
    def posts(self) -> list[Seen]:
        """The POST requests the run sent."""
        return [r for r in self.requests if r.method == "POST"]

    @property
    def reached(self) -> bool:
        """Whether the server saw the run: it recorded a request, or (the student's own) its
        page or its log changed."""
        return bool(self.requests) or self.touched

    def actual(self) -> str:
        """What the client did; through the student's own server, whose requests the suite
        does not see, without the requests."""
        if self.fresh is None:
            return super().actual()
        parts = [f"`{self.what}`: {self.ending()} (requests to the student's own server are "
                 f"not recorded)", f"stdout: {tail(self.done.stdout)!r}"]
        if self.done.stderr.strip():
            parts.append(f"stderr ends: {tail(self.done.stderr)}")
        return "; ".join(parts)

    def asked(self, method: str) -> bool:
        """Whether the run sent `method` to our API's route (our reference server)."""
        return any(r.method == method and r.path.split("?", 1)[0].rstrip("/") == FILES_PATH
                   for r in self.requests)


class Runs:
    """Runs the client, each run against a fresh server of its own (ours), or all against the
    student's own server (`student`, set once it runs); each run happens once."""

    def __init__(self, program: ProgramTarget, options: RunOptions[Options], workdir: Path,
                 token: str = "") -> None:
        self.program = program
        self.options = options
        self.workdir = workdir
        self.token = token  # in every name, through the student's own server (it keeps files)
        self.student: StudentServer | None = None
        self.local = workdir / "local"  # the files the client is given
        self.local.mkdir()
        self.contents = {
            ASCII_NAME: tone(0.1, 440), UNICODE_NAME: tone(0.1, 523),
            NON_AUDIO_NAME: JPEG, LARGE_NAME: tone(2 * SMALL_LIMIT / 16000, 330),
        }
        for base, content in self.contents.items():
            (self.local / self.name(base)).write_bytes(content)
        # The server's files for `list`, and another file of the first one's name to upload.
        self.listed = {name: tone(0.05, 600 + 100 * i) for i, name in enumerate(LISTED)}
        again = workdir / "again"
        again.mkdir()
        self.again = again / DUPLICATE
        self.again.write_bytes(tone(0.1, 880))
        self._runs: dict[str, Observed] = {}
        self._servers = 0
        # Files put on the student's server through its form: name -> the status it answered.
        self.put_answers: dict[str, int] = {}

    def name(self, base: str) -> str:
        """The name a file of the suite has in this run: `base`, with the run's token first
        through the student's own server."""
        return f"{self.token}-{base}" if self.token else base

    @property
    def ascii_listed(self) -> list[str]:
        """The ASCII names of the files on the server for `list`, as this run names them."""
        return [self.name(n) for n in ASCII_LISTED]

    @property
    def long(self) -> float:
        """Seconds a run that does its work may take."""
        return 3 * self.options.timeout

    @property
    def short(self) -> float:
        """Seconds a run that should end at once may take."""
        return 2 * self.options.timeout

    def path(self, base: str) -> str:
        """The local path of a file the client is given."""
        return str(self.local / self.name(base))

    def described(self, base: str) -> str:
        """A reproducer's line saying what the file given is."""
        size = len(self.contents[base])
        what = "a JPEG picture" if base == NON_AUDIO_NAME else "a WAV tone"
        return f"# {self.path(base)}: {what} of {size} bytes (any such file will do)"

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

    def observe(self, args: list[str], *, timeout: float, given: str | None = None,
                prepared: dict[str, bytes] | None = None, uploads: str = "") -> Observed:
        """One run against the server the client is judged with: ours (a fresh one holding
        `prepared` first), or the student's own; `uploads` is the suite's file (its base name)
        the run may upload, whose arrival is looked for on the student's page."""
        if self.student is not None:
            return self.own(args, timeout=timeout, given=given, prepared=prepared,
                            uploads=uploads)
        return self.live(args, timeout=timeout, given=given, prepared=prepared)

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

    def put(self, base: str, content: bytes) -> None:
        """Upload one of the suite's files to the student's server through its page's form,
        once per run (it keeps them)."""
        assert self.student is not None
        name = self.name(base)
        if name not in self.put_answers:
            self.put_answers[name] = self.student.upload(name, content, "audio/wav")

    def own(self, args: list[str], *, timeout: float, given: str | None,
            prepared: dict[str, bytes] | None, uploads: str) -> Observed:
        """One run against the student's own server, its page read before and after it."""
        student = self.student
        assert student is not None
        lines = [f"# the student's own server, where the client expects it: {student.label}",
                 f"# (it keeps its files, so this run's names carry the token {self.token})"]
        for base, content in (prepared or {}).items():
            self.put(base, content)
        if prepared:
            lines.append("# upload through its page's form the files it holds (WAV tones; "
                         "any will do):")
            lines += [student.curl_upload(self.name(base)) for base in prepared]
        if given:
            lines.append(given)
        lines.append(f"# what the server holds is what its page lists: {student.curl_page()}")
        before = student.page()
        logged = student.logged()
        done = self.program.run(*args, timeout=timeout, env=client_env())
        after = student.page()
        obs = Observed(args, done, timeout, "\n".join(lines), fresh={}, page=after)
        obs.unlisted = [self.name(b) for b in (prepared or {})
                        if not student.lists(before, self.name(b))]
        name = self.name(uploads) if uploads else ""
        if name and student.lists(after, name) and not student.lists(before, name):
            assert obs.fresh is not None
            obs.fresh[name] = student.stored(after, name)
        obs.new_entries = sorted(after.entries() - before.entries())
        printed = any(self.name(b) in done.stdout for b in (prepared or {}))
        obs.touched = bool(obs.fresh) or printed or student.logged() > logged
        return obs

    def reference_only(self, what: str) -> None:
        """NotRun, through the student's own server, for a run that needs our server's
        controlled answer (`what`)."""
        if self.student is not None:
            raise NotRun(f"this needs our reference server: {what} comes on demand only "
                         f"from the servers the suite plays, and the client is judged with the "
                         f"student's own server; run without --server-command/--server-url to "
                         f"judge it against our reference server")

    # the runs ---------------------------------------------------------------------------

    def _upload(self) -> Observed:
        return self.observe(["upload", self.path(ASCII_NAME)], timeout=self.long,
                            given=self.described(ASCII_NAME), uploads=ASCII_NAME)

    def _unicode(self) -> Observed:
        return self.observe(["upload", self.path(UNICODE_NAME)], timeout=self.long,
                            given=self.described(UNICODE_NAME), uploads=UNICODE_NAME)

    def _non_audio(self) -> Observed:
        return self.observe(["upload", self.path(NON_AUDIO_NAME)], timeout=self.long,
                            given=self.described(NON_AUDIO_NAME), uploads=NON_AUDIO_NAME)

    def _list(self) -> Observed:
        return self.observe(["list"], timeout=self.long, prepared=self.listed)

    def _duplicate(self) -> Observed:
        self.reference_only("a 409 answer to an upload of a name already stored")
        return self.live(["upload", str(self.again)], timeout=self.short,
                         prepared={DUPLICATE: self.listed[DUPLICATE]},
                         given=f"# {self.again}: another WAV tone of the name {DUPLICATE}")

    def _too_large(self) -> Observed:
        self.reference_only(f"a 413 answer to a file over a small limit ({SMALL_LIMIT} bytes)")
        return self.live(["upload", self.path(LARGE_NAME)], timeout=self.short,
                         max_bytes=SMALL_LIMIT, given=self.described(LARGE_NAME))

    def _missing(self) -> Observed:
        return self.observe(["upload", self.path(MISSING_NAME)], timeout=self.short,
                            given=f"# {self.path(MISSING_NAME)} does not exist",
                            uploads=MISSING_NAME)

    def _no_subcommand(self) -> Observed:
        return self.observe([], timeout=self.short)

    def _upload_without_path(self) -> Observed:
        return self.observe(["upload"], timeout=self.short)

    def _garbage(self, situation: str, answer: Callable[[str, str], tuple[int, bytes, str]],
                 args: list[str]) -> Observed:
        self.reference_only(f"an answer our protocol does not allow ({situation})")
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
        """`args` with nothing listening on the client's port (through the student's own
        server, made before it starts)."""
        key = f"no server {name}"
        if key not in self._runs:
            port = self.program.port
            if self.student is not None and self.options.spec.server_url is not None:
                raise NotRun(f"the student's server given with --server-url listens on "
                             f"{HOST}:{port} all the run, so the client cannot be run with no "
                             f"server there (with --server-command the suite makes these runs "
                             f"before it starts the server)")
            if is_listening(HOST, port):
                raise NotRun(f"something listens on {HOST}:{port}, so the client cannot be "
                             f"run with no server there")
            self._runs[key] = self.run(None, args, self.short,
                                       f"# with nothing listening on {HOST}:{port}")
        return self._runs[key]

    def no_server_runs(self) -> None:
        """Make SCR-13's runs now, while nothing listens yet (a NotRun is kept for the check)."""
        with suppress(NotRun):
            self.no_server("list", ["list"])
            self.no_server("upload", ["upload", self.path(ASCII_NAME)])


NO_SERVER_CHECK = "test_no_server_is_a_clear_error"


@pytest.fixture(scope="session")
def runs(program: ProgramTarget, options: RunOptions[Options],
         request: pytest.FixtureRequest) -> Iterator[Runs]:
    """The client's runs of this suite run, with their files in a temporary folder; through
    the student's own server when one is given (started here, once)."""
    workdir = Path(tempfile.mkdtemp(prefix="screwdriver-suite-"))
    own = options.spec.own_server
    try:
        made = Runs(program, options, workdir, "sd" + secrets.token_hex(3) if own else "")
        if not own:
            yield made
            return
        if options.spec.server_command is not None and any(
                item.name == NO_SERVER_CHECK for item in request.session.items):
            made.no_server_runs()  # the student's server holds the port from now on
        with ExitStack() as stack:
            try:
                target = stack.enter_context(own_server(options.spec, program))
            except TargetError as exc:
                raise NotRun(f"the student's own server could not be started: {exc}") from None
            made.student = StudentServer(target, options.timeout)
            stack.callback(made.student.close)
            yield made
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
    """`upload tone.wav` and `list` reach the server between them: requests our server
    recorded, or (the student's own) an upload its page lists, names of its page printed, or
    its log written while the client ran."""
    tried = [runs.get("upload"), runs.get("list")]
    if all(obs.refused() for obs in tried):
        raise NotRun(f"the client refused `{tried[0].what}` and `list` as usage errors "
                     f"({tried[0].refused()!r}), so it never tried to reach its server (see "
                     f"SCR-02)")
    student = runs.student
    if not any(obs.reached for obs in tried):
        hint = unreached_hint(program, DEFAULT_PORT)
        obs = next((o for o in tried if not o.refused()), tried[0])
        if student is None:
            raise obs.failure(f"no request reached the audio server at {HOST}:{program.port}"
                              f"{hint}", f"HTTP requests to http://{HOST}:{program.port}")
        logged = " and the server logged nothing while it ran" if student.target.process else ""
        raise obs.failure(f"nothing shows that the client reached the student's server at "
                          f"{HOST}:{program.port}: its page lists no file the client uploaded, "
                          f"`list` printed none of the names its page lists{logged}{hint}",
                          f"the client's upload on the page at http://{HOST}:{program.port}/, "
                          f"or the page's names printed by `list`")
    note("judged with " + (f"the student's own server: {student.label}" if student
                           else OUR_SERVER))
    note(found_note(program, DEFAULT_PORT))


@requirement("SCR-02")
def test_subcommands_are_the_assignments(runs: Runs, note: Callable[[str], None]) -> None:
    """Neither `upload PATH` nor `list` is refused as a usage error."""
    tried = [runs.get("upload"), runs.get("list")]
    if not any(obs.reached or obs.refused() for obs in tried):
        raise NotRun("neither `upload` nor `list` reached the server or was refused as a "
                     "usage error (see SCR-01), so the subcommands cannot be judged")
    expected = ("`upload PATH` and `list` accepted (the client asks its server, or reports an "
                "error that is not a usage error)")
    raise_all([obs.failure(f"the client refused its command line as a usage error: "
                           f"{obs.refused()!r}", expected)
               for obs in tried if obs.refused()])
    note("upload and list were both accepted")


def unlisted_reason(runs: Runs, names: list[str]) -> str:
    """Why what the student's server holds cannot be judged through its page: files put there
    through its own form that the page does not list ('' when it lists them all)."""
    listing = runs.get("list")
    missing = [n for n in names if n in listing.unlisted]
    if not missing:
        return ""
    student = runs.student
    assert student is not None
    status = ", ".join(f"{n}: {runs.put_answers.get(n)}" for n in missing)
    return (f"the student's server does not list {', '.join(missing)} after their upload "
            f"through its own page's form ({student.form().describe()}; answered {status}), so "
            f"what it holds cannot be seen on its page (the server itself is judged by "
            f"`conformance run audio`)")


def judge_bytes(obs: Observed, name: str, content: bytes, expected: str,
                note: Callable[[str], None]) -> None:
    """The bytes of `name` on the student's page against `content`: a failure when its link
    serves others; else a note of what was compared, or that only the name could be."""
    assert obs.fresh is not None
    stored = obs.fresh[name]
    if stored.content is None:
        why = stored.problem or "its page neither links nor plays it"
        note(f"{name}: only its name could be judged ({why}), not its bytes")
    elif stored.content != content:
        raise obs.failure(f"the page lists {name}, but its link {stored.url} serves "
                          f"{len(stored.content)} bytes that differ from the {len(content)} "
                          f"bytes of the local file", expected)
    else:
        note(f"{name}: the page lists it, and its link {stored.url} serves the bytes given")


@requirement("SCR-03")
def test_upload_stores_the_file(runs: Runs, note: Callable[[str], None]) -> None:
    """`upload tone.wav` leaves one new file on the server: tone.wav, with the same bytes
    (in our server's folder, or on the student's page)."""
    obs = runs.get("upload")
    name = runs.name(ASCII_NAME)
    content = runs.contents[ASCII_NAME]
    if runs.student is not None:
        expected = (f"the student's page lists {name!r} afterwards (serving the {len(content)} "
                    f"bytes given where it links or plays it)")
        if name not in obs.created:
            if reason := unlisted_reason(runs, runs.ascii_listed):
                raise NotRun(reason)
            new = f"; new on the page: {', '.join(obs.new_entries[:4])}" if obs.new_entries \
                else ""
            raise obs.failure(f"the student's page does not list {name} after the upload{new}",
                              expected)
        judge_bytes(obs, name, content, expected, note)
        return
    expected = f"one new file on the server, {name!r}, with the {len(content)} bytes given"
    created = obs.created
    if len(created) != 1:
        if not obs.asked("POST"):  # another server's route: its body would tell nothing more
            posts = ", ".join(r.line for r in obs.posts[:3]) or "no POST"
            sent = f"; it sent {posts}, nothing to POST {FILES_PATH}: {ROUTES_OPEN}"
        else:
            first = obs.posts[0]
            body = first.body[:300].decode("utf-8", "replace")
            sent = f"; it sent {first.line}, its body starting {body!r}"
        raise obs.failure(f"{len(created)} new files on the server, expected one{sent}",
                          expected)
    (stored_name, stored), = created.items()
    if stored_name != name:
        raise obs.failure(f"the server holds the file as {stored_name!r}, expected {name!r}",
                          expected)
    if stored != content:
        raise obs.failure(f"the file stored has {len(stored or b'')} bytes that differ from the "
                          f"{len(content)} bytes of the local file", expected)


@requirement("SCR-04")
def test_list_prints_every_name(runs: Runs, note: Callable[[str], None]) -> None:
    """`list` with four files on the server: stdout contains each ASCII name (through the
    student's own server: the names its page lists, put there through its form)."""
    obs = runs.get("list")
    names = runs.ascii_listed
    if runs.student is not None and (reason := unlisted_reason(runs, names)):
        raise NotRun(reason)
    missing = [name for name in names if name not in obs.done.stdout]
    if missing:
        where = on_stderr_only(obs, missing[0])
        routes = "" if runs.student is not None or obs.asked("GET") else (
            f"; it sent nothing to GET {FILES_PATH}: {ROUTES_OPEN}")
        raise obs.failure(f"stdout lacks {len(missing)} of the {len(names)} names "
                          f"({', '.join(missing)}){where}{routes}",
                          f"stdout contains each of {', '.join(names)}")
    note(f"list: {tail(obs.done.stdout, 120)!r}")


@requirement("SCR-05")
def test_refused_upload_is_not_reported_as_success(runs: Runs,
                                                   note: Callable[[str], None]) -> None:
    """`upload picture.jpg`, refused by the server: a non-zero status or words of refusal."""
    obs = runs.get("non-audio")
    name = runs.name(NON_AUDIO_NAME)
    if runs.student is not None and name in obs.created:
        raise NotRun(f"the student's server took the picture {name} (its page lists it), so "
                     f"how the client reports a refusal cannot be seen (the server itself is "
                     f"judged by `conformance run audio`)")
    expected = ("a non-zero exit status, or output that says the file was refused (refused, "
                "rejected, non-audio, not audio, error, failed or 415)")
    if obs.done.timed_out:
        raise obs.failure(f"the server refused the picture, and the client did not end within "
                          f"{obs.timeout:g} s", expected)
    if obs.done.code == 0 and not REFUSAL.search(obs.output):
        answered = ("its page does not list it" if runs.student is not None
                    else ", ".join(r.line for r in obs.posts) or "no POST sent")
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
    """Stdout of `list`: one line per file, each ASCII name a line of its own, nothing else
    (through the student's own server, which holds other files too: every line a name its
    page lists)."""
    obs = runs.get("list")
    lines = nonblank(obs.done.stdout)
    counts = Counter(lines)
    names = runs.ascii_listed
    if runs.student is None:
        expected = f"the {len(LISTED)} names alone, one per line: {', '.join(LISTED)}"
        if len(lines) != len(LISTED) or any(counts[name] != 1 for name in names):
            raise obs.failure(f"stdout has the lines {lines!r}", expected)
        return
    if reason := unlisted_reason(runs, names):
        raise NotRun(reason)
    assert obs.page is not None
    expected = (f"names alone, one per line, each once, each a name the page lists "
                f"(among them {', '.join(names)})")
    strays = [line for line in lines if not runs.student.lists(obs.page, line)]
    if strays or any(counts[name] != 1 for name in names):
        shown = f"; lines the page does not list: {strays[:4]!r}" if strays else ""
        raise obs.failure(f"stdout has the lines {lines[:12]!r}{shown}", expected)


@requirement("SCR-08")
def test_unicode_names_survive(runs: Runs, note: Callable[[str], None]) -> None:
    """`upload мелодия.wav` stores that name; `list` prints `песня.wav` unchanged."""
    failures = []
    listed = runs.name(UNICODE_LISTED)
    if runs.student is not None and (reason := unlisted_reason(runs, [listed])):
        raise NotRun(f"{reason}; so Unicode names cannot be judged through it")
    up = runs.get("unicode")
    name = runs.name(UNICODE_NAME)
    content = runs.contents[UNICODE_NAME]
    names = [nfc(n) for n in up.created]
    stored = next(iter(up.created.values()), None)
    if names != [nfc(name)] or (stored is not None and stored != content):
        failures.append(up.failure(f"the new files on the server are {names!r}",
                                   f"one new file, {name!r}, with the bytes given"))
    elif runs.student is not None and stored is None:
        note(f"{name}: only its name could be judged, not its bytes")
    listing = runs.get("list")
    if nfc(listed) not in nfc(listing.done.stdout):
        failures.append(listing.failure(f"stdout does not contain the name {listed!r}"
                                        f"{on_stderr_only(listing, listed)}",
                                        f"stdout contains {listed!r}"))
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


def sent_something(runs: Runs, obs: Observed) -> str:
    """What shows that a run sent an upload ('' when nothing does): a POST our server recorded,
    or a file the student's page lists afterwards that it did not before."""
    if obs.posts:
        return obs.posts[0].line
    if obs.created:
        return f"an upload ({', '.join(obs.created)} is on the server afterwards)"
    if runs.student is not None and obs.new_entries:
        return f"an upload (the page lists {obs.new_entries[0]} afterwards)"
    return ""


@requirement("SCR-12")
def test_missing_file_is_a_clear_error(runs: Runs) -> None:
    """`upload` of a path that does not exist: a message naming it, no upload sent."""
    obs = runs.get("missing")
    missing = runs.name(MISSING_NAME)
    failure = expect_clean_failure(obs, "the local file does not exist", "SCR-12")
    if failure is None and missing not in obs.done.stderr:
        failure = obs.failure("the message does not name the missing file",
                              f"stderr names {missing}")
    if failure is None and (sent := sent_something(runs, obs)):
        failure = obs.failure(f"the file does not exist, and the client still sent {sent}",
                              "no upload sent")
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
        if failure is None and (sent := sent_something(runs, obs)):
            failure = obs.failure(f"given {given}, the client sent {sent}", "no upload sent")
        if failure:
            failures.append(failure)
    raise_all(failures)
