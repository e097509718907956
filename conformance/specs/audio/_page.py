"""A browser's view of an HTML page without a browser: its visible text, the links and media
sources it lists, and its forms as a browser would submit them (hidden fields included).

Rules: parsing never fails (html.parser takes anything); a form's action is resolved against the
page's URL; a button counts as a submit control unless its type says otherwise, as in HTML.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urljoin


@dataclass
class Form:
    """One <form>: where and how it submits, its file inputs and the other fields it sends."""

    action: str
    method: str
    enctype: str
    file_fields: list[str] = field(default_factory=list)
    fields: list[tuple[str, str]] = field(default_factory=list)
    submits: list[tuple[str, str]] = field(default_factory=list)  # (name, value); name may be ""

    def describe(self) -> str:
        """`POST /upload (multipart/form-data), file input "file"`."""
        files = ", ".join(f'"{n}"' for n in self.file_fields) or "none"
        return f"{self.method} {self.action} ({self.enctype}), file input {files}"


@dataclass
class Page:
    """What a page shows and offers."""

    url: str
    text: str = ""
    links: set[str] = field(default_factory=set)  # absolute hrefs of <a>
    media: set[str] = field(default_factory=set)  # absolute srcs of <audio>/<source>
    players: int = 0
    forms: list[Form] = field(default_factory=list)

    def shows(self, words: str) -> bool:
        """True when the visible text contains `words` (whitespace and Unicode form aside)."""
        return _norm(words) in self.text

    def upload_forms(self) -> list[Form]:
        """The forms that have a file input."""
        return [f for f in self.forms if f.file_fields]

    def entries(self) -> set[str]:
        """Everything that names a stored file: link targets and media sources."""
        return self.links | self.media


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", unicodedata.normalize("NFC", text)).strip()


class _Reader(HTMLParser):
    def __init__(self, page: Page) -> None:
        super().__init__(convert_charrefs=True)
        self.page = page
        self.chunks: list[str] = []
        self.form: Form | None = None
        self.hidden_depth = 0  # inside <script>/<style>/<template>

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: (v or "") for k, v in attrs}
        url = self.page.url
        if tag in ("script", "style", "template"):
            self.hidden_depth += 1
        elif tag == "a" and a.get("href"):
            self.page.links.add(urljoin(url, a["href"]))
        elif tag in ("audio", "source", "embed") and a.get("src"):
            self.page.media.add(urljoin(url, a["src"]))
        if tag == "audio":
            self.page.players += 1
        elif tag == "form":
            self.form = Form(action=urljoin(url, a.get("action") or url),
                             method=(a.get("method") or "GET").upper(),
                             enctype=(a.get("enctype") or "application/x-www-form-urlencoded"))
            self.page.forms.append(self.form)
        elif self.form is not None and tag in ("input", "button", "textarea", "select"):
            self._control(tag, a)

    def _control(self, tag: str, a: dict[str, str]) -> None:
        assert self.form is not None
        kind = a.get("type", "submit" if tag == "button" else "text").lower()
        name = a.get("name", "")
        if tag == "input" and kind == "file":
            if name:
                self.form.file_fields.append(name)
        elif kind in ("submit", "image"):
            self.form.submits.append((name, a.get("value", "")))
        elif name and kind not in ("button", "reset", "checkbox", "radio") and tag != "button":
            self.form.fields.append((name, a.get("value", "")))

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "template"):
            self.hidden_depth = max(0, self.hidden_depth - 1)
        elif tag == "form":
            self.form = None

    def handle_data(self, data: str) -> None:
        if not self.hidden_depth:
            self.chunks.append(data)


def read_page(html: str, url: str) -> Page:
    """Parse `html`, served at `url`."""
    page = Page(url=url)
    reader = _Reader(page)
    reader.feed(html)
    reader.close()
    page.text = _norm(" ".join(reader.chunks))
    return page
