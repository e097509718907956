"""Checks of the `audio` spec (openapi/audio.requirements.yaml) against any server by URL.

The suite reads the page at `/`, finds its upload form and uploads through it as a browser
would: the form's own action, method, file field and hidden fields, cookies kept and redirects
followed; what a person would then see (the page after the upload, and `/` afresh) is judged.
So a server with routes and field names of its own is judged on what the assignment asks. The
files are real small audio and non-audio samples (samples/, beside this file), named after a
token of the run. Our JSON API is checked at SHOULD level only.
"""

from __future__ import annotations

import secrets
import shlex
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from conformance._checks import CheckFailure, NotImplementedFeature, NotRun, requirement
from conformance._http import Exchange, Http, curl_line
from conformance._options import RunOptions, SpecOptions
from conformance._target import ServerTarget
from conformance.specs.audio._page import Form, Page, read_page

SAMPLES = Path(__file__).resolve().parent / "samples"
MESSAGE = "Non-audio file detected"
AUDIO = {"mp3": ("tone.mp3", "audio/mpeg"), "ogg": ("tone.ogg", "audio/ogg"),
         "wav": ("tone.wav", "audio/wav")}
FLAC = ("tone.flac", "audio/flac")
NOT_AUDIO = {"jpg": ("picture.jpg", "image/jpeg"), "exe": ("program.exe",
             "application/vnd.microsoft.portable-executable"),
             "docx": ("letter.docx", "application/vnd.openxmlformats-officedocument."
                                     "wordprocessingml.document")}
DISGUISED = ("program.exe", "audio/mpeg")  # an exe named song.mp3, sent as audio/mpeg


def sample(name: str) -> bytes:
    """The bytes of one of the suite's sample files."""
    return (SAMPLES / name).read_bytes()


@dataclass
class Upload:
    """One upload through the page's form and what a person saw afterwards."""

    filename: str
    status: int  # the answer to the POST itself (before any redirect)
    after: Page  # the page the browser ended on
    before: Page  # `/` just before
    listing: Page  # `/` afresh, just after
    reproduce: str

    def listed(self) -> bool:
        """The file appears in the list: by its name, or as a new entry (a server may rename)."""
        named = self.listing.shows(self.filename) or any(
            quote(self.filename) in e or self.filename in e for e in self.listing.entries())
        return named or bool(self.listing.entries() - self.before.entries())


class Browser:
    """What the suite uses instead of a browser: one cookie jar, redirects followed, a deadline
    on every request."""

    def __init__(self, base_url: str, timeout: float) -> None:
        self.client = httpx.Client(base_url=base_url, follow_redirects=True, trust_env=False,
                                   timeout=timeout, headers={"User-Agent": "conformance-kit"})
        self.timeout = timeout

    def get(self, target: str) -> tuple[httpx.Response, Page]:
        """GET a page; CheckFailure when no answer comes."""
        try:
            answer = self.client.get(target)
        except httpx.HTTPError as exc:
            raise CheckFailure(f"GET {target}: {exc or type(exc).__name__}",
                               expected="the page", actual=str(exc) or type(exc).__name__,
                               reproduce=curl_line("GET", str(self.client.base_url) + target,
                                                   timeout=self.timeout)) from None
        return answer, read_page(answer.text, str(answer.url))

    def submit(self, form: Form, filename: str, content: bytes, ctype: str) -> tuple[int, Page]:
        """Submit `form` with one file, as a browser does; the POST's own status and the page
        the browser ends on."""
        data = list(form.fields) + [s for s in form.submits[:1] if s[0]]
        files = {form.file_fields[0]: (filename, content, ctype)}
        try:
            answer = self.client.request(form.method, form.action, data=dict(data), files=files)
        except httpx.HTTPError as exc:
            raise CheckFailure(f"{form.method} {form.action}: {exc or type(exc).__name__}",
                               expected="an answer to the upload",
                               actual=str(exc) or type(exc).__name__,
                               reproduce=self.reproduce(form, filename, ctype)) from None
        first = answer.history[0].status_code if answer.history else answer.status_code
        return first, read_page(answer.text, str(answer.url))

    def reproduce(self, form: Form, filename: str, ctype: str, source: str = "") -> str:
        """A curl line that uploads the same way (the suite's sample `source`, as `filename`)."""
        words = ["curl", "-sS", "-L", "-i", "--max-time", f"{self.timeout:g}"]
        for n, v in form.fields:
            words += ["-F", f"{n}={v}"]
        path = str(SAMPLES / source) if source else filename
        words += ["-F", f"{form.file_fields[0]}=@{path};filename={filename};type={ctype}",
                  form.action]
        return shlex.join(words)


