"""The taskqueue suite's one batch: eight tasks submitted back to back and watched from outside
until done, and the judges that read a requirement's verdict off what was seen. Every request
goes through the run's protocol description (conformance/_protocol.py: ours by default), so what
is judged is behaviour, and the protocol only where the description is ours.

Rules: every request is timed by the moment it was sent and the moment its answer came, so a
status seen is known to hold somewhere between the two; a judge fails only on what is certain
from those bounds (two tasks "running" in one instant, a task done before one submitted ahead
of it), never on a guess, so a correct server cannot fail by the suite's timing. The batch is
bounded in time: its deadline is half again the delays it holds plus ten seconds, and every
request has the run's timeout. A first submission that gets no id in the described protocol ends
the batch there: nothing else can be observed, and a server that does not answer costs one
timeout.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from conformance._checks import CheckFailure
from conformance._http import Exchange
from conformance._protocol import Outcome, Speaker

DELAYS = {1: 2.0, 2: 5.0, 3: 7.0}
STATUSES = ("queued", "running", "done", "failed")
RANK = {"queued": 0, "running": 1, "done": 2, "failed": 2}
# Seconds every task must stay done before the watch ends: "done" must stay done (TQ-13).
SETTLE = 0.5
MIXED = "Zß😀中𝄞"  # Latin, German, an emoji and a musical sign outside the BMP, Chinese: odd


def reverse(data: str) -> str:
    """Type 1."""
    return data[::-1]


def swap_pairs(data: str) -> str:
    """Type 2: 1st with 2nd, 3rd with 4th, ...; an odd last character stays."""
    out = []
    for i in range(0, len(data) - 1, 2):
        out += [data[i + 1], data[i]]
    if len(data) % 2:
        out.append(data[-1])
    return "".join(out)


def repeat_by_position(data: str) -> str:
    """Type 3: the k-th character (from 1) k times."""
    return "".join(ch * k for k, ch in enumerate(data, start=1))


TRANSFORMS: dict[int, Callable[[str], str]] = {1: reverse, 2: swap_pairs, 3: repeat_by_position}


@dataclass(frozen=True)
class Planned:
    """A task of the batch: what is sent and what must come back."""

    type: int
    data: str
    optional: bool = False  # refusing it is allowed (the empty data of TQ-23)

    @property
    def expected(self) -> str:
        """The result the assignment's rule gives."""
        return TRANSFORMS[self.type](self.data)

    def label(self, index: int) -> str:
        """`task 3 (type 2, "кот")`."""
        return f"task {index + 1} (type {self.type}, {json.dumps(self.data, ensure_ascii=False)})"


# The seed's examples first, then any-Unicode ones, then the empty data (TQ-23), last so a
# refusal of it changes nothing before it. 35 s of delays at the real scale.
BATCH = (
    Planned(1, "пример"), Planned(2, "пример"), Planned(2, "кот"), Planned(3, "пример"),
    Planned(1, MIXED), Planned(2, MIXED), Planned(3, MIXED), Planned(1, "", optional=True),
)


@dataclass
class Timed:
    """One operation: when it left, when its answer came, and what it got (`Outcome`)."""

    sent: float
    received: float
    outcome: Outcome

    @property
    def took(self) -> float:
        """Seconds from sending to the answer (or to giving up)."""
        return self.received - self.sent

    @property
    def answered(self) -> bool:
        """Whether an answer came at all (readable or not)."""
        return self.outcome.kind != "no_answer"

    @property
    def exchange(self) -> Exchange | None:
        """The HTTP exchange, over HTTP and when an answer came."""
        return self.outcome.exchange

    def value(self, name: str) -> Any:
        """A value read from the answer as the description says, or None."""
        return self.outcome.value(name) if self.outcome.kind == "ok" else None

    def body(self) -> Any:
        """The HTTP answer's JSON, or None (for the checks of our protocol's own choices)."""
        if self.exchange is None:
            return None
        try:
            return self.exchange.json()
        except ValueError:
            return None

    def describe(self) -> str:
        """The answer in one line, or why there was none."""
        return self.outcome.describe()

    def reproduce(self) -> str:
        """The request as a shell line (curl, or printf | nc)."""
        return self.outcome.reproduce


