"""Checks of the `taskqueue-client` spec (openapi/taskqueue-client.requirements.yaml) against any
client.

The suite plays the server with our reference (reference/taskqueue_server.py), run in-process
(_live_queue.py) on the port where the client expects its server, its delays
multiplied by a time scale: 0.3 where the client submits and waits (type 1 then takes 0.6 s),
0.01 where a task must be done at once, 100 where one must stay running (or queued behind it).
The suite prepares the tasks that `status` and `result` are asked about itself, over HTTP, and
judges what the client sent by the server's own state (which tasks exist, with which type and
data) and the requests it recorded. For the error cases it plays servers that answer garbage.

Each situation gets a fresh server, and the runs of one situation share it; every run is
memoized for the suite run, so the client runs sixteen times in all, plus once to be
interrupted. A run may take 4 x --timeout seconds (20 by default), one that must fail fast
2 x --timeout; a client still running then is stopped (Ctrl+C, then SIGKILL) and fails the check
with that reason, and one that crashes fails with the end of its output. Proxy settings are
removed from the client's environment, since its server is on this machine.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from conformance._checks import CheckFailure, NotRun, raise_all, requirement
from conformance._client_run import (
    TRACEBACK,
    ClientRun,
    client_env,
    expect_clean_failure,
    found_note,
    nonblank,
    tail,
    unreached_hint,
)
from conformance._options import RunOptions
from conformance._servers import HOST, App, InProcessServer, canned_app
from conformance._target import ProgramTarget, TargetError, is_listening
from conformance.specs.taskqueue_client import Options
from conformance.specs.taskqueue_client._live_queue import TASKS_PATH, LiveQueue
from reference import taskqueue_server

DEFAULT_PORT = 8888
WAIT_SCALE = 0.3  # the client submits and waits: type 1 takes 0.6 s
FAST_SCALE = 0.01  # a prepared task done at once
SLOW_SCALE = 100.0  # a prepared task that stays running (type 1: 200 s), another queued behind
TASK_TYPE, TASK_DATA = 2, "hello world"
UNICODE_TYPE, UNICODE_DATA = 1, 'Пример: «кот» & ёж, 100% "ok" 🙂'
WAIT_TYPE, WAIT_DATA = 1, "пример"  # the assignment's example: its result is "ремирп"
DONE_TYPE, DONE_DATA = 3, "пример"
DONE_RESULT = "прриииммммееееерррррр"
RUNNING_TYPE, RUNNING_DATA = 1, "кот"
QUEUED_TYPE, QUEUED_DATA = 2, "кот"
STATUS_WORDS = ("queued", "running", "done", "failed")
STATUS_WORD = re.compile(r"\b(queued|running|done|failed)\b", re.IGNORECASE)
PREPARE_TIMEOUT = 5.0  # seconds a prepared task has to reach its status
MAX_REQUEST_RATE = 20.0  # requests a second while waiting (TQC-19)
INTERRUPT_GRACE = 5.0  # seconds a client has to end after Ctrl+C (TQC-09)
SETTLE = 2.0  # seconds the suite waits for an interrupted client's first poll
MAX_USAGE_LINES = 10  # a usage message may wrap (TQC-18)


def server_command(port: int, scale: float) -> str:
    """How to start our reference server as a situation had it, for a reproducer."""
    path = Path(taskqueue_server.__file__).resolve()
    with suppress(ValueError):
        path = path.relative_to(Path.cwd())
    return shlex.join(["python", str(path), "--port", str(port), "--time-scale", f"{scale:g}"])


def curl_submit(port: int, task_type: int, data: str) -> str:
    """The curl line that submits a task, for a reproducer."""
    body = json.dumps({"type": task_type, "data": data}, ensure_ascii=False)
    return shlex.join(["curl", "-s", "-X", "POST", f"http://{HOST}:{port}{TASKS_PATH}",
                       "-H", "Content-Type: application/json", "-d", body])


def status_words(text: str) -> list[str]:
    """The status words a text contains, lower case, in order."""
    return [m.group(1).lower() for m in STATUS_WORD.finditer(text)]


@dataclass(frozen=True)
class Snapshot:
    """One task as the server held it when a run ended."""

    id: str
    type: int
    data: str
    status: str
    result: str | None
    finished_at: datetime | None


@dataclass
class Observed(ClientRun):
    """One run of the client, and the tasks its run created."""

    ended: datetime = field(default_factory=lambda: datetime.now(UTC))
    created: list[Snapshot] = field(default_factory=list)  # tasks the client's run created


@dataclass
class Interrupted:
    """A `wait` run interrupted with Ctrl+C once its task existed."""

    code: int | None  # None: still running INTERRUPT_GRACE seconds after Ctrl+C
    output: str
    after: float  # seconds from Ctrl+C to the end
    polled: bool  # the client had asked about its task before Ctrl+C
    reproduce: str


class Runs:
    """Runs the client against fresh servers, one per situation; each situation runs once."""

    def __init__(self, program: ProgramTarget, options: RunOptions[Options]) -> None:
        self.program = program
        self.options = options
        self._situations: dict[str, dict[str, Observed]] = {}
        self._interrupted: Interrupted | None = None

    @property
    def long(self) -> float:
        """Seconds a run that waits for a task may take."""
        return 4 * self.options.timeout

    @property
    def short(self) -> float:
        """Seconds a run that should end at once may take."""
        return 2 * self.options.timeout

    @contextmanager
    def serving(self, server: InProcessServer) -> Iterator[None]:
        """`server` on the client's port for the duration; NotRun when it cannot listen."""
        try:
            server.start()
        except OSError as exc:
            raise NotRun(f"the suite could not listen on {HOST}:{server.port} to play the "
                         f"taskqueue server: {exc}") from None
        try:
            yield
        finally:
            server.stop()

    def live(self, scale: float) -> LiveQueue:
        """Our reference server for the client's port."""
        return LiveQueue(self.program.port, scale)

    def run(self, server: InProcessServer | None, args: list[str], timeout: float,
            setup: str) -> Observed:
        """Run the client with `args` while `server` (None: nothing) listens."""
        before = server.requests() if server is not None else []
        known = ({t.id for t in server.tasks()} if isinstance(server, LiveQueue) else set())
        done = self.program.run(*args, timeout=timeout, env=client_env())
        obs = Observed(args, done, timeout, setup)
        if server is not None:
            obs.requests = server.requests()[len(before):]
        if isinstance(server, LiveQueue):
            obs.created = [Snapshot(t.id, t.type, t.data, t.status, t.result, t.finished_at)
                           for t in server.tasks() if t.id not in known]
        return obs

    def situation(self, name: str) -> dict[str, Observed]:
        """The runs of situation `name`, made the first time a check asks for them."""
        if name not in self._situations:
            self._situations[name] = getattr(self, "_" + name)()
        return self._situations[name]

    # situations -------------------------------------------------------------------------

    def _fresh(self, args: list[str]) -> dict[str, Observed]:
        server = self.live(WAIT_SCALE)
        setup = f"# start our reference server: {server_command(server.port, WAIT_SCALE)}"
        with self.serving(server):
            return {"run": self.run(server, args, self.long, setup)}

    def _task(self) -> dict[str, Observed]:
        return self._fresh(["task", str(TASK_TYPE), TASK_DATA])

    def _unicode(self) -> dict[str, Observed]:
        return self._fresh(["task", str(UNICODE_TYPE), UNICODE_DATA])

    def _wait(self) -> dict[str, Observed]:
        return self._fresh(["wait", str(WAIT_TYPE), WAIT_DATA])

    def _busy(self) -> dict[str, Observed]:
        """A task running (for long), one queued behind it, and an id nobody created."""
        server = self.live(SLOW_SCALE)
        port = server.port
        with self.serving(server):
            running = server.submit(RUNNING_TYPE, RUNNING_DATA)
            queued = server.submit(QUEUED_TYPE, QUEUED_DATA)
            if not server.wait_for(running, {"running"}, PREPARE_TIMEOUT):
                raise NotRun("the suite's own server did not start the task it prepared")
            setup = (f"# start our reference server: {server_command(port, SLOW_SCALE)}\n"
                     f"# submit a task that runs for long, and one queued behind it:\n"
                     f"{curl_submit(port, RUNNING_TYPE, RUNNING_DATA)}\n"
                     f"{curl_submit(port, QUEUED_TYPE, QUEUED_DATA)}\n"
                     f"# (the ids below are this run's; use those your server answered)")
            unknown = str(uuid.uuid4())
            return {
                "status running": self.run(server, ["status", running], self.long, setup),
                "status queued": self.run(server, ["status", queued], self.long, setup),
                "result queued": self.run(server, ["result", queued], self.short, setup),
                "status unknown": self.run(server, ["status", unknown], self.short, setup),
                "result unknown": self.run(server, ["result", unknown], self.short, setup),
            }

    def _done(self) -> dict[str, Observed]:
        """A task already done."""
        server = self.live(FAST_SCALE)
        port = server.port
        with self.serving(server):
            done = server.submit(DONE_TYPE, DONE_DATA)
            if not server.wait_for(done, {"done"}, PREPARE_TIMEOUT):
                raise NotRun("the suite's own server did not finish the task it prepared")
            setup = (f"# start our reference server: {server_command(port, FAST_SCALE)}\n"
                     f"# submit a task (done at once at that time scale):\n"
                     f"{curl_submit(port, DONE_TYPE, DONE_DATA)}\n"
                     f"# (the id below is this run's; use the one your server answered)")
            return {"status done": self.run(server, ["status", done], self.long, setup),
                    "result done": self.run(server, ["result", done], self.long, setup)}

    def _garbage(self) -> dict[str, Observed]:
        """Servers that answer what the protocol does not allow."""
        some_id = str(uuid.uuid4())
        html = b"<!doctype html><title>Welcome</title><p>It works!</p>"
        cases: list[tuple[str, App, list[str]]] = [
            ("every request is answered 200 with an HTML page",
             canned_app(lambda m, p: (200, html, "text/html")),
             ["task", "1", "hello"]),
            ("a task is answered 200 with JSON that has no status",
             canned_app(lambda m, p: (200, b'{"id": "%s", "type": 1}' % some_id.encode(),
                                      "application/json")),
             ["status", some_id]),
            ("every request is answered 500 Internal Server Error",
             canned_app(lambda m, p: (500, b"Internal Server Error", "text/plain")),
             ["result", some_id]),
        ]
        runs = {}
        for situation, app, args in cases:
            server = InProcessServer(self.program.port, app)
            setup = f"# with a server on {HOST}:{server.port} where {situation}"
            with self.serving(server):
                runs[situation] = self.run(server, args, self.short, setup)
        return runs

    def _usage(self) -> dict[str, Observed]:
        """Bad command lines, with our server listening (a client may ask it to refuse)."""
        server = self.live(WAIT_SCALE)
        setup = f"# start our reference server: {server_command(server.port, WAIT_SCALE)}"
        with self.serving(server):
            return {what: self.run(server, args, self.short, setup) for what, args in (
                ("no subcommand", []),
                ("a TYPE other than 1, 2 or 3", ["task", "4", "hello"]))}

    def no_server(self) -> Observed:
        """`task` with nothing listening on the client's port."""
        if "no server" not in self._situations:
            port = self.program.port
            if is_listening(HOST, port):
                raise NotRun(f"something listens on {HOST}:{port}, so the client cannot be "
                             f"run with no server there")
            self._situations["no server"] = {"run": self.run(
                None, ["task", "1", "hello"], self.short,
                f"# with nothing listening on {HOST}:{port}")}
        return self._situations["no server"]["run"]

    # named runs -------------------------------------------------------------------------

    def task(self) -> Observed:
        """`task 2 "hello world"`."""
        return self.situation("task")["run"]

    def unicode(self) -> Observed:
        """`task 1` with non-ASCII data."""
        return self.situation("unicode")["run"]

    def wait(self) -> Observed:
        """`wait 1 пример`, the task taking 0.6 s."""
        return self.situation("wait")["run"]

    def interrupted(self) -> Interrupted:
        """`wait` interrupted with Ctrl+C once its task exists and it has polled (or after
        SETTLE seconds)."""
        if self._interrupted is None:
            self._interrupted = self._interrupt()
        return self._interrupted

    def _interrupt(self) -> Interrupted:
        server = self.live(SLOW_SCALE)
        args = ["wait", str(WAIT_TYPE), WAIT_DATA]
        reproduce = (f"# start our reference server: {server_command(server.port, SLOW_SCALE)}"
                     f"\n# then run this and press Ctrl+C once it has submitted its task:\n"
                     + shlex.join(self.program.command(*args)))
        expected = (f"the client ends within {INTERRUPT_GRACE:g} s of Ctrl+C, without a "
                    f"traceback")
        with self.serving(server):
            try:
                proc = self.program.start(*args, env=client_env())
            except TargetError as exc:
                raise CheckFailure(str(exc), expected=expected, reproduce=reproduce) from None
            try:
                deadline = time.monotonic() + self.long
                while not server.tasks() and proc.exited() is None \
                        and time.monotonic() < deadline:
                    time.sleep(0.02)
                tasks = server.tasks()
                if not tasks:
                    ended = proc.exited()
                    how = f"ended (status {ended})" if ended is not None else "was still running"
                    raise CheckFailure(
                        f"the client {how} without submitting its task within {self.long:g} "
                        f"s, so there was no wait to interrupt", expected=expected,
                        actual=tail(proc.output_tail()) or "(no output)", reproduce=reproduce)
                path = f"{TASKS_PATH}/{tasks[0].id}"
                settle = time.monotonic() + SETTLE
                polled = False
                while not polled and proc.exited() is None and time.monotonic() < settle:
                    polled = any(r.method == "GET" and r.path.startswith(path)
                                 for r in server.requests())
                    time.sleep(0.02)
                time.sleep(0.1)  # let it get into its wait, past the answer to that request
                with suppress(ProcessLookupError):  # it may have ended just now
                    os.killpg(proc.popen.pid, signal.SIGINT)
                t0 = time.monotonic()
                try:
                    code: int | None = proc.popen.wait(timeout=INTERRUPT_GRACE)
                except subprocess.TimeoutExpired:
                    code = None
                return Interrupted(code, proc.output_tail(3000), time.monotonic() - t0,
                                   polled, reproduce)
            finally:
                proc.stop()


