"""Checks of the `uptime` spec (openapi/uptime.requirements.yaml) against any site monitor of seed
002, run once in the box through the timeline of _world.py.

One run serves every check: the sites' answers change on the suite's clock while the program
runs, and each check judges its own part of the evidence: the box's requests of the sites it
names (the checks' times), the alerts the services got naming a site (_alerts_seen.py), the
lines of the program's log in order. Windows keep evidence apart: cadence is judged before the
hang, concurrency during it, each site's alerts within its own phases (_judge.py).

Rules: every failure names the sites and times (seconds from the program's start), expected
vs actual, and the reproducer, `conformance run uptime --command ...` (the world is fixed, so
that line makes the same run). A run that could not start makes every check "not run"; a
program that ended early is judged as far as it went (UP-01 fails it).
"""

from __future__ import annotations

import shlex
import statistics
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import pairwise

import pytest

from conformance._box import Box
from conformance._checks import CheckFailure, NotImplementedFeature, NotRun, requirement
from conformance._client_run import shown, started_box
from conformance._target import ProgramTarget
from conformance._telegram import interpreter
from conformance.specs.uptime._alerts_seen import Alert, mentions
from conformance.specs.uptime._judge import (
    Change,
    Span,
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
    stop_moment,
)
from conformance.specs.uptime._runs import Ends, Run, plan, run_monitor
from conformance.specs.uptime._world import (
    ALERT_WITHIN,
    HANG_LIMIT,
    INTERVAL,
    SITES,
    STOP_AT,
    STOP_GRACE,
    Site,
    site,
)

N = INTERVAL
STEADY = ("example.com", "head.example.org", "slow.example.net")  # keep working throughout
CADENCE_WINDOW = (2.0, 14.0)  # seconds: before the hang
HANG = "hangs.example.net"
SERVICES = ("TELEGRAM_BOT_TOKEN (api.telegram.org), TG_SESSION/TG_SESSION_FILE with TG_API_ID "
            "and TG_API_HASH (Telethon), SMTP_HOST/SMTP_PORT/SMTP_USER/SMTP_PASSWORD/SMTP_FROM, "
            "ALERT_WEBHOOK_URL")


@dataclass
class Seen:
    """The box, the alert services and the one run of this suite run."""

    box: Box
    ends: Ends
    program: ProgramTarget
    _run: Run | None = None

    @property
    def line(self) -> str:
        """The `conformance run` line that repeats the suite run."""
        return f"conformance run uptime --command {shlex.quote(shlex.join(self.program.argv))}"

    def run(self) -> Run:
        """The run (made on first use); NotRun when the program could not start."""
        if self._run is None:
            self._run = run_monitor(self.box, self.ends, self.program)
        run = self._run
        if run.could_not_start:
            raise NotRun(f"the program could not be started: {run.could_not_start}")
        return run

    def fail(self, message: str, expected: str, actual: str = "") -> CheckFailure:
        """A failure about the run."""
        run = self.run()
        return CheckFailure(message, expected=expected, actual=run.actual(actual),
                            reproduce=run.reproduce(self.line))

    def spans(self, s: Site) -> list[Span]:
        """The site's phases as the run made them."""
        run = self.run()
        return spans(s, run.started, run.switched, stop_moment(run.started, run.ended_at))

    def checks_of(self, domain: str) -> list[float]:
        """When the program checked `domain` (time.monotonic())."""
        return checks([hit.at for hit in self.run().hits if hit.site == domain], N)

    def reached(self, seconds: float) -> Run:
        """The run, when the program was still running `seconds` into it; else NotRun (what
        the check judges had not happened yet)."""
        run = self.run()
        if run.ended_at is not None and run.since(run.ended_at) < seconds:
            raise NotRun(f"the program ended {self.t(run.ended_at)} after its start, before "
                         f"{seconds:g} s, which this needs (see UP-01)")
        return run

    def t(self, moment: float) -> str:
        """A moment as seconds from the program's start."""
        return f"{self.run().since(moment):.1f} s"


