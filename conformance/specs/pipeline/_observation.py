"""What the pipeline suite observes: the four services' addresses, the writer's two tables read and
parsed, and a load run watched from its GET until its records stop coming.

Rules: the tables are read where the run's protocol description says (a route on the writer, or a
file in --output-dir); a run's records are the lines its tables gained (the suite drives the
pipeline alone while it checks); a table that is not there yet (no such file, 404 from the writer)
is empty, as a writer may make its tables when the first record comes. A table line is
`|`-separated, between bars or not (`7 | t1 | t2` and `| 7 | t1 | t2 |` alike); its first line is a
header when it holds no record (no integer id, no time after it), lines of dashes (a Markdown
table's `|---|`) and the header written again are skipped; times are ISO 8601 (a date-time, naive
ones read as UTC, or a time of day), day.month.year times or Unix seconds. `Table.describe()` says
how a table was read, for a note. A line that does not parse is kept with None where it failed, so
one bad line is reported, not a crash. Every request has a deadline; a watch ends when the run's
GET is over and the table stayed still, or at a hard limit.
"""

from __future__ import annotations

import math
import re
import shlex
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from datetime import time as clock_time
from pathlib import Path
from urllib.parse import urlsplit

from conformance._checks import CheckFailure
from conformance._http import Exchange, Http, Pending
from conformance._protocol import Speaker

ROLE_PORTS = {"client": 5000, "receiver": 5001, "processor": 5002, "writer": 5003}
TABLES = {"records": "records.txt", "received": "received.txt"}
HEADERS = {"records": "id | receive_time | write_time", "received": "id | receive_time"}
MAX_TABLE = 256 << 20  # bytes of one table read over HTTP, at most
POLL = 0.1  # seconds between two looks at the tables while a run goes on


def service_urls(base_url: str, given: dict[str, str]) -> dict[str, str]:
    """Each role's base URL: as given with --service, else the client's host on its port."""
    parts = urlsplit(base_url)
    host = parts.hostname or "127.0.0.1"
    host = f"[{host}]" if ":" in host else host
    urls = {"client": base_url}
    for role, port in ROLE_PORTS.items():
        if role != "client":
            urls[role] = given.get(role) or f"{parts.scheme}://{host}:{port}/"
    return urls


# Day first, as a Russian (or most European) locale writes a date: `23.11.2026 17:30:00.000412`.
DAY_FIRST = ("%d.%m.%Y %H:%M:%S.%f", "%d.%m.%Y %H:%M:%S")
# A line of a table that only draws: a Markdown table's `|---|:---:|`, or a rule of `-`/`=`.
RULE = re.compile(r"[\s|:+=-]*[-=][\s|:+=-]*")


def read_time(text: str) -> tuple[float, str] | None:
    """A time as seconds (since the epoch; for a time of day, since midnight) and the name of
    its format, or None when it is none the suite reads."""
    text = text.strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        return (value, "Unix seconds") if math.isfinite(value) else None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        pass
    else:
        if moment.tzinfo is None:
            return (moment.replace(tzinfo=UTC).timestamp(),
                    "ISO 8601 without a UTC offset (read as UTC)")
        return moment.timestamp(), "ISO 8601 with a UTC offset"
    try:
        clock = clock_time.fromisoformat(text)
    except ValueError:
        pass
    else:
        offset = clock.utcoffset()
        seconds = clock.hour * 3600 + clock.minute * 60 + clock.second + clock.microsecond / 1e6
        # Only the order within one day can be read from it: a run does not span midnight.
        return (seconds - (offset.total_seconds() if offset else 0.0),
                "a time of day without a date (ISO 8601)")
    for form in DAY_FIRST:
        try:
            moment = datetime.strptime(text, form)
        except ValueError:
            continue
        return moment.replace(tzinfo=UTC).timestamp(), "day.month.year hh:mm:ss (read as UTC)"
    return None


def parse_time(text: str) -> float | None:
    """Seconds of a time in a format `read_time` reads, or None."""
    got = read_time(text)
    return None if got is None else got[0]


