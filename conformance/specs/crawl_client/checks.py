"""Checks of the `crawl-client` spec (openapi/crawl-client.requirements.yaml) against any client.

The suite plays the crawler server: for every run of the client a fresh fake server
(_fake_crawler.py) listens on the port where the client expects its server, answers
by a script (how many polls stay "running", which code each URL gets, or garbage), and records
every request, so a check judges what the client sent and what it printed. The URLs are made up
(loopback port 9, where nothing is fetched); only the fake server sees them. The fake server
takes them in any body shape servers take ({"urls": [...]}, ...): a client that wraps its list
fails CC-02 alone and is judged on the rest; a check that observes the task is not run only
when no task could be made (`Observed.task`).

Checks that judge the same situation share one run of the client (memoized for the suite run),
so the client runs thirteen times in all. A run may take 4 x --timeout seconds (20 by
default), one that must fail fast 2 x --timeout; a client still running then is stopped
(Ctrl+C, then SIGKILL) and fails the check with that reason, and one that crashes fails with the
end of its stderr. Proxy settings are removed from the client's environment, since its server is
on this machine.
"""

from __future__ import annotations

import re
import shlex
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import pytest

from conformance._checks import CheckFailure, CheckFailures, NotRun, requirement
from conformance._client_run import (
    TRACEBACK,
    client_env,
    ctrl_c,
    found_note,
    tail,
    unreached_hint,
)
from conformance._options import RunOptions
from conformance._servers import Seen
from conformance._target import Completed, ProgramTarget, TargetError, is_listening
from conformance.specs.crawl_client import Options
from conformance.specs.crawl_client._fake_crawler import (
    BARE_LIST,
    TASKS_PATH,
    FakeCrawler,
    Reply,
    Script,
    Task,
)

HOST = "127.0.0.1"
DEFAULT_PORT = 8888
BASE = "http://127.0.0.1:9"  # the discard port: nothing there, and nothing is fetched anyway
# The main situation: four URLs (one with a query that must travel unchanged), four codes.
MAIN = {
    f"{BASE}/ok": 200,
    f"{BASE}/missing": 404,
    f"{BASE}/broken?page=2&q=a%20b": 500,
    f"{BASE}/moved/": 301,
}
ONE = {f"{BASE}/only": 503}
WITH_NULL: dict[str, int | None] = {f"{BASE}/first": 200, f"{BASE}/unreachable": None,
                                    f"{BASE}/last": 404}
SCHEMELESS = "127.0.0.1:9/plain"
RUNNING_POLLS = 2  # polls answered "running" before "ready", in the main situation
MAX_POLL_RATE = 20.0  # polls a second (CC-10)
SLOW_TASK = 1.0  # seconds the task of CC-10 stays "running"
INTERRUPT_GRACE = 5.0  # seconds a client has to end after Ctrl+C (CC-11)
MAX_MESSAGE_LINES = 4  # "a short message" (CC-08, CC-09, CC-12)

GARBAGE: dict[str, Script] = {
    "the POST is answered 200 with an HTML page": Script(post_reply=Reply(
        200, b"<!doctype html><title>Welcome</title><p>It works!</p>", "text/html")),
    "the POST is answered 201 with a JSON object that has no id": Script(post_reply=Reply(
        201, b'{"status": "running"}')),
    "the POST is answered 500": Script(post_reply=Reply(
        500, b"Internal Server Error", "text/plain; charset=utf-8")),
    "every poll is answered 200 with a body that is not JSON": Script(poll_reply=Reply(
        200, b"<html><body>oops</body></html>", "text/html")),
    "every poll is answered 404 (the task is gone)": Script(poll_reply=Reply(
        404, b'{"detail": "Task not found"}')),
}


def describe(script: Script | None, port: int, situation: str = "") -> str:
    """What listened on the client's port during a run, for its reproducer."""
    where = f"{HOST}:{port}"
    if script is None:
        return f"nothing listening on {where}"
    if situation:
        return f"a server on {where} where {situation}"
    if script.running_polls >= 10**6:
        return f"a crawler server on {where} that keeps every task 'running'"
    if script.running_for:
        return (f"a crawler server on {where} that keeps a task 'running' for "
                f"{script.running_for:g} s, then answers 'ready'")
    return (f"a crawler server on {where} that answers the first {script.running_polls} polls "
            f"of a task 'running', then 'ready'")