@pytest.fixture(scope="session")
def browser(server: ServerTarget, options: RunOptions[SpecOptions]) -> Iterator[Browser]:
    """The suite's browser for the run."""
    b = Browser(server.base_url, options.timeout)
    yield b
    b.client.close()


@pytest.fixture(scope="session")
def token() -> str:
    """A token of this run, in every file name it uploads."""
    return "cf-" + secrets.token_hex(3)


@pytest.fixture(scope="session")
def page(browser: Browser) -> Page:
    """The page at `/`; NotRun when it does not answer 200."""
    answer, shown = browser.get("/")
    if answer.status_code != 200:
        raise NotRun(f"GET / answered {answer.status_code}")
    return shown


@pytest.fixture(scope="session")
def form(page: Page) -> Form:
    """The page's upload form; NotRun when there is none."""
    forms = page.upload_forms()
    if not forms:
        raise NotRun("the page has no form with a file input")
    return forms[0]


@pytest.fixture(scope="session")
def upload(browser: Browser, form: Form) -> Callable[[str, str, str], Upload]:
    """Upload a file through the form (each name once per run) and look at `/` around it."""
    done: dict[str, Upload] = {}

    def run(filename: str, source: str, ctype: str) -> Upload:
        if filename not in done:
            _, before = browser.get("/")
            status, after = browser.submit(form, filename, sample(source), ctype)
            _, listing = browser.get("/")
            done[filename] = Upload(filename, status, after, before, listing,
                                    browser.reproduce(form, filename, ctype, source))
        return done[filename]
    return run


def uploaded(upload: Callable[[str, str, str], Upload], token: str, kind: str,
             name: str, ctype: str, as_name: str = "") -> Upload:
    """Upload the sample `name` as `<token>-<as_name or name>`."""
    return upload(f"{token}-{as_name or name}", name, ctype)


# MUST ---------------------------------------------------------------------------------------

@requirement("AUD-01")
def test_server_answers_http(http: Http) -> None:
    """The server answers an HTTP request."""
    http.get("/")


@requirement("AUD-02")
def test_page_is_html(browser: Browser) -> None:
    """GET / answers 200 with an HTML page."""
    answer, _ = browser.get("/")
    ctype = answer.headers.get("content-type", "")
    if answer.status_code != 200 or "html" not in ctype.lower():
        raise CheckFailure(f"GET / answered {answer.status_code} ({ctype or 'no Content-Type'})",
                           expected="200 and an HTML page",
                           actual=f"{answer.status_code}; Content-Type: {ctype}; "
                                  f"{answer.text[:200]!r}",
                           reproduce=curl_line("GET", str(answer.url)))


@requirement("AUD-03")
def test_page_has_an_upload_form(page: Page, note: Callable[[str], None]) -> None:
    """The page has a form with a file input and a submit button."""
    forms = page.upload_forms()
    if not forms:
        raise CheckFailure("the page has no form with a (named) file input",
                           expected='<form method="post" enctype="multipart/form-data"> with '
                                    '<input type="file" name=...> and a submit button',
                           actual=f"{len(page.forms)} form(s); page text: {page.text[:200]!r}",
                           reproduce=curl_line("GET", page.url))
    form = forms[0]
    if not form.submits:
        raise CheckFailure("the upload form has no submit button",
                           expected="a <button> or <input type=submit> in the form",
                           actual=form.describe(), reproduce=curl_line("GET", page.url))
    note("upload form: " + form.describe())


@requirement("AUD-04")
def test_audio_uploads_are_listed(upload: Callable[[str, str, str], Upload],
                                  token: str) -> None:
    """mp3, ogg and wav uploaded through the form appear in the list."""
    for kind, (name, ctype) in AUDIO.items():
        done = uploaded(upload, token, kind, name, ctype)
        if done.status >= 400 or not done.listed():
            raise CheckFailure(f"the {kind} file {done.filename} uploaded through the page "
                               f"{'was refused' if done.status >= 400 else 'is not listed'}",
                               expected="accepted, and listed on the page afterwards",
                               actual=f"upload answered {done.status}; the page then shows: "
                                      f"{done.listing.text[:300]!r}",
                               reproduce=done.reproduce)