@dataclass
class Poll(Timed):
    """A status request and the status it showed (None: no valid answer)."""

    status: str | None = None


@dataclass
class Watched:
    """One planned task: its submission and everything asked about it afterwards."""

    index: int
    planned: Planned
    submitted: Timed
    id: str | None = None
    polls: list[Poll] = field(default_factory=list)
    early: list[tuple[str, Timed]] = field(default_factory=list)  # result asked while not done
    results: list[Timed] = field(default_factory=list)  # result asked once done

    @property
    def label(self) -> str:
        """`task 3 (type 2, "кот")`."""
        return self.planned.label(self.index)

    def seen(self, *statuses: str) -> list[Poll]:
        """The polls that showed one of `statuses`, in order."""
        return [p for p in self.polls if p.status in statuses]

    def final(self) -> str | None:
        """The last status seen."""
        shown = [p.status for p in self.polls if p.status is not None]
        return shown[-1] if shown else None

    def ended(self) -> bool:
        """Seen done or failed."""
        return self.final() in ("done", "failed")

    def started_by(self) -> float | None:
        """A moment by which it had certainly started: the answer to the first poll that showed
        it running or beyond (after its last "queued", so a status going back is not trusted)."""
        after = self._after_last("queued")
        later = [p for p in after if p.status in ("running", "done", "failed")]
        return later[0].received if later else None

    def not_started_at(self) -> float | None:
        """A moment it had certainly not started: when the last poll showing it queued left."""
        queued = self.seen("queued")
        return queued[-1].sent if queued else None

    def done_by(self) -> float | None:
        """A moment by which it was certainly done: the first "done" after its last "running"."""
        after = self._after_last("running", "queued")
        done = [p for p in after if p.status in ("done", "failed")]
        return done[0].received if done else None

    def not_done_at(self) -> float | None:
        """A moment it was certainly not done yet: when the last poll showing it queued or
        running left (the submission's answer, at the latest)."""
        before = [p for p in self.polls if p.status in ("queued", "running")]
        done = self.done_by()
        before = [p for p in before if done is None or p.received <= done]
        return before[-1].sent if before else self.submitted.sent

    def running_for_sure(self) -> tuple[float, float] | None:
        """An interval throughout which it was certainly running: from the answer to the first
        poll showing it running to the departure of the last one (None when that is empty)."""
        running = self.seen("running")
        if len(running) < 2 or running[-1].sent <= running[0].received:
            return None
        return running[0].received, running[-1].sent

    def results_once_done(self) -> list[Timed]:
        """The result requests sent once it was certainly done (not those sent on a "done" that
        a later "running" proved false)."""
        done = self.done_by()
        return [] if done is None else [t for t in self.results if t.sent >= done]

    def _after_last(self, *statuses: str) -> list[Poll]:
        last = max((i for i, p in enumerate(self.polls) if p.status in statuses), default=-1)
        return self.polls[last + 1:]


@dataclass
class Batch:
    """What the suite saw of the batch."""

    scale: float
    t0: float
    watched: list[Watched]
    others: list[Timed] = field(default_factory=list)  # every other request made meanwhile
    finished: float = 0.0
    deadline_hit: bool = False

    def live(self) -> list[Watched]:
        """The tasks that got an id."""
        return [w for w in self.watched if w.id is not None]

    def at(self, moment: float) -> str:
        """A moment as seconds since the first submission: `+2.31 s`."""
        return f"+{moment - self.t0:.2f} s"

    def requests(self) -> list[Timed]:
        """Every request made during the batch."""
        out: list[Timed] = [w.submitted for w in self.watched]
        for w in self.watched:
            out += w.polls + [t for _, t in w.early] + w.results
        return out + self.others

    def reproducer(self) -> str:
        """Shell lines that submit the same tasks in the same order, then how to watch them."""
        lines = "; ".join(w.submitted.reproduce() for w in self.watched)
        return f"{lines}  # then ask the status of each, every 0.1 s"