@contextmanager
def playing(port: int, script: Script) -> Iterator[FakeCrawler]:
    """The fake server on `port` for the duration; NotRun when the suite cannot listen there."""
    with ExitStack() as stack:
        try:
            fake = stack.enter_context(FakeCrawler(port, script, host=HOST))
        except OSError as exc:
            raise NotRun(f"the suite could not listen on {HOST}:{port} to play the crawler "
                         f"server: {exc}") from None
        yield fake


@dataclass
class Observed:
    """One run of the client against the fake server: what it sent and what it printed."""

    urls: list[str]
    script: Script | None
    port: int
    timeout: float
    done: Completed
    requests: list[Seen]
    tasks: list[Task]
    situation: str = ""

    @property
    def lines(self) -> list[str]:
        """Stdout's lines (a trailing carriage return dropped)."""
        return [line.removesuffix("\r") for line in self.done.stdout.split("\n")]

    def posts(self) -> list[Seen]:
        """The POSTs to /api/v1/tasks/."""
        return [r for r in self.requests if r.method == "POST" and r.path == TASKS_PATH]

    def task(self, rid: str) -> Task:
        """The task the client created; NotRun, for requirement `rid`, when it created none
        (it sent no POST, or a body that is no list of URLs in any shape the fake server
        takes: CC-02 says which)."""
        if self.tasks:
            return self.tasks[0]
        posts = self.posts()
        if not posts:
            raise NotRun(f"the client sent no POST {TASKS_PATH}, so no task was created for "
                         f"{rid} to observe (CC-02 judges the POST)")
        raise NotRun(f"the fake server could not read the URLs from the client's POST "
                     f"{TASKS_PATH} ({posts[0].line}), so no task was created for {rid} to "
                     f"observe (CC-02 judges the POST)")

    def polls(self, task: Task) -> list[Seen]:
        """The GETs of one task."""
        return [r for r in self.requests if r.method == "GET" and r.path == TASKS_PATH + task.id]

    def ending(self) -> str:
        """How the run ended, in words."""
        if self.done.timed_out:
            return f"the client did not end within {self.timeout:g} s and was stopped"
        if self.done.code == 0:
            return "the client exited with status 0"
        return f"the client exited with status {self.done.code}"

    def actual(self) -> str:
        """What the client did, for a failure's `actual`."""
        seen = ", ".join(r.line for r in self.requests[:6]) or "none"
        if len(self.requests) > 6:
            seen += f" and {len(self.requests) - 6} more"
        parts = [f"{self.ending()}; requests: {seen}"]
        parts.append(f"stdout: {tail(self.done.stdout)!r}")
        if self.done.stderr.strip():
            parts.append(f"stderr ends: {tail(self.done.stderr)}")
        return "; ".join(parts)

    def reproduce(self) -> str:
        """The client's command line, and what must listen where for it to behave the same."""
        return f"# with {describe(self.script, self.port, self.situation)}, run:\n" \
               + self.done.command

    def failure(self, message: str, expected: str, *,
                requirement: str | None = None) -> CheckFailure:
        """A CheckFailure about this run."""
        return CheckFailure(message, expected=expected, actual=self.actual(),
                            reproduce=self.reproduce(), requirement=requirement)


class Runs:
    """Runs the client against a fresh fake server per run; named runs happen once."""

    def __init__(self, program: ProgramTarget, options: RunOptions[Options]) -> None:
        self.program = program
        self.options = options
        self._named: dict[str, Observed] = {}

    @property
    def long(self) -> float:
        """Seconds a run that crawls may take."""
        return 4 * self.options.timeout

    @property
    def short(self) -> float:
        """Seconds a run that should fail fast may take."""
        return 2 * self.options.timeout

    def once(self, urls: list[str], script: Script | None, timeout: float,
             situation: str = "") -> Observed:
        """Run the client with `urls`; the fake server answers by `script` (None: no server);
        `situation` says in words what the script does, when it answers garbage."""
        port = self.program.port
        if script is None:
            if is_listening(HOST, port):
                raise NotRun(f"something listens on {HOST}:{port}, so the client cannot be "
                             f"run with no server there")
            done = self.program.run(*urls, timeout=timeout, env=client_env())
            return Observed(urls, None, port, timeout, done, [], [])
        with playing(port, script) as fake:
            done = self.program.run(*urls, timeout=timeout, env=client_env())
        return Observed(urls, script, port, timeout, done, fake.requests(), fake.tasks(),
                        situation)

    def named(self, name: str, urls: list[str], script: Script | None,
              timeout: float | None = None) -> Observed:
        """The run called `name`, made the first time a check asks for it."""
        if name not in self._named:
            self._named[name] = self.once(urls, script, self.long if timeout is None else timeout)
        return self._named[name]

    def main(self) -> Observed:
        """Four URLs, two polls 'running', then 'ready' with four codes."""
        return self.named("main", list(MAIN), Script(codes=MAIN, running_polls=RUNNING_POLLS))


