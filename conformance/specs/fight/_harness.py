"""Import a student's fight.py and call fight() or fightmany(n) with the agents' moves scripted.

Rules: standard library only, since it runs in the student's own interpreter; random.choice is
replaced before the import, so the given `from random import choice` binds the scripted one, and
each Agent (told apart by the `self` of the frame that calls choice) draws its own script; the
call's output is captured, bounded in size; actions a script renamed (HIGH_KICK) are drawn by the
given name they spell; a call that runs past its deadline or draws without end is cut short,
and the report says so. The report is one JSON object written to --report, or without it a
readable account on stderr:

    python _harness.py fight.py fight             # what fight() prints, moves scripted
    python _harness.py fight.py fightmany --n 3 --report out.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import inspect
import io
import json
import os
import random
import sys
import threading
import traceback
import typing

# The script of the one agent of fight(); agent i of fightmany draws it rotated by 3 * i.
# It holds every action, twice a block in a row, and its fifth block is its last move.
SCRIPT = ["HIGHKICK", "HIGHBLOCK", "LOWKICK", "LOWBLOCK", "LOWKICK",
          "HIGHKICK", "HIGHBLOCK", "HIGHBLOCK", "LOWKICK", "LOWBLOCK"]
# What an agent draws once its script is spent (a fight that goes on past 0 shows it).
AFTER = ["LOWBLOCK", "HIGHKICK"]
MAX_DRAWS = 2000
MAX_OUTPUT = 256 * 1024


def _real(stream: io.TextIOBase | typing.TextIO | None) -> typing.TextIO:
    """The interpreter's own stdout or stderr, which is None only without a console."""
    assert stream is not None
    return typing.cast(typing.TextIO, stream)


def _canon(name: object) -> str:
    """The given action an enum member's name spells ("HIGH_KICK" -> "HIGHKICK"), or ""."""
    if not isinstance(name, str):
        return ""
    return name.replace("_", "").replace("-", "").upper()


def script_of(agent: int) -> list[str]:
    """The moves agent number `agent` (0, 1, ... in the order they first draw) is given."""
    shift = (3 * agent) % len(SCRIPT)
    return SCRIPT[shift:] + SCRIPT[:shift]


class Capture(io.TextIOBase):
    """A stdout that keeps what is written, up to a bound."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.size = 0
        self.truncated = False

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if self.size < MAX_OUTPUT:
            self.parts.append(text[: MAX_OUTPUT - self.size])
            self.size += len(self.parts[-1])
        self.truncated = self.truncated or self.size >= MAX_OUTPUT
        return len(text)

    def text(self) -> str:
        return "".join(self.parts)


class Harness:
    """One import and one call, and everything seen on the way."""

    def __init__(self, report_path: str | None, deadline: float) -> None:
        self.report_path = report_path
        self.deadline = deadline
        self.real_choice = random.choice
        self.fallback = random.Random(0)
        self.phase = "import"
        self.agents: dict[int, int] = {}
        self.taken: dict[int, int] = {}
        self.draws: list[tuple[int, str]] = []
        self.other_choices = 0
        self.capture = Capture()
        self.phases: dict[str, dict[str, object]] = {}
        self.report: dict[str, object] = {"phases": self.phases}
        self.lock = threading.Lock()
        self.written = False

    # scripted randomness ---------------------------------------------------------------

    def choice(self, seq: typing.Sequence[typing.Any]) -> typing.Any:  # random.choice's stand-in
        owner = sys._getframe(1).f_locals.get("self")
        agent = self.agents.setdefault(id(owner), len(self.agents))
        script = script_of(agent)
        taken = self.taken.get(agent, 0)
        name = script[taken] if taken < len(script) else AFTER[(taken - len(script)) % 2]
        for item in seq:
            # A script that renamed the actions (HIGH_KICK) still draws its script's moves.
            if _canon(getattr(item, "name", None)) == name:
                self.taken[agent] = taken + 1
                self.draws.append((agent, name))
                if len(self.draws) >= MAX_DRAWS:
                    self.finish(f"the fight drew {MAX_DRAWS} actions without ending, so it "
                                "was stopped")
                return item
        # Not a choice among the agent's actions: answer it like random would, reproducibly.
        self.other_choices += 1
        return self.fallback.choice(seq)

    # phases ----------------------------------------------------------------------------

    def record(self, capture: Capture, error: str = "", cut: str = "") -> None:
        self.phases[self.phase] = {
            "output": capture.text(), "truncated": capture.truncated, "error": error,
            "cut": cut, "draws": [list(d) for d in self.draws],
            "agents": len(self.agents), "other_choices": self.other_choices,
        }

    def start_phase(self, phase: str) -> Capture:
        self.phase = phase
        self.agents, self.taken, self.draws, self.other_choices = {}, {}, [], 0
        self.capture = Capture()
        return self.capture

    def finish(self, cut: str = "") -> None:
        """Write the report and end the process (also from the watchdog, mid-call)."""
        with self.lock:
            if self.written:
                return
            self.written = True
            if cut:
                self.record(self.capture, cut=cut)
            text = json.dumps(self.report)
            if self.report_path:
                with open(self.report_path, "w", encoding="utf-8") as out:
                    out.write(text)
            else:
                _real(sys.__stderr__).write(readable(self.report))
            _real(sys.__stdout__).flush()
            _real(sys.__stderr__).flush()
            os._exit(0)


def readable(report: dict[str, typing.Any]) -> str:
    """The report for a person who runs the harness by hand: each phase's output and draws."""
    out = []
    for phase, seen in report["phases"].items():
        out.append(f"--- {phase}: printed ---\n{seen['output']}")
        agents: dict[int, list[str]] = {}
        for agent, action in seen["draws"]:
            agents.setdefault(agent, []).append(action)
        for agent, actions in agents.items():
            out.append(f"--- {phase}: agent {agent} yielded {len(actions)}: {' '.join(actions)}")
        for key in ("error", "cut"):
            if seen[key]:
                out.append(f"--- {phase}: {key}: {seen[key]}")
    for name in ("fight", "fightmany"):
        if name in report:
            facts = report[name]
            out.append(f"--- {name}: " + (
                "missing" if not facts["exists"] else
                f"{'async ' if facts['coroutine_function'] else ''}def {facts['signature']}"))
    return "\n".join(out) + "\n"


