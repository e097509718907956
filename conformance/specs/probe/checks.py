"""Checks of the `probe` spec (openapi/probe.requirements.yaml) against any prober of seed 002.

One box (conformance/_box) serves every run of a suite run: the main list (`--domains N`, every
fault of the box among healthy sites, _sites.py) and the sites of the connection-bound run. The
program runs ONCE on the main list, and every record check judges that run's evidence: each
record against what the box knows it served (the plan) and what its hosts saw (`box.seen`, hit
times for the order), the box's peak of connections and of DNS queries in flight. A few more
short runs, each made when a check first needs it: the bound run (1,500 hosts whose HTTP
port holds every request silent, HTTPS refused: the 1,000 connections' bound; stopped once no
new request has come for a while, since the connections it then holds are all it opens until
they time out), two small lists (a messy
one, a plain one) and no list at all. A program that does not finish in time is stopped; what
it wrote is judged where it can be, and the rest fails naming the limit. The file written so
far is read while slow hosts hold their connections, the last reading judged (PROBE-26).

Rules: every failure names the domains (a few, and how many in all), expected vs actual (the
record's field and what the box served), and the reproducer, `conformance run probe --command
... --domains N` (the plan is a function of N, so that line makes the same list and box); the
list itself is kept in the run's body folder, named in the reproducer. Requests are told apart by
run by their arrival time. Each field is judged by its own requirement on every record (the
redirect loop's by PROBE-19 alone); PROBE-18 judges that failures stop nothing. The bound is
judged on the bound run only, by the kernel's count of the connections the program holds
established, sampled while it runs (the box's own count lags a busy machine). When
the run's network dropped DNS answers for want of buffer room (the box's resolver releases
held answers in bursts), as many healthy domains that never got their request are not held
against the program, and a note says which.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

import pytest

from conformance import _http
from conformance._box import Box, Hit, Port, Site
from conformance._checks import (
    CheckFailure,
    NotImplementedFeature,
    NotRun,
    requirement,
)
from conformance._client_run import shown, started_box
from conformance._options import RunOptions
from conformance._target import ProgramTarget
from conformance.specs.probe import Options
from conformance.specs.probe._runs import (
    LIST,
    OUTPUT,
    POLL,
    Run,
    records_so_far,
    run_under_box,
)
from conformance.specs.probe._sites import (
    DNS_DELAY,
    FIELDS,
    SCHEMES,
    Plan,
    allowed,
    answered,
    list_text,
    normal,
    plan,
)

KEYS = tuple(f"{scheme}_{name}" for scheme in SCHEMES for name in FIELDS)
NAME_KEYS = ("domain", "name", "host", "url")
SHOWN = 5  # domains shown per failure; the count says how many in all
CONCURRENT = 100  # connections (and DNS queries) a concurrent prober holds at once, at least
BOUND = 1000  # the seed's bound on connections
# The kernel's count of established connections, sampled: a prober's closed socket and the
# one it opens next may both be counted in one sample.
BOUND_SLACK = 50
SMALL_LIMIT = 30.0  # seconds for a run on a small list
ORDER_GAP = 0.5  # seconds a silent HTTP request is surely waited on before HTTPS may start
TRACEBACK = "Traceback (most recent call last)"
LOOP = "redirect-loop.test"


def main_limit(count: int) -> float:
    """Seconds the main run may take: the slowest fault a prober must wait out (a silent host,
    a DNS answer that never comes) for any sane timeout, twice, and time for the list's size."""
    return 90.0 + count / 100