@pytest.fixture(scope="session")
def runs(program: ProgramTarget, options: RunOptions[Options]) -> Runs:
    """The client's runs of this suite run."""
    return Runs(program, options)


# MUST ---------------------------------------------------------------------------------------

@requirement("TQC-01")
def test_client_reaches_its_server(runs: Runs, program: ProgramTarget,
                                   note: Callable[[str], None]) -> None:
    """`task 2 "hello world"` sends at least one request to the server."""
    obs = runs.task()
    refused = obs.refused()
    if refused:
        raise NotRun(f"the client refused `{obs.what}` as a usage error ({refused!r}), so it "
                     f"never tried to reach its server (see TQC-02)")
    if not obs.requests:
        hint = unreached_hint(program, DEFAULT_PORT)
        raise obs.failure(f"no request reached the taskqueue server at "
                          f"{HOST}:{program.port}{hint}",
                          f"requests to http://{HOST}:{program.port}")
    note(found_note(program, DEFAULT_PORT))


@requirement("TQC-02")
def test_subcommands_are_the_assignments(runs: Runs, note: Callable[[str], None]) -> None:
    """None of `task`, `status`, `result`, `wait` is refused as a usage error."""
    first = runs.task()
    if not first.requests and not first.refused():
        raise NotRun(f"`{first.what}` neither reached the server nor was refused as a usage "
                     f"error (see TQC-01), so the subcommands cannot be judged")
    expected = ("`task TYPE DATA`, `status ID`, `result ID` and `wait TYPE DATA` accepted (the "
                "client asks its server, or reports an error that is not a usage error)")
    failures = []
    for obs in (first, runs.situation("busy")["status queued"],
                runs.situation("done")["result done"], runs.wait()):
        refused = obs.refused()
        if refused:
            failures.append(obs.failure(f"the client refused its command line as a usage error: "
                                        f"{refused!r}", expected))
    raise_all(failures)
    note("task, status, result and wait were all accepted")