@pytest.fixture(scope="session")
def runs(program: ProgramTarget, options: RunOptions[Options]) -> Runs:
    """The client's runs of this suite run."""
    return Runs(program, options)


def result_lines(codes: Mapping[str, int | None]) -> list[str]:
    """The lines a client prints for a ready task with these codes (integer codes only)."""
    return [f"{code}\t{url}" for url, code in codes.items()]


def find_in_order(lines: list[str], patterns: list[re.Pattern[str]]) -> list[str]:
    """The lines matching the patterns in turn, as a subsequence: as many as were found."""
    found: list[str] = []
    at = 0
    for pattern in patterns:
        for i in range(at, len(lines)):
            if pattern.fullmatch(lines[i]):
                found.append(lines[i])
                at = i + 1
                break
        else:
            break
    return found


def mentions(lines: list[str], url: str) -> list[str]:
    """The lines that contain `url`, shown with their tabs visible."""
    return [repr(line) for line in lines if url in line]


def expect_clean_failure(obs: Observed, situation: str, rid: str) -> CheckFailure | None:
    """None when the client ended by itself, non-zero, with a short stderr message, no traceback
    and no result lines; else the failure saying which of these it missed."""
    expected = ("the client ends by itself with a non-zero status and a short message on "
                "stderr, no traceback, no result lines")
    stderr = [line for line in obs.done.stderr.splitlines() if line.strip()]
    result = [line for line in obs.lines for url in obs.urls if line.endswith("\t" + url)]
    if obs.done.timed_out:
        problem = f"did not end within {obs.timeout:g} s"
    elif TRACEBACK in obs.done.stderr or TRACEBACK in obs.done.stdout:
        problem = "printed a traceback"
    elif obs.done.code == 0:
        problem = "exited with status 0"
    elif not stderr:
        problem = "said nothing on stderr"
    elif len(stderr) > MAX_MESSAGE_LINES:
        problem = f"wrote {len(stderr)} lines on stderr, expected {MAX_MESSAGE_LINES} at most"
    elif result:
        problem = f"printed result lines ({result[0]!r})"
    else:
        return None
    return obs.failure(f"when {situation}, the client {problem}", expected, requirement=rid)


# MUST ---------------------------------------------------------------------------------------

@requirement("CC-01")
def test_client_reaches_its_server(runs: Runs, program: ProgramTarget,
                                   note: Callable[[str], None]) -> None:
    """A run with four URLs sends at least one request to the fake server."""
    obs = runs.main()
    if not obs.requests:
        hint = unreached_hint(program, DEFAULT_PORT)
        raise obs.failure(f"no request reached the crawler server at {HOST}:{obs.port}{hint}",
                          f"requests to http://{HOST}:{obs.port}")
    note(found_note(program, DEFAULT_PORT))