@dataclass
class Seen:
    """The box and every run of one suite run, each run made when first needed."""

    box: Box
    plan: Plan
    program: ProgramTarget
    count: int
    list_file: str
    runs: dict[str, Run] = field(default_factory=dict)
    peak_connections: int = 0
    peak_dns: int = 0

    def reproduce(self, extra: str = "") -> str:
        """The line that runs this suite again on the same list and box."""
        line = (f"conformance run probe --command {shlex.quote(shlex.join(self.program.argv))} "
                f"--domains {self.count}  # the program runs in the box (a local internet of "
                f"its own) on the list kept at {self.list_file}")
        return f"{line}; {extra}" if extra else line

    # -- the runs ----------------------------------------------------------------------------

    @property
    def main(self) -> Run:
        """The run on the main list."""
        if "main" not in self.runs:
            holders = [s.name for s in self.plan.sites
                       if s.name in self.listed_set and s.http is Port.SILENT]

            def holding() -> bool:
                # The slow hosts have their requests and some still waits for its HTTPS.
                hits = {(h.site, h.scheme) for h in self.box.seen()}
                asked = [n for n in holders if (n, "http") in hits]
                return bool(asked) and any((n, "https") not in hits for n in asked)

            self.runs["main"] = run_under_box(
                self.box, self.program, list_text(self.plan.listed), main_limit(self.count),
                watch=holding if holders else None, early_after=2.0)
            self.peak_connections = self.box.peak_connections
            self.peak_dns = self.box.peak_dns_in_flight
        return self.runs["main"]

    @cached_property
    def listed_set(self) -> frozenset[str]:
        """The main list's names."""
        return frozenset(self.plan.listed)

    def small(self, name: str, text: str | None) -> Run:
        """A short run on a small list (`text` None: no list file)."""
        self.main  # noqa: B018  # the main run first: its window and peaks are its own
        if name not in self.runs:
            self.runs[name] = run_under_box(self.box, self.program, text, SMALL_LIMIT)
        return self.runs[name]

    @property
    def bound(self) -> Run:
        """The run on 1,500 sites whose HTTP port holds every request silent."""
        self.main  # noqa: B018
        if "bound" not in self.runs:
            if self.box.hosts is not None:
                self.box.hosts.reset()
            self.runs["bound"] = run_under_box(
                self.box, self.program, list_text(self.plan.bound), main_limit(len(
                    self.plan.bound)), bound=True)
            self.runs["bound"].extra["peak"] = self.box.peak_connections
            self.runs["bound"].extra["held"] = held_at_once(self.hits(self.runs["bound"]))
        return self.runs["bound"]

    @cached_property
    def excused(self) -> frozenset[str]:
        """Domains of the main list not held against the program: when the run's network
        dropped DNS answers for want of room (a burst the box's resolver sent faster than the
        program read), as many domains as answers dropped whose HTTP host reads requests, whose
        request never came and whose record says it failed."""
        run = self.main
        if not run.dropped or run.records is None:
            return frozenset()
        asked = {h.site for h in self.hits(run) if h.port == 80}
        by = assign(run.records, list(self.plan.listed))
        out = [n for n in self.plan.listed
               if self.plan.site(n).dns is None and self.plan.site(n).http not in (
                   Port.REFUSED, Port.BLACKHOLE)
               and n not in asked and by.get(n) and by[n][0].get("http_status") is None]
        return frozenset(out[:run.dropped])

    def hits(self, run: Run, name: str | None = None) -> list[Hit]:
        """The requests the box saw during `run` (of site `name`)."""
        return [h for h in self.box.seen(name) if run.started <= h.at <= run.ended + 1]

    # -- records ------------------------------------------------------------------------------

    def records(self) -> list[dict[str, Any]]:
        """The main run's records (NotRun when there are none to read)."""
        run = self.main
        if run.records is None:
            raise NotRun(f"no records: {run.problem}")
        return run.records

    def by_domain(self) -> dict[str, list[dict[str, Any]]]:
        """The main run's records by the domain each names (or by the list's order)."""
        return assign(self.records(), list(self.plan.listed))


def held_at_once(hits: list[Hit]) -> int:
    """Most HTTP requests of the bound run held at once, each from its arrival (the box's host
    never answers it) to its domain's next HTTPS request, which comes once the prober gave it
    up (or to the run's end, when none came after it): a count of the prober's own
    connections that no lag of the box's closing inflates."""
    start = {h.site: h.at for h in reversed(hits) if h.port == 80}
    last = max((h.at for h in hits), default=0.0)
    end = dict.fromkeys(start, last + 1)
    for hit in hits:
        if hit.port == 443 and hit.site in start and start[hit.site] <= hit.at < end[hit.site]:
            end[hit.site] = hit.at
    events = sorted([(at, 1) for at in start.values()] + [(at, -1) for at in end.values()])
    peak = now = 0
    for _, step in events:  # at one instant, an end (-1) sorts before a start
        now += step
        peak = max(peak, now)
    return peak


def domain_of(record: dict[str, Any]) -> str | None:
    """The domain a record names in a key `domain`, `name`, `host` or `url`, normalised."""
    for key in NAME_KEYS:
        value = record.get(key)
        if isinstance(value, str) and value.strip():
            text = value.strip()
            if "://" in text:
                text = urlsplit(text).hostname or ""
            return text.lower().rstrip(".")
    return None