@requirement("TQC-03")
def test_task_submits_one_task_of_the_type_and_data(runs: Runs) -> None:
    """`task 2 "hello world"` creates one task, of type 2, with data "hello world"."""
    obs = runs.task()
    expected = f'one task on the server, with type {TASK_TYPE} and data {TASK_DATA!r}'
    if len(obs.created) != 1:
        posts = [r for r in obs.requests if r.method == "POST"]
        sent = (f"; it sent {posts[0].line} with the body "
                f"{tail(posts[0].body.decode('utf-8', 'replace'), 200)}" if posts else "")
        raise obs.failure(f"{len(obs.created)} tasks were created on the server, expected "
                          f"one{sent}", expected)
    task = obs.created[0]
    if task.type != TASK_TYPE:
        raise obs.failure(f"the task created has type {task.type}, expected {TASK_TYPE}",
                          expected)
    if task.data != TASK_DATA:
        raise obs.failure(f"the task created has the data {task.data!r}, expected "
                          f"{TASK_DATA!r}", expected)


@requirement("TQC-04")
def test_task_prints_the_id(runs: Runs) -> None:
    """Stdout of `task` contains the id of the task it created."""
    obs = runs.task()
    task_id = obs.created[0].id
    if task_id not in obs.done.stdout:
        where = ("; it is on stderr only, but the answer belongs on stdout"
                 if task_id in obs.done.stderr else "")
        raise obs.failure(f"stdout does not contain the id of the task created, "
                          f"{task_id}{where}", f"stdout contains {task_id}")


