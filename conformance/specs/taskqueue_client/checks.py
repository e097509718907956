"""Checks of the `taskqueue-client` spec (openapi/taskqueue-client.requirements.yaml) against any
client.

The client is run through a program description (conformance/_protocol.py, `transport:
program`): ours by default (openapi/taskqueue-client.protocol.yaml: the subcommands `task`,
`status`, `result`, `wait`), or the student's with --protocol FILE (flags of its own, where its
answers are in what it prints, its status words), since the assignment only recommends
command-line parameters. Without a locator a value is looked for anywhere in stdout.

By default the suite plays the server with our reference (reference/taskqueue_server.py), run
in-process (_live_queue.py) on the port where the client expects its server, its delays
multiplied by a time scale: 0.3 where the client submits and waits (type 1 then takes 0.6 s),
0.01 where a task must be done at once, 100 where one must stay running (or queued behind it).
The suite prepares the tasks that `status` and `result` are asked about itself, over HTTP, and
judges what the client sent by the server's own state (which tasks exist, with which type and
data) and the requests it recorded. For the error cases it plays servers that answer garbage.
Each situation gets a fresh server, and the runs of one situation share it.

With --server-command or --server-url the client is judged through the student's own server
instead, started once per run where the client expects it and spoken to as --server-protocol
describes it (_own_queue.py): the suite prepares tasks through it, finds the task a client
submitted by the id the client printed, and reads its status and result there; the result proves
that the type and data arrived unchanged (1 reverses, 2 swaps pairs, 3 repeats by position).
A task seen "running" (or "queued") both before and after a client's run was so throughout it.
What needs our server's record of requests or answers the suite fakes (the request rate, garbage
answers) is not run then, and "exactly one task" is judged only where the server's ids are
numbers (the suite's own submissions just before and after show the count).

Every run is memoized for the suite run. A run may take 4 x --timeout seconds (20 by default),
one that must fail fast 2 x --timeout; a client still running then is stopped (Ctrl+C, then
SIGKILL) and fails the check with that reason, and one that crashes fails with the end of its
output. Proxy settings are removed from the client's environment, since its server is on this
machine.
"""

from __future__ import annotations

import json
import shlex
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from conformance._checks import CheckFailure, NotRun, raise_all, requirement
from conformance._client_run import (
    TRACEBACK,
    ClientRun,
    client_env,
    ctrl_c,
    expect_clean_failure,
    found_note,
    nonblank,
    own_server,
    tail,
    unreached_hint,
)
from conformance._http import Http
from conformance._options import RunOptions
from conformance._protocol import Protocol, Speaker, default_path, fill_argv, first_word, load
from conformance._protocol import read_printed as read_output
from conformance._servers import HOST, App, InProcessServer, canned_app
from conformance._target import Process, ProgramTarget, TargetError, is_listening
from conformance.specs.taskqueue import OPERATIONS as SERVER_OPERATIONS
from conformance.specs.taskqueue._observation import TRANSFORMS
from conformance.specs.taskqueue_client import Options
from conformance.specs.taskqueue_client._live_queue import TASKS_PATH, LiveQueue
from conformance.specs.taskqueue_client._own_queue import OwnQueue, number
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
LONG_TYPE = 3  # the longest task (7 s at the real scale), for the student's server
PROBE_TYPE, PROBE_DATA = 1, "probe"  # the suite's submissions around a run, to count ids
STATUS_WORDS = ("queued", "running", "done", "failed")
PREPARE_TIMEOUT = 5.0  # seconds a prepared task has to reach its status
MAX_REQUEST_RATE = 20.0  # requests a second while waiting (TQC-19)
INTERRUPT_GRACE = 5.0  # seconds a client has to end after Ctrl+C (TQC-09)
SETTLE = 2.0  # seconds the suite waits for an interrupted client's first poll
MAX_USAGE_LINES = 10  # a usage message may wrap (TQC-18)
ATTEMPTS = 3  # tasks tried in turn to see one running throughout a client's run
OPEN = ("the assignment only recommends command-line parameters (\"рекомендуется использовать "
        "параметры командной строки\"); if this client takes its own, describe them: "
        "`conformance protocol taskqueue-client > mine.protocol.yaml`, edit it, then "
        "`conformance run taskqueue-client ... --protocol mine.protocol.yaml`")
OURS_ONLY = ("with --server-command or --server-url the client is judged through the student's "
             "own server, and this needs our reference server's record of the requests and "
             "answers it fakes (run without them to judge it)")


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

    operation: str = ""  # the description's operation ("" for a command line of no operation)
    printed: dict[str, str] = field(default_factory=dict)  # values read by the locators
    ended: datetime = field(default_factory=lambda: datetime.now(UTC))
    created: list[Snapshot] = field(default_factory=list)  # tasks the client's run created
    # Through the student's own server: the task the printed id names (the server knows it),
    # and how many tasks the run created when the server's ids are numbers.
    own_id: str | None = None
    own_status: str | None = None  # that task's status just after the run ended
    count: int | None = None