def split_fields(line: str) -> tuple[tuple[str, ...], bool]:
    """A line's `|`-separated fields, and whether it is written between bars (`| 7 | t |`):
    the bars at its ends open and close the row, they do not make empty fields."""
    text = line.strip()
    bars = False
    if text.startswith("|"):
        text, bars = text[1:], True
    if text.endswith("|"):
        text, bars = text[:-1], True
    return tuple(f.strip() for f in text.split("|")), bars


def _names_columns(fields: tuple[str, ...]) -> bool:
    """A line that names columns rather than holding a record: no integer id first, and no time
    after it (a table without a header keeps its first record)."""
    if fields[0].lstrip("-").isdigit():
        return False
    return not any(parse_time(f) is not None for f in fields[1:])


@dataclass(frozen=True)
class Row:
    """One line of a table: its fields as written and the times read from them."""

    number: int  # 1-based line number in the file
    text: str
    fields: tuple[str, ...]

    @property
    def id(self) -> str:
        """The first field: the record's id."""
        return self.fields[0]

    @property
    def receive_time(self) -> float | None:
        """The second field as seconds since the epoch, or None."""
        return parse_time(self.fields[1]) if len(self.fields) > 1 else None

    @property
    def write_time(self) -> float | None:
        """The third field as seconds since the epoch, or None."""
        return parse_time(self.fields[2]) if len(self.fields) > 2 else None

    def time_formats(self) -> list[str]:
        """The names of the formats its times were read in."""
        found = (read_time(f) for f in self.fields[1:])
        return [got[1] for got in found if got is not None]


@dataclass(frozen=True)
class Table:
    """One table as read: its header line ('' when there is none) and its records."""

    name: str
    header: str
    rows: tuple[Row, ...]
    absent: str = ""  # why it is not there (yet), when it is not: it reads as empty
    bordered: bool = False  # its rows are written between bars: `| 7 | t1 | t2 |`
    rules: int = 0  # lines that only draw (`|---|---|`), skipped
    label: str = ""  # its file's name, when not ours (TABLES)

    def describe(self) -> str:
        """How the table was read, in a line: header, separators and time formats."""
        label = self.label or TABLES[self.name]
        if self.absent:
            return f"{label}: not there ({self.absent})"
        parts = [f"the header line {self.header!r}" if self.header else "no header line",
                 "rows between bars, `| id | ... |`" if self.bordered
                 else "columns separated by `|`"]
        if self.rules:
            parts.append(f"{self.rules} line{'s' if self.rules > 1 else ''} of dashes skipped")
        formats = sorted({f for r in self.rows for f in r.time_formats()})
        if not self.rows:
            parts.append("no rows")
        else:
            parts.append("times in " + (" and ".join(formats) if formats
                                        else "no format the suite reads"))
        return f"{label} read with " + ", ".join(parts)


def parse_table(name: str, text: str, absent: str = "", label: str = "") -> Table:
    """Lines to rows: blank lines and lines of dashes skipped; the first other line is the
    header when it names columns rather than holding a record, and skipped when written again."""
    header = ""
    rows: list[Row] = []
    bordered = False
    rules = 0
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if RULE.fullmatch(line):
            rules += 1
            continue
        fields, bars = split_fields(line)
        if not rows and not header and _names_columns(fields):
            header = line.strip()
            continue
        if header and line.strip() == header:
            continue  # written again, by a writer that started over
        bordered = bordered or bars
        rows.append(Row(number, line, fields))
    return Table(name, header, tuple(rows), absent, bordered, rules, label)


@dataclass(frozen=True)
class Snapshot:
    """Both tables at one moment."""

    at: float  # time.monotonic() when read
    records: Table
    received: Table

    @property
    def missing(self) -> list[str]:
        """The tables that are not there (yet)."""
        return [t.name for t in (self.records, self.received) if t.absent]