@requirement("TQC-05")
def test_data_reaches_the_server_unchanged(runs: Runs, note: Callable[[str], None]) -> None:
    """Non-ASCII data given to `task`, and the Cyrillic word given to `wait`, arrive unchanged."""
    failures = []
    for obs, data in ((runs.unicode(), UNICODE_DATA), (runs.wait(), WAIT_DATA)):
        expected = f"one task on the server, with the data {data!r}"
        if len(obs.created) != 1:
            if obs.args[0] == "task":
                failures.append(obs.failure(f"{len(obs.created)} tasks were created on the "
                                            f"server, expected one", expected))
            continue  # `wait` creating no task is TQC-08's failure, not this one
        if obs.created[0].data != data:
            failures.append(obs.failure(f"the task created has the data "
                                        f"{obs.created[0].data!r}, expected {data!r}", expected))
    raise_all(failures)
    note(f"data {UNICODE_DATA!r} arrived unchanged")


@requirement("TQC-06")
def test_status_prints_the_tasks_status(runs: Runs) -> None:
    """`status ID` for a task queued, one running and one done names that status first."""
    busy, done = runs.situation("busy"), runs.situation("done")
    failures = []
    for obs, status in ((busy["status queued"], "queued"), (busy["status running"], "running"),
                        (done["status done"], "done")):
        words = status_words(obs.done.stdout)
        # The first status word, not the only one: "running, not done yet" is a fine answer,
        # while a client that prints a fixed word or every word is caught.
        expected = (f"stdout names the status {status!r} before any other of "
                    f"{', '.join(STATUS_WORDS)}")
        if not words:
            where = ("; it is on stderr only, but the answer belongs on stdout"
                     if status in status_words(obs.done.stderr) else "")
            failures.append(obs.failure(f"the task is {status}, but stdout names no status"
                                        f"{where}", expected))
        elif words[0] != status:
            failures.append(obs.failure(f"the task is {status}, but stdout says {words[0]!r} "
                                        f"first", expected))
    raise_all(failures)


