"""The rules of `fight` (conformance/_fight.py) on small outputs, and the harness that imports a
script with its moves scripted (conformance/specs/fight/_harness.py). Cases are data: a description,
what was printed, and which judge must object."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conformance import load_spec
from conformance.specs.fight import _rules as _fight
from conformance.specs.fight._harness import SCRIPT, script_of

HARNESS = Path(_fight.__file__).with_name("_harness.py")
GOOD = """\
Agent: Action.HIGHKICK, Neo: Action.HIGHBLOCK, Agent Health: 5
Agent: Action.HIGHBLOCK, Neo: Action.LOWKICK, Agent Health: 4
Agent: Action.LOWBLOCK, Neo: Action.HIGHKICK, Agent Health: 3
Agent: Action.LOWBLOCK, Neo: Action.HIGHKICK, Agent Health: 2
Agent: Action.LOWKICK, Neo: Action.LOWBLOCK, Agent Health: 2
Agent: Action.HIGHBLOCK, Neo: Action.LOWKICK, Agent Health: 1
Agent: Action.HIGHBLOCK, Neo: Action.LOWKICK, Agent Health: 0
Neo wins!
"""
JUDGES = {
    "format": lambda p: _fight.judge_format(p),
    "answers": lambda p: _fight.judge_answers(p.turns),
    "health": lambda p: _fight.judge_health(p.turns),
    "stop": lambda p: _fight.judge_stop(p.turns),
    "win": _fight.judge_win,
    "extra": _fight.judge_extra,
}


def edited(old: str, new: str) -> str:
    assert old in GOOD
    return GOOD.replace(old, new, 1)


CASES = [
    ("a correct fight passes every judge", GOOD, None),
    ("trailing spaces are forgiven", GOOD.replace("\n", "  \n"), None),
    ("a lower-case label is not the format", edited("Agent Health: 5", "agent health: 5"),
     "format"),
    ("an unknown action name is not the format", edited("HIGHKICK, Neo", "KICK, Neo"), "format"),
    ("no turn line at all is not the format", "Neo wins!\n", "format"),
    ("a wrong answer is caught", edited("Neo: Action.HIGHBLOCK", "Neo: Action.LOWBLOCK"),
     "answers"),
    ("health lost on a kick is caught", edited("Agent Health: 5", "Agent Health: 4"), "health"),
    ("a fight that stops at 1 is caught",
     GOOD.replace("Agent: Action.HIGHBLOCK, Neo: Action.LOWKICK, Agent Health: 0\n", ""), "stop"),
    ("a fight that goes on after 0 is caught",
     edited("Neo wins!", "Agent: Action.LOWKICK, Neo: Action.LOWBLOCK, Agent Health: 0\n"
                         "Neo wins!"), "stop"),
    ("a missing Neo wins! is caught", edited("Neo wins!\n", ""), "win"),
    ("Neo wins! twice is caught", edited("Neo wins!\n", "Neo wins!\nNeo wins!\n"), "win"),
    ("Neo wins! before the end is caught", "Neo wins!\n" + GOOD.replace("Neo wins!\n", ""),
     "win"),
    ("a banner is extra output", "Fight!\n" + GOOD, "extra"),
    ("a line about the agent is extra output, not a turn", GOOD + "Agent defeated!\n", "extra"),
    ("a blank line is extra output", GOOD + "\n", "extra"),
]


@pytest.mark.parametrize(("text", "objector"), [(t, o) for _, t, o in CASES],
                         ids=[d for d, _, _ in CASES])
def test_judges(text: str, objector: str | None) -> None:
    printed = _fight.parse(text)
    for name, judge in JUDGES.items():
        problem = judge(printed) if printed.turns or name == "format" else None
        if name == objector:
            assert problem is not None, name
            assert problem.expected and problem.actual
        elif objector is None or list(JUDGES).index(name) < list(JUDGES).index(objector):
            assert problem is None, (name, problem)


def test_draws_allow_one_last_unprinted_action_only() -> None:
    turns = _fight.parse(GOOD).turns
    drawn = [t.action for t in turns]
    assert _fight.judge_draws(turns, drawn) is None
    assert _fight.judge_draws(turns, [*drawn, "LOWKICK"]) is None
    assert "went unprinted" in _fight.judge_draws(turns, [*drawn, "LOWKICK", "LOWKICK"]).message
    assert "yielded only" in _fight.judge_draws(turns, drawn[:-1]).message
    assert "yielded HIGHBLOCK" in _fight.judge_draws(turns, ["HIGHBLOCK", *drawn[1:]]).message


@pytest.mark.parametrize(("line", "says"), [
    ("Agent: Action.HIGH_KICK, Neo: Action.HIGH_BLOCK, Agent Health: 5",
     "'HIGH_KICK' is not one of the given actions"),
    ("Agent: Action.highkick, Neo: Action.highblock, Agent Health: 5",
     "'highkick' is not one of the given actions"),
    ("Agent: HIGHKICK, Neo: HIGHBLOCK, Agent Health: 5", "it lacks 'Action.' after 'Agent: '"),
    ("Agent: Action.HIGHKICK, Neo: Action.HIGHBLOCK, Agent HP: 5",
     "it has 'HP' where the format has 'Health'"),
    ("Agent: Action.HIGHKICK Neo: Action.HIGHBLOCK, Agent Health: 5",
     "it lacks ',' after 'Action.HIGHKICK'"),
    ("Agent 1: Action.HIGHKICK, Neo: Action.HIGHBLOCK, Agent 1 Health: 5",
     "it has ' 1' after 'Agent', which the format does not"),
])
def test_a_line_off_the_format_is_read_and_its_differing_part_named(line: str, says: str) -> None:
    printed = _fight.parse(line + "\nNeo wins!\n")
    assert [(t.action, t.neo, t.health, t.exact) for t in printed.turns] == \
        [("HIGHKICK", "HIGHBLOCK", 5, False)]
    problem = _fight.judge_format(printed)
    assert problem is not None and says in problem.message, problem
    assert "(the line in the format: " in problem.expected and "in line 1" in problem.actual


def test_a_line_that_cannot_be_read_says_what_it_lacks() -> None:
    printed = _fight.parse("Agent: Action.KICK, Neo: Action.HIGHBLOCK, Agent Health: 5\n")
    assert not printed.turns and printed.malformed
    problem = _fight.judge_format(printed)
    assert problem is not None and "names only one of the given actions" in problem.message


def test_rules_judge_lines_off_the_format() -> None:
    # Renamed actions, and Neo answers a block with the wrong kick: the rule still sees it.
    printed = _fight.parse(GOOD.replace("Action.LOWKICK, Agent Health: 4",
                                        "Action.HIGHKICK, Agent Health: 4")
                           .replace("HIGHBLOCK", "HIGH_BLOCK").replace("LOWKICK", "LOW_KICK"))
    assert len(printed.turns) == 7 and printed.malformed
    problem = _fight.judge_answers(printed.turns)
    assert problem is not None and "answers HIGHBLOCK with HIGHKICK" in problem.message
    for judge in (_fight.judge_health, _fight.judge_stop):
        assert judge(printed.turns) is None
    assert _fight.judge_win(printed) is None


def test_health_after_an_unreadable_turn_is_taken_as_shown() -> None:
    printed = _fight.parse(GOOD.replace("Agent: Action.HIGHBLOCK, Neo: Action.LOWKICK, "
                                        "Agent Health: 4", "Agent: ???, Agent Health: 4"))
    assert len(printed.turns) == 6 and printed.turns[1].after_gap
    assert _fight.judge_health(printed.turns) is None


@pytest.mark.parametrize(("line", "says"), [
    ("Neo wins", "it lacks '!' after 'Neo wins'"),
    ("neo wins!", "it has 'neo' where 'Neo wins!' has 'Neo'"),
    ("Neo wins !", "it has ' ' after 'Neo wins', which 'Neo wins!' does not"),
])
def test_a_misspelt_win_is_named_and_is_no_extra_output(line: str, says: str) -> None:
    printed = _fight.parse(GOOD.replace("Neo wins!", line))
    problem = _fight.judge_win(printed)
    assert problem is not None and says in problem.message, problem
    assert _fight.judge_extra(printed) is None


def test_script_output_holds_fight_and_fightmany() -> None:
    many = "".join(f"Agent {k}: Action.HIGHBLOCK, Neo: Action.LOWKICK, Agent {k} Health: 0\n"
                   for k in (1, 2)) + "Neo wins!\n"
    parts = _fight.parse_script(GOOD + many)
    assert [kind for kind, _ in parts] == [False, True]
    single, numbered = parts[0][1], parts[1][1]
    assert _fight.judge_format(single) is None and _fight.judge_win(single) is None
    assert _fight.judge_extra(single) is None and len(single.turns) == 7
    assert _fight.judge_format(numbered, many=True) is None and len(numbered.wins) == 1
    # fightmany first, then fight(): the same split.
    parts = _fight.parse_script(many + GOOD)
    assert [kind for kind, _ in parts] == [True, False]
    assert _fight.judge_win(parts[1][1]) is None
    # Output with no turn line at all is one part of fight()'s.
    assert [(kind, p.extra) for kind, p in _fight.parse_script("hello\n")] == \
        [(False, [(1, "hello")])]


def test_many_needs_the_same_number_twice() -> None:
    printed = _fight.parse("Agent 1: Action.HIGHKICK, Neo: Action.HIGHBLOCK, Agent 2 Health: 5\n",
                           many=True)
    # Off the format, so FIGHT-12 fails; still read for the other rules, as agent 1's turn.
    assert printed.malformed and [t.agent for t in printed.turns if not t.exact] == [1]
    problem = _fight.judge_format(printed, many=True)
    assert problem is not None and "it has '2' where the format has '1'" in problem.message


def test_interleaving() -> None:
    line = "Agent {k}: Action.HIGHKICK, Neo: Action.HIGHBLOCK, Agent {k} Health: 5\n"
    whole = _fight.parse("".join(line.format(k=k) for k in (1, 1, 2, 2)), many=True)
    mixed = _fight.parse("".join(line.format(k=k) for k in (1, 2, 1, 2)), many=True)
    assert _fight.judge_interleaving(whole) is not None
    assert _fight.judge_interleaving(mixed) is None


GIVEN = load_spec("fight").given


@pytest.mark.parametrize(("description", "source", "fragment"), [
    ("the given code as is", GIVEN, None),
    ("reformatted, with comments", GIVEN.replace("class Agent:\n", "class Agent:  # the foe\n")
     .replace("HIGHKICK = auto()", "HIGHKICK  =  auto()"), None),
    ("merged imports", GIVEN.replace("from random import choice", "from random import choice, "
                                     "randint"), None),
    ("a changed default health", GIVEN.replace("health=5", "health=3"), "differs"),
    # What cannot change what the classes do passes (FIGHT-02's statement): type hints and
    # docstrings; a changed value, name, base or method fails.
    ("a docstring added to Agent", GIVEN.replace("class Agent:\n", 'class Agent:\n    """A."""\n'),
     None),
    ("type hints added to Agent", GIVEN.replace("health=5)", "health: int = 5) -> 'Agent'")
     .replace("self.health = health", "self.health: int = health")
     .replace("__anext__(self)", "__anext__(self) -> Action"), None),
    ("an annotated enum member", GIVEN.replace("HIGHKICK = auto()", "HIGHKICK: int = auto()"),
     None),
    ("a bare annotation added to Action", GIVEN.replace("    HIGHKICK = auto()",
                                                        "    x: int\n    HIGHKICK = auto()"),
     None),
    ("a method renamed", GIVEN.replace("async def __anext__", "async def anext"), "differs"),
    ("a method made plain", GIVEN.replace("async def __anext__", "def __anext__"), "differs"),
    ("a method added", GIVEN + "    def hit(self):\n        self.health -= 1\n", "differs"),
    ("a base changed", GIVEN.replace("class Action(Enum)", "class Action(IntEnum)"), "differs"),
    ("a member renamed", GIVEN.replace("HIGHKICK = auto()", "HIGH_KICK = auto()"), "differs"),
    ("an annotated value changed", GIVEN.replace("self.health = health",
                                                 "self.health: int = 5"), "differs"),
    ("Agent redefined later", GIVEN + "\nclass Agent:\n    pass\n", "more than once"),
    ("choice imported from secrets", GIVEN.replace("from random import choice",
                                                   "from secrets import choice"), "missing"),
    ("choice rebound", GIVEN + "\nchoice = max\n", "assigned again"),
    ("no Action at all", GIVEN.replace("class Action(Enum)", "class Act(Enum)"), "not defined"),
    ("not Python", "def (:\n", "not valid Python"),
])
def test_given_code(description: str, source: str, fragment: str | None) -> None:
    problem = _fight.judge_given(source, _fight.given(GIVEN))
    if fragment is None:
        assert problem is None, problem
    else:
        assert problem is not None and fragment in problem.message, problem


def test_what_cannot_change_behaviour_is_noted() -> None:
    wanted = _fight.given(GIVEN)
    assert _fight.harmless_changes(GIVEN, wanted) == []
    typed = GIVEN.replace("__anext__(self)", "__anext__(self) -> Action")
    assert _fight.harmless_changes(typed, wanted) == [
        "class Agent (line 14) adds type hints to the given code, which cannot change what it "
        "does: accepted as unmodified"]
    documented = GIVEN.replace("class Action(Enum):\n", 'class Action(Enum):\n    """A."""\n')
    assert "adds docstrings" in _fight.harmless_changes(documented, wanted)[0]
    # A real change is FIGHT-02's failure, not a note.
    assert _fight.harmless_changes(GIVEN.replace("health=5", "health=3"), wanted) == []


def harness(tmp_path: Path, source: str, *args: str) -> dict:
    script = tmp_path / "fight.py"
    script.write_text(source)
    report = tmp_path / "report.json"
    subprocess.run([sys.executable, str(HARNESS), str(script), *args, "--report", str(report)],
                   timeout=60, check=True, capture_output=True)
    return json.loads(report.read_text())


def test_harness_gives_each_agent_its_own_script(tmp_path: Path) -> None:
    source = GIVEN + """
