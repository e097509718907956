"""What the box serves the downloader: image hosts whose paths are the images (real bytes from
samples/), faults by path or by host, and each run's list of URLs, all functions of nothing
but this module, so a failure's reproducer makes the same box.

Rules: an image's URL names its file (the last path segment); the clean run's names are all
different; every fault is one path (or one host) of its own, named so that the program's
report of it can be found (`missing-image.png`, never a name another URL shares).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from conformance._box import Answer, Dns, Port, Site, allocate

SAMPLES = Path(__file__).resolve().with_name("samples")
TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".gif": "image/gif", ".webp": "image/webp"}
PACE = 0.5  # seconds each image of the bound run takes to come
BOUND_IMAGES = 24
PART = 100_000  # bytes of large.jpg an earlier run left in large.jpg.part


@cache
def sample(name: str) -> bytes:
    """The bytes of one sample image."""
    return (SAMPLES / name).read_bytes()


@cache
def body(sample_name: str, url: str) -> bytes:
    """What the box serves at `url`: the sample's bytes, then the URL itself, so that every
    image of the box is a file of its own (an image's decoders stop at its end; the bytes after
    it tell two copies of one sample apart)."""
    return sample(sample_name) + b"\0" + url.encode("ascii")


@dataclass(frozen=True)
class Image:
    """One URL of a list: where it is, and what the box serves there (None: nothing to have)."""

    url: str
    body: bytes | None
    why: str = ""  # for a fault: what the box does

    @property
    def name(self) -> str:
        """The file name its URL gives: the path's last segment, without the query."""
        return self.url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]


def _image(sample_name: str, url: str, **more: object) -> Answer:
    suffix = Path(sample_name).suffix
    return Answer(body=body(sample_name, url), content_type=TYPES[suffix], server="box-img",
                  **more)  # type: ignore[arg-type]


CLEAN = [  # (host, scheme, path, sample)
    ("img1.test", "http", "/a/cat.png", "cat.png"),
    ("img1.test", "https", "/b/dog.jpg", "dog.jpg"),
    ("img1.test", "http", "/bird.gif", "bird.gif"),
    ("img2.test", "https", "/x/y/fish.webp", "fish.webp"),
    ("img2.test", "http", "/photos/large.jpg", "large.jpg"),
    ("img2.test", "https", "/kitten.png", "cat.png"),
    ("img3.test", "http", "/puppy.jpg", "dog.jpg"),
    ("img3.test", "https", "/g/parrot.gif", "bird.gif"),
    ("img3.test", "http", "/shark.webp", "fish.webp"),
    ("img4.test", "https", "/icon.png", "cat.png"),
    ("img4.test", "http", "/s/thumb.jpg", "dog.jpg"),
    ("img4.test", "https", "/logo.gif", "bird.gif"),
]
HEALTHY_IN_FAULTS = [
    ("img1.test", "http", "/f/sun.png", "cat.png"),
    ("img2.test", "https", "/f/moon.jpg", "dog.jpg"),
    ("img3.test", "http", "/f/star.gif", "bird.gif"),
    ("img4.test", "https", "/f/comet.webp", "fish.webp"),
    ("img1.test", "https", "/f/planet.jpg", "large.jpg"),
    ("img2.test", "http", "/f/cloud.png", "cat.png"),
]
FAULTS = [  # (url, the path's answer (None: the host's fault), what happens)
    ("http://img1.test/f/missing-image.png", Answer(status=404, body=b"not found"),
     "answered 404"),
    ("https://img2.test/f/broken-image.jpg", Answer(status=500, body=b"oops"), "answered 500"),
    ("http://img3.test/f/reset-image.jpg",
     _image("large.jpg", "reset", reset_after=50_000), "reset after 50,000 of its bytes"),
    ("https://img3.test/f/short-image.jpg", _image("large.jpg", "short", cut=50_000),
     "closed after 50,000 bytes of its Content-Length"),
    ("http://nowhere.test/nowhere-image.png", None, "its host's name does not resolve"),
    ("http://tarpit.test/tarpit-image.png", None, "its host never answers"),
]
NOT_AN_IMAGE = ("http://img4.test/f/page-image.jpg",
                Answer(body=b"<html><body>Please log in</body></html>", server="box-img"))