@requirement("TQC-07")
def test_result_prints_the_result(runs: Runs) -> None:
    """`result ID` of a done task prints its result."""
    obs = runs.situation("done")["result done"]
    result = DONE_RESULT
    if result not in obs.done.stdout:
        where = ("; it is on stderr only, but the answer belongs on stdout"
                 if result in obs.done.stderr else "")
        raise obs.failure(f"stdout does not contain the task's result, {result!r}{where}",
                          f"stdout contains {result!r}")


@requirement("TQC-08")
def test_wait_submits_waits_and_prints_the_result(runs: Runs,
                                                  note: Callable[[str], None]) -> None:
    """`wait 1 пример` creates one task of type 1, ends after it is done, prints its result."""
    obs = runs.wait()
    expected = (f"one task of type {WAIT_TYPE} on the server; the client ends after it is "
                f"done, its result on stdout")
    if len(obs.created) != 1:
        raise obs.failure(f"{len(obs.created)} tasks were created on the server, expected one",
                          expected)
    task = obs.created[0]
    if task.type != WAIT_TYPE:
        raise obs.failure(f"the task created has type {task.type}, expected {WAIT_TYPE}",
                          expected)
    if obs.done.timed_out:
        raise obs.failure(f"the task was {task.status}, and the client did not end within "
                          f"{obs.timeout:g} s", expected)
    if task.status != "done" or task.finished_at is None or task.finished_at > obs.ended:
        raise obs.failure(f"the client ended while its task was still {task.status} "
                          f"(it takes {2 * WAIT_SCALE:g} s here)", expected)
    assert task.result is not None
    if task.result not in obs.done.stdout:
        where = ("; it is on stderr only, but the answer belongs on stdout"
                 if task.result in obs.done.stderr else "")
        raise obs.failure(f"stdout does not contain the task's result, {task.result!r}{where}",
                          expected)
    gets = sum(r.method == "GET" for r in obs.requests)
    note(f"wait: {gets} GET requests, ended {obs.done.elapsed:.1f} s after it started")


