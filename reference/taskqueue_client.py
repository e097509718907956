"""The reference taskqueue client: submit a task, show a task's status or result, or submit one and
wait for its result (assignment seed 004, over the protocol of openapi/taskqueue.yaml).

Run it as `python taskqueue_client.py [--server URL] COMMAND ...`:
    task TYPE DATA          submit DATA as a task of TYPE (1 reverse, 2 swap pairs, 3 repeat by
                            position); print the task's id
    status ID               print the task's status: queued, running, done or failed
    result ID               print the result of a done task
    wait [--interval S] TYPE DATA
                            submit, print the id, wait until the task is done, print its result

Rules, as openapi/taskqueue-client.requirements.yaml states them:
- The server is http://127.0.0.1:8888 unless --server names another. Every request has a
  timeout (10 s).
- stdout holds the answer alone on its line (the id, the status word, the result; for `wait`
  the id, then the result), so a script can read it; every message goes to stderr.
- `wait` asks GET /api/v1/tasks/{id} every 0.25 s (--interval) until the task is done, then
  GET /api/v1/tasks/{id}/result. Meanwhile it shows the status on stderr: a live line when
  stderr is a terminal, one plain line per change otherwise.
- Exit statuses: 0 done; 1 the server cannot be reached, refuses the task or answers something
  the protocol does not allow; 2 a bad command line; 3 no such task (404); 4 the result is not
  ready (409: the task is queued or running); 5 the task failed; 130 Ctrl+C. An error is one line
  `taskqueue_client: error: ...` on stderr, never a traceback.
- Ctrl+C at any moment ends it with one line on stderr (once a task was submitted: its id, and
  that it goes on on the server) and status 130.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

try:
    import httpx
except KeyboardInterrupt:  # Ctrl+C while httpx loads (a tenth of a second) ends quietly too
    sys.stderr.write("taskqueue_client: interrupted\n")
    raise SystemExit(130) from None

PROG = "taskqueue_client"
DEFAULT_SERVER = "http://127.0.0.1:8888"
TASKS_PATH = "/api/v1/tasks"
REQUEST_TIMEOUT = 10.0
POLL_INTERVAL = 0.25
MIN_INTERVAL = 0.05  # so that no --interval turns `wait` into a busy loop
TYPES = {1: "reverse the string", 2: "swap each pair of characters",
         3: "repeat each character by its position"}
STATUSES = ("queued", "running", "done", "failed")
# The assignment's subcommands; a variant of this client (fixtures/taskqueue_client) may rename.
SUBCOMMANDS = ("task", "status", "result", "wait")
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_NOT_READY, EXIT_FAILED = 0, 1, 2, 3, 4, 5
EXIT_INTERRUPTED = 130


class QueueError(Exception):
    """Something the user must be told in one line, and the exit status it ends with."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def excerpt(data: bytes | str, limit: int = 80) -> str:
    """The start of a body, on one line, for an error message."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    text = " ".join(text.split())
    return repr(text if len(text) <= limit else text[:limit] + "...")


class TaskQueueClient:
    """Talks to one taskqueue server over an open httpx.Client. Each step and each printed line
    is a method, so a variant (see fixtures/taskqueue_client) can change one and keep the rest."""

    def __init__(self, http: httpx.Client, *, interval: float = POLL_INTERVAL) -> None:
        self.http = http
        self.interval = interval

    # requests -----------------------------------------------------------------------------

    def send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request; every transport problem becomes a one-line QueueError."""
        where = str(self.http.base_url).rstrip("/") + path
        try:
            return self.http.request(method, path, **kwargs)
        except httpx.ConnectError:
            raise QueueError(f"cannot connect to the taskqueue server at {where} "
                             f"(is it running?)") from None
        except httpx.TimeoutException:
            raise QueueError(f"the taskqueue server did not answer {method} {where} within "
                             f"{REQUEST_TIMEOUT:g} s") from None
        except httpx.HTTPError as exc:
            raise QueueError(f"{method} {where} failed: {exc or type(exc).__name__}") from None

    @staticmethod
    def json_object(response: httpx.Response) -> dict[str, Any]:
        """The answer's JSON object, or QueueError saying what came instead."""
        what = f"{response.request.method} {response.request.url.path}"
        try:
            body = response.json()
        except ValueError:
            raise QueueError(f"{what} answered {response.status_code} with something that is "
                             f"not JSON: {excerpt(response.content)}") from None
        if not isinstance(body, dict):
            raise QueueError(f"{what} answered {response.status_code} with JSON that is not "
                             f"an object: {excerpt(response.text)}")
        return body

    @staticmethod
    def unexpected(response: httpx.Response) -> QueueError:
        """The error for an answer the protocol does not allow there."""
        return QueueError(f"{response.request.method} {response.request.url.path} answered "
                          f"{response.status_code} {response.reason_phrase}: "
                          f"{excerpt(response.content)}")

    @staticmethod
    def path(task_id: str, tail: str = "") -> str:
        """The path of a task (or of its result), the id quoted as one path segment."""
        return f"{TASKS_PATH}/{quote(task_id, safe='')}{tail}"

    def submit(self, task_type: int, data: str) -> str:
        """Queue a task; its id."""
        response = self.send("POST", TASKS_PATH, json={"type": task_type, "data": data})
        if response.status_code in (422, 503):
            detail = self.json_object(response).get("detail") if response.content else None
            why = detail if isinstance(detail, str) else excerpt(response.content)
            raise QueueError(f"the server refused the task ({response.status_code}): {why}")
        if response.status_code not in (200, 201):
            raise self.unexpected(response)
        task_id = self.json_object(response).get("id")
        if not isinstance(task_id, str) or not task_id:
            raise QueueError(f"POST {TASKS_PATH} answered a task without an id: "
                             f"{excerpt(response.text)}")
        return task_id

    def status(self, task_id: str) -> str:
        """The task's status word."""
        response = self.send("GET", self.path(task_id))
        if response.status_code == 404:
            raise self.not_found(task_id)
        if response.status_code != 200:
            raise self.unexpected(response)
        status = self.json_object(response).get("status")
        if not isinstance(status, str) or not status:
            raise QueueError(f"GET {self.path(task_id)} answered a task without a status: "
                             f"{excerpt(response.text)}")
        return status

    def result(self, task_id: str) -> str:
        """The result of a done task."""
        response = self.send("GET", self.path(task_id, "/result"))
        if response.status_code == 404:
            raise self.not_found(task_id)
        if response.status_code == 409:
            body = self.json_object(response)
            status, detail = body.get("status"), body.get("detail")
            if status == "failed":
                raise QueueError(f"task {task_id} failed"
                                 + (f": {detail}" if isinstance(detail, str) else ""),
                                 EXIT_FAILED)
            shown = status if isinstance(status, str) else "not done"
            raise QueueError(f"task {task_id} has no result yet: it is {shown}",
                             EXIT_NOT_READY)
        if response.status_code != 200:
            raise self.unexpected(response)
        body = self.json_object(response)
        if "result" not in body:
            raise QueueError(f"GET {self.path(task_id, '/result')} answered no result: "
                             f"{excerpt(response.text)}")
        result = body["result"]
        # The protocol's result is a string; anything else is shown as the JSON it came as.
        return result if isinstance(result, str) else json.dumps(result, ensure_ascii=False)

    @staticmethod
    def not_found(task_id: str) -> QueueError:
        """The error for an id the server does not know."""
        return QueueError(f"no task {task_id} on the server (a wrong id, or a task no longer "
                          f"kept)", EXIT_NOT_FOUND)

    def intervals(self) -> Iterator[float]:
        """Seconds between polls while waiting."""
        return itertools.repeat(self.interval)

    def wait(self, task_id: str, show: Callable[[str], None]) -> None:
        """Poll the task until it is done, showing each status; QueueError when it failed."""
        for interval in self.intervals():
            status = self.status(task_id)
            show(status)
            if status == "done":
                return
            if status == "failed":
                raise QueueError(f"task {task_id} failed", EXIT_FAILED)
            time.sleep(interval)

    # what is printed ----------------------------------------------------------------------

    def id_line(self, task_id: str) -> str:
        """The stdout line that shows a submitted task's id."""
        return task_id

    def status_line(self, status: str) -> str:
        """The stdout line that shows a status."""
        return status

    def result_line(self, result: str) -> str:
        """The stdout line that shows a result."""
        return result