class Tables:
    """Where the writer's tables are read, as the run's protocol description says: with a request
    to the writer (ours: GET /files/records.txt), or from a file of the folder given with
    --output-dir (ours: records.txt)."""

    def __init__(self, speaker: Speaker) -> None:
        self.speaker = speaker

    def _file(self, table: str) -> Path | None:
        """The table's file, when it is read from the output folder."""
        if not self.speaker.reads_file(table) or self.speaker.folder is None:
            return None
        return self.speaker.folder / str(self.speaker.protocol.operations[table]["file"])

    def label(self, table: str) -> str:
        """The table's name as a person finds it: its file's, else the last part of its path."""
        op = self.speaker.protocol.operations[table]
        if "file" in op and (self.speaker.reads_file(table) or "path" not in op):
            return str(op["file"])
        return str(op["path"]).rstrip("/").rsplit("/", 1)[-1] or TABLES[table]

    @property
    def where(self) -> str:
        """The tables' place, as a person reads it."""
        if self.speaker.reads_file("records"):
            return f"the folder {self.speaker.folder}"
        op = self.speaker.protocol.operations["records"]
        return f"the writer at {self.speaker.http_for(op).base_url}"

    def show(self, table: str, lines: int = 0) -> str:
        """A shell command that shows a table (its last `lines` lines when given)."""
        tail = f" | tail -n {lines}" if lines else ""
        path = self._file(table)
        if path is not None:
            return f"cat {shlex.quote(str(path))}{tail}"
        op = self.speaker.protocol.operations[table]
        url = self.speaker.http_for(op).url(str(op["path"]))
        method = "" if op.get("method", "GET") == "GET" else f" -X {op['method']}"
        return f"curl -sS{method} {shlex.quote(url)}{tail}"

    def expected(self, table: str) -> str:
        """Where a table is expected, as a failure's `expected` says it."""
        path = self._file(table)
        if path is not None:
            return f"the table {path.name} in {path.parent}"
        op = self.speaker.protocol.operations[table]
        return (f"the table's text at {op.get('method', 'GET')} {op['path']} on the writer, as "
                f"{self.speaker.protocol.source.name} says (or give --output-dir with the folder "
                f"the writer writes {self.label(table)} in)")

    def read_text(self, table: str, requirement: str | None = None) -> tuple[str | None, str]:
        """A table's text, or None and why when it is not there (yet): no such file, 404 or the
        description's not_found from the writer. CheckFailure saying why when it cannot be read
        otherwise."""
        got = self.speaker.call(table)
        status = got.exchange.status if got.exchange is not None else None
        path = self._file(table)
        on = "" if path is not None else " on the writer"
        if got.kind == "ok":
            return got.text, ""
        if got.kind == "not_found" and path is not None:
            return None, f"no file {path}"
        if got.kind == "not_found" or status == 404:
            return None, f"{got.request}{on} answered {got.describe()}"
        if got.kind == "no_answer":
            raise CheckFailure(f"{got.request}{on}: {got.answer}", expected=self.expected(table),
                               actual=got.answer, reproduce=got.reproduce,
                               requirement=requirement)
        raise CheckFailure(f"{got.request}{on} answered {status}", expected=self.expected(table),
                           actual=got.describe(), reproduce=got.reproduce,
                           requirement=requirement)

    def snapshot(self, requirement: str | None = None) -> Snapshot:
        """Both tables, read now (one that is not there yet reads as empty)."""
        read = {t: self.read_text(t, requirement) for t in ("records", "received")}
        records, received = (parse_table(t, text or "", "" if text is not None else why,
                                         label=self.label(t))
                             for t, (text, why) in read.items())
        return Snapshot(time.monotonic(), records, received)

    def wait_still(self, quiet: float, limit: float) -> Snapshot:
        """Read until the records table has not grown for `quiet` seconds (an earlier run's
        last records written), or `limit` seconds passed; the last snapshot."""
        deadline = time.monotonic() + limit
        snap = self.snapshot()
        still_since = snap.at
        while snap.at - still_since < quiet and time.monotonic() < deadline:
            time.sleep(POLL)
            newer = self.snapshot()
            if len(newer.records.rows) != len(snap.records.rows):
                still_since = newer.at
            snap = newer
        return snap

    def wait_for(self, ids: set[str], since: int, limit: float) -> tuple[Snapshot, float | None]:
        """Read until every id in `ids` is among the records past row `since`, or `limit` s
        passed; the last snapshot and when they were all there (None: never)."""
        deadline = time.monotonic() + limit
        while True:
            snap = self.snapshot()
            if ids <= {r.id for r in snap.records.rows[since:]}:
                return snap, snap.at
            if time.monotonic() >= deadline:
                return snap, None
            time.sleep(POLL / 2)