@dataclass
class Interrupted:
    """A `wait` run interrupted with Ctrl+C once its task existed."""

    code: int | None  # None: still running INTERRUPT_GRACE seconds after Ctrl+C
    output: str
    after: float  # seconds from Ctrl+C to the end
    polled: bool  # the client had asked about its task before Ctrl+C
    reproduce: str


class Runs:
    """Runs the client through its description: against fresh servers of ours, one per
    situation, or through the student's own server (`own`); each situation runs once."""

    def __init__(self, program: ProgramTarget, options: RunOptions[Options],
                 protocol: Protocol) -> None:
        self.program = program
        self.options = options
        self.protocol = protocol
        self.own: OwnQueue | None = None  # the student's own server, once it is up
        self.own_problem = ""  # why the student's own server could not be used
        self._situations: dict[str, dict[str, Observed]] = {}
        self._interrupted: Interrupted | None = None
        self.no_server_problem = ""  # why the run with no server could not be made
        self.numeric_ids: bool | None = None  # whether the student's server counts its ids

    @property
    def judged_own(self) -> bool:
        """Whether the client is judged through the student's own server."""
        return self.options.spec.own_server

    def queue(self) -> OwnQueue:
        """The student's own server; NotRun when it did not start."""
        if self.own is None:
            raise NotRun(self.own_problem or "the student's own server is not up")
        return self.own

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

    def argv(self, operation: str, **args: object) -> list[str]:
        """The client's words for one operation, as its description says."""
        return fill_argv(self.protocol, operation, **args)

    def run(self, server: InProcessServer | None, operation: str, args: list[str],
            timeout: float, setup: str) -> Observed:
        """Run the client with `args` (the words of `operation`) while `server` (None: nothing
        of ours) listens."""
        before = server.requests() if server is not None else []
        known = ({t.id for t in server.tasks()} if isinstance(server, LiveQueue) else set())
        done = self.program.run(*args, timeout=timeout, env=client_env())
        obs = Observed(args, done, timeout, setup, operation=operation)
        if operation:
            obs.printed = read_output(self.protocol, operation, done.stdout)
        if server is not None:
            obs.requests = server.requests()[len(before):]
        if isinstance(server, LiveQueue):
            obs.created = [Snapshot(t.id, t.type, t.data, t.status, t.result, t.finished_at)
                           for t in server.tasks() if t.id not in known]
        return obs

    def situation(self, name: str) -> dict[str, Observed]:
        """The runs of situation `name`, made the first time a check asks for them."""
        if name not in self._situations:
            where = "_own_" if self.judged_own else "_"
            self._situations[name] = getattr(self, where + name)()
        return self._situations[name]

    # reading what a run printed ---------------------------------------------------------------

    def located(self, obs: Observed, name: str) -> bool:
        """Whether the description says where `name` is in the run's output."""
        answer = self.protocol.operations.get(obs.operation, {}).get("answer", {})
        return name in answer

    def shows(self, obs: Observed, name: str, truth: str) -> bool:
        """Whether stdout gives `truth` as the value `name`: where the locator says, else
        anywhere in it."""
        if self.located(obs, name):
            return obs.printed.get(name) == truth
        return truth in obs.done.stdout

    def status_shown(self, obs: Observed, text: str | None = None) -> str | None:
        """The status (a spec word) that stdout (or `text`) names first, in the client's words."""
        if text is None and self.located(obs, "status"):
            return obs.printed.get("status")
        return first_word(self.protocol, "status", obs.done.stdout if text is None else text,
                          STATUS_WORDS)

    def spelled(self, status: str) -> list[str]:
        """How the client spells a status, as its description says."""
        return list(self.protocol.words.get("status", {}).get(status, [status]))

    def printed_id(self, obs: Observed) -> str | None:
        """Through the student's server: the id the run printed that the server knows (by the
        locator, else the first word from the end that names a task there)."""
        queue = self.queue()
        if self.located(obs, "id"):
            found = obs.printed.get("id")
            return found if found and queue.status(found) is not None else None
        return queue.find(obs.done.stdout)

    def reached(self, obs: Observed) -> bool:
        """Whether the run is seen to have reached the server (requests, or a task found)."""
        return bool(obs.requests or obs.own_id or obs.count)

    # situations with our reference server ---------------------------------------------------

    def _fresh(self, operation: str, args: list[str]) -> dict[str, Observed]:
        server = self.live(WAIT_SCALE)
        setup = f"# start our reference server: {server_command(server.port, WAIT_SCALE)}"
        with self.serving(server):
            return {"run": self.run(server, operation, args, self.long, setup)}

    def _task(self) -> dict[str, Observed]:
        return self._fresh("task", self.argv("task", type=TASK_TYPE, data=TASK_DATA))

    def _unicode(self) -> dict[str, Observed]:
        return self._fresh("task", self.argv("task", type=UNICODE_TYPE, data=UNICODE_DATA))

    def _wait(self) -> dict[str, Observed]:
        return self._fresh("wait", self.argv("wait", type=WAIT_TYPE, data=WAIT_DATA))

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

            def ask(operation: str, task_id: str, timeout: float) -> Observed:
                return self.run(server, operation, self.argv(operation, id=task_id), timeout,
                                setup)
            return {
                "status running": ask("status", running, self.long),
                "status queued": ask("status", queued, self.long),
                "result queued": ask("result", queued, self.short),
                "status unknown": ask("status", unknown, self.short),
                "result unknown": ask("result", unknown, self.short),
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
            return {"status done": self.run(server, "status", self.argv("status", id=done),
                                            self.long, setup),
                    "result done": self.run(server, "result", self.argv("result", id=done),
                                            self.long, setup)}

    def _garbage(self) -> dict[str, Observed]:
        """Servers that answer what the protocol does not allow."""
        some_id = str(uuid.uuid4())
        html = b"<!doctype html><title>Welcome</title><p>It works!</p>"
        cases: list[tuple[str, App, str, list[str]]] = [
            ("every request is answered 200 with an HTML page",
             canned_app(lambda m, p: (200, html, "text/html")),
             "task", self.argv("task", type=1, data="hello")),
            ("a task is answered 200 with JSON that has no status",
             canned_app(lambda m, p: (200, b'{"id": "%s", "type": 1}' % some_id.encode(),
                                      "application/json")),
             "status", self.argv("status", id=some_id)),
            ("every request is answered 500 Internal Server Error",
             canned_app(lambda m, p: (500, b"Internal Server Error", "text/plain")),
             "result", self.argv("result", id=some_id)),
        ]
        runs = {}
        for situation, app, operation, args in cases:
            server = InProcessServer(self.program.port, app)
            setup = f"# with a server on {HOST}:{server.port} where {situation}"
            with self.serving(server):
                runs[situation] = self.run(server, operation, args, self.short, setup)
        return runs

    def _usage(self) -> dict[str, Observed]:
        """Bad command lines, with our server listening (a client may ask it to refuse)."""
        server = self.live(WAIT_SCALE)
        setup = f"# start our reference server: {server_command(server.port, WAIT_SCALE)}"
        with self.serving(server):
            return {what: self.run(server, "", args, self.short, setup)
                    for what, args in self.bad_command_lines()}

    def bad_command_lines(self) -> list[tuple[str, list[str]]]:
        """The command lines a client must refuse: none of its operations, and `task` with a
        TYPE other than 1, 2 or 3 (4, given as the description gives a type it does not map)."""
        return [("no subcommand", []),
                ("a TYPE other than 1, 2 or 3", self.argv("task", type=4, data="hello"))]

    def no_server(self) -> Observed:
        """`task` with nothing listening on the client's port."""
        if self.no_server_problem:
            raise NotRun(self.no_server_problem)
        if "no server" not in self._situations:
            port = self.program.port
            if self.options.spec.server_url is not None:
                raise NotRun(f"the student's server given with --server-url listens on the "
                             f"client's port {port}, so the client cannot be run with no "
                             f"server there")
            if is_listening(HOST, port):
                raise NotRun(f"something listens on {HOST}:{port}, so the client cannot be "
                             f"run with no server there")
            self._situations["no server"] = {"run": self.run(
                None, "task", self.argv("task", type=1, data="hello"), self.short,
                f"# with nothing listening on {HOST}:{port}")}
        return self._situations["no server"]["run"]

    # situations through the student's own server --------------------------------------------

    def counted(self, operation: str, args: list[str], timeout: float) -> Observed:
        """One run through the student's server, between two submissions of the suite's own:
        where the server's ids are numbers, they show how many tasks the run created."""
        queue = self.queue()
        # Probes only while the ids may be numbers: each is a task the queue runs (2 s).
        before = queue.submit(PROBE_TYPE, PROBE_DATA) if self.numeric_ids is not False \
            else None
        if before is not None:
            self.numeric_ids = number(before) is not None
        obs = self.run(None, operation, args, timeout, queue.setup())
        if operation:  # first, while the task is as the run left it
            obs.own_id = self.printed_id(obs)
            if obs.own_id is not None:
                obs.own_status = queue.status(obs.own_id)
                queue.known.append(obs.own_id)
        if self.numeric_ids:
            first, last = number(before), number(queue.submit(PROBE_TYPE, PROBE_DATA))
            if first is not None and last is not None:
                obs.count = last - first - 1
        return obs

    def _own_task(self) -> dict[str, Observed]:
        return {"run": self.counted("task", self.argv("task", type=TASK_TYPE, data=TASK_DATA),
                                    self.long)}

    def _own_unicode(self) -> dict[str, Observed]:
        return {"run": self.counted("task", self.argv("task", type=UNICODE_TYPE,
                                                      data=UNICODE_DATA), self.long)}

    def _own_wait(self) -> dict[str, Observed]:
        queue = self.queue()
        queue.idle(self.prepare_timeout)  # the client's task is not to wait behind others
        return {"run": self.counted("wait", self.argv("wait", type=WAIT_TYPE, data=WAIT_DATA),
                                    self.long)}

    @property
    def prepare_timeout(self) -> float:
        """Seconds the student's server has to run what the suite waits for (its delays are
        its own: up to 7 s a task at the real scale, and tasks queue)."""
        return 3 * self.long

    def steady(self, status: str, candidates: list[str], operation: str,
               timeout: float) -> tuple[str, Observed] | None:
        """A run of `operation` on the first candidate task seen `status` both just before and
        just after it (so it was so throughout); None when none was."""
        queue = self.queue()
        for task_id in candidates[:ATTEMPTS]:
            if queue.wait_for(task_id, {status}, self.prepare_timeout) is None:
                continue
            obs = self.run(None, operation, self.argv(operation, id=task_id), timeout,
                           queue.setup())
            if queue.status(task_id) == status:
                return task_id, obs
        return None

    def _own_busy(self) -> dict[str, Observed]:
        """Tasks running and queued through the student's server, and an id it does not
        know: each run kept only when the task was so before and after it."""
        queue = self.queue()
        long = [queue.submit(LONG_TYPE, f"{RUNNING_DATA}{i}") for i in range(ATTEMPTS)]
        queued = queue.submit(QUEUED_TYPE, QUEUED_DATA)
        runs: dict[str, Observed] = {}
        found = self.steady("running", long, "status", self.long)
        if found is not None:
            runs["status running"] = found[1]
        for name, operation, timeout in (("status queued", "status", self.long),
                                         ("result queued", "result", self.short)):
            seen = self.steady("queued", [queued], operation, timeout)
            if seen is not None:
                runs[name] = seen[1]
        unknown = str(uuid.uuid4())
        if queue.ask(unknown).kind == "not_found":
            for operation in ("status", "result"):
                runs[f"{operation} unknown"] = self.run(
                    None, operation, self.argv(operation, id=unknown), self.short,
                    queue.setup())
        return runs

    def _own_done(self) -> dict[str, Observed]:
        queue = self.queue()
        done = queue.submit(DONE_TYPE, DONE_DATA)
        if queue.wait_for(done, {"done"}, self.prepare_timeout) is None:
            raise NotRun(f"the student's server did not finish the task the suite submitted "
                         f"within {self.prepare_timeout:g} s")
        return {name: self.run(None, operation, self.argv(operation, id=done), self.long,
                               queue.setup())
                for name, operation in (("status done", "status"), ("result done", "result"))}

    def _own_garbage(self) -> dict[str, Observed]:
        raise NotRun(f"it needs servers that answer what the protocol does not allow; {OURS_ONLY}")

    def _own_usage(self) -> dict[str, Observed]:
        return {what: self.counted("", args, self.short)
                for what, args in self.bad_command_lines()}

    def busy_run(self, name: str) -> Observed:
        """One run of the busy situation; NotRun when the student's server never held a task so
        throughout a client's run."""
        runs = self.situation("busy")
        if name not in runs:
            raise NotRun(f"no task of the student's server was seen {name.split()[-1]} both "
                         f"before and after the client's `{name.split()[0]}` (its tasks run "
                         f"too briefly: start it with longer delays)"
                         if "unknown" not in name else
                         "the student's server does not answer an id it does not know as its "
                         "description's not_found says")
        return runs[name]

    def done_id(self) -> str:
        """The id of the done task the runs asked about (through either server)."""
        obs = self.situation("done")["status done"]
        return obs.args[-1] if obs.args else ""

    def done_result(self) -> str:
        """The result the server holds for the done task."""
        if not self.judged_own:
            return DONE_RESULT
        result = self.queue().result(self.done_id())
        if result is None:
            raise NotRun("the student's server gave the suite no result for its done task")
        return result

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

    def outcome(self, obs: Observed) -> tuple[str, str | None]:
        """Through the student's server: the status and result of the task a run printed the
        id of, once it has ended (waiting for it as long as tasks may take)."""
        assert obs.own_id is not None
        queue = self.queue()
        status = queue.wait_for(obs.own_id, {"done", "failed"}, self.prepare_timeout)
        if status is None:
            raise NotRun(f"the task the client submitted ({obs.own_id}) did not end within "
                         f"{self.prepare_timeout:g} s on the student's server")
        return status, queue.result(obs.own_id)

    def interrupted(self) -> Interrupted:
        """`wait` interrupted with Ctrl+C once its task exists and it has polled (or after
        SETTLE seconds)."""
        if self._interrupted is None:
            self._interrupted = (self._interrupt_own() if self.judged_own
                                 else self._interrupt())
        return self._interrupted

    def _interrupt(self) -> Interrupted:
        server = self.live(SLOW_SCALE)
        args = self.argv("wait", type=WAIT_TYPE, data=WAIT_DATA)
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
                return self._interrupt_now(proc, polled, reproduce)
            finally:
                proc.stop()

    def _interrupt_now(self, proc: Process, polled: bool, reproduce: str) -> Interrupted:
        """Ctrl+C to the client's process group, and how it ended."""
        code, took = ctrl_c(proc, INTERRUPT_GRACE)
        return Interrupted(code, proc.output_tail(3000), took, polled, reproduce)

    def _interrupt_own(self) -> Interrupted:
        """Through the student's server: the suite's long tasks ahead of the client's, so its
        wait waits; Ctrl+C once it has printed something (its id), or after SETTLE seconds."""
        queue = self.queue()
        ahead = [queue.submit(LONG_TYPE, f"{RUNNING_DATA}{i}") for i in range(ATTEMPTS)]
        args = self.argv("wait", type=WAIT_TYPE, data=WAIT_DATA)
        reproduce = (f"{queue.setup()}\n# then run this and press Ctrl+C while it waits:\n"
                     + shlex.join(self.program.command(*args)))
        expected = (f"the client ends within {INTERRUPT_GRACE:g} s of Ctrl+C, without a "
                    f"traceback")
        try:
            proc = self.program.start(*args, env=client_env())
        except TargetError as exc:
            raise CheckFailure(str(exc), expected=expected, reproduce=reproduce) from None
        try:
            settle = time.monotonic() + SETTLE
            while not proc.output_tail() and proc.exited() is None \
                    and time.monotonic() < settle:
                time.sleep(0.02)
            time.sleep(0.3)  # past its first status request, into its wait
            ended = proc.exited()
            if ended is not None:
                raise NotRun(f"the client's wait ended by itself (status {ended}) while the "
                             f"tasks ahead of its own were still {queue.status(ahead[-1])}, "
                             f"before Ctrl+C: {tail(proc.output_tail(), 200)!r}")
            return self._interrupt_now(proc, bool(proc.output_tail()), reproduce)
        finally:
            proc.stop()


@pytest.fixture(scope="session")
def runs(program: ProgramTarget, options: RunOptions[Options]) -> Iterator[Runs]:
    """The client's runs of this suite run; with --server-command or --server-url, the
    student's own server, started once (after the run with no server, which needs the port)."""
    spec = options.spec
    protocol = spec.described()
    runs = Runs(program, options, protocol)
    if not spec.own_server:
        yield runs
        return
    if spec.server_command is not None:  # before the student's server takes the port
        try:
            runs.no_server()
        except NotRun as exc:
            runs.no_server_problem = str(exc.msg)
    server_protocol = load(spec.server_protocol or default_path("taskqueue"), spec="taskqueue",
                           operations=SERVER_OPERATIONS)
    given = (f"started with `{spec.server_command}`" if spec.server_command is not None
             else f"at {spec.server_url}")
    with ExitStack() as stack:
        try:
            server = stack.enter_context(own_server(spec, program))
        except TargetError as exc:
            runs.own_problem = (f"the student's own server ({given}) could not be used, so the "
                                f"client cannot be judged through it: {exc}")
        else:
            http = stack.enter_context(Http(server.base_url, options.timeout,
                                            explain=server.explain))
            runs.own = OwnQueue(Speaker(server_protocol, http),
                                f"{given}, spoken to as {server_protocol.source.name} says")
        yield runs


def judged_with(runs: Runs, program: ProgramTarget) -> str:
    """Which server the client was judged with, for the report's notes."""
    described = ("its command line as our description says (subcommands)"
                 if runs.protocol.is_default else
                 f"its command line as {runs.protocol.source.name} describes it")
    if runs.own is not None:
        return f"judged through the student's own server, {runs.own.label}; {described}"
    return (f"judged with our reference server (reference/taskqueue_server.py) on "
            f"{HOST}:{program.port}; {described}")


# MUST ---------------------------------------------------------------------------------------

@requirement("TQC-01")
def test_client_reaches_its_server(runs: Runs, program: ProgramTarget,
                                   note: Callable[[str], None]) -> None:
    """`task 2 "hello world"` reaches the server: a request our server saw, or through the
    student's server a task that the id it printed names (or, with numeric ids, a count)."""
    obs = runs.task()
    refused = obs.refused()
    if refused:
        raise NotRun(f"the client refused `{obs.what}` as a usage error ({refused!r}), so it "
                     f"never tried to reach its server (see TQC-02)")
    if not runs.reached(obs):
        hint = unreached_hint(program, DEFAULT_PORT)
        if runs.judged_own:
            assert runs.own is not None
            raise obs.failure(f"no sign that the client reached the student's server at "
                              f"{HOST}:{program.port}{hint}: it printed no id that server "
                              f"knows", f"a task on the server ({runs.own.label})")
        raise obs.failure(f"no request reached the taskqueue server at "
                          f"{HOST}:{program.port}{hint}",
                          f"requests to http://{HOST}:{program.port}")
    note(judged_with(runs, program))
    note(found_note(program, DEFAULT_PORT))


@requirement("TQC-02")
def test_takes_the_described_command_line(runs: Runs, note: Callable[[str], None]) -> None:
    """None of the described command lines (ours: `task`, `status`, `result`, `wait`) is
    refused as a usage error."""
    first = runs.task()
    if not runs.reached(first) and not first.refused():
        raise NotRun(f"`{first.what}` neither reached the server nor was refused as a usage "
                     f"error (see TQC-01), so the command lines cannot be judged")
    described = ("the assignment's subcommands (our description)" if runs.protocol.is_default
                 else f"the command lines {runs.protocol.source.name} describes")
    expected = (f"{described} accepted (the client asks its server, or reports an error that "
                f"is not a usage error)")
    failures = []
    busy = runs.situation("busy")  # through the student's server, what it held throughout
    tried = [first, *[busy[n] for n in ("status queued", "status running") if n in busy][:1],
             runs.situation("done")["result done"], runs.wait()]
    for obs in tried:
        refused = obs.refused()
        if refused:
            advice = f"; {OPEN}" if runs.protocol.is_default else ""
            failures.append(obs.failure(f"the client refused its command line as a usage error: "
                                        f"{refused!r}{advice}", expected))
    raise_all(failures)
    note(f"{described} were all accepted")


@requirement("TQC-03")
def test_task_submits_one_task_of_the_type_and_data(runs: Runs,
                                                    note: Callable[[str], None]) -> None:
    """`task 2 "hello world"` creates one task, of type 2, with data "hello world"."""
    obs = runs.task()
    expected = f'one task on the server, with type {TASK_TYPE} and data {TASK_DATA!r}'
    if runs.judged_own:
        judge_own_task(runs, obs, TASK_TYPE, TASK_DATA, expected, note)
        return
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


def judge_own_task(runs: Runs, obs: Observed, task_type: int, data: str, expected: str,
                   note: Callable[[str], None]) -> None:
    """Through the student's server: the task the printed id names gave the result of the type
    and data given (which proves both arrived unchanged), and the ids counted one task."""
    if obs.count is not None and obs.count != 1:
        raise obs.failure(f"the ids the server gave the suite just before and after the run "
                          f"show {obs.count} tasks created by it, expected one", expected)
    if obs.own_id is None:
        raise NotRun("the client's task can be found on the student's server only by the id "
                     "it prints, and it printed none that server knows (see TQC-04)")
    status, result = runs.outcome(obs)
    want = TRANSFORMS[task_type](data)
    if status != "done" or result != want:
        raise obs.failure(f"the task it created ({obs.own_id}) ended {status} with the result "
                          f"{result!r}, which is not type {task_type}'s of {data!r}: {want!r}",
                          expected)
    if obs.count is None:
        note("the student's server's ids are not numbers, so how many tasks the run created "
             "was not seen")
    else:
        note(f"the server's ids just before and after the run show {obs.count} task created "
             f"by it")


@requirement("TQC-04")
def test_task_prints_the_id(runs: Runs) -> None:
    """Stdout of `task` contains the id of the task it created."""
    obs = runs.task()
    if runs.judged_own:
        if obs.own_id is None:
            found = f" (its locator read {obs.printed['id']!r})" if "id" in obs.printed else ""
            raise obs.failure(f"stdout names no task the student's server knows{found}",
                              "stdout contains the id of the task created")
        return
    if not obs.created:
        raise NotRun("the client created no task on the server (see TQC-03), so there is no id "
                     "to print")
    task_id = obs.created[0].id
    if not runs.shows(obs, "id", task_id):
        where = ("; it is on stderr only, but the answer belongs on stdout"
                 if task_id in obs.done.stderr else "")
        raise obs.failure(f"stdout does not give the id of the task created, "
                          f"{task_id}{where}", f"stdout contains {task_id}")


@requirement("TQC-05")
def test_data_reaches_the_server_unchanged(runs: Runs, note: Callable[[str], None]) -> None:
    """Non-ASCII data given to `task`, and the Cyrillic word given to `wait`, arrive unchanged."""
    failures = []
    if runs.judged_own:
        judge_own_data(runs, note)
        return
    for obs, data in ((runs.unicode(), UNICODE_DATA), (runs.wait(), WAIT_DATA)):
        expected = f"one task on the server, with the data {data!r}"
        if len(obs.created) != 1:
            if obs.operation == "task":
                failures.append(obs.failure(f"{len(obs.created)} tasks were created on the "
                                            f"server, expected one", expected))
            continue  # `wait` creating no task is TQC-08's failure, not this one
        if obs.created[0].data != data:
            failures.append(obs.failure(f"the task created has the data "
                                        f"{obs.created[0].data!r}, expected {data!r}", expected))
    raise_all(failures)
    note(f"data {UNICODE_DATA!r} arrived unchanged")


def judge_own_data(runs: Runs, note: Callable[[str], None]) -> None:
    """Through the student's server: the result of each task the client submitted (found by
    the id it printed; for `wait`, else the result it printed) is its type's of the data given,
    which it is not when the data changed on the way."""
    failures, judged = [], []
    for obs, task_type, data in ((runs.unicode(), UNICODE_TYPE, UNICODE_DATA),
                                 (runs.wait(), WAIT_TYPE, WAIT_DATA)):
        want = TRANSFORMS[task_type](data)
        expected = f"the task's result is type {task_type}'s of {data!r}: {want!r}"
        if obs.operation == "task" and obs.count is not None and obs.count != 1:
            failures.append(obs.failure(f"the server's ids show {obs.count} tasks created by "
                                        f"the run, expected one", expected))
            continue
        if obs.own_id is not None:
            status, result = runs.outcome(obs)
            if status != "done":
                continue  # a task that failed says nothing of its data
            judged.append(data)
            if result != want:
                failures.append(obs.failure(f"the task it created ({obs.own_id}) gave "
                                            f"{result!r}, which is not type {task_type}'s of "
                                            f"{data!r}", expected))
        elif obs.operation == "wait" and runs.located(obs, "result") and "result" in obs.printed:
            judged.append(data)
            if obs.printed["result"] != want:
                failures.append(obs.failure(f"it printed the result {obs.printed['result']!r}, "
                                            f"which is not type {task_type}'s of {data!r}",
                                            expected))
    raise_all(failures)
    if not judged:
        raise NotRun("no task the client submitted could be found on the student's server: it "
                     "printed no id that server knows (see TQC-04)")
    note(f"the results of {', '.join(repr(d) for d in judged)} were right: the data arrived "
         f"unchanged")


def status_cases(runs: Runs, note: Callable[[str], None] | None = None
                 ) -> list[tuple[Observed, str]]:
    """The `status` runs and the status their task had throughout; through the student's
    server, a status it never held throughout a client's run is left out (and noted)."""
    cases = []
    for name, status in (("status queued", "queued"), ("status running", "running")):
        try:
            cases.append((runs.busy_run(name), status))
        except NotRun as exc:
            if not runs.judged_own:
                raise
            if note is not None:
                note(f"not judged for a task {status}: {exc.msg}")
    cases.append((runs.situation("done")["status done"], "done"))
    return cases


@requirement("TQC-06")
def test_status_prints_the_tasks_status(runs: Runs, note: Callable[[str], None]) -> None:
    """`status ID` for a task queued, one running and one done names that status first."""
    failures = []
    for obs, status in status_cases(runs, note):
        shown = runs.status_shown(obs)
        spelled = " or ".join(repr(w) for w in runs.spelled(status))
        # The first status word, not the only one: "running, not done yet" is a fine answer,
        # while a client that prints a fixed word or every word is caught.
        expected = (f"stdout names the status {spelled} before any other of "
                    f"{', '.join(STATUS_WORDS)} (in the client's words)")
        if shown is None:
            where = ("; it is on stderr only, but the answer belongs on stdout"
                     if runs.status_shown(obs, obs.done.stderr) == status else "")
            failures.append(obs.failure(f"the task is {status}, but stdout names no status"
                                        f"{where}", expected))
        elif shown != status:
            failures.append(obs.failure(f"the task is {status}, but stdout says {shown!r} "
                                        f"first", expected))
    raise_all(failures)


@requirement("TQC-07")
def test_result_prints_the_result(runs: Runs) -> None:
    """`result ID` of a done task prints its result."""
    obs = runs.situation("done")["result done"]
    result = runs.done_result()
    if not runs.shows(obs, "result", result):
        where = ("; it is on stderr only, but the answer belongs on stdout"
                 if result in obs.done.stderr else "")
        raise obs.failure(f"stdout does not give the task's result, {result!r}{where}",
                          f"stdout contains {result!r}")


@requirement("TQC-08")
def test_wait_submits_waits_and_prints_the_result(runs: Runs,
                                                  note: Callable[[str], None]) -> None:
    """`wait 1 пример` creates one task of type 1, ends after it is done, prints its result."""
    obs = runs.wait()
    expected = (f"one task of type {WAIT_TYPE} on the server; the client ends after it is "
                f"done, its result on stdout")
    if runs.judged_own:
        judge_own_wait(runs, obs, expected, note)
        return
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
    if not runs.shows(obs, "result", task.result):
        where = ("; it is on stderr only, but the answer belongs on stdout"
                 if task.result in obs.done.stderr else "")
        raise obs.failure(f"stdout does not give the task's result, {task.result!r}{where}",
                          expected)
    gets = sum(r.method == "GET" for r in obs.requests)
    note(f"wait: {gets} GET requests, ended {obs.done.elapsed:.1f} s after it started")


def judge_own_wait(runs: Runs, obs: Observed, expected: str,
                   note: Callable[[str], None]) -> None:
    """Through the student's server: the task the printed id names was done when the client
    ended and its result is on stdout; without an id it names, the right result on stdout
    (which only a done task has) is the evidence."""
    want = TRANSFORMS[WAIT_TYPE](WAIT_DATA)
    if obs.count is not None and obs.count != 1:
        raise obs.failure(f"the ids the server gave the suite just before and after the run "
                          f"show {obs.count} tasks created by it, expected one", expected)
    if obs.done.timed_out:
        raise obs.failure(f"the client did not end within {obs.timeout:g} s", expected)
    if obs.own_id is not None:
        status, result = runs.outcome(obs)
        if result is not None and not runs.shows(obs, "result", result):
            at_end = obs.own_status
            ended = (f"; the task was still {at_end} after the client ended"
                     if at_end not in ("done", "failed") else "")
            raise obs.failure(f"stdout does not give the task's result, {result!r}{ended}",
                              expected)
        note(f"wait: task {obs.own_id} {status}, ended {obs.done.elapsed:.1f} s after it started")
        return
    if not runs.shows(obs, "result", want):
        raise obs.failure(f"stdout does not give the result {want!r} (and names no task the "
                          f"student's server knows)", expected)
    note(f"wait: printed {want!r} after {obs.done.elapsed:.1f} s (no id of it seen)")


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
    stdout = obs.done.stdout
    if runs.judged_own:
        if obs.own_id is None:
            raise obs.failure("stdout names no task the student's server knows",
                              "stdout contains the id of the task created, before the result")
        task_id, result = obs.own_id, runs.outcome(obs)[1]
    else:
        task_id, result = obs.created[0].id, obs.created[0].result
    expected = f"stdout contains the id {task_id}, before the result"
    if not runs.shows(obs, "id", task_id):
        where = " (only on stderr)" if task_id in obs.done.stderr else ""
        raise obs.failure(f"stdout does not give the task's id, {task_id}{where}", expected)
    if result and stdout.find(task_id) > stdout.rfind(result):
        raise obs.failure("stdout shows the task's id after its result", expected)


def _successes(runs: Runs) -> list[tuple[Observed, list[list[str]]]]:
    """The runs that did their work, each with the stdout lines it may print (each a list of
    lines): the answer alone."""
    wait, task = runs.wait(), runs.task()
    if runs.judged_own:
        task_id, wait_id = task.own_id or "", wait.own_id
        wait_result = runs.outcome(wait)[1] if wait_id else TRANSFORMS[WAIT_TYPE](WAIT_DATA)
    else:
        task_id, wait_id, wait_result = task.created[0].id, wait.created[0].id, \
            wait.created[0].result
    out: list[tuple[Observed, list[list[str]]]] = [(task, [[task_id]])]
    for obs, status in status_cases(runs):
        out.append((obs, [[w] for w in runs.spelled(status)]))
    out.append((runs.situation("done")["result done"], [[runs.done_result()]]))
    lines = [[wait_result or ""]]
    if wait_id:
        lines.append([wait_id, wait_result or ""])
    out.append((wait, lines))
    return out


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
    for obs, allowed in _successes(runs):
        lines = nonblank(obs.done.stdout)
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
    failures = []
    for name in ("status unknown", "result unknown"):
        obs = runs.busy_run(name)
        failure = expect_clean_failure(obs, "the id is unknown to the server", "TQC-15")
        if failure is None and runs.status_shown(obs) is not None:
            failure = obs.failure("for an unknown id, stdout names a status: "
                                  f"{tail(obs.done.stdout, 200)!r}",
                                  "no status or result on stdout")
        if failure:
            failures.append(failure)
    raise_all(failures)


@requirement("TQC-16")
def test_result_not_ready_names_the_status(runs: Runs, note: Callable[[str], None]) -> None:
    """`result` of a queued task: a non-zero status and a message saying 'queued'."""
    obs = runs.busy_run("result queued")
    expected = ("the client ends by itself with a non-zero status and a short message naming "
                "the status 'queued' (in the client's words), no traceback")
    if obs.done.timed_out:
        raise obs.failure(f"the task is queued, and the client did not end within "
                          f"{obs.timeout:g} s", expected)
    if TRACEBACK in obs.output:
        raise obs.failure("the task is queued, and the client printed a traceback", expected)
    if obs.done.code == 0:
        raise obs.failure("the task is queued, and the client exited with status 0", expected)
    if runs.status_shown(obs, obs.output) != "queued":
        raise obs.failure("the task is queued, and the client's message does not say so",
                          expected)
    note(f"not ready: status {obs.done.code}, {tail(obs.output, 200)!r}")


@requirement("TQC-17")
def test_garbage_answers_are_clear_errors(runs: Runs) -> None:
    """Three answers the protocol does not allow, each a short message and a non-zero status."""
    raise_all([f for situation, obs in runs.situation("garbage").items()
               if (f := expect_clean_failure(obs, situation, "TQC-17"))])


@requirement("TQC-18")
def test_bad_command_lines_are_usage_errors(runs: Runs, note: Callable[[str], None]) -> None:
    """No subcommand, TYPE 4: a message, a non-zero status, no task created."""
    failures = []
    unseen = False
    for situation, obs in runs.situation("usage").items():
        failure = expect_clean_failure(obs, f"it is given {situation}", "TQC-18",
                                       MAX_USAGE_LINES)
        created = len(obs.created) if not runs.judged_own else obs.count
        unseen = unseen or created is None
        if failure is None and created:
            failure = obs.failure(f"given {situation}, the client created a task",
                                  "no task created")
        if failure:
            failures.append(failure)
    raise_all(failures)
    if unseen:
        note("whether a bad command line created a task was not seen: the student's server's "
             "ids are not numbers")


@requirement("TQC-19")
def test_wait_does_not_busy_poll(runs: Runs, note: Callable[[str], None]) -> None:
    """While its task runs for 0.6 s, `wait` sends at most 20 requests a second."""
    if runs.judged_own:
        raise NotRun(f"it counts the requests `wait` sends; {OURS_ONLY}")
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