@pytest.fixture(scope="session")
def seen(program: ProgramTarget) -> Iterator[Seen]:
    """The box and the alert services for this suite run."""
    with started_box("uptime", lambda folder: Box(plan(), folder, switchable=True)) as box:
        ends = Ends(box, interpreter(program))
        try:
            try:
                ends.start()
            except OSError as exc:
                raise NotRun(f"the alert services could not start: {exc}") from exc
            yield Seen(box, ends, program)
        finally:
            ends.stop()


def _alerts_text(seen: Seen, alerts: list[Alert]) -> str:
    return shown([f"{a.channel} to {a.recipient} at {seen.t(a.at)}: {a.text[:80]!r}"
                  for a in alerts], 4)


def _undelivered(seen: Seen) -> str:
    """Why an alert may be missing, in a few words: what the services refused, and the names
    the program looked up that the box does not have (a mail server of its own choosing)."""
    said = []
    refused = [a for a in seen.run().alerts if not a.delivered]
    if refused:
        said.append("the services refused: " + shown(
            [f"{a.channel} to {a.recipient}: {a.problem or 'refused'}" for a in refused], 3))
    known = {s.name for s in seen.box.sites}
    unknown = sorted({q.name for q in seen.box.queries() if q.name not in known})
    if unknown:
        said.append(f"it looked up names that only the real internet has: {shown(unknown, 3)} "
                    f"(the alert services are given in {SERVICES})")
    return "; ".join(said)


# -- running and cadence -----------------------------------------------------------------------

@requirement("UP-01")
def test_reads_the_csv_and_keeps_monitoring(seen: Seen, note: Callable[[str], None]) -> None:
    """It runs until Ctrl+C and checks every site of the seed-format CSV."""
    run = seen.run()
    expected = ("the program still running at Ctrl+C (27 s), every site but the bad row's "
                "checked")
    if run.ended_at is not None:
        raise seen.fail(f"the program ended by itself {seen.t(run.ended_at)} after its start",
                        expected)
    unchecked = [s.domain for s in SITES if not s.bad_row and not seen.checks_of(s.domain)]
    if unchecked:
        raise seen.fail(f"never checked: {shown(unchecked, 4)}", expected,
                        f"checked: {shown(sorted({h.site for h in run.hits}), 9)}")
    bad = next(s for s in SITES if s.bad_row)
    note(f"{len(run.hits)} requests over {len(SITES)} sites; the bad row's site "
         f"{'was' if seen.checks_of(bad.domain) else 'was not'} checked")


@requirement("UP-02")
def test_every_site_checked_every_n_seconds(seen: Seen, note: Callable[[str], None]) -> None:
    """Sites that keep working are checked every N s (2N + 0.5 s at most, median N/2 at least)."""
    run = seen.reached(CADENCE_WINDOW[1])
    start, end = (run.at(t) for t in CADENCE_WINDOW)
    end = min(end, stop_moment(run.started, run.ended_at))
    problems, said = [], []
    for domain in STEADY:
        window = gaps(seen.checks_of(domain), start, end)
        inside = len(window) - 1
        longest = max(window)
        median = statistics.median(window[1:-1]) if inside >= 2 else longest
        said.append(f"{domain}: {inside} checks, median gap {median:.2f} s")
        if longest > 2 * N + 0.5:
            problems.append(f"{domain}: a gap of {longest:.1f} s ({inside} checks between "
                            f"{CADENCE_WINDOW[0]:g} s and {CADENCE_WINDOW[1]:g} s)")
        elif median < N / 2:
            problems.append(f"{domain}: checked every {median:.2f} s (median), {inside} "
                            f"checks in {end - start:.0f} s")
    if problems:
        raise seen.fail(f"not checked every N = {N:g} s: {shown(problems, 3)}",
                        f"each checked at least once every {2 * N + 0.5:g} s, the median gap "
                        f"at least {N / 2:g} s")
    note("; ".join(said))


