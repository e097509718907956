"""The student's own task server, for judging its client through it (--server-command or
--server-url): spoken to through a `taskqueue` protocol description as the taskqueue spec speaks
to a server (conformance/_protocol.py's Speaker), to prepare tasks and read back what a client did.

Rules: what the suite cannot prepare or read through the description is `NotRun` with the
reason (the server refused a task, never ran one); every wait is bounded; each operation keeps
its reproducer (curl, or printf | nc) for the failure that rests on it.
"""

from __future__ import annotations

import re
import time

from conformance._checks import NotRun
from conformance._protocol import Outcome, Speaker

POLL = 0.05  # seconds between the suite's own status requests while it waits for a task
MAX_CANDIDATES = 12  # words of a client's output tried as task ids, at most


class OwnQueue:
    """The student's server through its description: tasks submitted, statuses and results read,
    and the ids the suite knows of (to wait until the queue is idle)."""

    def __init__(self, speaker: Speaker, label: str) -> None:
        self.speaker = speaker
        self.label = label  # how the server was given: its command or URL, and its description
        self.known: list[str] = []  # ids submitted, by the suite or found in a client's output
        self.shown: list[str] = []  # the reproducers of what the suite submitted

    def submit(self, task_type: int, data: str) -> str:
        """Submit a task as the description says; its id (NotRun when the server takes none)."""
        got = self.speaker.call("submit", type=task_type, data=data)
        task_id = got.value("id") if got.kind == "ok" else None
        if not isinstance(task_id, str) or not task_id:
            raise NotRun(f"the student's server ({self.label}) gave no task id to the suite's own "
                         f"submission ({got.request}): {got.describe()}; the server's own "
                         f"verdict is `conformance run taskqueue`'s business")
        self.known.append(task_id)
        self.shown.append(got.reproduce)
        return task_id

    def ask(self, task_id: str) -> Outcome:
        """The status operation for one id."""
        return self.speaker.call("status", id=task_id)

    def status(self, task_id: str) -> str | None:
        """The task's status as a spec word, or None (unknown id, no readable answer)."""
        got = self.ask(task_id)
        status = got.value("status") if got.kind == "ok" else None
        return status if isinstance(status, str) else None

    def result(self, task_id: str) -> str | None:
        """The task's result, or None while there is none to read."""
        got = self.speaker.call("result", id=task_id)
        result = got.value("result") if got.kind == "ok" else None
        return result if isinstance(result, str) else None

    def wait_for(self, task_id: str, statuses: set[str], timeout: float) -> str | None:
        """Poll until the task's status is one of `statuses` (that status), else None after
        `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.status(task_id)
            if status in statuses:
                return status
            if time.monotonic() >= deadline:
                return None
            time.sleep(POLL)

    def idle(self, timeout: float) -> None:
        """Wait until every task the suite knows of has ended (or is unknown to the server), so a
        client's next task runs at once; NotRun after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        for task_id in self.known:
            left = max(0.0, deadline - time.monotonic())
            status = self.status(task_id)
            if status is None or status in ("done", "failed"):
                continue
            if self.wait_for(task_id, {"done", "failed"}, left) is None:
                raise NotRun(f"the student's server ({self.label}) did not finish the tasks it "
                             f"held within {timeout:g} s (task {task_id} stayed "
                             f"{self.status(task_id)}), so the client's task would wait behind "
                             f"them")

    def find(self, text: str) -> str | None:
        """The first word of `text` (from its end) that the server knows as a task id: how a
        client's printed id is found when its description has no locator for it."""
        words: list[str] = re.findall(r"[\w.:-]+", text)
        tried = 0
        for word in reversed(words):
            word = word.strip(".:")
            if not word or tried >= MAX_CANDIDATES:
                continue
            tried += 1
            if self.status(word) is not None:
                return word
        return None

    def setup(self) -> str:
        """The reproducer's start: the server, then what the suite submitted so far."""
        lines = [f"# with the student's server: {self.label}"]
        if self.shown:
            lines.append("# and the tasks the suite submitted through its description:")
            lines += self.shown[-4:]
            lines.append("# (the ids below are this run's; use those your server answered)")
        return "\n".join(lines)


def number(task_id: str | None) -> int | None:
    """An id as a number when it is one (a counter's), else None."""
    return int(task_id) if task_id is not None and re.fullmatch(r"[0-9]+", task_id) else None
