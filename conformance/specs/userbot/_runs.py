"""One run of a userbot: a Telegram of our own started for it (_telegram.py, under the program's
interpreter when that one has Telethon), the program run once against it, and what it left:
exit status, output, the export, every file of its folder, and every call the server saw.

Rules: each run has a listener of its own in the suite run's one server process (its port,
its faults: FLOOD_WAIT or a dropped connection at the n-th history request, its call log, its
session) and a folder of its own for the program, so one run's files and calls never count
for another. The chat and the output go where the command's
placeholders put them (`{chat}`, `{output}`, `{format}`), else they are appended in that order.
A program still running at its limit is stopped and judged as far as it went.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from conformance._client_run import TRACEBACK, ended, output_ends
from conformance._target import ProgramTarget, stop_group
from conformance.specs.userbot._world import world

SERVER = Path(__file__).with_name("_telegram.py")
API_ID, API_HASH = "12345", "0123456789abcdef0123456789abcdef"
READY_WAIT = 20.0  # seconds for the server to start (it imports Telethon)
MAX_CALLS = 20_000  # a program reconnecting in a loop writes a log without end
OUTPUT = {"json": "export.json", "md": "export.md"}


class ServerUnavailable(Exception):
    """Our Telegram could not start (its message says why)."""


@cache
def _has_telethon(python: str) -> bool:
    try:
        return subprocess.run([python, "-c", "import telethon"], capture_output=True,
                              timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def interpreter(program: ProgramTarget) -> str:
    """The Python that serves our Telegram: the program's own (the words before its `.py` or
    `-m`) when it imports Telethon, else the suite's."""
    words = program.command()
    for i, word in enumerate(words):
        if word.endswith(".py") or word == "-m":
            # `python -u bot.py`, `uv run python bot.py`: the last Python named before it.
            pythons = [w for w in words[:i] if "python" in Path(w).name]
            if pythons and _has_telethon(pythons[-1]):
                return pythons[-1]
            break
    return sys.executable


@dataclass(frozen=True)
class Scenario:
    """One listener of our Telegram: the run it serves and its faults (at the n-th history
    request of `fault_peer`, the named chat)."""

    name: str
    flood_at: int = 0
    drop_at: int = 0
    fault_peer: str = ""

    def said(self) -> str:
        """Its faults in words ('' for none)."""
        return ", ".join(f for f in (
            f"FLOOD_WAIT_2 at history request {self.flood_at}" if self.flood_at else "",
            f"connection dropped at history request {self.drop_at}" if self.drop_at else "")
            if f)


@dataclass
class Run:
    """What one run of the program showed."""

    name: str
    chat: str
    output: str
    argv: list[str] = field(default_factory=list)
    code: int | None = None  # None: stopped at its limit
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0
    limit: float = 0.0
    timed_out: bool = False
    calls: list[dict[str, Any]] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)  # the program's folder after it
    server: dict[str, Any] = field(default_factory=dict)  # port, layer, Telethon's version
    scenario: Scenario | None = None  # the listener it ran against: its faults

    @property
    def export(self) -> bytes | None:
        """The output file's bytes (None: not written)."""
        return self.files.get(self.output)

    @property
    def traceback(self) -> bool:
        """Whether the program printed a traceback by itself."""
        return not self.timed_out and TRACEBACK in self.stdout + self.stderr

    def methods(self) -> list[dict[str, Any]]:
        """The calls (not the connection events) in order."""
        return [c for c in self.calls if "method" in c]

    def ending(self) -> str:
        """How it ended, in words."""
        return ended(self.code, self.seconds, self.limit, self.timed_out, self.stderr)

    def actual(self, extra: str = "") -> str:
        """What the run did, for a failure's `actual`."""
        written = ("nothing" if self.export is None
                   else f"{self.output} ({len(self.export):,} bytes)")
        parts = [f"the program {self.ending()} and wrote {written}"]
        if extra:
            parts.append(extra)
        return "; ".join(parts + output_ends(self.stdout, self.stderr))

    def reproduce(self, spec_line: str) -> str:
        """How to repeat it: the suite's line, then this run's situation and command."""
        scenario = self.scenario or Scenario(self.name)
        said = scenario.said()
        faults = f", {said}" if said else ""
        flags = "".join(f" --{k}-at {n}" for k, n in (("flood", scenario.flood_at),
                                                       ("drop", scenario.drop_at)) if n)
        return (f"{spec_line}  # the {self.name} run: chat {self.chat!r}{faults}; the program "
                f"ran as: {shlex.join(self.argv)}\n# our Telegram by hand: python -m "
                f"conformance.specs.userbot._serve{flags}  (it prints the variables to export)")


