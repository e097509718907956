"""Targets: the server under test, by URL or started from a command, and its process's lifetime.

Rules: a command is split like a shell would (no shell runs it); `{port}` in it becomes a free
loopback port (one no other run on the machine holds), or the base URL's port when one is given;
every process started here starts clean, in the run's working folder (conformance/_isolation.py);
a started server gets a process group of its own and is stopped with SIGINT (its Ctrl+C), then
SIGTERM, then SIGKILL; its output goes to a file so a full pipe never blocks it. A server that
ended, or never listened, is explained in a line (its status and its output's last line) wherever
a request got no answer, and its output (a traceback, say) is shown once, at the top of the
report (`ServerTarget.trouble()`), not in every failure. On a shared network a fixed port is
locked for the run, and a server is judged only when the listener on its port is one of the
processes it started.
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

try:
    import fcntl
except ImportError:  # not POSIX: ports are kept apart by their range alone
    fcntl = None  # type: ignore[assignment]  # None: no POSIX record locks on this system

from conformance._isolation import (
    absolute_paths,
    fixed_port,
    launched,
    limit_hit,
    listener_is_ours,
    target_env,
)


class TargetError(Exception):
    """The target cannot be set up as asked (a usage problem, not a verdict)."""


# How long a run waits for another run of this machine that holds the fixed port it needs (on a
# shared network; in a network of its own the port is always its own).
FIXED_PORT_WAIT = 900.0
# Bytes of a troubled server's output the report shows (once): a traceback's worth.
TROUBLE_OUTPUT = 6000
ENDED_EARLY = "the server command ended before it listened"


# Ports handed out lie below the kernel's ephemeral range, where no bind to port 0 (another
# run's fixture web, say) and no outgoing connection lands: a server started on one then finds
# it still free when it binds. Runs on one machine (a batch's, in parallel) also hold a lock per
# port handed out, so no two pick the same one; without either a port could be another's by the
# time the server binds, and a run would check whatever listens there instead of its server.
_PORT_SPAN = 10_000
_PORT_LOCKS = Path(tempfile.gettempdir()) / "conformance-ports.lock"


@dataclass
class _Claims:
    """This process's port claims: the open lock file (None where it cannot be opened) and
    the ports handed out (a process's own locks never conflict, so it remembers them)."""

    pid: int
    file: BinaryIO | None
    ports: set[int] = field(default_factory=set)


_claims: _Claims | None = None


@cache
def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default; other systems start theirs higher


def _claim(port: int) -> bool:
    """Lock byte `port` of the shared lock file for this process's lifetime (POSIX record
    locks: gone when the process ends, not inherited by forks); True when no other process
    holds it, or where there are no such locks (then the range alone keeps ports apart)."""
    global _claims
    if _claims is None or _claims.pid != os.getpid():
        lock_file = None
        with contextlib.suppress(OSError):  # another user's file
            lock_file = _PORT_LOCKS.open("a+b")
        _claims = _Claims(os.getpid(), lock_file)
    if port in _claims.ports:
        return False
    _claims.ports.add(port)
    if fcntl is None or _claims.file is None:
        return True
    try:
        fcntl.lockf(_claims.file, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, port)
    except OSError:
        return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now, and no other run of this machine was given."""
    low = _ephemeral_low()
    if low - _PORT_SPAN < 1024:  # no room below the ephemeral range: let the kernel choose
        with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
            sock.bind((host, 0))
            return int(sock.getsockname()[1])
    for _ in range(200):
        port = random.randrange(low - _PORT_SPAN, low)
        if not _claim(port):
            continue
        with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue  # another program's: keep the claim, so it is not tried again
        return port
    raise TargetError(f"no free port found below {low} on {host}")


def is_listening(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when a TCP connection to host:port is accepted."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def split_command(command: str) -> list[str]:
    """Split a command line into words, relative paths to what exists where the grader stands
    made absolute (the target starts in a folder of its own); TargetError when it cannot be
    parsed or is empty."""
    try:
        words = shlex.split(command)
    except ValueError as exc:
        raise TargetError(f"cannot parse --command {command!r}: {exc}") from None
    if not words:
        raise TargetError("--command is empty")
    return absolute_paths(words)


def _startable(program: str) -> bool:
    """Whether `program` names something that can be executed (on PATH, or a path)."""
    if os.sep in program:
        return os.access(program, os.X_OK) and not os.path.isdir(program)
    return shutil.which(program) is not None


def host_port(url: str) -> tuple[str, int]:
    """The host and port a base URL points at (80/443 when it names none)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TargetError(f"not an http(s) URL: {url!r}")
    try:
        port = parts.port
    except ValueError:
        raise TargetError(f"bad port in URL: {url!r}") from None
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


@dataclass
class Process:
    """A started command, its output file and how it ended."""

    argv: list[str]
    popen: subprocess.Popen[bytes]
    log: Path
    notes: list[str] = field(default_factory=list)
    noted: bool = False  # whether its end was noted (`exited()`)
    stopped: str = ""  # the sandbox's limit that stopped it, in words ('' when none)

    @classmethod
    def start(cls, argv: list[str], env: dict[str, str] | None = None,
              cwd: Path | None = None, writable: Sequence[Path] = ()) -> Process:
        """Start `argv` clean and sandboxed (conformance/_isolation.py), in its own process
        group, in `cwd`, with output to a temporary file; `writable` are folders besides its
        own it may write to (one its command names for its files, say)."""
        fd, name = tempfile.mkstemp(prefix="conformance-target-", suffix=".log")
        try:
            if not _startable(argv[0]):
                raise FileNotFoundError(errno.ENOENT, "No such file or directory")
            popen = subprocess.Popen(
                launched(argv, cwd=cwd, writable=writable), stdin=subprocess.DEVNULL, stdout=fd,
                stderr=subprocess.STDOUT, start_new_session=True, env=target_env(env), cwd=cwd,
            )
        except OSError as exc:
            os.close(fd)
            os.unlink(name)
            raise TargetError(f"cannot start {shlex.join(argv)}: {exc.strerror or exc}") from None
        os.close(fd)
        return cls(argv, popen, Path(name))

    def last_line(self) -> str:
        """The last line the process printed that is not blank ('' when none): the exception
        of a traceback, or an error message."""
        lines = [line for line in self.output_tail(500).splitlines() if line.strip()]
        return lines[-1].strip().removeprefix("...") if lines else ""

    def output_tail(self, limit: int = 1500) -> str:
        """The end of what the process printed."""
        try:
            data = self.log.read_bytes()
        except OSError:
            return ""
        text = data[-limit:].decode("utf-8", "replace").strip()
        return ("..." + text) if len(data) > limit else text

    def exited(self) -> int | None:
        """The exit status once the process has ended, else None (noting, when it has, a
        limit of the sandbox that stopped it: `stopped()`)."""
        code = self.popen.poll()
        if code is not None and not self.noted:
            self.noted = True
            self.stopped = limit_hit(code, self.output_tail(4000))
        return code

    def stop(self, grace: float = 5.0) -> None:
        """Ctrl+C, then SIGTERM, then SIGKILL, each after a grace period; remove the log."""
        for sig, wait in ((signal.SIGINT, grace), (signal.SIGTERM, 2.0), (signal.SIGKILL, 2.0)):
            if self.exited() is not None:
                break
            try:
                os.killpg(self.popen.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.popen.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
        self.log.unlink(missing_ok=True)


def stop_group(popen: subprocess.Popen[bytes], grace: float = 3.0) -> None:
    """Stop a program started in a session of its own: Ctrl+C to its process group, as a
    terminal sends it, then SIGKILL, each given `grace` seconds to take."""
    for sig in (signal.SIGINT, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):  # it may have ended just now
            os.killpg(popen.pid, sig)
        try:
            popen.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


@dataclass
class ServerTarget:
    """The server under test: where to reach it, and the process when the suite started it."""

    base_url: str
    label: str
    process: Process | None = None
    startup_problem: str = ""

    def explain(self) -> str:
        """Why the server may not answer, as far as its process tells, in a line (its output
        is `trouble()`'s, shown once); '' when nothing is known."""
        code = self.process.exited() if self.process is not None else None
        if self.process is None or code is None:
            return self.startup_problem
        early = " before it listened" if self.startup_problem == ENDED_EARLY else ""
        parts = [self.startup_problem] if self.startup_problem and not early else []
        if self.process.stopped:
            parts.append(self.process.stopped)
        last = self.process.last_line()
        parts.append(f"the server command exited with status {code}{early}"
                     + (f": {last} (its output is at the top of the report)" if last
                        else ", printing nothing"))
        return "; ".join(parts)

    def trouble(self, limit: int = TROUBLE_OUTPUT) -> str:
        """What the report shows once of a server that did not start or did not last: how it
        ended and the end of its output; '' for one that listened and is still running (or one
        the run did not start)."""
        if self.process is None:
            return ""
        code = self.process.exited()
        if code is None and not self.startup_problem:
            return ""
        how = self.startup_problem or "the server command ended during the run"
        if code is not None:
            stopped = f"; {self.process.stopped}" if self.process.stopped else ""
            how += f" (exit status {code}{stopped})"
        output = self.process.output_tail(limit)
        return f"{how}; its output:\n{output}" if output else f"{how}; it printed nothing"


def wait_until_listening(host: str, port: int, timeout: float,
                         ended: Callable[[], bool] = lambda: False) -> bool:
    """Poll until host:port accepts connections (True), or `ended()` or the timeout (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not ended():
        if is_listening(host, port, timeout=0.3):
            return True
        time.sleep(0.05)
    return False


def _startup_problem(host: str, port: int, proc: Process, timeout: float) -> str:
    if wait_until_listening(host, port, timeout, lambda: proc.exited() is not None):
        return ""
    if proc.exited() is not None:
        return ENDED_EARLY
    return f"nothing listened on {host}:{port} within {timeout:g} s of starting the command"


@contextmanager
def server_target(base_url: str | None, command: str | None, *, default_url: str,
                  startup_timeout: float = 15.0, env: dict[str, str] | None = None,
                  workdir: Path | None = None,
                  own_network: bool = False) -> Iterator[ServerTarget]:
    """Yield the server to check: at `base_url`, started from `command` first when given (in
    `workdir`; on a shared network, `own_network` False, a fixed port is locked for the run)."""
    if command is None:
        url = base_url or default_url
        host_port(url)
        yield ServerTarget(base_url=url, label=url)
        return
    argv = split_command(command)
    if base_url is not None:
        url = base_url
        host, port = host_port(url)
    elif any("{port}" in w for w in argv):
        host, port = "127.0.0.1", free_port()
        url = f"http://{host}:{port}/"
    else:
        url = default_url
        host, port = host_port(url)
    fixed = not any("{port}" in w for w in argv)
    argv = [w.replace("{port}", str(port)) for w in argv]
    with contextlib.ExitStack() as stack:
        if fixed and not own_network and not stack.enter_context(
                fixed_port(port, FIXED_PORT_WAIT)):
            raise TargetError(f"port {port}, which the server binds, stayed taken by another "
                              f"run for {FIXED_PORT_WAIT:g} s")
        if is_listening(host, port):
            raise TargetError(
                f"something already listens on {host}:{port}, so the suite could not tell it "
                f"from the server it starts; stop it, or put {{port}} in --command to use a "
                f"free port")
        proc = Process.start(argv, env=env, cwd=workdir)
        try:
            problem = _startup_problem(host, port, proc, startup_timeout)
            if not own_network and is_listening(host, port) and \
                    listener_is_ours(port, proc.popen.pid) is False:
                # On a shared network another program may have the port: judging what
                # answers there could grade one student on another's server.
                raise TargetError(
                    f"what listens on {host}:{port} is not the server this run started (another "
                    f"program has the port, or the command left a detached server behind), so "
                    f"it is not judged; run it in a network of its own, without "
                    f"--shared-network")
            yield ServerTarget(base_url=url, label=f"{shlex.join(argv)} at {url}",
                               process=proc, startup_problem=problem)
        finally:
            proc.stop()


@dataclass
class Completed:
    """How one run of a program ended: exit status (None when it was stopped), output, time."""

    argv: list[str]
    code: int | None
    stdout: str
    stderr: str
    elapsed: float
    timed_out: bool
    stopped: str = ""  # the sandbox's limit that stopped it, in words ('' when none)

    @property
    def command(self) -> str:
        """The command line, quoted for a shell."""
        return shlex.join(self.argv)


@dataclass
class ProgramTarget:
    """The program under test: its command's words, and the local port it expects a server on."""

    argv: list[str]
    port: int
    label: str
    workdir: Path | None = None  # where each run starts (None: where the grader stands)

    @property
    def server_url(self) -> str:
        """Where the program expects its server (the suite's fake one listens there)."""
        return f"http://127.0.0.1:{self.port}"

    def command(self, *args: str) -> list[str]:
        """The full argv for one run with `args` appended, `{port}` filled in."""
        return [w.replace("{port}", str(self.port)) for w in self.argv] + list(args)

    def filled(self, values: Mapping[str, str], appended: Sequence[str]) -> list[str]:
        """The full argv of a run of a program given its arguments by name: each `{NAME}` of
        `values` in its command filled in, or, when the command names none of them, the values
        of the names `appended` added at its end, in that order (the assignment's)."""
        argv = self.command()
        marks = {f"{{{name}}}": value for name, value in values.items()}
        if not any(mark in word for word in argv for mark in marks):
            return argv + [values[name] for name in appended]
        for mark, value in marks.items():
            argv = [word.replace(mark, value) for word in argv]
        return argv

    def start(self, *args: str, env: dict[str, str] | None = None) -> Process:
        """Start one run in the background (for checks that interrupt it)."""
        return Process.start(self.command(*args), env=env, cwd=self.workdir)

    def run(self, *args: str, timeout: float, stdin: str = "", env: dict[str, str] | None = None,
            writable: Sequence[Path] = ()) -> Completed:
        """Run the program to its end, or stop it (Ctrl+C, then harder) after `timeout` seconds;
        `writable` are folders besides its own it may write to (a session file's)."""
        argv = self.command(*args)
        t0 = time.monotonic()
        if not _startable(argv[0]):
            return Completed(argv, 127, "", f"cannot start {argv[0]}: no such program", 0.0,
                             False)
        try:
            popen = subprocess.Popen(launched(argv, cwd=self.workdir, writable=writable),
                                     stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     start_new_session=True, env=target_env(env),
                                     cwd=self.workdir)
        except OSError as exc:
            return Completed(argv, 127, "", f"cannot start: {exc.strerror or exc}", 0.0, False)
        timed_out = False
        try:
            out, err = popen.communicate(stdin.encode(), timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            for sig in (signal.SIGINT, signal.SIGKILL):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(popen.pid, sig)
                try:
                    out, err = popen.communicate(timeout=3)
                    break
                except subprocess.TimeoutExpired:
                    continue
            else:  # pragma: no cover - SIGKILL always ends it
                out, err = b"", b""
        code = None if timed_out else popen.returncode
        stdout, stderr = out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
        return Completed(argv, code, stdout, stderr, time.monotonic() - t0, timed_out,
                         stopped=limit_hit(code, stdout[-4000:] + stderr[-4000:]))


@contextmanager
def program_target(command: str, *, default_url: str, server_port: int | None,
                   workdir: Path | None = None, own_network: bool = False,
                   server_running: bool = False) -> Iterator[ProgramTarget]:
    """The program to check; `{port}` in its command gets a free port unless one is given. On
    a shared network (`own_network` False) a fixed port is locked for the run. Something
    listening on the port is refused, unless `server_running` says the program's server runs
    there already.

    A spec with no `default_url` checks a program that talks to no server: its port is 0."""
    argv = split_command(command)
    if not default_url and server_port is None:
        yield ProgramTarget(argv=argv, port=0, label=shlex.join(argv), workdir=workdir)
        return
    fixed = not any("{port}" in w for w in argv)
    if server_port is not None:
        port = server_port
    elif not fixed:
        port = free_port()
    else:
        port = host_port(default_url)[1]
    with contextlib.ExitStack() as stack:
        if fixed and not own_network and not stack.enter_context(
                fixed_port(port, FIXED_PORT_WAIT)):
            raise TargetError(f"port {port}, where the suite plays the program's server, stayed "
                              f"taken by another run for {FIXED_PORT_WAIT:g} s")
        if not server_running and is_listening("127.0.0.1", port):
            raise TargetError(
                f"something already listens on 127.0.0.1:{port}, where the suite puts the "
                f"server the program talks to; stop it, or pass --server-port, or put {{port}} "
                f"in --command")
        filled = [w.replace("{port}", str(port)) for w in argv]
        yield ProgramTarget(argv=argv, port=port, label=shlex.join(filled), workdir=workdir)