@requirement("CC-02")
def test_posts_the_urls_as_a_bare_json_list(runs: Runs, note: Callable[[str], None]) -> None:
    """One POST /api/v1/tasks/ with exactly the URLs, for four URLs and for one."""
    for obs in (runs.main(), runs.named("one", list(ONE), Script(codes=ONE))):
        posts = obs.posts()
        if len(posts) != 1:
            unslashed = any(r.method == "POST" and r.path == TASKS_PATH.rstrip("/")
                            for r in obs.requests)
            hint = (f"; it POSTed to {TASKS_PATH.rstrip('/')}, without the trailing slash, and "
                    f"did not follow the 307 redirect to {TASKS_PATH}" if unslashed else "")
            raise obs.failure(
                f"the client sent {len(posts)} POST {TASKS_PATH} requests, expected one{hint}",
                f"one POST {TASKS_PATH} with the body {obs.urls!r}")
        try:
            body = posts[0].json()
        except ValueError:
            body = posts[0].body.decode("utf-8", "replace")
        if body != obs.urls:
            shape = obs.tasks[0].shape if obs.tasks else BARE_LIST
            # A shape some servers take (crawler/_task_api.py): the fake server took the URLs
            # from it, so the other checks judged the client on the rest; say so.
            taken = (f"; the suite's server took the URLs from it as {shape}, as some servers "
                     f"do, and judged polling and printing on that task" if shape != BARE_LIST
                     else "")
            raise obs.failure(
                f"the POST body is {tail(repr(body), 300)}, expected the bare JSON list of the "
                f"{len(obs.urls)} URL(s) given, in order{taken}",
                f"POST {TASKS_PATH} with the body {obs.urls!r}")
        if any(r.method == "POST" and r.path == TASKS_PATH.rstrip("/") for r in obs.requests):
            note(f"the client POSTed to {TASKS_PATH.rstrip('/')} first and followed the 307 "
                 f"redirect to {TASKS_PATH}")


@requirement("CC-03")
def test_polls_the_task_until_ready(runs: Runs) -> None:
    """GETs of the created task's id, on past two 'running' answers, until 'ready'."""
    obs = runs.main()
    task = obs.task("CC-03")
    expected = (f"GET {TASKS_PATH}{task.id} until the task is ready (the fake server answers "
                f"'running' {RUNNING_POLLS} times first), then the client ends")
    strays = [r for r in obs.requests
              if r.method == "GET" and r.path.rstrip("/") != TASKS_PATH + task.id]
    if strays:
        raise obs.failure(f"the client sent {strays[0].line}, which is not the task the server "
                          f"created ({task.id})", expected)
    polls = obs.polls(task)
    if not polls:
        slashed = any(r.method == "GET" and r.path == f"{TASKS_PATH}{task.id}/"
                      for r in obs.requests)
        hint = (f"; it asked GET {TASKS_PATH}{task.id}/, with a trailing slash, and did not "
                f"follow the 307 redirect" if slashed else "")
        raise obs.failure(f"the client never polled GET {TASKS_PATH}{task.id}{hint}", expected)
    if not task.ready:
        raise obs.failure(f"the client stopped polling after {len(polls)} answer(s) 'running'; "
                          f"the task became ready at poll {RUNNING_POLLS + 1}", expected)
    if obs.done.timed_out:
        raise obs.failure(f"the task was ready at poll {RUNNING_POLLS + 1}, but the client, "
                          f"after {len(polls)} polls, did not end within {obs.timeout:g} s",
                          expected)


@requirement("CC-04")
def test_prints_code_tab_url_per_url_in_order(runs: Runs) -> None:
    """For the four URLs, the lines `CODE<TAB>URL` in the given order, once each."""
    obs = runs.main()
    expected = result_lines(MAIN)
    count = len(find_in_order(obs.lines, [re.compile(re.escape(e)) for e in expected]))
    if count < len(expected):
        missing = expected[count]
        url = list(MAIN)[count]
        seen = mentions(obs.lines, url)
        where = f"the lines naming it are {', '.join(seen)}" if seen else "no line names it"
        after = " after the lines before it" if count and missing in obs.lines else ""
        raise obs.failure(f"stdout has no line {missing!r}{after}; {where}",
                          "one line CODE<TAB>URL per URL, in the given order: "
                          + " | ".join(repr(e) for e in expected))
    for line in expected:
        if obs.lines.count(line) > 1:
            raise obs.failure(f"the line {line!r} is printed {obs.lines.count(line)} times",
                              "one line per URL")


# SHOULD -------------------------------------------------------------------------------------

@requirement("CC-05")
def test_exits_0_after_printing(runs: Runs) -> None:
    """The main run ends with status 0."""
    obs = runs.main()
    if obs.done.timed_out or obs.done.code != 0:
        raise obs.failure(f"having printed the codes, {obs.ending()}", "exit status 0")