def delay_of(planned: Planned, scale: float) -> float:
    """The delay the suite expects of a task, in seconds."""
    return DELAYS[planned.type] * scale


def expected_seconds(scale: float) -> float:
    """The delays of the whole batch."""
    return sum(delay_of(p, scale) for p in BATCH)


def _timed(speaker: Speaker, operation: str, **args: Any) -> Timed:
    sent = time.monotonic()
    outcome = speaker.call(operation, **args)
    return Timed(sent, time.monotonic(), outcome)


def task_id(submitted: Timed) -> str | None:
    """The id a submission gave (as text), or None."""
    value = submitted.value("id")
    return value if isinstance(value, str) and value else None


def status_of(body: Any) -> str | None:
    """The "status" member of a task object, or None."""
    value = body.get("status") if isinstance(body, dict) else None
    return value if isinstance(value, str) else None


def observe(speaker: Speaker, scale: float) -> Batch:
    """Submit the batch back to back, then watch every task until all have been done for SETTLE
    seconds (or the deadline): a status poll of each every 0.1 s (scaled, at least 50 ms); its
    result asked once when first seen queued, once when first seen running, once when first seen
    done, and twice at the end."""
    t0 = time.monotonic()
    deadline = t0 + expected_seconds(scale) * 1.5 + 10.0
    interval = max(0.05, 0.1 * scale)
    watched = []
    for index, planned in enumerate(BATCH):
        submitted = _timed(speaker, "submit", type=planned.type, data=planned.data)
        w = Watched(index, planned, submitted, task_id(submitted))
        watched.append(w)
        if time.monotonic() > deadline or (index == 0 and w.id is None):
            break  # the first task got no id: the protocol is not the one described
    batch = Batch(scale, t0, watched)
    asked: set[tuple[int, str]] = set()
    settled_since: float | None = None
    while True:
        round_start = time.monotonic()
        for w in batch.live():
            if time.monotonic() > deadline:
                break
            poll = _timed(speaker, "status", id=w.id)
            status = poll.value("status")
            w.polls.append(Poll(poll.sent, poll.received, poll.outcome,
                                status if isinstance(status, str) else None))
            if status in ("queued", "running", "done") and (w.index, status) not in asked:
                asked.add((w.index, status))
                fetched = _timed(speaker, "result", id=w.id)
                if status == "done":
                    w.results.append(fetched)
                else:
                    w.early.append((status, fetched))
        if not all(w.ended() for w in batch.live()):
            settled_since = None
        elif settled_since is None:
            settled_since = time.monotonic()
        elif time.monotonic() - settled_since >= SETTLE:
            break
        if time.monotonic() > deadline:
            batch.deadline_hit = True
            break
        time.sleep(max(0.0, interval - (time.monotonic() - round_start)))
    for w in batch.live():
        for _ in range(2 if w.final() == "done" else 0):
            if time.monotonic() > deadline + speaker.http.timeout:
                break  # a server that stopped answering costs one timeout here, not sixteen
            w.results.append(_timed(speaker, "result", id=w.id))
    batch.finished = time.monotonic()
    return batch


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 time with its offset, or None."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


# Judges: each returns the first failure it is sure of, or None. ---------------------------

def _fail(batch: Batch, message: str, expected: str, actual: str,
          reproduce: str = "") -> CheckFailure:
    return CheckFailure(message, expected=expected, actual=actual,
                        reproduce=reproduce or batch.reproducer())