@requirement("UP-03")
def test_one_hanging_site_does_not_delay_the_others(seen: Seen,
                                                     note: Callable[[str], None]) -> None:
    """While one site never answers, the others are still checked every 2N + 1 s (or, for a
    site checked more slowly before, no more slowly than then: that is UP-02's)."""
    run = seen.reached(17.0)
    hang = next((s for s in seen.spans(site(HANG)) if s.state == "hangs"), None)
    if hang is None:
        raise NotRun("the run ended before hangs.example.net stopped answering (see UP-01)")
    before = (run.at(CADENCE_WINDOW[0]), min(run.at(CADENCE_WINDOW[1]), hang.start))
    problems = []
    for s in SITES:
        if s.domain == HANG or s.bad_row:
            continue
        answering = [span for span in seen.spans(s) if span.state != "refused"
                     and span.start < hang.end and span.end > hang.start]
        for span in answering:
            start, end = max(span.start, hang.start), min(span.end, hang.end)
            if end - start < 2 * N + 1:
                continue
            longest = max(gaps(seen.checks_of(s.domain), start, end))
            usual = max(gaps(seen.checks_of(s.domain), *before))
            if longest > max(2 * N, usual) + 1:
                problems.append(f"{s.domain}: no check for {longest:.1f} s (before: "
                                f"{usual:.1f} s at most)")
    if problems:
        raise seen.fail(f"while {HANG} did not answer ({seen.t(hang.start)} to "
                        f"{seen.t(hang.end)}), other sites waited: {shown(problems, 4)}",
                        f"every other site checked at least once every {2 * N + 1:g} s (or as "
                        f"often as before the hang)")
    note(f"{HANG} hung from {seen.t(hang.start)} to {seen.t(hang.end)}; the others kept "
         f"their cadence")


@requirement("UP-10")
def test_cadence_does_not_drift(seen: Seen, note: Callable[[str], None]) -> None:
    """Checks of the steady sites are N apart on average, within 15%."""
    run = seen.reached(CADENCE_WINDOW[1])
    start, end = (run.at(t) for t in CADENCE_WINDOW)
    problems, said = [], []
    for domain in STEADY:
        inside = [t for t in seen.checks_of(domain) if start <= t < end]
        if len(inside) < 3:
            problems.append(f"{domain}: {len(inside)} checks between {CADENCE_WINDOW[0]:g} s "
                            f"and {CADENCE_WINDOW[1]:g} s")
            continue
        period = (inside[-1] - inside[0]) / (len(inside) - 1)
        said.append(f"{domain} every {period:.2f} s")
        if abs(period - N) > 0.15 * N:
            problems.append(f"{domain}: every {period:.2f} s on average over {len(inside)} "
                            f"checks")
    if problems:
        raise seen.fail(f"the cadence drifts from N = {N:g} s: {shown(problems, 3)}",
                        f"each steady site checked every {N:g} s on average, within 15%")
    note("; ".join(said))


# -- the log -----------------------------------------------------------------------------------

def _sources(run: Run) -> dict[str, list[tuple[float | None, str]]]:
    """The log's places: its output (lines with their times) and each text file it wrote."""
    out: dict[str, list[tuple[float | None, str]]] = {
        "its output": [(line.at, line.text) for line in run.lines]}
    for name, text in run.files.items():
        out[name] = [(None, line) for line in text.splitlines()]
    return out


def _logged_changes(seen: Seen) -> tuple[str, list[tuple[Change, str]], list[Change]]:
    """The best place of the log: where most changes were found in order."""
    run = seen.run()
    wanted = [c for s in SITES for c in changes(s, seen.spans(s))]
    best: tuple[str, list[tuple[Change, str]], list[Change]] = ("its output", [], list(wanted))
    for place, lines in _sources(run).items():
        found_all: list[tuple[Change, str]] = []
        missing_all: list[Change] = []
        for s in SITES:
            mine = [c for c in wanted if c.domain == s.domain]
            found, missing = find_in_order(lines, mine)
            found_all += found
            missing_all += missing
        if len(found_all) > len(best[1]):
            best = (place, found_all, missing_all)
    return best


@requirement("UP-04")
def test_each_change_logged(seen: Seen, note: Callable[[str], None]) -> None:
    """Each working<->failing change has a line naming the site and its new status, in order."""
    run = seen.reached(STOP_AT)
    place, found, missing = _logged_changes(seen)
    if missing:
        said = [f"{c.domain} {c.old} -> {c.new} at {seen.t(c.at)}" for c in missing]
        raise seen.fail(f"changes not logged (in {place}): {shown(said, 4)}",
                        "for each change, after it, a line naming the site and its new status "
                        "(a code, or words such as down, refused, timeout, up, ok)",
                        f"{len(found)} of {len(found) + len(missing)} changes found; "
                        f"{len(run.lines)} lines of output, files: "
                        f"{shown(sorted(run.files), 3) or 'none'}")
    note(f"{len(found)} changes logged in {place}")


