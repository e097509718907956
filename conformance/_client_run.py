"""What the client suites share: their `--server-port` option, one run of a client program as
the server it talked to saw it, how that run is told in a failure, and the client's environment;
for a client whose server's protocol the assignment leaves open, the student's own server
(`--server-command`, `--server-url`), which the client is then judged through.

Rules: a run's `actual` names how it ended, the requests it sent and the ends of its stdout and
stderr; its reproducer is what listened where, then the client's command line; a client has no
proxy settings, since its server is on loopback. Importing this module stays light (a spec's
options are read by every command): no server library at import time.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from conformance._checks import CheckFailure, NotRun
from conformance._isolation import target_env
from conformance._options import OptionError, SpecOptions, option, positive_int
from conformance._sandbox import stopped_by
from conformance._target import (
    Completed,
    Process,
    ProgramTarget,
    ServerTarget,
    TargetError,
    host_port,
    server_target,
    split_command,
)

if TYPE_CHECKING:
    from conformance._box import Box
    from conformance._servers import Seen

TRACEBACK = "Traceback (most recent call last)"
MAX_MESSAGE_LINES = 4  # "a short message"
# The words of a command line refused by argparse, click and hand-written parsers.
USAGE = re.compile(r"usage:|invalid choice|unrecognized arguments|arguments are required|"
                   r"no such (sub)?command|unknown (sub)?command|invalid (sub)?command|"
                   r"error: argument", re.IGNORECASE)


@dataclass(frozen=True)
class ClientOptions(SpecOptions):
    """The options of a spec whose program is a client of a server the suite plays."""

    server_port: int | None = option(
        None, parse=positive_int, metavar="N",
        help="the local port where the program expects its server, which the suite plays "
             "(default: the port in the command's {port}, else the spec's default address)")

    def program_port(self) -> int | None:
        """The port given with --server-port, if any."""
        return self.server_port


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _server_command(text: str) -> str:
    try:
        split_command(text)
    except TargetError as exc:
        raise OptionError(str(exc).replace("--command", "--server-command")) from None
    return text


def _server_url(text: str) -> str:
    try:
        host_port(text)
    except TargetError as exc:
        raise OptionError(str(exc)) from None
    return text


@dataclass(frozen=True)
class OwnServerOptions(ClientOptions):
    """A client's options when the assignment leaves its server's protocol open: the student's
    own server may be given, and the client is judged through it rather than through ours."""

    server_command: str | None = option(
        None, parse=_server_command, metavar="COMMAND",
        help="the student's own server: started (in a folder of its own) where the client "
             "expects its server, and the client judged through it instead of our reference "
             "server; {port} in it is that port")
    server_url: str | None = option(
        None, parse=_server_url, metavar="URL",
        # Always outside the run: it runs already, started by the grader (a loopback URL
        # too, which a network of the run's own would not reach).
        outside=lambda url: True,
        help="the student's own server, already running at URL (where the client expects it): "
             "the client is judged through it instead of our reference server")

    def program_port(self) -> int | None:
        """--server-port's port, else --server-url's (where the client must find it)."""
        if self.server_port is None and self.server_url is not None:
            return host_port(self.server_url)[1]
        return self.server_port

    def server_running(self) -> bool:
        """With --server-url the student's server runs already where the client expects it."""
        return self.server_url is not None

    @property
    def own_server(self) -> bool:
        """Whether the client is judged through the student's own server."""
        return self.server_command is not None or self.server_url is not None

    def __post_init__(self) -> None:
        if self.server_command is not None and self.server_url is not None:
            raise OptionError("give --server-command or --server-url, not both")


@contextlib.contextmanager
def own_server(options: OwnServerOptions, program: ProgramTarget,
               startup_timeout: float = 15.0) -> Iterator[ServerTarget]:
    """The student's own server where `program` expects it: started from --server-command in a
    folder of its own (the client's run holds the port; TargetError when it does not start or
    the port is taken), or --server-url's as it is."""
    if options.server_command is None:
        assert options.server_url is not None, "own_server() needs --server-command or -url"
        yield ServerTarget(base_url=options.server_url, label=options.server_url)
        return
    with tempfile.TemporaryDirectory(prefix="conformance-server-") as folder, server_target(
            f"{program.server_url}/", options.server_command, default_url="",
            startup_timeout=startup_timeout, workdir=Path(folder),
            own_network=True) as server:  # the client's run holds the fixed port already
        yield server


def ctrl_c(proc: Process, grace: float) -> tuple[int | None, float]:
    """Ctrl+C to a client's process group, as a terminal sends it; its exit status (None when
    it still runs `grace` seconds later) and the seconds it took to end."""
    with contextlib.suppress(ProcessLookupError):  # it may have ended just now
        os.killpg(proc.popen.pid, signal.SIGINT)
    t0 = time.monotonic()
    try:
        code: int | None = proc.popen.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        code = None
    return code, time.monotonic() - t0


def tail(text: str, limit: int = 600) -> str:
    """The end of a program's output, marked when cut."""
    text = text.strip()
    return text if len(text) <= limit else "..." + text[-limit:]


@contextlib.contextmanager
def started_box(suite: str, make: Callable[[Path], Box], sites: str = "") -> Iterator[Box]:
    """The box `make(folder)` builds in a temporary folder, started for `suite`'s run and
    stopped at its end; NotRun saying why when no box can run here, or when it cannot start
    (`sites`, e.g. " for 10,000 sites", says what it was starting)."""
    from conformance._box import BoxUnavailable  # the box's libraries only when one is made

    with tempfile.TemporaryDirectory(prefix="conformance-box-") as folder:
        box = make(Path(folder))
        try:
            box.start()
        except BoxUnavailable as exc:
            raise NotRun(f"the {suite} suite needs the box: {exc}") from exc
        except OSError as exc:  # descriptors short, a port taken: the box says what to do
            raise NotRun(f"the box could not start{sites}: {exc}") from exc
        try:
            yield box
        finally:
            box.stop()


