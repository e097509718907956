"""The student's own audio server (--server-command, --server-url) as the screwdriver suite sees
it: through its page at `/`, as the audio spec sees a server (conformance/specs/audio/_page.py):
files are put there through the page's upload form, and what it holds is what the page lists.

Rules: the server keeps its files for the whole run, so every name the suite uses carries the
run's token and is judged by that name alone; a file's bytes are judged only when the page
links or plays it (else only its name can be); what cannot be seen through the page (the server
not answering, no upload form) is the server's business (`conformance run audio`) and makes
the client's checks "not run", with the reason, never failed.
"""

from __future__ import annotations

import shlex
import unicodedata
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import httpx

from conformance._checks import NotRun
from conformance._target import ServerTarget
from conformance.specs.audio._page import Form, Page, read_page

JUDGE_SERVER = "conformance run audio --command ..."  # where the server itself is judged
OUTPUT_IN_REASON = 400  # characters of a failed server's output a reason shows


def nfc(text: str) -> str:
    """`text` in Unicode's composed form."""
    return unicodedata.normalize("NFC", text)


@dataclass
class Stored:
    """A file the page lists: its name, where the page links or plays it, its bytes there."""

    name: str
    url: str = ""  # "" when the page neither links nor plays it
    content: bytes | None = None  # None when it could not be fetched
    problem: str = ""  # why the bytes could not be read, when the page links it


class StudentServer:
    """The student's running server, read and fed through its page; `close()` when done."""

    def __init__(self, target: ServerTarget, timeout: float) -> None:
        self.target = target
        self.base_url = target.base_url.rstrip("/") + "/"
        self.timeout = timeout
        self.client = httpx.Client(follow_redirects=True, trust_env=False, timeout=timeout,
                                   headers={"User-Agent": "conformance-kit"})
        self._form: Form | None = None

    def close(self) -> None:
        """Close the suite's HTTP client."""
        self.client.close()

    @property
    def label(self) -> str:
        """The server's command line and URL, or its URL, for notes and reproducers."""
        return self.target.label

    def _explain(self) -> str:
        """How the server's process did, with the end of its output ('' for one the run did
        not start, or one running that said nothing): only the client's target has its output
        at the top of the report, so the reason carries it."""
        process = self.target.process
        if process is None:
            return ""
        code = process.exited()
        parts = [self.target.startup_problem] if self.target.startup_problem else []
        if code is not None:
            parts.append(f"its command exited with status {code}")
        output = process.output_tail(OUTPUT_IN_REASON)
        if output and (parts or code is not None):
            parts.append(f"its output ends: {output}")
        return "; ".join(parts)

    def _trouble(self, what: str) -> NotRun:
        explained = self._explain()
        return NotRun(f"the student's server ({self.label}) {what}"
                      + (f"; {explained}" if explained else "")
                      + f", so the client cannot be judged through it (the server itself is "
                        f"judged by `{JUDGE_SERVER}`)")

    def page(self) -> Page:
        """The page at `/` as a browser sees it; NotRun when it does not answer 200."""
        if self.target.startup_problem:
            raise self._trouble("did not start")
        try:
            answer = self.client.get(self.base_url)
        except httpx.HTTPError as exc:
            raise self._trouble(f"gave no answer to GET /: {exc or type(exc).__name__}") from None
        if answer.status_code != 200:
            raise self._trouble(f"answered GET / with {answer.status_code}")
        return read_page(answer.text, str(answer.url))

    def form(self) -> Form:
        """The page's upload form (found once); NotRun when the page has none."""
        if self._form is None:
            forms = self.page().upload_forms()
            if not forms:
                raise self._trouble("shows no form with a file input on its page at /")
            self._form = forms[0]
        return self._form

    def upload(self, name: str, content: bytes, ctype: str) -> int:
        """Upload one file through the page's form, as a browser submits it; the status of the
        POST itself (before any redirect). NotRun when no answer comes."""
        form = self.form()
        data = dict(list(form.fields) + [s for s in form.submits[:1] if s[0]])
        try:
            answer = self.client.request(form.method, form.action, data=data,
                                         files={form.file_fields[0]: (name, content, ctype)})
        except httpx.HTTPError as exc:
            raise self._trouble(f"gave no answer to the upload of {name} through its form "
                                f"({form.describe()}): {exc or type(exc).__name__}") from None
        return answer.history[0].status_code if answer.history else answer.status_code

    def curl_upload(self, name: str) -> str:
        """The curl line that uploads a local file `name` through the page's form."""
        form = self._form
        if form is None:
            return f"# upload {name} through the page's form at {self.base_url}"
        words = ["curl", "-sS", "-L", "--max-time", f"{self.timeout:g}"]
        for field_name, value in form.fields:
            words += ["-F", f"{field_name}={value}"]
        return shlex.join([*words, "-F", f"{form.file_fields[0]}=@{name}", form.action])

    def curl_page(self) -> str:
        """The curl line that shows the page's list."""
        return shlex.join(["curl", "-sS", "--max-time", f"{self.timeout:g}", self.base_url])

    @staticmethod
    def link(page: Page, name: str) -> str:
        """The URL where the page links or plays `name` ('' when it does neither): an entry
        whose last path segment is the name."""
        wanted = nfc(name)
        for url in sorted(page.entries()):
            segment = unquote(urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1])
            if nfc(segment) == wanted:
                return url
        return ""

    @classmethod
    def lists(cls, page: Page, name: str) -> bool:
        """Whether the page lists `name`: shows it, or links or plays a file of that name."""
        return page.shows(name) or bool(cls.link(page, name))

    def stored(self, page: Page, name: str) -> Stored:
        """What the page shows of a listed file: where it links it, and the bytes there."""
        url = self.link(page, name)
        if not url:
            return Stored(name)
        try:
            answer = self.client.get(url)
        except httpx.HTTPError as exc:
            return Stored(name, url, None, f"GET {url} gave no answer: {exc}")
        if answer.status_code != 200:
            return Stored(name, url, None, f"GET {url} answered {answer.status_code}")
        return Stored(name, url, answer.content)

    def logged(self) -> int:
        """How many bytes the server's process has written to its output (0 for a server the
        run did not start): growth while the client runs means the server was asked."""
        process = self.target.process
        if process is None:
            return 0
        try:
            return process.log.stat().st_size
        except OSError:
            return 0