@requirement("CC-06")
def test_stdout_holds_only_the_result_lines(runs: Runs) -> None:
    """Nothing on stdout but the four result lines (blank lines aside)."""
    obs = runs.main()
    extra = [line for line in obs.lines if line.strip() and line not in result_lines(MAIN)]
    if extra:
        shown = ", ".join(repr(line) for line in extra[:3])
        raise obs.failure(f"stdout has {len(extra)} line(s) besides the results: {shown}",
                          "only the result lines on stdout; other messages on stderr")


@requirement("CC-07")
def test_null_code_keeps_its_line(runs: Runs, note: Callable[[str], None]) -> None:
    """A null entry is printed as a visible word, on its URL's line, in its place."""
    obs = runs.named("null", list(WITH_NULL),
                     Script(codes=WITH_NULL, running_polls=RUNNING_POLLS))
    patterns = [re.compile((r"(\S+)" if code is None else str(code)) + "\t" + re.escape(url))
                for url, code in WITH_NULL.items()]
    found = find_in_order(obs.lines, patterns)
    count = len(found)
    if count < len(patterns):
        url, code = list(WITH_NULL.items())[count]
        seen = mentions(obs.lines, url)
        what = "WORD<TAB>URL with a visible word for null" if code is None else f"{code}<TAB>URL"
        raise obs.failure(
            f"stdout has no line {what} for {url} in its place"
            + (f"; the lines naming it are {', '.join(seen)}" if seen else "; no line names it"),
            "for the result [200, null, 404]: '200<TAB>URL1', 'WORD<TAB>URL2', '404<TAB>URL3'")
    null_at = list(WITH_NULL.values()).index(None)
    note(f"a null code is printed as {found[null_at].split(chr(9), 1)[0]!r}")


@requirement("CC-08")
def test_no_server_is_a_clear_error(runs: Runs, note: Callable[[str], None]) -> None:
    """With nothing listening, a short message, a non-zero status, no traceback."""
    obs = runs.once(list(ONE), None, runs.short)
    failure = expect_clean_failure(obs, "no server listens", "CC-08")
    if failure:
        raise failure
    note(f"no server: status {obs.done.code}, {tail(obs.done.stderr, 200)!r}")


@requirement("CC-09")
def test_garbage_answers_are_clear_errors(runs: Runs) -> None:
    """Five wrong answers from the server, each a short message and a non-zero status."""
    failures = []
    for situation, script in GARBAGE.items():
        obs = runs.once(list(ONE), script, runs.short, situation)
        failure = expect_clean_failure(obs, situation, "CC-09")
        if failure:
            failures.append(failure)
    if failures:
        raise CheckFailures(failures)


@requirement("CC-10")
def test_waits_between_polls(runs: Runs, note: Callable[[str], None]) -> None:
    """While a task stays running for a second, at most 20 polls a second."""
    obs = runs.named("slow", list(ONE),
                     Script(codes=ONE, running_polls=0, running_for=SLOW_TASK))
    if not obs.polls(obs.task("CC-10")):
        raise obs.failure("the client did not poll its task", "polls, at most 20 a second")
    polls = obs.polls(obs.tasks[0])
    span = max(polls[-1].at - obs.posts()[0].at, 1e-3)
    rate = len(polls) / span
    if len(polls) > MAX_POLL_RATE * span + 2:
        raise obs.failure(f"the client polled {len(polls)} times in {span:.2f} s "
                          f"({rate:.0f} a second)",
                          f"at most {MAX_POLL_RATE:g} polls a second")
    note(f"polls: {len(polls)} in {span:.2f} s while the task ran {SLOW_TASK:g} s")


