"""One run of a userbot: a Telegram of our own started for it (conformance/_telegram, under the
program's interpreter when that one has Telethon), the program run once against it, and what it
left: exit status, output, the export, every file of its folder, and every call the server saw.

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
import os
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance._client_run import TRACEBACK, ended, output_ends
from conformance._target import ProgramTarget
from conformance._telegram import Scenario, Telegrams, interpreter
from conformance.specs.userbot._world import world

OUTPUT = {"json": "export.json", "md": "export.md"}


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


def run_at(telegrams: Telegrams, program: ProgramTarget, name: str, chat: str, fmt: str,
           limit: float) -> Run:
    """Run the program once against scenario `name` of `telegrams`, on `chat` into `fmt`'s
    output."""
    scenario = telegrams.scenarios[name]
    output = OUTPUT[fmt]
    run = Run(name, chat, output, limit=limit, scenario=scenario)
    listener = telegrams.ready["runs"][name]
    run.server = {k: v for k, v in telegrams.ready.items() if k != "runs"} | listener
    folder = (program.workdir or Path.cwd()) / f"run-{name}"
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **telegrams.env(name), "TZ": "UTC"}
    values = {"chat": chat, "output": output, "format": fmt}
    target = dataclasses.replace(program, argv=program.filled(values, ("chat", "output")),
                                 workdir=folder)
    # The session file is the program's to read and update (Telethon writes to it).
    session = telegrams.env(name).get("TG_SESSION_FILE")
    done = target.run(timeout=limit, env=env,
                      writable=[Path(session).parent] if session else [])
    run.argv, run.code, run.timed_out = done.argv, done.code, done.timed_out
    run.stdout, run.stderr, run.seconds = done.stdout, done.stderr, done.elapsed
    time.sleep(0.05)  # the last lines of the log, written as the program hung up
    run.calls = telegrams.calls(name)
    run.files = _files(folder)
    return run




def run_against_telegram(program: ProgramTarget, name: str, chat: str, fmt: str, limit: float,
                         *, flood_at: int = 0, drop_at: int = 0, fault_peer: str = "") -> Run:
    """One run with a Telegram of its own: start it, run the program once on `chat` into
    `fmt`'s output, stop it; the faults count the history requests of `fault_peer`."""
    telegrams = Telegrams(interpreter(program),
                          [Scenario(name, flood_at, drop_at, fault_peer)], world())
    telegrams.start()
    try:
        return run_at(telegrams, program, name, chat, fmt, limit)
    finally:
        telegrams.stop()