def judge_delays(batch: Batch) -> CheckFailure | None:
    """TQ-08: each task ran its delay: not less (5% and 10 ms aside), not over 1.5x + 1 s."""
    for w in batch.live():
        want = delay_of(w.planned, batch.scale)
        done = w.done_by()
        if done is None:
            if batch.deadline_hit and w.final() in (None, "queued", "running"):
                waited = batch.finished - w.submitted.received
                return _fail(batch, f"{w.label} was not done {waited:.1f} s after it was "
                             f"submitted (the batch's delays add up to "
                             f"{expected_seconds(batch.scale):g} s)",
                             expected=f"done after {want:g} s of running",
                             actual=f"last seen {w.final() or 'with no valid answer'}")
            continue
        # It started after it was submitted and after it was last seen queued.
        queued = w.not_started_at()
        start = max(w.submitted.sent, queued if queued is not None else w.submitted.sent)
        if done - start < want * 0.95 - 0.01:
            hint = "" if w.seen("running") else (
                " (it was never seen running: a task shows \"running\" while its delay runs)")
            return _fail(batch, f"{w.label} was done at most {done - start:.2f} s after it "
                         f"could have started; its delay is {want:g} s{hint}",
                         expected=f"a delay of {want:g} s",
                         actual=f"not started at {batch.at(start)}, done by {batch.at(done)}")
        sure = w.running_for_sure()
        if sure is not None and sure[1] - sure[0] > want * 1.5 + 1.0:
            return _fail(batch, f"{w.label} was running for at least {sure[1] - sure[0]:.2f} s; "
                         f"its delay is {want:g} s", expected=f"a delay of {want:g} s",
                         actual=f"running from {batch.at(sure[0])} to {batch.at(sure[1])}")
    return None


def judge_one_at_a_time(batch: Batch) -> CheckFailure | None:
    """TQ-09: no two tasks certainly running at the same moment."""
    spans = [(w, w.running_for_sure()) for w in batch.live()]
    known = [(w, s) for w, s in spans if s is not None]
    for i, (a, sa) in enumerate(known):
        for b, sb in known[i + 1:]:
            start, end = max(sa[0], sb[0]), min(sa[1], sb[1])
            if end > start:
                return _fail(batch, f"{a.label} and {b.label} were both running from "
                             f"{batch.at(start)} to {batch.at(end)}",
                             expected="one task running at a time",
                             actual=f"{a.label} running {batch.at(sa[0])}..{batch.at(sa[1])}, "
                             f"{b.label} running {batch.at(sb[0])}..{batch.at(sb[1])}")
    return None


def judge_order(batch: Batch) -> CheckFailure | None:
    """TQ-10: no task certainly started, or was certainly done, before one submitted ahead."""
    live = batch.live()
    for i, a in enumerate(live):
        for b in live[i + 1:]:
            b_started, a_waiting = b.started_by(), a.not_started_at()
            if b_started is not None and a_waiting is not None and b_started < a_waiting:
                return _fail(batch, f"{b.label} started before {a.label}, which was submitted "
                             f"ahead of it", expected="tasks started in submission order",
                             actual=f"{b.label} had started by {batch.at(b_started)}; {a.label} "
                             f"was still queued at {batch.at(a_waiting)}")
            b_done, a_open = b.done_by(), a.not_done_at()
            if b_done is not None and a_open is not None and b_done < a_open:
                return _fail(batch, f"{b.label} was done before {a.label}, which was submitted "
                             f"ahead of it", expected="tasks done in submission order",
                             actual=f"{b.label} was done by {batch.at(b_done)}; {a.label} was "
                             f"not done at {batch.at(a_open)}")
    return None


def judge_responsive(batch: Batch, limit: float) -> CheckFailure | None:
    """TQ-11: requests made while the batch was being worked through (from the first submission
    until the last task was done) answered within `limit` seconds; one slow answer is forgiven
    as the machine's hiccup, two are not, nor one that never came."""
    ends = [w.done_by() for w in batch.live()]
    until = max((e for e in ends if e is not None), default=batch.finished)
    # A task runs all that time, unless the server idles with tasks queued, which the delays
    # requirement catches; a server that blocks while a task runs shows it here, even if it
    # never lets a "running" be seen.
    during = [t for t in batch.requests() if t.sent < until]
    lost = [t for t in during if not t.answered]
    slow = sorted((t for t in during if t.took > limit), key=lambda t: -t.took)
    if lost or len(slow) >= 2:
        worst = (lost or slow)[0]
        what = (f"{len(lost)} request(s) got no answer" if lost else
                f"{len(slow)} requests took over {limit:g} s (the slowest {worst.took:.2f} s)")
        return CheckFailure(f"while tasks ran, {what}", expected=f"answers within {limit:g} s",
                            actual=worst.describe(), reproduce=worst.reproduce())
    return None