def describe_function(module: object, name: str, args: int) -> dict[str, object]:
    """Whether module.name exists, is a coroutine function, and takes `args` positional args."""
    func = getattr(module, name, None)
    facts: dict[str, object] = {"exists": func is not None, "callable": callable(func),
                                "coroutine_function": inspect.iscoroutinefunction(func),
                                "signature": "", "binds": False}
    if callable(func):
        try:
            sig = inspect.signature(func)
            facts["signature"] = f"{name}{sig}"
            sig.bind(*range(args))
            facts["binds"] = True
        except (TypeError, ValueError):
            pass
    return facts


def run(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("script", help="the student's .py file")
    parser.add_argument("call", choices=["fight", "fightmany", "none"])
    parser.add_argument("--n", type=int, default=3, help="agents for fightmany (3)")
    parser.add_argument("--report", help="write the JSON report here (default: stderr)")
    parser.add_argument("--deadline", type=float, default=30.0, help="seconds for it all (30)")
    args = parser.parse_args(argv)

    harness = Harness(args.report, args.deadline)
    watchdog = threading.Timer(args.deadline, harness.finish,
                               kwargs={"cut": f"it did not end within {args.deadline:g} s"})
    watchdog.daemon = True
    watchdog.start()
    random.choice = harness.choice  # type: ignore[assignment]  # a stand-in of the same use

    path = os.path.abspath(args.script)
    name = os.path.splitext(os.path.basename(path))[0]
    sys.path.insert(0, os.path.dirname(path))
    sys.argv = [path]
    capture = harness.start_phase("import")
    module = None
    error = ""
    try:
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot import {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        with contextlib.redirect_stdout(capture):
            spec.loader.exec_module(module)
    except SystemExit as exc:
        # A module that ends the interpreter on import is not importable; say how it ended.
        error = f"importing it raised SystemExit({exc.code!r})"
        module = None
    except BaseException:  # a student's module may raise anything
        error = traceback.format_exc(limit=-8)
    harness.record(capture, error)
    harness.report["imported"] = module is not None and not error
    if module is not None:
        harness.report["fight"] = describe_function(module, "fight", 0)
        harness.report["fightmany"] = describe_function(module, "fightmany", 1)

    if module is not None and args.call != "none":
        capture = harness.start_phase(args.call)
        error = ""
        try:
            func = getattr(module, args.call)
            with contextlib.redirect_stdout(capture):
                result = func(args.n) if args.call == "fightmany" else func()
                if inspect.isawaitable(result):
                    asyncio.run(_awaited(result))
        except SystemExit as exc:
            # sys.exit() after "Neo wins!" ends a script cleanly; only a failing status is one.
            if exc.code not in (0, None):
                error = f"it raised SystemExit({exc.code!r})"
        except BaseException:  # a student's module may raise anything
            error = traceback.format_exc(limit=-8)
        harness.record(capture, error)
    harness.finish()


async def _awaited(awaitable: typing.Awaitable[object]) -> object:
    return await awaitable


if __name__ == "__main__":
    run(sys.argv[1:])
