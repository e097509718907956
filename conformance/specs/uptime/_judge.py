"""What a run of a monitor showed, in the terms the uptime checks judge: each site's phases on the
suite's clock, its checks (the box's requests, HEAD and GET of one check together), the alerts
put to the phases they came in, and the change lines of its log found in order.

Rules: plain functions of a finished run (conformance/specs/uptime/_runs.py) and its alerts
(_alerts_seen.py); no clock read, no I/O. An alert belongs to the phase of its site it arrived
in (a late one, after the site works again, is not its down's: a monitor slower than the phase
did not alert in time). Alerts are counted per channel and recipient: one change alerted by
Telegram and by e-mail is one alert on each, a copy to a second person is not a second alert.
Words are matched as whole words (ASCII) or by their stem (Cyrillic: Russian inflects).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise

from conformance.specs.uptime._alerts_seen import Alert, mentions
from conformance.specs.uptime._world import SITES, STOP_AT, WORKING, Site, State

CLUSTER = 0.3  # requests of one site this close (in N) are one check: HEAD then GET, a retry


@dataclass(frozen=True)
class Span:
    """One phase of a site on the suite's clock: [start, end) in time.monotonic()."""

    start: float
    end: float
    state: State
    after_down: bool = False  # a working phase that follows a failing one

    @property
    def working(self) -> bool:
        """Whether a correct monitor sees the site working then."""
        return self.state in WORKING


def spans(site: Site, started: float, switched: Sequence[tuple[float, str, State]],
          ended: float) -> list[Span]:
    """The site's phases as they happened: from the run's start, each switch of the site the
    run made, up to `ended` (the Ctrl+C, or the program's own end)."""
    points = [(started, site.phases[0].state)]
    points += [(at, state) for at, domain, state in switched if domain == site.domain]
    ends = [at for at, _ in points[1:]] + [ended]
    out: list[Span] = []
    for (at, state), end in zip(points, ends, strict=True):
        if at >= ended:
            break
        previous = out[-1] if out else None
        out.append(Span(at, min(end, ended), state,
                        after_down=bool(previous and not previous.working
                                        and state in WORKING)))
    return out


def downs(site_spans: list[Span]) -> list[Span]:
    """The working->failing phases (each owed one alert)."""
    return [span for before, span in pairwise(site_spans)
            if before.working and not span.working]


def checks(times: Iterable[float], interval: float) -> list[float]:
    """The start of each check among request times (sorted; HEAD+GET or a retry closer than
    CLUSTER x N is one check)."""
    out: list[float] = []
    for at in sorted(times):
        if not out or at - out[-1] > CLUSTER * interval:
            out.append(at)
    return out


def gaps(times: Sequence[float], start: float, end: float) -> list[float]:
    """The gaps between checks in [start, end), counting from `start` to the first and from the
    last to `end` (a site checked once in a window has two long gaps)."""
    inside = [t for t in times if start <= t < end]
    points = [start, *inside, end]
    return [b - a for a, b in pairwise(points)]


def alerts_naming(alerts: Iterable[Alert], domain: str) -> list[Alert]:
    """The delivered alerts whose text names `domain`."""
    return [a for a in alerts if a.delivered and a.names(domain)]


def per_span(alerts: Iterable[Alert], site_spans: list[Span]
             ) -> dict[int, dict[tuple[str, str], list[Alert]]]:
    """The alerts by the index of the span they arrived in, then by (channel, recipient)."""
    out: dict[int, dict[tuple[str, str], list[Alert]]] = defaultdict(lambda: defaultdict(list))
    for alert in alerts:
        for index, span in enumerate(site_spans):
            last = index == len(site_spans) - 1
            if span.start <= alert.at < span.end or (last and alert.at >= span.end):
                out[index][(alert.channel, alert.recipient)].append(alert)
                break
    return out


# -- the log ------------------------------------------------------------------------------------

_FAILING_WORDS = ("down", "fail", "failed", "failing", "error", "unreachable", "unavailable",
                  "offline", "dead", "problem", "bad", "alert")
_CYRILLIC_FAILING = ("недоступ", "ошибк", "упал", "лежит", "не работ", "сбой", "проблем",
                     "нерабоч")
WORDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # state: (ASCII words, Cyrillic stems) a line names the state by
    "up": (("200", "up", "ok", "works", "working", "online", "available", "recovered",
            "restored", "alive", "healthy", "back"), ("работает", "доступен", "восстанов",
                                                      "в норме", "норм", "поднял", "ожил")),
    "502": (("502",), ()),
    "503": (("503",), ()),
    "refused": (("refused", "connection", "connect", "connecterror", "connectionerror",
                 "clientconnectorerror", *_FAILING_WORDS), ("отказ", "соединен",
                                                            *_CYRILLIC_FAILING)),
    "hangs": (("timeout", "timed", "timeouterror", "readtimeout", "no answer", "no response",
               *_FAILING_WORDS), ("таймаут", "тайм-аут", "не отвеча", "время ожидания",
                                  *_CYRILLIC_FAILING)),
}
_TIME = re.compile(r"\b\d{1,2}:\d{2}(:\d{2})?\b|\b\d{4}-\d{2}-\d{2}[T ]\d|\b1[6-9]\d{8}\b")


def says(text: str, state: State) -> bool:
    """Whether `text` names `state` (a status code, or a word for it)."""
    ascii_words, stems = WORDS[state]
    lowered = text.lower()
    if any(stem in lowered for stem in stems):
        return True
    return any(re.search(rf"(?<![\w]){re.escape(word)}(?![\w])", lowered)
               for word in ascii_words)


def has_time(text: str) -> bool:
    """Whether a log line carries a time of day, a date-time or a Unix time."""
    return _TIME.search(text) is not None


@dataclass(frozen=True)
class Change:
    """A change of a site the log must show: from `old` to `new`, at time.monotonic() `at`."""

    domain: str
    old: State
    new: State
    at: float


def changes(site: Site, site_spans: list[Span]) -> list[Change]:
    """The changes of status a log must show for `site` (working<->failing only; a flapping
    site and changes between two failures, 502 -> 503, are left out)."""
    if site.flaps:
        return []
    out = []
    for before, span in pairwise(site_spans):
        if before.working != span.working:
            out.append(Change(site.domain, before.state, span.state, span.start))
    return out


def find_in_order(lines: Sequence[tuple[float | None, str]], wanted: list[Change]
                  ) -> tuple[list[tuple[Change, str]], list[Change]]:
    """Each change's line, found in order (a line is a change's when it names the domain and
    the new status and, when its time is known, came after the change): (found, missing)."""
    found: list[tuple[Change, str]] = []
    missing: list[Change] = []
    position = 0
    for change in wanted:
        for index in range(position, len(lines)):
            at, text = lines[index]
            if (mentions(text, change.domain) and says(text, change.new)
                    and (at is None or at >= change.at)):
                found.append((change, text))
                position = index + 1
                break
        else:
            missing.append(change)
    return found, missing


def site_of(domain: str) -> Site:
    """The world's site of `domain`."""
    return next(s for s in SITES if s.domain == domain)


def stop_moment(started: float, ended_at: float | None) -> float:
    """When the run's timeline ended: the program's own end, or the Ctrl+C."""
    return ended_at if ended_at is not None else started + STOP_AT