def judge_monotonic(batch: Batch) -> CheckFailure | None:
    """TQ-13: statuses only go forward; done stays done."""
    for w in batch.live():
        shown = [(p, RANK[p.status]) for p in w.polls if p.status in RANK]
        for (before, was), (after, now) in itertools.pairwise(shown):
            if now < was or (was == 2 and after.status != before.status):
                return _fail(batch, f"{w.label} went from {before.status!r} back to "
                             f"{after.status!r}", expected="queued -> running -> done, never back",
                             actual=f"{before.status} at {batch.at(before.received)}, then "
                             f"{after.status} at {batch.at(after.received)}",
                             reproduce=after.reproduce())
    return None


def judge_no_early_result(batch: Batch) -> CheckFailure | None:
    """TQ-14: a result asked for while the task was certainly not done gave none."""
    for w in batch.live():
        done = w.done_by()
        for status, asked in w.early:
            result = asked.value("result")
            gave = isinstance(result, str)
            # Certainly not done when asked: a poll that left after the answer still showed it
            # queued or running.
            later = [p for p in w.polls if p.sent >= asked.received
                     and p.status in ("queued", "running")]
            if gave and later and (done is None or later[0].received <= done):
                return CheckFailure(f"asked while {w.label} was {status}, its result came: "
                                    f"{result!r}", expected="no result before done",
                                    actual=asked.describe(), reproduce=asked.reproduce())
    return None


TIMES = ("queued_at", "started_at", "finished_at")


def judge_times(batch: Batch) -> CheckFailure | None:
    """TQ-16: RFC 3339 times, null until they happen, in order, one task after another, each
    running at least its delay; read from each status answer where the description locates
    them (optional values of the status operation)."""
    previous: tuple[Watched, datetime] | None = None
    for w in batch.live():
        for poll in w.polls:
            shown = poll.outcome.values
            if poll.status not in STATUSES or poll.outcome.kind != "ok":
                continue
            missing = [n for n in TIMES if n not in shown]
            if missing:
                return CheckFailure(f"{w.label}: the task has no {', '.join(missing)}",
                                    expected="queued_at, started_at and finished_at",
                                    actual=poll.describe(), reproduce=poll.reproduce())
            happened = {"queued": 1, "running": 2}.get(poll.status, 3)
            times = [parse_time(shown[n]) for n in TIMES]
            for k, (name, moment) in enumerate(zip(TIMES, times, strict=True)):
                if (k < happened) != (moment is not None) and not (
                        poll.status == "failed" and name == "started_at"):
                    want = "an RFC 3339 time with its offset" if k < happened else "null"
                    what = (f"{shown[name]!r}, not {want}" if shown[name] is not None
                            and k < happened else repr(shown[name]))
                    return CheckFailure(f"{w.label} is {poll.status} and its {name} is {what}",
                                        expected=f"{name}: {want}",
                                        actual=poll.describe(), reproduce=poll.reproduce())
            present = [t for t in times if t is not None]
            if present != sorted(present):
                return CheckFailure(f"{w.label}: its times are out of order",
                                    expected="queued_at <= started_at <= finished_at",
                                    actual=poll.describe(), reproduce=poll.reproduce())
            if poll.status != "done":
                continue
            _, started, finished = times
            assert started is not None and finished is not None
            delay = delay_of(w.planned, batch.scale)
            ran = (finished - started).total_seconds()
            if ran < delay * 0.95 - 0.01:
                return CheckFailure(f"{w.label} ran {ran:.3f} s by its own times; its delay is "
                                    f"{delay:g} s", expected=f"finished_at - started_at >= "
                                    f"{delay:g} s", actual=poll.describe(),
                                    reproduce=poll.reproduce())
            if previous is not None and started < previous[1]:
                return CheckFailure(f"by its own times, {w.label} started before "
                                    f"{previous[0].label} finished",
                                    expected="each task started after the one before finished",
                                    actual=f"started_at {started.isoformat()}, the one before "
                                    f"finished_at {previous[1].isoformat()}",
                                    reproduce=poll.reproduce())
            previous = (w, finished)
            break
    return None