def _files(folder: Path) -> dict[str, bytes]:
    out = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            with contextlib.suppress(OSError):
                out[path.relative_to(folder).as_posix()] = path.read_bytes()
    return out


class Telegrams:
    """Our Telegram for a suite run: one process (it imports Telethon once) with a listener
    per scenario, each with a port, faults, call log and session of its own."""

    def __init__(self, python: str, scenarios: list[Scenario],
                 world_data: dict[str, Any] | None = None) -> None:
        self.python = python
        # Another spec's world (the uptime monitor's contacts) in the server's format; None:
        # the userbot's own.
        self.world_data = world_data
        self.scenarios = {s.name: s for s in scenarios}
        self._scratch = tempfile.TemporaryDirectory(prefix="conformance-telegram-")
        self.folder = Path(self._scratch.name)
        self.ready: dict[str, Any] = {}
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the server and wait until every listener is up; ServerUnavailable if not."""
        folder = self.folder
        data = world() if self.world_data is None else self.world_data
        (folder / "world.json").write_text(json.dumps(data), encoding="utf-8")
        plan = [dataclasses.asdict(s) | {"flood_seconds": 2} for s in self.scenarios.values()]
        (folder / "plan.json").write_text(json.dumps(plan), encoding="utf-8")
        argv = [self.python, str(SERVER), str(folder / "world.json"),
                "--plan", str(folder / "plan.json"), "--folder", str(folder)]
        with (folder / "server.err").open("wb") as err:
            self._process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err,
                                             stderr=err, start_new_session=True)
        deadline = time.monotonic() + READY_WAIT
        ready = folder / "ready.json"
        while (not ready.exists() and self._process.poll() is None
               and time.monotonic() < deadline):
            time.sleep(0.05)
        if not ready.exists():
            self.stop()
            problem = (folder / "server.err").read_text(errors="replace")[-1500:]
            raise ServerUnavailable(f"our Telegram did not start under {self.python}: "
                                    f"{problem.strip() or 'no output'}")
        self.ready = json.loads(ready.read_text())

    def stop(self) -> None:
        """Stop the server and remove its folder."""
        if self._process is not None and self._process.poll() is None:
            stop_group(self._process)
        self._scratch.cleanup()

    def calls(self, name: str) -> list[dict[str, Any]]:
        """Every call scenario `name` has seen so far."""
        out = []
        log = Path(self.ready["runs"][name]["log"])
        if log.exists():
            for line in log.read_text(encoding="utf-8").splitlines()[:MAX_CALLS]:
                with contextlib.suppress(ValueError):
                    out.append(json.loads(line))
        return out

    def run(self, program: ProgramTarget, name: str, chat: str, fmt: str,
            limit: float) -> Run:
        """Run the program once against scenario `name`, on `chat` into `fmt`'s output."""
        scenario = self.scenarios[name]
        output = OUTPUT[fmt]
        run = Run(name, chat, output, limit=limit, scenario=scenario)
        listener = self.ready["runs"][name]
        run.server = {k: v for k, v in self.ready.items() if k != "runs"} | listener
        folder = (program.workdir or Path.cwd()) / f"run-{name}"
        folder.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "TG_API_ID": API_ID, "TG_API_HASH": API_HASH,
               "TG_SESSION": listener["session"], "TG_SESSION_FILE": listener["session_file"],
               "TZ": "UTC"}
        values = {"chat": chat, "output": output, "format": fmt}
        target = dataclasses.replace(program, argv=program.filled(values, ("chat", "output")),
                                     workdir=folder)
        done = target.run(timeout=limit, env=env)
        run.argv, run.code, run.timed_out = done.argv, done.code, done.timed_out
        run.stdout, run.stderr, run.seconds = done.stdout, done.stderr, done.elapsed
        time.sleep(0.05)  # the last lines of the log, written as the program hung up
        run.calls = self.calls(name)
        run.files = _files(folder)
        return run


def run_against_telegram(program: ProgramTarget, name: str, chat: str, fmt: str, limit: float,
                         *, flood_at: int = 0, drop_at: int = 0, fault_peer: str = "") -> Run:
    """One run with a Telegram of its own: start it, run the program once on `chat` into
    `fmt`'s output, stop it; the faults count the history requests of `fault_peer`."""
    telegrams = Telegrams(interpreter(program),
                          [Scenario(name, flood_at, drop_at, fault_peer)])
    telegrams.start()
    try:
        return telegrams.run(program, name, chat, fmt, limit)
    finally:
        telegrams.stop()