def _refused(done: Upload, what: str) -> None:
    if done.listed():
        raise CheckFailure(f"{what} {done.filename} was taken: it is listed afterwards",
                           expected="refused, and not listed",
                           actual=f"upload answered {done.status}; the page then shows: "
                                  f"{done.listing.text[:300]!r}", reproduce=done.reproduce)


@requirement("AUD-05")
def test_non_audio_is_refused(upload: Callable[[str, str, str], Upload], token: str) -> None:
    """jpg, exe and docx uploaded through the form are not listed."""
    for kind, (name, ctype) in NOT_AUDIO.items():
        _refused(uploaded(upload, token, kind, name, ctype), f"the {kind} file")


@requirement("AUD-06")
def test_refusal_shows_the_message(upload: Callable[[str, str, str], Upload],
                                   token: str) -> None:
    """After a non-audio upload the page shows "Non-audio file detected"."""
    for kind, (name, ctype) in NOT_AUDIO.items():
        done = uploaded(upload, token, kind, name, ctype)
        if not done.after.shows(MESSAGE):
            raise CheckFailure(f"after uploading the {kind} file the page does not show "
                               f"{MESSAGE!r}", expected=MESSAGE,
                               actual=f"{done.status}; the page shows: {done.after.text[:300]!r}",
                               reproduce=done.reproduce)


@requirement("AUD-07")
def test_audio_is_recognised_by_content(upload: Callable[[str, str, str], Upload],
                                        token: str) -> None:
    """An exe named song.mp3 and sent as audio/mpeg is refused."""
    name, ctype = DISGUISED
    _refused(uploaded(upload, token, "exe", name, ctype, as_name="song.mp3"),
             "an exe named as an mp3,")


# SHOULD -------------------------------------------------------------------------------------

@requirement("AUD-08")
def test_flac_is_audio(upload: Callable[[str, str, str], Upload], token: str) -> None:
    """A flac file is accepted and listed."""
    done = uploaded(upload, token, "flac", *FLAC)
    if done.status >= 400 or not done.listed():
        raise CheckFailure(f"the flac file {done.filename} is not listed after its upload",
                           expected="accepted and listed",
                           actual=f"upload answered {done.status}; {done.after.text[:200]!r}",
                           reproduce=done.reproduce)


@requirement("AUD-09")
def test_refusal_is_a_4xx(upload: Callable[[str, str, str], Upload], token: str) -> None:
    """A refused upload answers a 4xx."""
    name, ctype = NOT_AUDIO["jpg"]
    done = uploaded(upload, token, "jpg", name, ctype)
    if not 400 <= done.status < 500:
        raise CheckFailure(f"the refused jpg upload answered {done.status}",
                           expected="a 4xx (415)", actual=str(done.status),
                           reproduce=done.reproduce)


def _api_post(http: Http, filename: str, content: bytes,
              ctype: str) -> tuple[Exchange, object, str]:
    built = httpx.Request("POST", http.url("/api/files"),
                          files={"file": (filename, content, ctype)})
    body = built.read()
    headers = {"Content-Type": built.headers["content-type"]}
    ex = http.request("POST", "/api/files", headers=headers, content=body)
    try:
        parsed = ex.json()
    except ValueError:
        parsed = None
    reproduce = (f"curl -sS -i --max-time 5 -F 'file=@{filename};type={ctype}' "
                 f"{http.url('/api/files')}")
    return ex, parsed, reproduce


@requirement("AUD-10")
def test_json_api(http: Http, token: str) -> None:
    """GET/POST /api/files: 201 for audio, 415 for anything else, and the list shows it."""
    name = f"{token}-api.wav"
    # The answer's summary, not its parsed body: one that is not JSON parses to nothing, and
    # "actual: None" tells a reader nothing.
    ex, body, reproduce = _api_post(http, name, sample("tone.wav"), "audio/wav")
    if ex.status != 201 or not isinstance(body, dict) or body.get("name") != name:
        raise CheckFailure(f"POST /api/files with a wav answered {ex.status}",
                           expected=f'201 and {{"name": "{name}", ...}}', actual=ex.summary(),
                           reproduce=reproduce)
    ex, body, reproduce = _api_post(http, f"{token}-api.jpg", sample("picture.jpg"),
                                    "image/jpeg")
    if ex.status != 415:
        raise CheckFailure(f"POST /api/files with a jpg answered {ex.status}", expected="415",
                           actual=ex.summary(), reproduce=reproduce)
    listed = http.get("/api/files")
    try:
        names = [f.get("name") for f in listed.json()["files"]]
    except (ValueError, KeyError, TypeError, AttributeError):
        names = None
    if names is None or name not in names:
        raise CheckFailure(f"GET /api/files does not list {name}",
                           expected='{"files": [{"name": ...}, ...]} with it',
                           actual=listed.summary(), reproduce=listed.curl())