@requirement("UP-11")
def test_change_lines_carry_time_and_old_status(seen: Seen) -> None:
    """Change lines say when and from what; a site that never changes is not logged each check."""
    run = seen.reached(STOP_AT)
    place, found, _ = _logged_changes(seen)
    if not found:
        raise NotRun("no change was logged (see UP-04)")
    problems = []
    for change, text in found:
        if not has_time(text):
            problems.append(f"no time in {text.strip()[:90]!r}")
        elif not says(text, change.old):
            problems.append(f"no old status ({change.old}) in {text.strip()[:90]!r}")
    steady = [text for _, text in _sources(run)[place] if mentions(text, "example.com")]
    if len(steady) > 3:
        problems.append(f"example.com, which never changed, is named by {len(steady)} lines: "
                        f"{steady[0].strip()[:60]!r}...")
    if problems:
        raise seen.fail(f"the log ({place}): {shown(problems, 3)}",
                        "each change's line with a time and the old status; at most three "
                        "lines naming example.com")


# -- alerts ------------------------------------------------------------------------------------

def _due(seen: Seen, s: Site, states: tuple[str, ...], extra: float = 0.0) -> list[str]:
    """Each down of `s` into one of `states` that got no alert naming it in time."""
    run = seen.run()
    mine = alerts_naming(run.alerts, s.domain)
    missing = []
    for down in downs(seen.spans(s)):
        if down.state not in states:
            continue
        last = min(down.end, down.start + ALERT_WITHIN + extra)  # the last ends at Ctrl+C
        if not any(down.start <= a.at <= last for a in mine):
            late = [a for a in mine if a.at > last]
            why = f"; one came at {seen.t(late[0].at)}" if late else ""
            missing.append(f"{s.domain} -> {down.state} at {seen.t(down.start)}: no alert by "
                           f"{seen.t(last)}{why}")
    return missing


@requirement("UP-05")
def test_alert_when_a_site_goes_down(seen: Seen, note: Callable[[str], None]) -> None:
    """200 -> 502 and 200 -> 503 each get an alert naming the site, in time."""
    run = seen.reached(STOP_AT)
    missing = _due(seen, site("shop.example.org"), ("502", "503"))
    if missing:
        raise seen.fail(f"not alerted: {shown(missing, 3)}",
                        f"an alert naming the site within {ALERT_WITHIN:g} s of each change, "
                        f"while it fails, through any of the four services",
                        f"{len(run.alerts)} messages arrived in all: "
                        f"{_alerts_text(seen, run.alerts) or 'none'}; {_undelivered(seen)}")
    mine = alerts_naming(run.alerts, "shop.example.org")
    note(f"shop.example.org alerted by {shown(sorted({a.channel for a in mine}), 4)}")


@requirement("UP-07")
def test_refused_and_silent_are_failing(seen: Seen, note: Callable[[str], None]) -> None:
    """A refused connection and a site that never answers each get an alert."""
    run = seen.reached(STOP_AT)
    missing = _due(seen, site("api.example.net"), ("refused",))
    missing += _due(seen, site(HANG), ("hangs",), extra=HANG_LIMIT)
    if missing:
        raise seen.fail(f"not alerted: {shown(missing, 3)}",
                        "an alert naming api.example.net when its connections are refused, and "
                        f"one naming hangs.example.net when it does not answer, before the "
                        f"Ctrl+C (its own timeout, times its threshold, under {HANG_LIMIT:g} s)",
                        f"{len(run.alerts)} messages arrived in all: "
                        f"{_alerts_text(seen, run.alerts) or 'none'}; {_undelivered(seen)}")
    note("refused and silent sites were alerted")