def shown(items: list[str], count: int = 5) -> str:
    """The first `count` items of a failure's list, and how many in all."""
    head = ", ".join(items[:count])
    return head + (f" and {len(items) - count} more ({len(items)} in all)"
                   if len(items) > count else "")


def ended(code: int | None, seconds: float, limit: float, timed_out: bool, stderr: str) -> str:
    """How a program's run ended, in words: stopped at its limit, not started (its stderr
    says why), or its exit status and time."""
    if timed_out:
        return f"still running after {limit:g} s, stopped"
    if code == 127 and not seconds:
        return stderr.strip()
    stopped = stopped_by(code, stderr[-4000:])
    return f"ended with status {code} after {seconds:.1f} s" + (f" ({stopped})" * bool(stopped))


def output_ends(stdout: str, stderr: str) -> list[str]:
    """The ends of a run's stdout and stderr that are not blank, for a failure's `actual`."""
    return [f"{label} ends: {tail(text)!r}" for label, text in (("stdout", stdout),
                                                                ("stderr", stderr))
            if text.strip()]


def nonblank(text: str) -> list[str]:
    """The lines of a text that are not blank, stripped."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def client_env() -> dict[str, str]:
    """The environment a client starts with (conformance/_isolation.py): no proxy settings, as
    its server is on loopback, and none of our Python paths."""
    return target_env()


@dataclass
class ClientRun:
    """One run of the client: what it was given, how it ended, what the server saw."""

    args: list[str]
    done: Completed
    timeout: float
    setup: str  # what listened on the client's port, and what was prepared there
    requests: list[Seen] = field(default_factory=list)

    @property
    def what(self) -> str:
        """The subcommand and its arguments, as a user would type them."""
        return shlex.join(self.args) if self.args else "(no arguments)"

    @property
    def output(self) -> str:
        """Stdout and stderr together."""
        return self.done.stdout + "\n" + self.done.stderr

    def ending(self) -> str:
        """How the run ended, in words."""
        if self.done.timed_out:
            return f"the client did not end within {self.timeout:g} s and was stopped"
        return f"the client exited with status {self.done.code}"

    def actual(self) -> str:
        """What the client did, for a failure's `actual`."""
        seen = ", ".join(r.line for r in self.requests[:6]) or "none"
        if len(self.requests) > 6:
            seen += f" and {len(self.requests) - 6} more"
        parts = [f"`{self.what}`: {self.ending()}; requests: {seen}",
                 f"stdout: {tail(self.done.stdout)!r}"]
        if self.done.stderr.strip():
            parts.append(f"stderr ends: {tail(self.done.stderr)}")
        return "; ".join(parts)

    def reproduce(self) -> str:
        """What must listen where, and the client's command line."""
        return f"{self.setup}\n# then run:\n{self.done.command}"

    def failure(self, message: str, expected: str, *,
                requirement: str | None = None) -> CheckFailure:
        """A CheckFailure about this run."""
        return CheckFailure(f"`{self.what}`: {message}", expected=expected,
                            actual=self.actual(), reproduce=self.reproduce(),
                            requirement=requirement)

    def refused(self) -> str:
        """The line of a usage error when the client refused its command line without asking
        the server anything, else ''."""
        if self.done.timed_out or self.done.code == 0 or self.requests:
            return ""
        found = [line for line in nonblank(self.output) if USAGE.search(line)]
        return found[-1] if found else ""


def unreached_hint(program: ProgramTarget, default_port: int) -> str:
    """Why a client's requests may not have reached the server the suite played: the address
    it was to find it at ('' when its command gave one)."""
    if any("{port}" in word for word in program.argv):
        return ""
    if program.port == default_port:
        return (f"; with no address in its command, the client must use its default, "
                f"127.0.0.1:{default_port}")
    return "; the suite was told (--server-port) that the client expects that port"


def found_note(program: ProgramTarget, default_port: int) -> str:
    """Where the client found its server, for the report's notes."""
    if any("{port}" in word for word in program.argv):
        return (f"the command gives the server's address ({{port}}), so the default "
                f"127.0.0.1:{default_port} was not exercised")
    if program.port == default_port:
        return f"the client found its server at the default address, 127.0.0.1:{default_port}"
    return f"the client found its server on port {program.port} (--server-port)"


def expect_clean_failure(obs: ClientRun, situation: str, rid: str,
                         max_lines: int = MAX_MESSAGE_LINES) -> CheckFailure | None:
    """None when the client ended by itself, non-zero, with a short stderr message and no
    traceback; else the failure saying which of these it missed."""
    expected = ("the client ends by itself with a non-zero status and a short message on "
                "stderr, no traceback")
    stderr = nonblank(obs.done.stderr)
    if obs.done.timed_out:
        problem = f"did not end within {obs.timeout:g} s"
    elif TRACEBACK in obs.output:
        problem = "printed a traceback"
    elif obs.done.code == 0:
        problem = "exited with status 0"
    elif not stderr:
        problem = "said nothing on stderr"
    elif len(stderr) > max_lines:
        problem = f"wrote {len(stderr)} lines on stderr, expected {max_lines} at most"
    else:
        return None
    return obs.failure(f"when {situation}, the client {problem}", expected, requirement=rid)