@dataclass
class Session:
    """What a run has done so far, for the message when Ctrl+C ends it."""

    task_id: str | None = None


def emit(line: str) -> None:
    """Print one answer on stdout, at once (a script may be reading it line by line)."""
    try:
        print(line, flush=True)
    except UnicodeEncodeError:
        raise QueueError("cannot print the answer in this output's encoding (set "
                         "PYTHONIOENCODING=utf-8)") from None


@contextmanager
def status_display(task_id: str) -> Iterator[Callable[[str], None]]:
    """A function that shows the status while `wait` waits: a live line on a terminal's stderr,
    else one plain stderr line each time the status changes."""
    if sys.stderr.isatty():
        from rich.console import Console  # only a terminal needs it

        with Console(stderr=True).status(f"task {task_id}: submitted") as live:
            yield lambda status: live.update(f"task {task_id}: {status}")
        return
    shown: list[str] = []

    def show(status: str) -> None:
        if shown[-1:] != [status]:
            shown.append(status)
            print(f"{PROG}: task {task_id} is {status}", file=sys.stderr, flush=True)

    yield show


def run_task(client: TaskQueueClient, args: argparse.Namespace, session: Session) -> int:
    """`task TYPE DATA`: submit, print the id."""
    session.task_id = client.submit(args.type, args.data)
    emit(client.id_line(session.task_id))
    return EXIT_OK