@requirement("UP-06")
def test_one_alert_per_change(seen: Seen, note: Callable[[str], None]) -> None:
    """At most one alert per change per service and person; none for sites that never fail."""
    run = seen.reached(STOP_AT)
    problems = []
    for s in SITES:
        if s.flaps or s.domain in ("head.example.org", "late.example.com",
                                   "moved.example.org"):
            continue  # judged by UP-16, UP-12, UP-09 and UP-17
        site_spans = seen.spans(s)
        mine = alerts_naming(run.alerts, s.domain)
        for index, groups in per_span(mine, site_spans).items():
            span = site_spans[index]
            allowed = 1 if (not span.working or span.after_down) else 0
            for (channel, recipient), got in groups.items():
                if len(got) > allowed:
                    kind = ("while it stayed failing" if not span.working
                            else "after it worked again" if span.after_down
                            else "while it worked")
                    problems.append(f"{s.domain}: {len(got)} messages by {channel} to "
                                    f"{recipient} {kind} ({seen.t(span.start)} to "
                                    f"{seen.t(span.end)}), at "
                                    f"{', '.join(seen.t(a.at) for a in got[:5])}")
    if problems:
        raise seen.fail(f"more alerts than changes: {shown(problems, 3)}",
                        "one alert per working -> failing change on each service and person, "
                        "none for a site that never fails (example.com, slow.example.net, "
                        "mizulina.ru), at most one recovery notice after a site works again")
    note(f"{sum(1 for a in run.alerts if a.delivered)} messages, none more than the changes")


@requirement("UP-08")
def test_alerts_go_to_the_sites_contact(seen: Seen, note: Callable[[str], None]) -> None:
    """An alert naming a site is addressed to that site's row's contact."""
    run = seen.reached(STOP_AT)
    named = [(a, a.sites()) for a in run.alerts if a.delivered and a.sites()]
    if not named:
        raise NotRun("no alert naming a site arrived (see UP-05)")
    wrong = []
    for alert, domains in named:
        contacts = {site(d).contact for d in domains}
        if alert.to not in contacts:
            whose = (f"{alert.to.username}'s" if alert.to is not None else "nobody's of the CSV")
            wrong.append(f"{alert.channel} to {alert.recipient} ({whose}) at {seen.t(alert.at)}"
                         f" names {', '.join(domains)}, whose contact is "
                         f"{', '.join('@' + site(d).contact.username for d in domains)}")
    if wrong:
        raise seen.fail(f"alerts to the wrong person: {shown(wrong, 3)}",
                        "each alert to the contact in its site's row: the Telegram user "
                        "@username (chat id from getUpdates) or the e-mail address")
    note(f"{len(named)} alerts, each to its site's contact")


@requirement("UP-09")
def test_no_alert_for_a_site_down_from_the_start(seen: Seen) -> None:
    """late.example.com, failing from the start, gets no alert."""
    run = seen.reached(9.0)
    late = site("late.example.com")
    first = seen.spans(late)[0]
    got = [a for a in alerts_naming(run.alerts, late.domain) if a.at < first.end]
    if got:
        raise seen.fail(f"{late.domain}, failing from the start, was alerted: "
                        f"{_alerts_text(seen, got)}",
                        "no alert: the site never went from working to failing while watched")


@requirement("UP-12")
def test_head_not_allowed_is_not_down(seen: Seen) -> None:
    """A site answering HEAD with 405 and GET with 200 gets no alert."""
    run = seen.reached(STOP_AT)
    got = alerts_naming(run.alerts, "head.example.org")
    if got:
        methods = sorted({h.method for h in run.hits if h.site == "head.example.org"})
        raise seen.fail(f"head.example.org, which answers GET with 200, was alerted: "
                        f"{_alerts_text(seen, got)}",
                        "no alert: a 405 to HEAD is checked again with GET",
                        f"it was asked with {', '.join(methods)}")


@requirement("UP-17")
def test_redirect_is_not_down(seen: Seen) -> None:
    """A site whose main page starts answering 301 gets no alert."""
    run = seen.reached(STOP_AT)
    got = alerts_naming(run.alerts, "moved.example.org")
    if got:
        raise seen.fail(f"moved.example.org, which answers 301 to /new/ (where 200 waits) from "
                        f"4 s, was alerted: {_alerts_text(seen, got)}",
                        "no alert: a redirect is an answer of a working site (followed, it "
                        "leads to a 200)")