@requirement("CC-11")
def test_ctrl_c_while_waiting_ends_cleanly(runs: Runs, program: ProgramTarget,
                                           note: Callable[[str], None]) -> None:
    """Ctrl+C after the first poll of a task that never gets ready."""
    urls = list(ONE)
    script = Script(codes=ONE, running_polls=10**9)
    expected = (f"the client ends within {INTERRUPT_GRACE:g} s of Ctrl+C, with a non-zero "
                f"status and no traceback")
    reproduce = (f"# with {describe(script, program.port)}, run this and press Ctrl+C once it "
                 f"polls:\n" + shlex.join(program.command(*urls)))
    with playing(program.port, script) as fake:
        try:
            proc = program.start(*urls, env=client_env())
        except TargetError as exc:
            raise CheckFailure(str(exc), expected=expected, reproduce=reproduce) from None
        try:
            deadline = time.monotonic() + runs.long
            polled = False
            for _ in range(int(runs.long / 0.05) + 1):
                polled = any(r.method == "GET" for r in fake.requests())
                if polled or proc.exited() is not None or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            if not polled:
                ended = proc.exited()
                how = f"ended (status {ended})" if ended is not None else "was still silent"
                raise CheckFailure(
                    f"the client {how} without polling its task within {runs.long:g} s, so "
                    f"there was no wait to interrupt", expected=expected,
                    actual=tail(proc.output_tail()), reproduce=reproduce)
            code, took = ctrl_c(proc, INTERRUPT_GRACE)
            output = proc.output_tail(3000)
            if code is None:
                raise CheckFailure(f"the client was still running {INTERRUPT_GRACE:g} s after "
                                   f"Ctrl+C", expected=expected, actual=tail(output) or "(no "
                                   "output)", reproduce=reproduce)
            if TRACEBACK in output:
                raise CheckFailure("after Ctrl+C the client printed a traceback",
                                   expected=expected, actual=tail(output), reproduce=reproduce)
            if code == 0:
                raise CheckFailure("after Ctrl+C the client exited with status 0, as if it had "
                                   "finished", expected=expected,
                                   actual=tail(output) or "(no output)", reproduce=reproduce)
            last = output.strip().splitlines()[-1:] or ["no message"]
            note(f"Ctrl+C: status {code} after {took:.1f} s, {last[0]!r}")
        finally:
            proc.stop()


@requirement("CC-12")
def test_no_url_is_a_usage_error(runs: Runs, note: Callable[[str], None]) -> None:
    """With no argument at all, a message and a non-zero status."""
    obs = runs.once([], Script(), runs.short)
    failure = expect_clean_failure(obs, "it is given no URL", "CC-12")
    if failure:
        raise failure
    asked = "it asked the server first" if obs.requests else "it sent nothing"
    note(f"no URL: status {obs.done.code}, {asked}")


@requirement("CC-13")
def test_post_says_json(runs: Runs) -> None:
    """The POST's Content-Type is application/json."""
    obs = runs.main()
    posts = obs.posts()
    if not posts:
        raise NotRun(f"the client sent no POST {TASKS_PATH} whose Content-Type CC-13 could "
                     f"judge (CC-02 judges the POST)")
    post = posts[0]
    media = post.content_type.split(";", 1)[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise obs.failure(f"the POST's Content-Type is {post.content_type or 'missing'}",
                          "Content-Type: application/json")


# MAY ----------------------------------------------------------------------------------------

@requirement("CC-14")
def test_schemeless_url_sent_as_given_completed_or_refused(runs: Runs,
                                                           note: Callable[[str], None]) -> None:
    """127.0.0.1:9/plain is sent as given or with http://, or refused cleanly."""
    completed = "http://" + SCHEMELESS
    obs = runs.named("schemeless", [SCHEMELESS],
                     Script(codes={SCHEMELESS: 200, completed: 200}, running_polls=1))
    expected = (f"POST {[SCHEMELESS]!r} or {[completed]!r} and the line '200<TAB>URL' naming it "
                f"either way, or a message and a non-zero status without a POST")
    posts = obs.posts()
    if not posts:
        if expect_clean_failure(obs, "it is given a URL without a scheme", "CC-14") is None:
            note("a URL without a scheme: refused")
            return
        raise obs.failure("the client neither sent the URL without a scheme nor refused it "
                          "cleanly", expected)
    choices = {SCHEMELESS: "sent as given", completed: "sent with http:// in front"}
    # The URLs as the fake server read them, in whatever shape it took them (CC-02 judges the
    # shape); the raw body when it read none.
    if obs.tasks:
        body: object = obs.tasks[0].urls
    else:
        try:
            body = posts[0].json()
        except ValueError:
            body = posts[0].body.decode("utf-8", "replace")
    if not (isinstance(body, list) and len(body) == 1 and body[0] in choices):
        raise obs.failure(f"the POST body is {tail(repr(body), 200)}", expected)
    if not ({f"200\t{SCHEMELESS}", f"200\t{completed}"} & set(obs.lines)):
        raise obs.failure("no line '200<TAB>URL' names the URL, as given or as sent", expected)
    note(f"a URL without a scheme: {choices[body[0]]}")