@requirement("TQC-09")
def test_ctrl_c_ends_the_wait_cleanly(runs: Runs, note: Callable[[str], None]) -> None:
    """Ctrl+C once the task exists: the client ends within 5 s, without a traceback."""
    seen = runs.interrupted()
    expected = (f"the client ends within {INTERRUPT_GRACE:g} s of Ctrl+C, without a "
                f"traceback")
    if seen.code is None:
        raise CheckFailure(f"the client was still running {INTERRUPT_GRACE:g} s after Ctrl+C",
                           expected=expected, actual=tail(seen.output) or "(no output)",
                           reproduce=seen.reproduce)
    if TRACEBACK in seen.output:
        raise CheckFailure("after Ctrl+C the client printed a traceback", expected=expected,
                           actual=tail(seen.output), reproduce=seen.reproduce)
    last = nonblank(seen.output)[-1:] or ["no output"]
    when = "while it waited" if seen.polled else "before it was seen to poll"
    note(f"Ctrl+C {when}: status {seen.code} after {seen.after:.1f} s, {last[0]!r}")


# SHOULD -------------------------------------------------------------------------------------

@requirement("TQC-10")
def test_wait_prints_the_id(runs: Runs) -> None:
    """`wait` prints the id of the task it created on stdout, before the result."""
    obs = runs.wait()
    task, stdout = obs.created[0], obs.done.stdout
    expected = f"stdout contains the id {task.id}, before the result"
    if task.id not in stdout:
        where = " (only on stderr)" if task.id in obs.done.stderr else ""
        raise obs.failure(f"stdout does not contain the task's id, {task.id}{where}", expected)
    if task.result and stdout.find(task.id) > stdout.rfind(task.result):
        raise obs.failure("stdout shows the task's id after its result", expected)


def _successes(runs: Runs) -> list[tuple[Observed, str]]:
    """The runs that did their work, each with the one stdout line it should print."""
    busy, done, wait = runs.situation("busy"), runs.situation("done"), runs.wait()
    task = runs.task()
    return [(task, task.created[0].id),
            (busy["status queued"], "queued"), (busy["status running"], "running"),
            (done["status done"], "done"),
            (done["result done"], DONE_RESULT),
            (wait, wait.created[0].result or "")]


@requirement("TQC-11")
def test_exits_0_after_doing_its_work(runs: Runs) -> None:
    """`task`, `status` (three times), `result` and `wait` each end with status 0."""
    raise_all([obs.failure(f"having done its work, {obs.ending()}", "exit status 0")
               for obs, _ in _successes(runs) if obs.done.timed_out or obs.done.code != 0])


@requirement("TQC-12")
def test_stdout_holds_the_answer_alone(runs: Runs) -> None:
    """Stdout is the answer's line alone (for `wait`: the id's line, if there, then the
    result's)."""
    failures = []
    for obs, answer in _successes(runs):
        lines = nonblank(obs.done.stdout)
        allowed = [[answer]]
        if obs.args[0] == "wait":
            allowed.append([obs.created[0].id, answer])
        if lines not in allowed:
            want = " then ".join(repr(x) for x in allowed[-1])
            failures.append(obs.failure(f"stdout is {lines!r}, expected the answer alone",
                                        f"stdout: {want} (messages on stderr)"))
    raise_all(failures)


