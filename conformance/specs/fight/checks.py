"""Checks of the `fight` spec (openapi/fight.requirements.yaml) against any fight.py.

Three observations serve every check, each made once per suite run: the script run as its
command says (random moves, judged by the rules alone, bounded by 6 x --timeout); and the .py
file named in the command imported by conformance/specs/fight/_harness.py in the command's own
interpreter, once to call fight() and once fightmany(3), with random.choice scripted so every
agent's moves are known. The file itself is read for the given code, compared by syntax tree.
A failure found in the random run is as real as one found in the scripted call; only the
scripted call can show that a rule holds for every action, so the MUSTs need it. The script's
own output may hold fightmany's numbered lines after (or before) fight()'s, when its main runs
both: the fight() rules judge fight()'s part only. Each rule of a fight (FIGHT-05..08) judges
every turn line that can be read, in the format or not, so a line off the format (FIGHT-04)
hides no other broken rule; it is not run only when no line could be read as a turn.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from conformance._checks import (
    CheckFailure,
    CheckFailures,
    NotImplementedFeature,
    NotRun,
    raise_all,
    requirement,
)
from conformance._isolation import launched, limit_hit, target_env
from conformance._options import RunOptions, SpecOptions
from conformance._spec import Spec
from conformance._target import Completed, ProgramTarget
from conformance.specs.fight import _rules
from conformance.specs.fight._rules import Printed, Problem

HARNESS = Path(_rules.__file__).resolve().with_name("_harness.py")
AGENTS = 3  # fightmany(n) is called with this n
TRACEBACK = "Traceback (most recent call last)"


def tail(text: str, limit: int = 600) -> str:
    """The end of a program's output, marked when cut."""
    text = text.strip()
    return text if len(text) <= limit else "..." + text[-limit:]


@dataclass
class Source:
    """Where the program's file is and which interpreter runs it, read off its command."""

    path: Path | None
    interpreter: list[str]
    problem: str = ""


def find_source(program: ProgramTarget) -> Source:
    """The .py file the command runs (or the module of `-m NAME`) and the words before it."""
    words = program.command()
    for i, word in enumerate(words):
        if word.lower().endswith(".py"):
            return Source(Path(word), words[:i] or [sys.executable])
        if word == "-m" and i + 1 < len(words):
            # Where the command was given, as `python -m` finds it there (the run starts the
            # program in a folder of its own).
            module = Path.cwd().joinpath(*words[i + 1].split("."))
            for candidate in (module.with_suffix(".py"), module / "__main__.py"):
                if candidate.is_file():
                    return Source(candidate, words[:i] or [sys.executable])
            return Source(None, [], f"the module {words[i + 1]} of the command is not a file "
                                    f"under {os.getcwd()}")
    return Source(None, [], "the command names no .py file, and the suite imports that file "
                            "to call fight() and fightmany(n)")


@dataclass
class Call:
    """One import of the file by the harness, and the call it made, as the harness reports."""

    name: str
    reproduce: str
    report: dict[str, Any] = field(default_factory=dict)
    problem: str = ""

    def phase(self, name: str) -> dict[str, Any]:
        """What the harness saw while importing ("import") or calling (the call's name)."""
        phases: dict[str, dict[str, Any]] = self.report.get("phases", {})
        return phases.get(name, {})

    def facts(self, function: str) -> dict[str, Any]:
        """Whether `function` exists, is a coroutine function, and binds its arguments."""
        facts: dict[str, Any] = self.report.get(function, {})
        return facts

    def draws(self) -> dict[int, list[str]]:
        """The actions each agent (0, 1, ... in order of first draw) yielded during the call."""
        out: dict[int, list[str]] = {}
        for agent, action in self.phase(self.name).get("draws", []):
            out.setdefault(agent, []).append(action)
        return out