def assign(records: list[dict[str, Any]], listed: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Records by domain: by the name each record gives, or by position when none gives one."""
    named = [domain_of(r) for r in records]
    out: dict[str, list[dict[str, Any]]] = {}
    if any(n is not None for n in named):
        for name, record in zip(named, records, strict=True):
            out.setdefault(name or "", []).append(record)
    else:
        for name, record in zip(listed, records, strict=False):
            out.setdefault(name, []).append(record)
    return out


def dns_seen(seen: Seen, name: str) -> str:
    """What the box's resolver saw of a name, for a failure about it."""
    queries = [q for q in seen.box.queries() if q.name == name]
    if not queries:
        return f"the box's DNS was never asked for {name}"
    waits = [f"{q.answered - q.arrival:.1f} s" for q in queries if q.answered is not None]
    return (f"the box's DNS was asked for {name} {len(queries)} time(s), first "
            f"{queries[0].arrival - seen.main.started:.1f} s into the run, and answered "
            f"{len(waits)} of them (after {', '.join(waits) or '-'})")



@pytest.fixture(scope="session")
def seen(program: ProgramTarget, options: RunOptions[Options]) -> Iterator[Seen]:
    """The box for this suite run, started in the program's working folder's neighbour."""
    count = options.spec.domains
    planned = plan(count)
    with started_box("probe", lambda folder: Box(planned.sites, folder, dns_delay=DNS_DELAY),
                     f" for {len(planned.sites)} sites") as box:
        kept = _http._bodies.write(list_text(planned.listed).encode(), "text/plain")
        yield Seen(box, planned, program, count, f"{kept} (copy it to {LIST})")


# -- judging one record's fields ---------------------------------------------------------------


def field_problems(seen: Seen, keys: tuple[str, ...], sites: list[Site] | None = None
                   ) -> list[str]:
    """Each listed domain's values of `keys` (e.g. `http_status`) that its site's answers do
    not allow, one line per domain and key: the record's value and what was served."""
    by = seen.by_domain()
    problems: list[str] = []
    if sites is None:  # every listed domain but the redirect loop, which PROBE-19 judges
        sites = [seen.plan.site(n) for n in seen.plan.listed if n != LOOP]
    for site in sites:
        records = by.get(site.name)
        if not records or site.name in seen.excused:
            continue  # PROBE-03's failure, not this field's
        record = records[0]
        for key in keys:
            if key not in record:
                continue  # PROBE-04's
            scheme, name = key.split("_", 1)
            rule = allowed(seen.plan, site, scheme)[name]
            if not rule.accepts(normal(name, record[key])):
                problems.append(f"{site.name}: {key} is {record[key]!r}, expected "
                                f"{rule.describe()} ({served(site, scheme)})")
    return problems


def served(site: Site, scheme: str) -> str:
    """What the box served a site's scheme, in words."""
    if site.dns is not None and site.dns.value != "late":
        return f"the box's DNS answered {site.dns.value.upper()}"
    spec = site.http if scheme == "http" else site.https
    if scheme == "https" and site.tls is not None:
        return f"its certificate is {site.tls.value}"
    if isinstance(spec, Port):
        return f"port {80 if scheme == 'http' else 443} is {spec.value}"
    parts = [f"{301 if spec.redirect else spec.status}"]
    if spec.redirect:
        parts.append(f"Location {spec.redirect}")
    parts.append(f"Server {spec.server!r}" if spec.server else "no Server")
    if not spec.redirect:
        parts.append(f"{len(spec.body)} bytes{' gzip-encoded' if spec.gzip else ''}")
        if spec.languages:
            parts.append("Content-Language " + " + ".join(spec.languages))
        if spec.cookies:
            parts.append(f"{len(spec.cookies)} Set-Cookie")
    return "the box served " + ", ".join(parts)


def fail_fields(seen: Seen, what: str, problems: list[str],
                cls: type[CheckFailure] = CheckFailure) -> None:
    """Raise one failure listing the domains whose fields were wrong."""
    if problems:
        raise cls(f"{what}: {len(problems)} wrong value(s): " + "; ".join(problems[:SHOWN]) +
                  ("; ..." if len(problems) > SHOWN else ""),
                  expected=problems[0].split(", expected ", 1)[1],
                  actual=problems[0].split(", expected ", 1)[0],
                  reproduce=seen.reproduce())


# -- the checks ----------------------------------------------------------------------------------


@requirement("PROBE-01")
def test_reads_the_list_and_ends_in_time(seen: Seen) -> None:
    """The program ends within its limit, having asked every domain it could reach."""
    run = seen.main
    if run.timed_out or (run.code == 127 and not run.seconds):
        raise CheckFailure(f"the program on a list of {seen.count} domains: {run.ending()}",
                           expected=f"its end within {run.limit:g} s",
                           actual=run.ending(), reproduce=seen.reproduce())
    # Probed: its name asked of the box's DNS, or a request came to its host (a prober with
    # a resolver of its own, or addresses cached, still sends the request).
    asked = {h.site for h in seen.hits(run)} | {
        q.name for q in seen.box.queries() if run.started <= q.arrival <= run.ended}
    unasked = [n for n in seen.plan.listed if n not in asked]
    if unasked:
        dropped = f" (the network dropped {run.drops})" if run.drops else ""
        raise CheckFailure(
            f"{len(unasked)} domain(s) of {LIST} were never probed (no DNS query, no request)"
            f"{dropped}: {shown(unasked)}", expected="every domain of the list probed",
            actual=f"nothing asked of {shown(unasked)}", reproduce=seen.reproduce())


@requirement("PROBE-02")
def test_writes_a_json_list_of_objects(seen: Seen) -> None:
    """domain_status is one JSON document, a list of objects."""
    run = seen.main
    if run.records is None:
        raise CheckFailure(f"after the program {run.ending()}: {run.problem}",
                           expected=f"{OUTPUT}: a JSON list of objects",
                           actual=(run.output or "")[:300] or None, reproduce=seen.reproduce())


@requirement("PROBE-03")
def test_one_record_per_domain(seen: Seen) -> None:
    """Every listed domain has exactly one record, told by its name or by the list's order."""
    records = seen.records()
    by = seen.by_domain()
    named = any(domain_of(r) is not None for r in records)
    # A failing domain without its record is PROBE-18's failure (a failure stopped the run).
    failing = {s.name for s in _failing_sites(seen)}
    missing = [n for n in seen.plan.listed if n not in by and n not in failing]
    twice = [n for n in seen.plan.listed if len(by.get(n, [])) > 1]
    strangers = [n for n in by if n not in seen.listed_set]
    problems = []
    if missing:
        problems.append(f"{len(missing)} domain(s) have no record: {shown(missing)}")
    if twice:
        problems.append(f"{len(twice)} domain(s) have more than one: {shown(twice)}")
    if strangers:
        problems.append(f"{len(strangers)} record(s) name no domain of the list: "
                        f"{shown(strangers)}")
    if not named and len(records) != len(seen.plan.listed):
        problems.append(f"no record names its domain, and there are {len(records)} records for "
                        f"{len(seen.plan.listed)} domains, so the list's order cannot tell them")
    if problems:
        raise CheckFailure("; ".join(problems),
                           expected=f"one record for each of the {len(seen.plan.listed)} "
                                    f"domains", actual=f"{len(records)} records; " + problems[0],
                           reproduce=seen.reproduce())


@requirement("PROBE-04")
def test_every_record_has_the_ten_keys(seen: Seen) -> None:
    """Every record has the ten http_*/https_* keys."""
    lacking: dict[str, list[int]] = {}
    for i, record in enumerate(seen.records()):
        for key in KEYS:
            if key not in record:
                lacking.setdefault(key, []).append(i)
    if lacking:
        parts = [f"{key} missing from {len(where)} record(s) (the first: #{where[0]})"
                 for key, where in lacking.items()]
        raise CheckFailure("; ".join(parts), expected="the keys " + ", ".join(KEYS),
                           actual=f"record #{next(iter(lacking.values()))[0]}: "
                                  f"{seen.records()[next(iter(lacking.values()))[0]]}",
                           reproduce=seen.reproduce())


@requirement("PROBE-05")
def test_asks_get_slash_over_both_schemes(seen: Seen) -> None:
    """GET / with a Host naming the domain, on port 80 and on 443 of every host that reads."""
    run = seen.main
    hits = seen.hits(run)
    problems: list[str] = []
    wrong = [h for h in hits if h.method != "GET" or h.path != "/"]
    if wrong:
        problems.append(f"{len(wrong)} request(s) other than GET /: " + shown(
            [f"{h.method} {h.path} to {h.site}:{h.port}" for h in wrong]))
    hosts = [h for h in hits if not any(v.split(":")[0].lower().rstrip(".") == h.site
                                        for v in h.header("Host"))]
    if hosts:
        problems.append(f"{len(hosts)} request(s) whose Host does not name the domain: " + shown(
            [f"{h.site}:{h.port} Host {h.header('Host')}" for h in hosts]))
    got = {(h.site, h.port) for h in hits}
    for port, scheme in ((80, "http"), (443, "https")):
        lacking = []
        for name in seen.plan.listed:
            site = seen.plan.site(name)
            spec = site.http if scheme == "http" else site.https
            reads = site.dns is None  # a LATE answer may come after the prober gave up
            if scheme == "https" and site.tls is not None:
                reads = False  # the handshake fails before any request
            if spec in (Port.REFUSED, Port.BLACKHOLE, Port.PLAIN_HTTP):
                # Nothing answers, or a TLS hello meets plain HTTP and no request follows.
                reads = False
            if reads and (name, port) not in got and name not in seen.excused:
                lacking.append(name)
        if lacking:
            dropped = f"; the network dropped {run.drops}" if run.drops else ""
            problems.append(f"no request came to port {port} ({scheme}) of {len(lacking)} "
                            f"domain(s): {shown(lacking)} ({dns_seen(seen, lacking[0])}"
                            f"{dropped})")
    if problems:
        raise CheckFailure("; ".join(problems), expected="GET / to ports 80 and 443 of each domain",
                           actual=problems[0], reproduce=seen.reproduce())


@requirement("PROBE-06")
def test_http_before_https(seen: Seen) -> None:
    """Each domain's HTTPS request comes after its HTTP exchange ended."""
    run = seen.main
    first: dict[tuple[str, int], float] = {}
    for hit in seen.hits(run):
        first.setdefault((hit.site, hit.port), hit.at)
    early: list[str] = []
    for name in seen.plan.listed:
        http, https = first.get((name, 80)), first.get((name, 443))
        if http is None or https is None:
            continue
        site = seen.plan.site(name)
        # A silent HTTP host: its exchange ends only when the prober gives up on it.
        gap = ORDER_GAP if site.http is Port.SILENT else 0.0
        if https < http + gap:
            early.append(f"{name} (HTTPS {https - http:+.3f} s after HTTP"
                         f"{', whose host never answered' if gap else ''})")
    if early:
        raise CheckFailure(f"{len(early)} domain(s) were asked over HTTPS before their HTTP "
                           f"exchange ended: {shown(early)}",
                           expected="HTTPS only once HTTP was answered or failed",
                           actual=early[0], reproduce=seen.reproduce())


@requirement("PROBE-07")
def test_accept_language_on_every_request(seen: Seen) -> None:
    """Every request says Accept-Language: ru-RU."""
    hits = seen.hits(seen.main)
    wrong = [h for h in hits if [v.strip() for v in h.header("Accept-Language")] != ["ru-RU"]]
    if wrong:
        first = wrong[0]
        raise CheckFailure(
            f"{len(wrong)} of {len(hits)} request(s) lack Accept-Language: ru-RU: " + shown(
                [f"{h.scheme}://{h.site}/ with {h.header('Accept-Language') or 'none'}"
                 for h in wrong]),
            expected="Accept-Language: ru-RU",
            actual=f"{first.scheme}://{first.site}/: Accept-Language "
                   f"{first.header('Accept-Language') or '(none)'}",
            reproduce=seen.reproduce())


@requirement("PROBE-08")
def test_http_status(seen: Seen) -> None:
    """http_status is the code, or None when no answer came."""
    fail_fields(seen, "http_status", field_problems(seen, ("http_status",)))


@requirement("PROBE-09")
def test_http_server(seen: Seen) -> None:
    """http_server is the Server header, or None."""
    fail_fields(seen, "http_server", field_problems(seen, ("http_server",)))


@requirement("PROBE-10")
def test_http_content_length(seen: Seen) -> None:
    """http_content_length is the body's size, or None."""
    fail_fields(seen, "http_content_length", field_problems(seen, ("http_content_length",)))


@requirement("PROBE-11")
def test_http_content_language(seen: Seen) -> None:
    """http_content_language is a list of every Content-Language."""
    fail_fields(seen, "http_content_language", field_problems(seen, ("http_content_language",)))


@requirement("PROBE-12")
def test_http_cookies(seen: Seen) -> None:
    """http_cookies is a list, one item per Set-Cookie."""
    fail_fields(seen, "http_cookies", field_problems(seen, ("http_cookies",)))


@requirement("PROBE-13")
def test_https_status(seen: Seen) -> None:
    """https_status is Ok, or a TLS error's text."""
    fail_fields(seen, "https_status", field_problems(seen, ("https_status",)))


@requirement("PROBE-14")
def test_https_fields(seen: Seen) -> None:
    """The other https_* fields follow their http_* twins' rules."""
    keys = tuple(f"https_{name}" for name in FIELDS[1:])
    fail_fields(seen, "the https_* fields", field_problems(seen, keys))


@requirement("PROBE-15")
def test_requests_run_concurrently(seen: Seen, note: Callable[[str], None]) -> None:
    """Many connections open at once while slow hosts hold theirs."""
    run = seen.main
    note(f"{seen.count} domains: the program {run.ending()}; at most "
         f"{seen.peak_connections} connections open at once")
    if seen.excused:
        note(f"{len(seen.excused)} domain(s) whose DNS answers the network may have dropped "
             f"are not held against the program: {shown(sorted(seen.excused))}")
    holders = sum(1 for n in seen.plan.listed if seen.plan.site(n).http is Port.SILENT)
    wanted = min(CONCURRENT, max(1, holders))
    if seen.peak_connections < wanted:
        raise CheckFailure(
            f"at most {seen.peak_connections} connection(s) were open at once, while {holders} "
            f"hosts of the list held their HTTP request unanswered ({run.ending()})",
            expected=f"at least {wanted} connections open at once",
            actual=f"{seen.peak_connections} at most", reproduce=seen.reproduce())


@requirement("PROBE-16")
def test_dns_is_asynchronous(seen: Seen, note: Callable[[str], None]) -> None:
    """Many DNS queries in flight at once, each answer held DNS_DELAY seconds."""
    seen.main  # noqa: B018
    note(f"at most {seen.peak_dns} DNS queries in flight at once")
    wanted = min(CONCURRENT, max(1, len(seen.plan.listed) // 2))
    if seen.peak_dns < wanted:
        raise CheckFailure(
            f"at most {seen.peak_dns} DNS queries were in flight at once, every answer held "
            f"{DNS_DELAY:g} s (a resolver in a pool of threads tops out at the pool's size)",
            expected=f"at least {wanted} queries in flight at once",
            actual=f"{seen.peak_dns} at most", reproduce=seen.reproduce())


@requirement("PROBE-17")
def test_at_most_a_thousand_connections(seen: Seen, note: Callable[[str], None]) -> None:
    """At most 1,000 connections at once, with 1,500 hosts holding theirs."""
    run = seen.bound
    # Judged on the bound run only, where connections are held long enough for the samples of
    # the kernel's table (each poll) to see every plateau. The box's own count lags a client's
    # close on a busy machine, and the requests held at once (arrival to the next HTTPS
    # request) cannot see when an HTTP request that comes last was given up: notes only.
    peak = run.open_peak
    note(f"{len(seen.plan.bound)} slow hosts: the program {run.ending()}; at most {peak} "
         f"connections established at once (the kernel's count, sampled every "
         f"{POLL:g} s), {run.extra.get('peak', 0)} as the box's hosts counted them, "
         f"{run.extra.get('held', 0)} requests held at once")
    if peak > BOUND + BOUND_SLACK:
        raise CheckFailure(
            f"{peak} connections were established at once on a list of "
            f"{len(seen.plan.bound)} hosts that hold their HTTP request unanswered "
            f"({run.ending()})",
            expected=f"at most {BOUND} connections at once (up to {BOUND + BOUND_SLACK} "
                     f"passes: a closed socket's successor may open in the same instant)",
            actual=f"{peak} at once",
            reproduce=seen.reproduce(f"its connection-bound run uses a list of "
                                     f"{len(seen.plan.bound)} such hosts"))
    if run.timed_out:  # not settled either: new requests kept coming to its limit
        raise CheckFailure(
            f"the program on a list of {len(seen.plan.bound)} hosts holding their HTTP request "
            f"unanswered: {run.ending()}", expected=f"its end within {run.limit:g} s",
            actual=run.ending(), reproduce=seen.reproduce())


def _fault_sites(seen: Seen) -> list[Site]:
    """The listed sites planned for a fault or a special answer (not the healthy or slow)."""
    return [s for s in map(seen.plan.site, seen.plan.listed)
            if not s.name.startswith(("site-", "slow-"))]


def _failing_sites(seen: Seen) -> list[Site]:
    """The listed sites where some request fails (DNS, a port's fault, TLS)."""
    return [s for s in map(seen.plan.site, seen.plan.listed)
            if (s.dns is not None and s.dns.value != "late") or s.tls is not None
            or isinstance(s.http, Port) or isinstance(s.https, Port)]


@requirement("PROBE-18")
def test_a_failing_domain_never_stops_the_run(seen: Seen) -> None:
    """The run ends, within its limit and without a crash, with a record for every failing
    domain (their values are PROBE-08 to PROBE-14's)."""
    run = seen.main
    problems: list[str] = []
    if run.timed_out:
        problems.append(f"the program {run.ending()}")
    elif TRACEBACK in run.stderr:
        problems.append(f"the program crashed: {run.last_line()}")
    by = seen.by_domain()
    lacking = [s.name for s in _failing_sites(seen) if s.name not in by]
    if lacking:
        problems.append(f"{len(lacking)} failing domain(s) have no record: {shown(lacking)}")
    # The failing records' values are judged by PROBE-08 to PROBE-14, field by field.
    if problems:
        raise CheckFailure("; ".join(problems[:SHOWN]),
                           expected="the run's end, with a record for every failing domain",
                           actual=problems[0], reproduce=seen.reproduce())


@requirement("PROBE-19")
def test_a_redirect_loop_ends(seen: Seen) -> None:
    """The redirect loop's record: 301, or None when a follower gives up."""
    loop = seen.plan.site(LOOP)
    if loop.name not in seen.listed_set:
        raise NotRun(f"a list of {seen.count} domains has no redirect loop (use more)")
    records = seen.by_domain().get(loop.name)
    if not records:
        raise CheckFailure(f"{loop.name} (a page that redirects to itself) has no record",
                           expected="its record, status 301 or None",
                           actual=f"no record ({seen.main.ending()})", reproduce=seen.reproduce())
    problems = field_problems(seen, KEYS, [loop])
    fail_fields(seen, "the redirect loop", problems)


@requirement("PROBE-20")
def test_redirects_are_not_followed(seen: Seen) -> None:
    """A 301 is recorded as itself."""
    away = seen.plan.site("redirect-away.test")
    records = seen.by_domain().get(away.name)
    if not records:
        raise NotRun(f"{away.name} has no record")
    record = records[0]
    problems = []
    for scheme in SCHEMES:
        spec = away.http if scheme == "http" else away.https
        assert not isinstance(spec, Port)
        for name, rule in answered(spec, scheme).items():
            key = f"{scheme}_{name}"
            if key in record and not rule.accepts(normal(name, record[key])):
                problems.append(f"{away.name}: {key} is {record[key]!r}, expected "
                                f"{rule.describe()} (the box answered 301 to {spec.redirect})")
    fail_fields(seen, "a redirect", problems)


TLS_WORDS = {
    "expired": ("expired",),
    "wrong-name": ("hostname", "match", "name", "wrong-name.invalid"),
    "unknown-ca": ("self-signed", "self signed", "unknown", "issuer", "verify"),
    "plain-http": ("wrong version", "record", "ssl", "tls"),
}


@requirement("PROBE-21")
def test_tls_errors_name_their_cause(seen: Seen) -> None:
    """A TLS error's text says what was wrong."""
    by = seen.by_domain()
    problems = []
    for site in _fault_sites(seen):
        kind = site.tls.value if site.tls else (
            "plain-http" if site.https is Port.PLAIN_HTTP else None)
        if kind is None or site.name not in by:
            continue
        status = by[site.name][0].get("https_status")
        if not isinstance(status, str) or not any(w in status.lower() for w in TLS_WORDS[kind]):
            problems.append(f"{site.name}: https_status is {status!r}, expected "
                            f"a text with {' or '.join(TLS_WORDS[kind])} (its certificate or "
                            f"port 443 is {kind})")
    fail_fields(seen, "TLS errors", problems)


@requirement("PROBE-22")
def test_records_name_their_domain(seen: Seen) -> None:
    """Each record has `domain`, the name as listed."""
    wrong = [f"#{i}: {r.get('domain')!r}" for i, r in enumerate(seen.records())
             if r.get("domain") not in seen.listed_set]
    if wrong:
        raise CheckFailure(f"{len(wrong)} record(s) have no key domain naming a listed domain: "
                           f"{shown(wrong)}", expected='"domain": "<the name as listed>"',
                           actual=wrong[0], reproduce=seen.reproduce())


MESSY_GOOD = ("site-1.test", "site-2.test", "site-3.test")
MESSY_BAD = ("not a domain!", "-bad-.example")


def _messy(seen: Seen) -> tuple[str, list[str]]:
    good = [n for n in MESSY_GOOD if n in seen.listed_set] or list(seen.plan.listed[:1])
    lines = ["rank,domain", "", f"1, {good[0].upper()}. ", "   "]
    lines += [f"{i},{n}" for i, n in enumerate(good[1:], 2)]
    lines += [f"{len(good) + 1},{good[0]}", f"{len(good) + 2},{MESSY_BAD[0]}",
              f"{len(good) + 3},{MESSY_BAD[1]}", ""]
    return "\n".join(lines) + "\n", good


@requirement("PROBE-23")
def test_a_messy_list_is_taken_in_stride(seen: Seen) -> None:
    """Header, blanks, spaces, a trailing dot, a duplicate and bad lines."""
    text, good = _messy(seen)
    run = seen.small("messy", text)
    shown_list = " | ".join(text.splitlines())
    how = seen.reproduce(f"then the list {shown_list!r}")
    if run.timed_out or run.records is None:
        raise CheckFailure(f"on a list with a header, blank lines, a duplicate and bad names: "
                           f"{run.ending()}; {run.problem or 'its records could not be read'}",
                           expected="a record for each domain", actual=run.last_line(),
                           reproduce=how)
    by = assign(run.records, good)
    problems = []
    lacking = [n for n in good if n not in by]
    if lacking:
        problems.append(f"no record for {shown(lacking)}")
    if len(by.get(good[0], [])) > 1 or len(
            [h for h in seen.hits(run, good[0]) if h.port == 80]) > 1:
        problems.append(f"{good[0]}, listed twice (once as '{good[0].upper()}.'), was probed "
                        f"twice")
    for bad in MESSY_BAD:
        for record in by.get(bad.lower().rstrip("."), []):
            if record.get("http_status") is not None:
                problems.append(f"the line {bad!r} has a record with http_status "
                                f"{record.get('http_status')!r}")
    if not run.stderr.strip():
        problems.append("nothing on stderr about the lines that are not domains")
    if problems:
        raise CheckFailure("; ".join(problems), expected="one record per domain, bad lines "
                           "skipped with a message", actual=problems[0], reproduce=how)


@requirement("PROBE-24")
def test_a_plain_list_is_read(seen: Seen) -> None:
    """One domain a line, no rank."""
    good = [n for n in MESSY_GOOD if n in seen.listed_set] or list(seen.plan.listed[:1])
    text = "".join(f"{n}\n" for n in good)
    run = seen.small("plain", text)
    how = seen.reproduce(f"then the list {' | '.join(good)!r}, one name a line")
    by = assign(run.records or [], good)
    lacking = [n for n in good if not by.get(n) or by[n][0].get("http_status") != 200]
    if lacking:
        raise CheckFailure(f"a list of one domain a line: {run.ending()}; no record with "
                           f"http_status 200 for {shown(lacking)}",
                           expected="a record for each, http_status 200",
                           actual=run.problem or str((run.records or [])[:2]), reproduce=how)


@requirement("PROBE-25")
def test_a_missing_list_is_a_clear_error(seen: Seen) -> None:
    """No list: a non-zero status, a message naming the file, no traceback; 0 after a run."""
    problems = []
    if seen.main.code != 0:
        problems.append(f"the run on the main list {seen.main.ending()}, not with status 0")
    run = seen.small("missing", None)
    if run.timed_out or run.code == 0:
        problems.append(f"with no {LIST}, the program {run.ending()}")
    if TRACEBACK in run.stderr:
        problems.append(f"with no {LIST}, a traceback: {run.last_line()}")
    elif LIST not in run.stderr:
        problems.append(f"with no {LIST}, stderr does not name it: {run.last_line()}")
    if problems:
        raise CheckFailure("; ".join(problems), expected=f"status 0 after a run; without "
                           f"{LIST} a message naming it and a non-zero status",
                           actual=problems[0],
                           reproduce=seen.reproduce(f"then with no {LIST} in its folder"))


@requirement("PROBE-26")
def test_records_are_written_as_they_come(seen: Seen) -> None:
    """domain_status holds records while slow hosts still hold their connections."""
    run = seen.main
    if run.early is None:
        raise NotRun("the run ended before the slow hosts held their connections for "
                     "2 s, so the file could not be looked at during the run")
    done = records_so_far(run.early)
    if done == 0:
        raise NotImplementedFeature(
            f"{run.early_at:.1f} s into the run, the last moment slow hosts still held their "
            f"connections, {OUTPUT} held no record",
            expected="the records of the domains done", actual=(run.early or "")[:200] or None,
            reproduce=seen.reproduce())
