"""The fixture web serves what its rules say and records what it received."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from conformance.specs.crawler._web import FixtureWeb


@pytest.fixture(scope="module")
def web() -> Iterator[FixtureWeb]:
    with FixtureWeb() as server:
        yield server


def get(url: str) -> httpx.Response:
    return httpx.get(url, timeout=5, trust_env=False)


@pytest.mark.parametrize("code", [200, 201, 204, 404, 418, 500, 503, 599])
def test_status_answers_that_code(web: FixtureWeb, code: int) -> None:
    assert get(web.url(f"/status/{code}")).status_code == code


def test_delay_waits_then_answers(web: FixtureWeb) -> None:
    t0 = time.monotonic()
    assert get(web.url("/delay/0.5/status/404")).status_code == 404
    assert time.monotonic() - t0 >= 0.45


def test_redirect_points_at_a_page_under_the_same_token(web: FixtureWeb) -> None:
    token = web.token()
    answer = get(web.url(f"{token}/redirect/302"))
    assert answer.status_code == 302
    assert answer.headers["location"] == f"{token}/status/200"


@pytest.mark.parametrize(("path", "error"), [
    ("/reset", httpx.ReadError), ("/close", httpx.RemoteProtocolError),
])
def test_reset_and_close_give_no_answer(web: FixtureWeb, path: str, error: type) -> None:
    with pytest.raises(error):
        get(web.url(path))


def test_hang_never_answers(web: FixtureWeb) -> None:
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(web.url("/hang"), timeout=0.5, trust_env=False)


def test_hang_ends_without_an_answer_when_the_web_stops() -> None:
    failed: list[Exception] = []

    def ask(url: str) -> None:
        try:
            httpx.get(url, timeout=10, trust_env=False)
        except httpx.HTTPError as exc:
            failed.append(exc)

    with FixtureWeb() as server:
        asking = threading.Thread(target=ask, args=(server.url("/hang"),))
        asking.start()
        deadline = time.monotonic() + 5
        while not server.hits("/hang") and time.monotonic() < deadline:
            time.sleep(0.01)
        t0 = time.monotonic()
    asking.join(10)
    assert time.monotonic() - t0 < 3
    assert [type(e) for e in failed] == [httpx.RemoteProtocolError]
    (hit,) = server.hits()
    assert hit.status is None and hit.finished is not None


def test_endless_body_keeps_coming(web: FixtureWeb) -> None:
    with httpx.stream("GET", web.url("/endless"), timeout=5, trust_env=False) as answer:
        seen = 0
        for chunk in answer.iter_raw():
            seen += len(chunk)
            if seen > 5_000_000:
                break
    assert seen > 5_000_000


def test_unknown_page_is_404(web: FixtureWeb) -> None:
    assert get(web.url("/nothing/here")).status_code == 404


def test_records_method_path_and_overlap(web: FixtureWeb) -> None:
    token = web.token()
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda i: get(web.url(f"{token}/delay/0.5/status/200?i={i}")), range(4)))
    httpx.head(web.url(f"{token}/status/200"), timeout=5, trust_env=False)
    assert web.count(f"{token}/delay/0.5/status/200?i=1") == 1
    assert web.count(f"{token}/status/200", method="HEAD") == 1
    assert web.count(f"{token}/status/200", method="GET") == 0
    assert web.max_in_flight(token) == 4
    assert len(web.hits(token)) == 5
    for hit in web.hits(token):
        assert hit.finished is not None and hit.status == 200
        assert hit.finished - hit.at >= (0.45 if "/delay/" in hit.path else 0)


def test_a_dropped_connection_is_recorded_without_a_status(web: FixtureWeb) -> None:
    token = web.token()
    for path in ("/reset", "/close"):
        with pytest.raises(httpx.TransportError):
            get(web.url(token + path))
    assert [(h.path, h.status) for h in web.hits(token)] == [
        (f"{token}/reset", None), (f"{token}/close", None)]


def test_urls_name_the_url_host() -> None:
    assert FixtureWeb("0.0.0.0", 8000, url_host="::1").url("/x") == "http://[::1]:8000/x"
    assert FixtureWeb("127.0.0.1", 8000).base_url == "http://127.0.0.1:8000"