class Observations:
    """The script run and the harness calls of one suite run, each made when first needed."""

    def __init__(self, program: ProgramTarget, options: RunOptions[SpecOptions]) -> None:
        self.program = program
        self.bound = 6 * options.timeout
        self.source = find_source(program)
        self._script: Completed | None = None
        self._calls: dict[str, Call] = {}

    def script(self) -> Completed:
        """The program run as its command says, with no arguments."""
        if self._script is None:
            self._script = self.program.run(timeout=self.bound)
        return self._script

    def call(self, name: str) -> Call:
        """The harness's import of the file and its call of `name` ("fight" or "fightmany")."""
        if name not in self._calls:
            self._calls[name] = self._harness(name)
        return self._calls[name]

    def _harness(self, name: str) -> Call:
        if self.source.path is None:
            raise NotRun(self.source.problem)
        args = [str(HARNESS), str(self.source.path), name, "--deadline", f"{self.bound:g}"]
        if name == "fightmany":
            args += ["--n", str(AGENTS)]
        call = Call(name, shlex.join([*self.source.interpreter, *args]))
        with tempfile.TemporaryDirectory(prefix="conformance-fight-") as scratch:
            report = Path(scratch) / "report.json"
            argv = [*self.source.interpreter, *args, "--report", str(report)]
            try:
                # Started clean, in the run's folder for the program, as the program is.
                done = subprocess.run(launched(argv, cwd=self.program.workdir,
                                               writable=[Path(scratch)]),
                                      stdin=subprocess.DEVNULL,
                                      capture_output=True, timeout=self.bound + 15,
                                      start_new_session=True, env=target_env(),
                                      cwd=self.program.workdir)
            except subprocess.TimeoutExpired:
                call.problem = f"the harness did not end within {self.bound + 15:g} s"
                return call
            except OSError as exc:
                call.problem = f"cannot start {argv[0]}: {exc.strerror or exc}"
                return call
            limit_hit(done.returncode, done.stdout.decode("utf-8", "replace")
                      + done.stderr.decode("utf-8", "replace"))
            try:
                call.report = json.loads(report.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                out = tail(done.stderr.decode("utf-8", "replace") or
                           done.stdout.decode("utf-8", "replace"))
                call.problem = (f"the file could not be imported and called (status "
                                f"{done.returncode}): {out or 'no output'}")
        return call


@pytest.fixture(scope="session")
def seen(program: ProgramTarget, options: RunOptions[SpecOptions]) -> Observations:
    """The observations of this suite run."""
    return Observations(program, options)


def failure(problem: Problem, rid: str, reproduce: str, where: str) -> CheckFailure:
    """A CheckFailure for `rid` from a judge's problem, saying which run showed it."""
    return CheckFailure(f"{where}: {problem.message}", expected=problem.expected,
                        actual=problem.actual, reproduce=reproduce, requirement=rid)


def called(seen: Observations, name: str, rid: str) -> tuple[Call, dict[str, Any]]:
    """The call's phase when it ran to its end, else the failure of `rid` saying why not."""
    call = seen.call(name)
    where = f"{name}()" if name == "fight" else f"{name}({AGENTS})"
    if call.problem:
        raise CheckFailure(f"{where}: {call.problem}", expected=f"{where} runs to its end",
                           actual=call.problem, reproduce=call.reproduce, requirement=rid)
    phase = call.phase(name)
    if not phase:
        raise NotRun(f"{where} was not called: the file did not import")
    if phase.get("cut") or phase.get("error"):
        why = phase.get("cut") or "it raised an exception"
        raise CheckFailure(f"{where}, its moves scripted, did not finish: {why}",
                           expected=f"{where} returns once Neo has won",
                           actual=tail(phase.get("error") or phase.get("output", "")) or why,
                           reproduce=call.reproduce, requirement=rid)
    return call, phase


def script_printed(seen: Observations) -> list[tuple[bool, Printed]]:
    """What the script printed in its own run, when it ended well (else FIGHT-01 says why), in
    parts: fight()'s lines (False) and fightmany's numbered ones (True), for a main may run
    both."""
    done = seen.script()
    return _rules.parse_script(done.stdout) if done.code == 0 else []


def judge_fight(seen: Observations, rid: str, judge: Any, *, reads_turns: bool = False) -> None:
    """Apply `judge(printed, call)` to the scripted fight() and to the fight() parts of the
    script's own run. A judge that `reads_turns` judges every turn line that could be read, in
    the format or not; it is not run only when no line at all could be read as a turn."""
    call, phase = called(seen, "fight", rid)
    found: list[CheckFailure] = []
    scripted = _rules.parse(phase["output"])
    # A part of the script's own output with no line meant as a turn is no fight() to judge.
    own = [printed for many, printed in script_printed(seen) if not many and (
        printed.turns if reads_turns else printed.turns or printed.malformed)]
    if reads_turns and not scripted.turns and not own:
        raise NotRun("no line of fight()'s output could be read as a turn (the agent's "
                     "action, Neo's and the health): FIGHT-04 says what was printed")
    if scripted.turns or not reads_turns:
        problem = judge(scripted, call)
        if problem:
            found.append(failure(problem, rid, call.reproduce, "fight(), its moves scripted"))
    for printed in own:
        problem = judge(printed, None)
        if problem:
            found.append(failure(problem, rid, seen.program.label, "the script's own run"))
            break
    if found:
        raise CheckFailures(found)


# The checks ----------------------------------------------------------------------------------


@requirement("FIGHT-01")
def test_script_runs_to_its_end(seen: Observations) -> None:
    """The script ends by itself, status 0, no traceback."""
    done = seen.script()
    expected = f"the script ends by itself within {seen.bound:g} s, status 0, no traceback"
    if done.timed_out:
        problem = f"did not end within {seen.bound:g} s and was stopped"
    elif done.code != 0:
        problem = f"exited with status {done.code}"
    elif TRACEBACK in done.stderr:
        problem = "printed a traceback"
    else:
        return
    shown = tail(done.stderr) or tail(done.stdout) or "no output"
    raise CheckFailure(f"{done.command} {problem}", expected=expected,
                       actual=f"{problem}; its output ends: {shown}", reproduce=done.command)


@requirement("FIGHT-02")
def test_given_code_unmodified(seen: Observations, spec: Spec,
                               note: Callable[[str], None]) -> None:
    """Action and Agent as given, by syntax tree (type hints and docstrings aside, noted); the
    given imports at module level."""
    path = seen.source.path
    if path is None:
        raise NotRun(seen.source.problem)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckFailure(f"cannot read {path}: {exc}", expected="a readable UTF-8 file",
                           actual=str(exc), reproduce=f"cat {shlex.quote(str(path))}") from None
    wanted = _rules.given(spec.given)
    problem = _rules.judge_given(text, wanted)
    if problem:
        raise CheckFailure(f"{path}: {problem.message}", expected=problem.expected,
                           actual=problem.actual, reproduce=f"cat {shlex.quote(str(path))}")
    for text_of_note in _rules.harmless_changes(text, wanted):
        note(text_of_note)


@requirement("FIGHT-03")
def test_fight_is_a_coroutine_function(seen: Observations) -> None:
    """The file imports; fight is an async def that takes no arguments."""
    call = seen.call("fight")
    if call.problem:
        raise CheckFailure(call.problem, expected="the file imports", actual=call.problem,
                           reproduce=call.reproduce)
    if not call.report.get("imported"):
        error = call.phase("import").get("error") or call.phase("import").get("cut") or "?"
        raise CheckFailure(f"{seen.source.path} cannot be imported", expected="the file imports",
                           actual=tail(error), reproduce=call.reproduce)
    facts = call.facts("fight")
    if not facts.get("exists"):
        raise CheckFailure("the file defines no fight at module level",
                           expected="async def fight()", actual="no name fight",
                           reproduce=call.reproduce)
    if not facts.get("coroutine_function"):
        raise CheckFailure("fight is not a coroutine function (async def)",
                           expected="async def fight()",
                           actual=facts.get("signature") or "fight is not callable",
                           reproduce=call.reproduce)
    if not facts.get("binds"):
        raise CheckFailure("fight() cannot be called with no arguments",
                           expected="async def fight()", actual=f"async def {facts['signature']}",
                           reproduce=call.reproduce)


@requirement("FIGHT-04")
def test_one_line_per_turn_in_the_format(seen: Observations) -> None:
    """Turn lines in the format, one for each action the agent yielded, in order."""
    def judge(printed: Printed, call: Call | None) -> Problem | None:
        problem = _rules.judge_format(printed)
        if problem or call is None:
            return problem
        return _rules.judge_draws(printed.turns, call.draws().get(0, []))
    judge_fight(seen, "FIGHT-04", judge)


@requirement("FIGHT-05")
def test_neo_answers_by_the_rule(seen: Observations) -> None:
    """Neo meets a kick with the block of its height and a block with the other kick."""
    judge_fight(seen, "FIGHT-05", lambda printed, call: _rules.judge_answers(printed.turns),
                reads_turns=True)


@requirement("FIGHT-06")
def test_health_drops_exactly_on_blocks(seen: Observations) -> None:
    """Health starts at 5 and drops by one on each block, only then."""
    judge_fight(seen, "FIGHT-06", lambda printed, call: _rules.judge_health(printed.turns),
                reads_turns=True)


@requirement("FIGHT-07")
def test_fight_stops_at_zero(seen: Observations) -> None:
    """The last turn shows health 0; none before it does."""
    judge_fight(seen, "FIGHT-07", lambda printed, call: _rules.judge_stop(printed.turns),
                reads_turns=True)


@requirement("FIGHT-08")
def test_neo_wins_once_at_the_end(seen: Observations) -> None:
    """`Neo wins!` once, after the turn at 0, no turn after it."""
    judge_fight(seen, "FIGHT-08", lambda printed, call: _rules.judge_win(printed),
                reads_turns=True)


@requirement("FIGHT-09")
def test_nothing_else_is_printed(seen: Observations) -> None:
    """Only turn lines and `Neo wins!`; nothing on stderr."""
    judge_fight(seen, "FIGHT-09", lambda printed, call: _rules.judge_extra(printed))
    # fightmany's part of the script's own output (a main that runs both) is the script's too.
    for many, printed in script_printed(seen):
        problem = _rules.judge_extra(printed) if many else None
        if problem:
            raise failure(problem, "FIGHT-09", seen.program.label, "the script's own run")
    done = seen.script()
    # A run that failed is FIGHT-01's to report, traceback and all.
    if done.stderr.strip() and done.code == 0:
        raise CheckFailure("the script wrote to stderr", expected="nothing on stderr",
                           actual=tail(done.stderr), reproduce=done.command)


@requirement("FIGHT-10")
def test_import_starts_no_fight(seen: Observations) -> None:
    """Importing the file draws no action and prints no turn."""
    call = seen.call("fight")
    phase = call.phase("import")
    # Any line meant as a turn, fight()'s or fightmany's, in the format or not.
    turns = [line for line in phase.get("output", "").splitlines() if _rules.meant_as_turn(line)]
    if phase.get("draws") or turns:
        raise CheckFailure(
            "importing the file started a fight (it has no `if __name__ == \"__main__\":`)",
            expected="no fight on import",
            actual=f"{len(phase.get('draws', []))} actions drawn and {len(turns)} turn lines "
                   "printed while importing",
            reproduce=call.reproduce)


@requirement("FIGHT-11")
def test_fightmany_is_a_coroutine_function(seen: Observations) -> None:
    """fightmany is an async def that takes n."""
    call = seen.call("fight")
    facts = call.facts("fightmany")
    expected = "async def fightmany(n)"
    if not facts.get("exists"):
        # No fightmany at all: the bonus was not attempted (FIGHT-12 to 14 need this one, so
        # they are not implemented too); one that is there but wrong fails below.
        raise NotImplementedFeature("the file defines no fightmany (the bonus)",
                                    expected=expected, actual="no name fightmany",
                                    reproduce=call.reproduce)
    if not facts.get("coroutine_function"):
        raise CheckFailure("fightmany is not a coroutine function (async def)",
                           expected=expected, actual=facts.get("signature") or "not callable",
                           reproduce=call.reproduce)
    if not facts.get("binds"):
        raise CheckFailure("fightmany cannot be called with the number of agents",
                           expected=expected, actual=f"async def {facts['signature']}",
                           reproduce=call.reproduce)


def many(seen: Observations, rid: str) -> tuple[Call, Printed]:
    """fightmany(AGENTS)'s call and what it printed."""
    call, phase = called(seen, "fightmany", rid)
    return call, _rules.parse(phase["output"], many=True)


def many_failure(problem: Problem, rid: str, call: Call) -> CheckFailure:
    """A failure of `rid` seen in the scripted fightmany call."""
    return failure(problem, rid, call.reproduce, f"fightmany({AGENTS}), its moves scripted")


@requirement("FIGHT-12")
def test_fightmany_lines_follow_the_rules_per_agent(seen: Observations) -> None:
    """Numbered agents' lines in the format, each agent's by the rules of fight()."""
    rid = "FIGHT-12"
    call, printed = many(seen, rid)
    problem = _rules.judge_format(printed, many=True)
    if problem:
        # The lines off the format that can still be read are judged too: the format hides
        # no wrong answer or health.
        found = [many_failure(problem, rid, call)]
        for number, turns in printed.by_agent().items():
            for judge in (_rules.judge_answers, _rules.judge_health):
                wrong = judge(turns)
                if wrong:
                    found.append(many_failure(Problem(f"Agent {number}: {wrong.message}",
                                                      wrong.expected, wrong.actual), rid, call))
        raise_all(found)
    agents = printed.by_agent()
    numbers = sorted(a for a in agents if a is not None)
    if numbers not in (list(range(1, AGENTS + 1)), list(range(AGENTS))):
        raise CheckFailure(f"fightmany({AGENTS}) printed turns of agents {numbers}",
                           expected=f"agents 1 to {AGENTS} (or 0 to {AGENTS - 1})",
                           actual=f"agents {numbers}", reproduce=call.reproduce, requirement=rid)
    draws = call.draws()
    unused = set(draws)
    for number, turns in agents.items():
        who = f"Agent {number}"
        # Which agent object is Agent K is the program's business: match by what it yielded.
        match = next((i for i in sorted(unused)
                      if _rules.judge_draws(turns, draws[i], who) is None), None)
        if match is None:
            first = min(unused, default=0)
            problem = _rules.judge_draws(turns, draws.get(first, []), who)
            assert problem is not None
            raise many_failure(problem, rid, call)
        unused.discard(match)
        for judge in (_rules.judge_answers, _rules.judge_health):
            problem = judge(turns)
            if problem:
                raise many_failure(Problem(f"{who}: {problem.message}", problem.expected,
                                           problem.actual), rid, call)


@requirement("FIGHT-13")
def test_fightmany_brings_every_agent_to_zero_then_neo_wins(seen: Observations) -> None:
    """Every agent stops at 0; one `Neo wins!` after the last agent's 0."""
    rid = "FIGHT-13"
    call, printed = many(seen, rid)
    for number, turns in printed.by_agent().items():
        problem = _rules.judge_stop(turns, f"Agent {number}")
        if problem:
            raise many_failure(problem, rid, call)
    problem = _rules.judge_win(printed)
    if problem:
        raise many_failure(problem, rid, call)


@requirement("FIGHT-14")
def test_fightmany_interleaves_turns(seen: Observations) -> None:
    """Turns of different agents interleave."""
    rid = "FIGHT-14"
    call, printed = many(seen, rid)
    problem = _rules.judge_interleaving(printed)
    if problem:
        raise many_failure(problem, rid, call)
