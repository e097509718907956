"""What the probe suite's twins cannot show: that the planned list covers every fault of the box
at every size, and how one record is judged field by field (the values each choice the spec
leaves open may take, and the message a wrong one gets). No box is started here."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from conformance._box import Answer, Dns, Port, Tls
from conformance.specs.probe import checks
from conformance.specs.probe._runs import parse_output, records_so_far
from conformance.specs.probe._sites import allowed, normal, plan


@pytest.mark.parametrize("count", [30, 300, 10_000])
def test_the_planned_list_covers_every_fault(count: int) -> None:
    planned = plan(count)
    listed = [planned.site(n) for n in planned.listed]
    assert len(listed) == count == len(set(planned.listed))
    assert {s.dns for s in listed} >= set(Dns)
    ports = {p for s in listed for p in (s.http, s.https) if isinstance(p, Port)}
    assert ports == set(Port) - {Port.ELSEWHERE}  # a site of a server of ours, not a fault
    assert {s.tls for s in listed} >= set(Tls)
    answers = [p for s in listed for p in (s.http, s.https) if isinstance(p, Answer)]
    redirects = {(s.name, a.redirect.split("/")[2]) for s in listed
                 for a in (s.http, s.https) if isinstance(a, Answer) and a.redirect}
    assert any(name == target for name, target in redirects)  # a loop
    assert any(name != target and target in planned.listed for name, target in redirects)
    assert any(len(a.cookies) > 1 for a in answers)
    assert any(len(a.languages) > 1 for a in answers)
    assert any(a.gzip for a in answers) and any(a.server is None for a in answers)
    assert any(a.body == b"" for a in answers) and any(a.head_differs for a in answers)
    # Refused on one port only once the box would need a socket per site on both.
    refused = planned.site("port-refused.test")
    assert (refused.http is Port.REFUSED) == (count <= 2000)
    assert refused.https is Port.REFUSED
    # The bound run's hosts are beside the list, not in it, and more than the bound.
    assert len(planned.bound) > checks.BOUND and not set(planned.bound) & set(planned.listed)
    assert plan(count) == planned  # a function of N alone: the reproducer makes the same list


def test_slow_hosts_are_planned_when_the_list_has_room() -> None:
    assert sum(planned.site(n).http is Port.SILENT for planned in [plan(300)]
               for n in planned.listed) > checks.CONCURRENT


def judge(planned: Any, records: list[dict[str, Any]], keys: tuple[str, ...]) -> list[str]:
    """checks.field_problems over these records (a stand-in for the run's observations)."""
    seen = SimpleNamespace(plan=planned, excused=frozenset(),
                           by_domain=lambda: checks.assign(records, list(planned.listed)))
    return checks.field_problems(seen, keys)  # type: ignore[arg-type]


def test_a_wrong_field_names_the_domain_the_value_and_what_was_served() -> None:
    planned = plan(30)
    record = {"domain": "rich-headers.test", "http_status": 200, "http_server": "rich",
              "http_content_length": 11, "http_content_language": ["ru-RU"],
              "http_cookies": ["session=abc123", "theme=dark", "lang=ru"]}
    problems = judge(planned, [record], tuple(k for k in record if k != "domain"))
    assert problems == [
        "rich-headers.test: http_content_language is ['ru-RU'], expected ['de', 'en', 'ru-RU'] "
        "(the box served 200, Server 'rich', 11 bytes, Content-Language ru-RU + en, de, "
        "3 Set-Cookie)"]
    record["http_content_language"] = ["ru-RU", "en", "de"]
    assert judge(planned, [record], ("http_content_language",)) == []


def test_choices_the_spec_leaves_open_all_pass() -> None:
    planned = plan(30)
    site = planned.site
    # A redirect: its own 301, or the page it leads to.
    away = allowed(planned, site("redirect-away.test"), "http")
    assert away["status"].accepts(301) and away["status"].accepts(200)
    # A loop: the 301, or None from a prober that follows and gives up.
    loop = allowed(planned, site("redirect-loop.test"), "https")
    assert loop["status"].accepts("Ok") and loop["status"].accepts(None)
    assert loop["status"].accepts("TooManyRedirects")
    # gzip: the size as sent or decoded.
    assert len(allowed(planned, site("gzip.test"), "http")["content_length"].values) == 2
    # Cookies as header values, pairs, or objects.
    cookies = allowed(planned, site("rich-headers.test"), "https")["cookies"]
    for form in (["secure=1; Secure"], ["secure=1"], [{"name": "secure", "value": "1"}],
                 [{"secure": "1"}]):
        assert cookies.accepts(normal("cookies", form)), form
    # An endless body: the code or None, never a length.
    endless = allowed(planned, site("port-endless.test"), "http")
    assert endless["status"].accepts(200) and endless["status"].accepts(None)
    assert not endless["content_length"].accepts(16)


def test_what_no_choice_allows_fails() -> None:
    planned = plan(30)
    tls = allowed(planned, planned.site("tls-expired.test"), "https")
    assert not tls["status"].accepts(None) and not tls["status"].accepts("Ok")
    assert not tls["status"].accepts("") and tls["status"].accepts("certificate has expired")
    nx = allowed(planned, planned.site("dns-nxdomain.test"), "http")
    assert not nx["status"].accepts(0) and not nx["content_language"].accepts(
        normal("content_language", None))
    ok = allowed(planned, planned.site("site-0.test"), "http")
    assert not ok["status"].accepts(normal("status", True))
    assert not ok["status"].accepts("200")


def test_output_is_read_whole_or_as_it_grows() -> None:
    assert parse_output('[{"a": 1}]') == ([{"a": 1}], "")
    records, why = parse_output("[{'a': None}]")
    assert records is None and "not one JSON document" in why
    assert parse_output("[1]")[1].startswith("domain_status's item 0 is 1, not an object")
    assert parse_output(None)[1] == "there is no file domain_status in the program's working " \
                                    "folder"
    assert records_so_far('[\n{"http_status": 200},\n{"http_status": null}') == 2
    assert records_so_far("[") == 0 and records_so_far("") == 0


def _hit(site: str, port: int, at: float) -> Any:
    from conformance._box import Hit

    return Hit(site, "https" if port == 443 else "http", port, "GET", "/", (), at)


def test_requests_held_at_once_count_each_http_request_until_its_next_https() -> None:
    # a and b held together until their HTTPS; c's HTTP starts after a gave up.
    assert checks.held_at_once([_hit("a", 80, 0), _hit("b", 80, 1), _hit("a", 443, 2),
                                _hit("c", 80, 3), _hit("b", 443, 4)]) == 2
    # HTTPS asked first (it answers at once): each HTTP request is then held to the end.
    assert checks.held_at_once([_hit(n, 443, i) for i, n in enumerate("abc")] +
                               [_hit(n, 80, 3 + i) for i, n in enumerate("abc")]) == 3
    assert checks.held_at_once([]) == 0