NAMES = [
    ("http://img1.test/one/photo.jpg", "dog.jpg"),
    ("https://img2.test/two/photo.jpg", "large.jpg"),
    ("http://img3.test/p/fish.webp?size=2&v=1", "fish.webp"),
    ("http://img1.test/a/cat.png", "cat.png"),
    ("http://img1.test/a/cat.png", "cat.png"),
]
# An image moved: its old URL answers 301 to the new one (the same file name).
MOVED = ("http://img1.test/old/moved.png", "https://img2.test/new/moved.png")
RESUMED = ("http://img3.test/r/large.jpg", "https://img4.test/r/whole.jpg")


def _url_parts(url: str) -> tuple[str, str]:
    rest = url.split("://", 1)[1]
    host, _, path = rest.partition("/")
    return host, "/" + path


@cache
def sites() -> tuple[Site, ...]:
    """Every site of the box, addresses allocated."""
    paths: dict[str, dict[str, Answer | Port]] = {}

    def put(host: str, path: str, answer: Answer | Port) -> None:
        paths.setdefault(host, {})[path.split("?", 1)[0]] = answer

    for host, scheme, path, name in CLEAN + HEALTHY_IN_FAULTS:
        put(host, path, _image(name, f"{scheme}://{host}{path}"))
    for url, answer, _ in FAULTS:
        if answer is not None:
            put(*_url_parts(url), answer)
    put(*_url_parts(NOT_AN_IMAGE[0]), NOT_AN_IMAGE[1])
    for url, name in NAMES:
        put(*_url_parts(url), _image(name, url.split("?", 1)[0]))
    for image in bound():
        put(*_url_parts(image.url), _image("cat.png", image.url, pace=PACE))
    put(*_url_parts(MOVED[0]), Answer(redirect=MOVED[1], server="box-img"))
    put(*_url_parts(MOVED[1]), _image("cat.png", MOVED[0]))
    put(*_url_parts(RESUMED[0]), _image("large.jpg", RESUMED[0], ranges=True))
    # Ignores Range: a 200, whole.
    put(*_url_parts(RESUMED[1]), _image("large.jpg", RESUMED[1]))
    plain = Answer(status=404, body=b"no such image", server="box-img")
    planned = [Site(host, http=plain, https=plain, paths=tuple(sorted(p.items())))
               for host, p in sorted(paths.items())]
    planned.append(Site("nowhere.test", dns=Dns.NXDOMAIN))
    planned.append(Site("tarpit.test", http=Port.SILENT, https=Port.SILENT))
    return allocate(planned)


def clean() -> list[Image]:
    """The clean run's list."""
    return [Image(url := f"{scheme}://{host}{path}", body(name, url))
            for host, scheme, path, name in CLEAN]


def moved() -> Image:
    """The clean run's image behind a redirect (its old URL)."""
    return Image(MOVED[0], body("cat.png", MOVED[0]))


def clean_list() -> list[Image]:
    """The clean run's list: its images, the moved one among them."""
    images = clean()
    return [*images[:6], moved(), *images[6:]]


def faults() -> tuple[list[Image], list[Image], Image]:
    """The faults run's healthy images, its failures, and its HTML page under `.jpg`."""
    healthy = [Image(url := f"{scheme}://{host}{path}", body(name, url))
               for host, scheme, path, name in HEALTHY_IN_FAULTS]
    failing = [Image(url, None, why) for url, _, why in FAULTS]
    return healthy, failing, Image(NOT_AN_IMAGE[0], None, "an HTML page answered 200")


def faults_list() -> list[Image]:
    """The faults run's list, failures among the healthy ones."""
    healthy, failing, page = faults()
    out: list[Image] = []
    for i, image in enumerate(healthy):
        out.append(image)
        if i < len(failing):
            out.append(failing[i])
    return [*out, page]


def bound() -> list[Image]:
    """The bound run's list: paced images."""
    return [Image(url := f"http://img5.test/b/{i:02d}.png", body("cat.png", url))
            for i in range(BOUND_IMAGES)]


def names() -> list[Image]:
    """The names run's list."""
    return [Image(url, body(name, url.split("?", 1)[0])) for url, name in NAMES]


def csv_text(images: list[Image], header: bool = False) -> str:
    """A list as the CSV the program reads: one URL a line (or a header and blank lines)."""
    if header:
        return "url\n\n" + "\n\n".join(i.url for i in images) + "\n\n"
    return "".join(f"{i.url}\n" for i in images)
