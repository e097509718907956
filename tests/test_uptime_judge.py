"""The uptime checks' judging (conformance/specs/uptime/_judge.py) on made-up runs: phases on the
suite's clock, checks told apart, alerts put to their phases, log lines found in order."""

from __future__ import annotations

import pytest

from conformance.specs.uptime._alerts_seen import Alert, mentions
from conformance.specs.uptime._judge import (
    Change,
    alerts_naming,
    changes,
    checks,
    downs,
    find_in_order,
    gaps,
    has_time,
    per_span,
    says,
    spans,
)
from conformance.specs.uptime._world import SITES, STOP_AT, csv_text, site

T0 = 1000.0


def _alert(at: float, text: str, channel: str = "e-mail", recipient: str = "x@y",
           delivered: bool = True) -> Alert:
    return Alert(at=at, channel=channel, to=None, recipient=recipient, text=text,  # type: ignore[arg-type]
                 delivered=delivered)


def test_the_world_csv_is_the_seeds_format_with_its_bad_row() -> None:
    lines = csv_text().splitlines()
    assert lines[0] == "DOMAIN_NAME;tg_username,email"
    assert lines[-1] == "mizulina.ru,@mizulina,mizulin"
    assert len({s.contact for s in SITES}) == len(SITES)  # a wrong contact is always seen
    assert site("shop.example.org").downs() == [(5, 9), (12, STOP_AT)]
    assert site("late.example.com").downs() == []  # down from the start: no change


def test_spans_follow_the_switches_the_run_made() -> None:
    shop = site("shop.example.org")
    switched = [(T0 + 5.1, "shop.example.org", "502"), (T0 + 6.0, "api.example.net", "refused"),
                (T0 + 10.05, "shop.example.org", "up"), (T0 + 14.0, "shop.example.org", "503")]
    got = spans(shop, T0, switched, T0 + STOP_AT)  # type: ignore[arg-type]
    assert [(round(s.start - T0, 2), round(s.end - T0, 2), s.state, s.after_down)
            for s in got] == [
        (0.0, 5.1, "up", False), (5.1, 10.05, "502", False), (10.05, 14.0, "up", True),
        (14.0, STOP_AT, "503", False)]
    assert [d.state for d in downs(got)] == ["502", "503"]
    # A run that ended early has the phases it reached only.
    early = spans(shop, T0, switched, T0 + 7.0)  # type: ignore[arg-type]
    assert [(s.state, round(s.end - T0, 2)) for s in early] == [("up", 5.1), ("502", 7.0)]


def test_head_then_get_is_one_check_and_gaps_count_the_window_edges() -> None:
    times = [1.0, 1.01, 2.0, 3.0, 3.05, 5.5]
    assert checks(times, 1.0) == [1.0, 2.0, 3.0, 5.5]
    assert gaps([1.0, 2.0, 3.0, 5.5], 0.5, 6.0) == [0.5, 1.0, 1.0, 2.5, 0.5]
    assert gaps([], 0.0, 4.0) == [4.0]


def test_alerts_are_put_to_the_phase_they_arrived_in() -> None:
    shop = site("shop.example.org")
    switched = [(T0 + 5, "shop.example.org", "502"), (T0 + 10, "shop.example.org", "up"),
                (T0 + 14, "shop.example.org", "503")]
    got = spans(shop, T0, switched, T0 + STOP_AT)  # type: ignore[arg-type]
    alerts = [_alert(T0 + 6, "shop.example.org is down"),
              _alert(T0 + 6.5, "shop.example.org is down", channel="telegram bot"),
              _alert(T0 + 7, "shop.example.org still down"),
              _alert(T0 + 10.5, "shop.example.org is up again"),
              _alert(T0 + 30, "shop.example.org down (sent while stopping)"),
              _alert(T0 + 8, "late.example.com is down"),
              _alert(T0 + 8, "shop.example.org is down", delivered=False)]
    mine = alerts_naming(alerts, "shop.example.org")
    assert len(mine) == 5  # not the undelivered one, not late.example.com's
    placed = per_span(mine, got)
    assert {k: len(v) for k, v in placed[1].items()} == {("e-mail", "x@y"): 2,
                                                         ("telegram bot", "x@y"): 1}
    assert len(placed[2][("e-mail", "x@y")]) == 1  # the recovery notice
    assert len(placed[3][("e-mail", "x@y")]) == 1  # after the end: the last phase's
    assert 0 not in placed


@pytest.mark.parametrize(("text", "domain", "expected"), [
    ("ALERT: example.com is down", "example.com", True),
    ("late.example.com is down", "example.com", False),
    ("https://EXAMPLE.COM/ 502", "example.com", True),
    ("example.com.au down", "example.com", False),
    ("site example.com. is down", "example.com", True),
])
def test_a_domain_is_named_as_a_whole_name(text: str, domain: str, expected: bool) -> None:
    assert mentions(text, domain) is expected


@pytest.mark.parametrize(("text", "state", "expected"), [
    ("shop.example.org: 200 -> 502", "502", True),
    ("shop.example.org: 5020 bytes", "502", False),
    ("api.example.net DOWN: Cannot connect to host", "refused", True),
    ("[12:00:05] api.example.net: недоступен (ошибка соединения)", "refused", True),
    ("hangs.example.net: TimeoutError", "hangs", True),
    ("hangs.example.net: таймаут", "hangs", True),
    ("shop.example.org is UP again (200)", "up", True),
    ("shop.example.org: снова работает", "up", True),
    ("shop.example.org token sent", "up", False),
])
def test_a_status_is_said_by_its_code_or_words(text: str, state: str, expected: bool) -> None:
    assert says(text, state) is expected  # type: ignore[arg-type]


def test_times_in_log_lines() -> None:
    assert has_time("2026-12-06T10:00:05Z shop.example.org 200 -> 502")
    assert has_time("[12:00:05] shop.example.org")
    assert has_time("1780000000.5 shop down")
    assert not has_time("shop.example.org 200 -> 502")


def test_changes_are_found_in_order_and_after_they_happened() -> None:
    wanted = [Change("shop.example.org", "up", "502", 5.0), Change("shop.example.org", "502",
                                                                   "up", 10.0)]
    lines: list[tuple[float | None, str]] = [
        (1.0, "shop.example.org 200"),  # a check before any change: not the change
        (5.5, "shop.example.org 200 -> 502"), (10.5, "shop.example.org 502 -> 200")]
    found, missing = find_in_order(lines, wanted)
    assert [c.new for c, _ in found] == ["502", "up"] and not missing
    # A recovery logged before the failure is not the recovery.
    backwards: list[tuple[float | None, str]] = [(None, "shop.example.org up"),
                                                 (None, "shop.example.org 502")]
    found, missing = find_in_order(backwards, wanted)
    assert [c.new for c in missing] == ["up"]
    # A flapping site owes no log line.
    assert changes(site("flap.example.org"), []) == []