@dataclass
class LoadRun:
    """One run driven through the client: its GET, its answer and the records it added."""

    query: str
    requests: int
    delay_range: float
    url: str
    sent_at: float
    before: Snapshot
    after: Snapshot | None = None
    answer: Exchange | None = None
    no_answer: CheckFailure | None = None
    all_written_at: float | None = None  # when the table first held `requests` new records
    counts: list[tuple[float, int]] = field(default_factory=list)  # (seconds after GET, new)

    @property
    def records(self) -> tuple[Row, ...]:
        """The records table's rows the run added."""
        assert self.after is not None
        return self.after.records.rows[len(self.before.records.rows):]

    @property
    def received(self) -> tuple[Row, ...]:
        """The received table's rows the run added."""
        assert self.after is not None
        return self.after.received.rows[len(self.before.received.rows):]

    def duplicates(self) -> list[str]:
        """Ids written more than once among the run's records."""
        return sorted(i for i, n in Counter(r.id for r in self.records).items() if n > 1)

    def reproduce(self, tables: Tables) -> str:
        """Shell lines that make the same run and show its records."""
        return (f"curl -sS --max-time 60 {shlex.quote(self.url)}; "
                f"{tables.show('records', self.requests)}")

    def timeline(self, limit: int = 12) -> str:
        """How many new records the table held when, in a few samples."""
        if not self.counts:
            return "never read"
        step = max(1, len(self.counts) // limit)
        picks = self.counts[::step] + ([self.counts[-1]] if len(self.counts) % step else [])
        return ", ".join(f"{n} at {t:.1f} s" for t, n in picks)


def drive(client: Http, tables: Tables, query: str, requests: int, delay_range: float,
          hard_limit: float) -> LoadRun:
    """Send the client's GET with `query` and watch the tables until the run is over: its GET
    answered (or gave up) and the table still for a while (1 s once it holds `requests` new
    records; else 2.5 s, and D + 3 s after the GET at the earliest), or `hard_limit` seconds
    passed."""
    before = tables.snapshot()
    run = LoadRun(query, requests, delay_range, client.url(query), time.monotonic(), before)
    pending: Pending = client.request_soon("GET", query, timeout=delay_range + 30)
    last_count, last_change = -1, run.sent_at
    while True:
        time.sleep(POLL)
        snap = tables.snapshot()
        now = snap.at
        new = len(snap.records.rows) - len(before.records.rows)
        run.counts.append((now - run.sent_at, new))
        if new != last_count:
            last_count, last_change = new, now
        if new >= requests and run.all_written_at is None:
            run.all_written_at = now
        run.after = snap
        if pending.future.done():
            if run.answer is None and run.no_answer is None:
                try:
                    run.answer = pending.result()
                except CheckFailure as failure:
                    run.no_answer = failure
            # Before its records are all there, a run is over only once the table stayed still
            # past the time its delays allow (records come in the order received, so a slow
            # first one holds back every other).
            if (now - last_change >= 1.0 and new >= requests) or (
                    now - last_change >= 2.5 and now - run.sent_at >= delay_range + 3.0):
                return run
        if now - run.sent_at >= hard_limit:
            if not pending.future.done():
                run.no_answer = CheckFailure(
                    f"GET {query}: no answer within {hard_limit:g} s",
                    expected="an answer", actual=f"none in {hard_limit:g} s",
                    reproduce=run.reproduce(tables))
            return run