def run_status(client: TaskQueueClient, args: argparse.Namespace, session: Session) -> int:
    """`status ID`: print the status."""
    emit(client.status_line(client.status(args.id)))
    return EXIT_OK


def run_result(client: TaskQueueClient, args: argparse.Namespace, session: Session) -> int:
    """`result ID`: print the result of a done task."""
    emit(client.result_line(client.result(args.id)))
    return EXIT_OK


def run_wait(client: TaskQueueClient, args: argparse.Namespace, session: Session) -> int:
    """`wait TYPE DATA`: submit, print the id, wait until done, print the result."""
    session.task_id = task_id = client.submit(args.type, args.data)
    emit(client.id_line(task_id))
    with status_display(task_id) as show:
        client.wait(task_id, show)
    emit(client.result_line(client.result(task_id)))
    return EXIT_OK


def _server_url(text: str) -> str:
    try:
        url = httpx.URL(text)
    except httpx.InvalidURL:
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.host:
        raise argparse.ArgumentTypeError(f"not an http(s) URL: {text!r}")
    return text.rstrip("/")


def _task_id(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("a task id cannot be empty")
    return text.strip()


def _interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= MIN_INTERVAL:
        raise argparse.ArgumentTypeError(f"must be at least {MIN_INTERVAL:g}: {text!r}")
    return value


def build_parser(names: Sequence[str] = SUBCOMMANDS) -> argparse.ArgumentParser:
    """The command line; `names` are the subcommands task, status, result and wait, in that
    order (the assignment's, unless a variant renames one)."""
    parser = argparse.ArgumentParser(
        prog=f"{PROG}.py",
        description="Client of the taskqueue server: submit a task, show a task's status or "
                    "result, or submit one and wait for its result.",
        epilog="Exit statuses: 0 done, 1 server unreachable or answering wrongly, 2 bad command "
               "line, 3 no such task, 4 result not ready yet, 5 the task failed, 130 Ctrl+C.",
    )
    parser.add_argument("--server", type=_server_url, default=DEFAULT_SERVER, metavar="URL",
                        help="the taskqueue server (default: %(default)s)")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    kinds = ", ".join(f"{n} {what}" for n, what in TYPES.items())
    task_name, status_name, result_name, wait_name = names
    for name, handler, summary in ((task_name, run_task, "submit a task; print its id"),
                                   (wait_name, run_wait, "submit a task, print its id, wait "
                                                         "until it is done, print its result")):
        command = commands.add_parser(name, help=summary, description=summary)
        command.add_argument("type", type=int, choices=sorted(TYPES), metavar="TYPE",
                             help=f"the task type: {kinds}")
        command.add_argument("data", metavar="DATA", help="the string to work on")
        command.set_defaults(handler=handler, interval=POLL_INTERVAL)
        if handler is run_wait:
            command.add_argument("--interval", type=_interval, default=POLL_INTERVAL,
                                 metavar="S", help="seconds between status requests "
                                                   "(default: %(default)g)")
    for name, handler, summary in ((status_name, run_status, "print a task's status"),
                                   (result_name, run_result, "print a done task's result")):
        command = commands.add_parser(name, help=summary, description=summary)
        command.add_argument("id", type=_task_id, metavar="ID", help="the task's id")
        command.set_defaults(handler=handler, interval=POLL_INTERVAL)
    return parser


def main(argv: Sequence[str] | None = None,
         client_class: type[TaskQueueClient] = TaskQueueClient,
         names: Sequence[str] = SUBCOMMANDS) -> int:
    """Parse the command line and run the command; the exit status."""
    session = Session()
    try:
        args = build_parser(names).parse_args(argv)
        # trust_env=False: the server is a known address (loopback by default), and a proxy
        # from the environment would only stand between this client and it. Certificates are
        # checked for an https server only: loading them for http would double the start-up.
        with httpx.Client(base_url=args.server, timeout=REQUEST_TIMEOUT, trust_env=False,
                          verify=args.server.startswith("https:")) as http:
            return args.handler(client_class(http, interval=args.interval), args, session)
    except QueueError as exc:
        print(f"{PROG}: error: {exc.message}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        if session.task_id:
            print(f"{PROG}: interrupted; task {session.task_id} goes on on the server (ask "
                  f"`status {session.task_id}` or `result {session.task_id}`)", file=sys.stderr)
        else:
            print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # stdout's reader went away (`... | head`): nothing more to say, and nowhere to say it;
        # stdout goes to /dev/null so that Python's final flush does not complain either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
