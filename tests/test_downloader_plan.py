"""The downloader suite's plan and command line, which no twin run pins down alone: every URL of
every list is served as planned, names are told apart, and the program's arguments go where its
placeholders say."""

from __future__ import annotations

from conformance._box import Answer, Port
from conformance._target import ProgramTarget
from conformance.specs.downloader import _sites
from conformance.specs.downloader._runs import command_line


def _served(url: str) -> Answer | Port | None:
    host, _, path = url.split("://", 1)[1].partition("/")
    site = next((s for s in _sites.sites() if s.name == host), None)
    if site is None:
        return None
    spec = site.http if url.startswith("http:") else site.https
    return site.answer_for(spec, "/" + path)


def test_every_image_of_every_list_is_served_as_its_bytes() -> None:
    lists = [_sites.clean(), _sites.faults()[0], _sites.bound(), _sites.names()]
    for image in (i for images in lists for i in images):
        answer = _served(image.url)
        assert isinstance(answer, Answer) and answer.body == image.body, image.url
        assert answer.content_type.startswith("image/")
    assert len({i.name for i in _sites.clean()}) == len(_sites.clean()) == 12
    assert len(_sites.sample("large.jpg")) > 250_000  # spans several reads


def test_faults_are_what_they_say() -> None:
    healthy, failing, page = _sites.faults()
    served = {f.name: _served(f.url) for f in failing}
    assert served["missing-image.png"] == Answer(status=404, body=b"not found")
    assert isinstance(served["reset-image.jpg"], Answer) and served["reset-image.jpg"].reset_after
    assert isinstance(served["short-image.jpg"], Answer) and served["short-image.jpg"].cut
    assert served["nowhere-image.png"] is None or next(
        s for s in _sites.sites() if s.name == "nowhere.test").dns is not None
    assert served["tarpit-image.png"] is Port.SILENT
    page_answer = _served(page.url)
    assert isinstance(page_answer, Answer) and page_answer.body.startswith(b"<html>")
    names = [i.name for i in healthy + failing + [page]]
    assert len(set(names)) == len(names)  # a report of one is never another's
    # the faults sit among the healthy images, not all at the end
    order = [i.name for i in _sites.faults_list()]
    assert order.index("missing-image.png") < order.index("cloud.png")


def test_names_run_collides_and_repeats() -> None:
    one, two, query, cat, again = _sites.names()
    assert one.name == two.name == "photo.jpg" and one.body != two.body
    assert query.name == "fish.webp" and "?" in query.url
    assert cat == again


def test_arguments_go_where_the_placeholders_say() -> None:
    plain = ProgramTarget(["python", "dl.py"], 0, "dl")
    assert command_line(plain, "images", "4") == ["python", "dl.py", "images.csv", "images", "4"]
    flags = ProgramTarget(["python", "dl.py", "{csv}", "-o", "{folder}", "--workers={limit}"],
                          0, "dl")
    assert command_line(flags, "new/images", "0") == [
        "python", "dl.py", "images.csv", "-o", "new/images", "--workers=0"]


def test_a_csv_with_a_header_has_blank_lines() -> None:
    text = _sites.csv_text(_sites.clean()[:2], header=True)
    assert text.splitlines()[0] == "url" and "" in text.splitlines()
    assert _sites.csv_text(_sites.clean()[:2]).count("\n") == 2