@requirement("TQC-13")
def test_ctrl_c_ends_with_a_non_zero_status(runs: Runs) -> None:
    """After Ctrl+C the status is not 0."""
    seen = runs.interrupted()
    if seen.code == 0:
        raise CheckFailure("after Ctrl+C the client exited with status 0, as if it had "
                           "finished", expected="a non-zero exit status (130)",
                           actual=tail(seen.output) or "(no output)", reproduce=seen.reproduce)


@requirement("TQC-14")
def test_no_server_is_a_clear_error(runs: Runs, note: Callable[[str], None]) -> None:
    """With nothing listening: a short message, a non-zero status, no traceback."""
    obs = runs.no_server()
    failure = expect_clean_failure(obs, "no server listens", "TQC-14")
    if failure:
        raise failure
    note(f"no server: status {obs.done.code}, {tail(obs.done.stderr, 200)!r}")


@requirement("TQC-15")
def test_unknown_id_is_a_clear_error(runs: Runs) -> None:
    """`status` and `result` of an unknown id: a message, a non-zero status, no answer."""
    busy = runs.situation("busy")
    failures = []
    for name in ("status unknown", "result unknown"):
        obs = busy[name]
        failure = expect_clean_failure(obs, "the id is unknown to the server (404)", "TQC-15")
        if failure is None and status_words(obs.done.stdout):
            failure = obs.failure("for an unknown id, stdout names a status: "
                                  f"{tail(obs.done.stdout, 200)!r}",
                                  "no status or result on stdout")
        if failure:
            failures.append(failure)
    raise_all(failures)


@requirement("TQC-16")
def test_result_not_ready_names_the_status(runs: Runs, note: Callable[[str], None]) -> None:
    """`result` of a queued task: a non-zero status and a message saying 'queued'."""
    obs = runs.situation("busy")["result queued"]
    expected = ("the client ends by itself with a non-zero status and a short message naming "
                "the status 'queued', no traceback")
    if obs.done.timed_out:
        raise obs.failure(f"the task is queued, and the client did not end within "
                          f"{obs.timeout:g} s", expected)
    if TRACEBACK in obs.output:
        raise obs.failure("the task is queued, and the client printed a traceback", expected)
    if obs.done.code == 0:
        raise obs.failure("the task is queued, and the client exited with status 0", expected)
    if "queued" not in status_words(obs.output):
        raise obs.failure("the task is queued, and the client's message does not say so",
                          expected)
    note(f"not ready: status {obs.done.code}, {tail(obs.output, 200)!r}")


@requirement("TQC-17")
def test_garbage_answers_are_clear_errors(runs: Runs) -> None:
    """Three answers the protocol does not allow, each a short message and a non-zero status."""
    raise_all([f for situation, obs in runs.situation("garbage").items()
               if (f := expect_clean_failure(obs, situation, "TQC-17"))])


@requirement("TQC-18")
def test_bad_command_lines_are_usage_errors(runs: Runs) -> None:
    """No subcommand, TYPE 4: a message, a non-zero status, no task created."""
    failures = []
    for situation, obs in runs.situation("usage").items():
        failure = expect_clean_failure(obs, f"it is given {situation}", "TQC-18",
                                       MAX_USAGE_LINES)
        if failure is None and obs.created:
            failure = obs.failure(f"given {situation}, the client created a task",
                                  "no task created")
        if failure:
            failures.append(failure)
    raise_all(failures)


@requirement("TQC-19")
def test_wait_does_not_busy_poll(runs: Runs, note: Callable[[str], None]) -> None:
    """While its task runs for 0.6 s, `wait` sends at most 20 requests a second."""
    obs = runs.wait()
    posts = [r for r in obs.requests if r.method == "POST"]
    later = [r for r in obs.requests if posts and r.at > posts[0].at]
    if not later:
        raise obs.failure("the client asked nothing after submitting its task",
                          f"at most {MAX_REQUEST_RATE:g} requests a second")
    span = max(later[-1].at - posts[0].at, 1e-3)
    if len(later) > MAX_REQUEST_RATE * span + 2:
        raise obs.failure(f"the client sent {len(later)} requests in {span:.2f} s "
                          f"({len(later) / span:.0f} a second) while it waited",
                          f"at most {MAX_REQUEST_RATE:g} requests a second")
    note(f"requests while waiting: {len(later)} in {span:.2f} s")