@requirement("UP-13")
def test_ctrl_c_stops_cleanly(seen: Seen, note: Callable[[str], None]) -> None:
    """Ctrl+C: it ends within 5 s, without a traceback."""
    run = seen.run()
    if not run.interrupted:
        raise NotRun("the program had ended before the Ctrl+C (see UP-01)")
    if run.stop_seconds is None:
        raise seen.fail(f"the program did not end within {STOP_GRACE:g} s of Ctrl+C",
                        f"it ends within {STOP_GRACE:g} s, without a traceback")
    after = run.at(27.0)
    tail = "\n".join(line.text for line in run.lines if line.at >= after)
    if "Traceback (most recent call last)" in tail:
        raise seen.fail("Ctrl+C gave a traceback", "a clean end: a line at most, no traceback",
                        f"after Ctrl+C: {tail.strip()[-300:]!r}")
    note(f"ended {run.stop_seconds:.1f} s after Ctrl+C, exit status {run.code}")


@requirement("UP-14")
def test_no_secret_in_the_log(seen: Seen) -> None:
    """No token, password or session it was given appears in its output or files."""
    run = seen.run()
    leaks = []
    for place, lines in _sources(run).items():
        text = "\n".join(t for _, t in lines)
        leaks += [f"{name} in {place}" for name, value in run.secrets.items() if value in text]
    if leaks:
        raise seen.fail(f"secrets printed: {shown(leaks, 4)}",
                        "no secret given in the environment appears in the output or files")


@requirement("UP-15")
def test_recovery_notice(seen: Seen) -> None:
    """After shop.example.org works again, a message naming it arrives before it fails again."""
    run = seen.reached(12.0)
    shop = seen.spans(site("shop.example.org"))
    recovered = [s for s in shop if s.after_down]
    if not recovered:
        raise NotRun("the run ended before shop.example.org worked again (see UP-01)")
    span = recovered[0]
    got = [a for a in alerts_naming(run.alerts, "shop.example.org")
           if span.start <= a.at < span.end]
    if not got:
        raise NotImplementedFeature(f"no message named shop.example.org while it worked again "
                                    f"({seen.t(span.start)} to {seen.t(span.end)})")


def _recovery(text: str) -> bool:
    """Whether an alert's text tells of a site working again (and of no failure)."""
    return says(text, "up") and not any(says(text, state)
                                        for state in ("502", "503", "refused", "hangs"))


@requirement("UP-16")
def test_flapping_site_calmed(seen: Seen, note: Callable[[str], None]) -> None:
    """flap.example.org, flipping every second for 10 s, gets at most half as many alerts on
    each service as the times its checks saw it go down (recovery notices aside)."""
    run = seen.reached(STOP_AT)
    flap = site("flap.example.org")
    site_spans = seen.spans(flap)
    flips = [span for span in site_spans if span.start > run.started]
    start, end = flips[0].start, flips[-1].start + ALERT_WITHIN

    def working_at(moment: float) -> bool:
        return next((span.working for span in site_spans if span.start <= moment < span.end),
                    True)
    # Which side of a flip a check near it saw is a guess: hence "half as many", not "fewer".
    seen_states = [working_at(t) for t in seen.checks_of(flap.domain)]
    went_down = sum(1 for a, b in pairwise(seen_states) if a and not b)
    if went_down < 3:
        raise NotRun(f"its checks saw {flap.domain} go down {went_down} time(s), too few to "
                     f"tell calm from a storm")
    got = [a for a in alerts_naming(run.alerts, flap.domain)
           if start <= a.at < end and not _recovery(a.text)]
    by_channel: dict[str, int] = {}
    for alert in got:
        by_channel[alert.channel] = by_channel.get(alert.channel, 0) + 1
    worst = max(by_channel.values(), default=0)
    if worst > went_down // 2:
        raise NotImplementedFeature(f"{flap.domain} went down {went_down} times as its checks "
                                    f"saw it and got {worst} alerts on one service "
                                    f"({_alerts_text(seen, got)})")
    note(f"{flap.domain}: seen going down {went_down} times, {worst} alerts at most on one "
         f"service")