async def fightmany(n):
    agents = [Agent().__aiter__() for _ in range(n)]
    for _ in range(3):
        for agent in agents:
            await agent.__anext__()
"""
    report = harness(tmp_path, source, "fightmany", "--n", "2")
    draws = report["phases"]["fightmany"]["draws"]
    assert [a for a, _ in draws] == [0, 1, 0, 1, 0, 1]
    assert [n for a, n in draws if a == 1] == script_of(1)[:3] != SCRIPT[:3]
    assert report["fightmany"]["coroutine_function"] is True
    assert report["fight"]["exists"] is False


def test_harness_scripts_renamed_actions_by_the_name_they_spell(tmp_path: Path) -> None:
    source = GIVEN.replace("HIGHKICK = auto()", "HIGH_KICK = auto()").replace(
        "LOWBLOCK = auto()", "low_block = auto()") + """
async def fight():
    agent = Agent().__aiter__()
    for _ in range(4):
        print(await agent.__anext__())
"""
    report = harness(tmp_path, source, "fight")
    assert [n for _, n in report["phases"]["fight"]["draws"]] == SCRIPT[:4]
    assert report["phases"]["fight"]["output"].split() == [
        "Action.HIGH_KICK", "Action.HIGHBLOCK", "Action.LOWKICK", "Action.low_block"]


def test_harness_cuts_a_fight_that_never_ends(tmp_path: Path) -> None:
    source = GIVEN + """
async def fight():
    async for action in Agent():
        print(action)
"""
    report = harness(tmp_path, source, "fight")
    assert "without ending" in report["phases"]["fight"]["cut"]


def test_harness_cuts_a_hang_at_its_deadline(tmp_path: Path) -> None:
    report = harness(tmp_path, "import time\ntime.sleep(600)\n", "fight", "--deadline", "1")
    assert "did not end within 1 s" in report["phases"]["import"]["cut"]
    assert "imported" not in report


def test_harness_reports_an_import_error_and_sys_exit(tmp_path: Path) -> None:
    report = harness(tmp_path, "raise RuntimeError('boom')\n", "fight")
    assert "RuntimeError: boom" in report["phases"]["import"]["error"]
    assert report["imported"] is False
    report = harness(tmp_path, GIVEN + "\nasync def fight():\n    raise SystemExit(0)\n", "fight")
    assert report["phases"]["fight"]["error"] == ""