@requirement("AUD-11")
def test_files_are_served_with_ranges(http: Http, token: str) -> None:
    """GET /files/{name} serves the bytes as audio, and a Range gets 206."""
    name = f"{token}-api.wav"
    whole = http.get(f"/files/{quote(name)}")
    content = sample("tone.wav")
    if whole.status != 200 or whole.body != content or not whole.content_type.startswith(
            "audio/"):
        raise CheckFailure(f"GET /files/{name} answered {whole.status}",
                           expected="200, an audio/* Content-Type and the uploaded bytes",
                           actual=whole.summary(80), reproduce=whole.curl())
    part = http.get(f"/files/{quote(name)}", headers={"Range": "bytes=4-13"})
    if part.status != 206 or part.body != content[4:14]:
        raise CheckFailure(f"GET /files/{name} with Range: bytes=4-13 answered {part.status}",
                           expected="206 and bytes 4-13", actual=part.summary(80),
                           reproduce=part.curl())


@requirement("AUD-12")
def test_duplicates_are_refused(http: Http, token: str) -> None:
    """A second upload of the same name is refused; the first file stays."""
    name = f"{token}-api.wav"
    ex, _, reproduce = _api_post(http, name, sample("tone.ogg"), "audio/ogg")
    if ex.status != 409:
        raise CheckFailure(f"a second POST /api/files of {name} answered {ex.status}",
                           expected="409", actual=ex.summary(), reproduce=reproduce)
    kept = http.get(f"/files/{quote(name)}")
    if kept.body != sample("tone.wav"):
        raise CheckFailure(f"{name} changed after the refused second upload",
                           expected="the first upload's bytes", actual=kept.summary(80),
                           reproduce=kept.curl())


@requirement("AUD-13")
def test_unicode_names_survive(upload: Callable[[str, str, str], Upload], token: str) -> None:
    """песня.mp3 is listed under that name."""
    done = uploaded(upload, token, "mp3", "tone.mp3", "audio/mpeg", as_name="песня.mp3")
    if not done.listing.shows(unicodedata.normalize("NFC", done.filename)):
        raise CheckFailure(f"{done.filename} is not listed under its name",
                           expected=done.filename, actual=done.listing.text[:300],
                           reproduce=done.reproduce)


# MAY ----------------------------------------------------------------------------------------

@requirement("AUD-14")
def test_players_load_their_files(upload: Callable[[str, str, str], Upload], token: str,
                                  browser: Browser, note: Callable[[str], None]) -> None:
    """Every player on the page loads an audio file."""
    name, ctype = AUDIO["mp3"]
    done = uploaded(upload, token, "mp3", name, ctype)
    if not done.listing.players:
        # Playing is optional: a page without players has not implemented it, which is no
        # failure; players that are there must work.
        raise NotImplementedFeature("the page has no players", expected="players, if any",
                                    actual="no <audio> or other player on the page",
                                    reproduce=done.reproduce)
    for src in sorted(done.listing.media)[:10]:
        try:
            answer = browser.client.get(src, headers={"Range": "bytes=0-"})
        except httpx.HTTPError as exc:
            raise CheckFailure(f"a player's source {src} gave no answer", expected="audio",
                               actual=str(exc), reproduce=curl_line("GET", src)) from None
        ctype = answer.headers.get("content-type", "")
        if answer.status_code not in (200, 206) or not ctype.startswith("audio/"):
            raise CheckFailure(f"a player's source {src} answered {answer.status_code} "
                               f"({ctype})", expected="200/206 and audio/*",
                               actual=answer.text[:100], reproduce=curl_line("GET", src))
    note(f"{done.listing.players} player(s) on the page")
