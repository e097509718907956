"""Our Telegram for a suite run (conformance/_telegram/_server.py, an MTProto server on
loopback), started under the program's own interpreter when that one has Telethon: one process
with a listener per scenario, each with a port, faults, call log and session of its own.

Rules: the world (users, chats, messages) is the spec's, handed in as data in the server's
format; the server imports Telethon, never the suite, so it runs under any interpreter that has
Telethon; every wait is bounded (READY_WAIT to start; a probe for Telethon's package, 30 s); a
program reaches a listener with `env(name)`: TG_API_ID, TG_API_HASH, TG_SESSION (a
StringSession string) and TG_SESSION_FILE (a SQLite .session file), both logged in already.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from conformance._target import ProgramTarget, stop_group

SERVER = Path(__file__).with_name("_server.py")
API_ID, API_HASH = "12345", "0123456789abcdef0123456789abcdef"
READY_WAIT = 20.0  # seconds for the server to start (it imports Telethon)
MAX_CALLS = 20_000  # a program reconnecting in a loop writes a log without end


class ServerUnavailable(Exception):
    """Our Telegram could not start (its message says why)."""


# Finding the package, not importing it: an import costs half a CPU-second, each run.
_FIND = "import importlib.util, sys; sys.exit(importlib.util.find_spec('telethon') is None)"


@cache
def _has_telethon(python: str) -> bool:
    try:
        return subprocess.run([python, "-c", _FIND], capture_output=True,
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


class Telegrams:
    """Our Telegram for a suite run: one process (it imports Telethon once) with a listener
    per scenario, each with a port, faults, call log and session of its own."""

    def __init__(self, python: str, scenarios: list[Scenario],
                 world_data: dict[str, Any]) -> None:
        self.python = python
        self.world_data = world_data  # the spec's world, in the server's format
        self.scenarios = {s.name: s for s in scenarios}
        self._scratch = tempfile.TemporaryDirectory(prefix="conformance-telegram-")
        self.folder = Path(self._scratch.name)
        self.ready: dict[str, Any] = {}
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the server and wait until every listener is up; ServerUnavailable if not."""
        folder = self.folder
        (folder / "world.json").write_text(json.dumps(self.world_data), encoding="utf-8")
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

    def env(self, name: str) -> dict[str, str]:
        """The variables that log a program in at scenario `name`'s listener."""
        listener = self.ready["runs"][name]
        return {"TG_API_ID": API_ID, "TG_API_HASH": API_HASH,
                "TG_SESSION": listener["session"], "TG_SESSION_FILE": listener["session_file"]}
