"""The rules of `fight` as data and small judges over a fight's printed lines.

Rules: lines are compared with trailing spaces stripped and nothing else forgiven; a line that
starts with "Agent" and names an action or the health is a turn line and must match the format
exactly; every other line but `Neo wins!` is extra output. Each judge returns the first `Problem`
it sees, or None, so a check can say expected against actual for one line.
"""

from __future__ import annotations

import ast
import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

ANSWER = {"HIGHKICK": "HIGHBLOCK", "LOWKICK": "LOWBLOCK",
          "HIGHBLOCK": "LOWKICK", "LOWBLOCK": "HIGHKICK"}
BLOCKS = frozenset({"HIGHBLOCK", "LOWBLOCK"})
START_HEALTH = 5
WIN = "Neo wins!"
_ONE = re.compile(r"Agent: Action\.(?P<action>\w+), Neo: Action\.(?P<neo>\w+), "
                  r"Agent Health: (?P<health>-?\d+)")
_MANY = re.compile(r"Agent (?P<k>-?\d+): Action\.(?P<action>\w+), Neo: Action\.(?P<neo>\w+), "
                   r"Agent (?P<k2>-?\d+) Health: (?P<health>-?\d+)")


@dataclass(frozen=True)
class Problem:
    """What a judge found wrong: a message, and expected against actual."""

    message: str
    expected: str
    actual: str


@dataclass(frozen=True)
class Turn:
    """One turn line: where it is, whose turn (None in fight()), and what it says."""

    line: int
    text: str
    agent: int | None
    action: str
    neo: str
    health: int


@dataclass
class Printed:
    """A fight's output sorted into turn lines, malformed turn lines, wins and the rest."""

    lines: list[str]
    turns: list[Turn] = field(default_factory=list)
    malformed: list[tuple[int, str]] = field(default_factory=list)
    wins: list[int] = field(default_factory=list)
    extra: list[tuple[int, str]] = field(default_factory=list)

    def by_agent(self) -> dict[int | None, list[Turn]]:
        """The turn lines of each agent, in order of their first line."""
        out: dict[int | None, list[Turn]] = {}
        for t in self.turns:
            out.setdefault(t.agent, []).append(t)
        return out


def turn_format(many: bool) -> str:
    """The turn line format, for messages."""
    if many:
        return "Agent K: Action.X, Neo: Action.Y, Agent K Health: N"
    return "Agent: Action.X, Neo: Action.Y, Agent Health: N"


def parse(text: str, *, many: bool = False) -> Printed:
    """Sort printed text into turns (of fightmany's numbered agents when `many`) and the rest."""
    printed = Printed([line.rstrip() for line in text.splitlines()])
    pattern = _MANY if many else _ONE
    for number, line in enumerate(printed.lines, 1):
        match = pattern.fullmatch(line)
        if line == WIN:
            printed.wins.append(number)
        elif match and match["action"] in ANSWER and match["neo"] in ANSWER and (
                not many or match["k"] == match["k2"]):
            agent = int(match["k"]) if many else None
            printed.turns.append(Turn(number, line, agent, match["action"], match["neo"],
                                      int(match["health"])))
        elif line.startswith("Agent") and ("Action" in line or "Health" in line):
            # Meant as a turn line; "Agent defeated!" is only extra output (FIGHT-09).
            printed.malformed.append((number, line))
        else:
            printed.extra.append((number, line))
    return printed


def _quote(number: int, line: str) -> str:
    return f"line {number}: {line!r}"


def judge_format(printed: Printed, *, many: bool = False) -> Problem | None:
    """Every line meant as a turn line is in the format, and there is one."""
    if printed.malformed:
        number, line = printed.malformed[0]
        return Problem(f"line {number} starts like a turn line but is not in the format "
                       f"{turn_format(many)!r} (with X and Y actions)",
                       expected=turn_format(many), actual=_quote(number, line))
    if not printed.turns:
        shown = "; ".join(_quote(n, s) for n, s in enumerate(printed.lines[:3], 1)) or "nothing"
        return Problem(f"no line in the format {turn_format(many)!r} was printed",
                       expected=f"turn lines like {turn_format(many)!r}", actual=shown)
    return None


def judge_draws(turns: Sequence[Turn], drawn: Sequence[str], who: str = "the agent") -> \
        Problem | None:
    """The printed actions are the drawn ones, in order; at most one last draw goes unprinted."""
    printed = [t.action for t in turns]
    for i, (said, was) in enumerate(zip(printed, drawn, strict=False)):
        if said != was:
            t = turns[i]
            return Problem(f"turn {i + 1} prints {who}'s action as {said}, but {who} yielded {was}",
                           expected=f"Action.{was} on turn {i + 1}", actual=_quote(t.line, t.text))
    if len(printed) > len(drawn):
        t = turns[len(drawn)]
        return Problem(f"{len(printed)} turn lines were printed for {who}, which yielded only "
                       f"{len(drawn)} actions",
                       expected=f"{len(drawn)} turn lines", actual=_quote(t.line, t.text))
    if len(drawn) > len(printed) + 1:
        return Problem(f"{who} yielded {len(drawn)} actions but only {len(printed)} turns were "
                       f"printed: turns went unprinted",
                       expected=f"a line for each of {', '.join(drawn[len(printed):][:4])} ...",
                       actual=f"{len(printed)} turn lines")
    return None


def judge_answers(turns: Sequence[Turn]) -> Problem | None:
    """Neo answers every action by the rule."""
    for t in turns:
        if t.neo != ANSWER[t.action]:
            return Problem(f"Neo answers {t.action} with {t.neo}; the rule says "
                           f"{ANSWER[t.action]}",
                           expected=f"Neo: Action.{ANSWER[t.action]}",
                           actual=_quote(t.line, t.text))
    return None


def judge_health(turns: Sequence[Turn]) -> Problem | None:
    """Health starts at 5 and drops by one exactly on the agent's blocks."""
    health = START_HEALTH
    for i, t in enumerate(turns, 1):
        health -= t.action in BLOCKS
        if t.health != health:
            why = "it blocked, so Neo's kick landed" if t.action in BLOCKS else \
                "it kicked, and Neo's block takes no health"
            return Problem(f"turn {i} shows health {t.health}; {why}, which leaves {health}",
                           expected=f"Health: {health}", actual=_quote(t.line, t.text))
    return None


def judge_stop(turns: Sequence[Turn], who: str = "the agent") -> Problem | None:
    """The fight ends with the turn that brings health to 0, not before and not after."""
    for i, t in enumerate(turns):
        if t.health <= 0 and i < len(turns) - 1:
            nxt = turns[i + 1]
            return Problem(f"the fight with {who} went on after its health reached {t.health}",
                           expected=f"no turn after {_quote(t.line, t.text)}",
                           actual=_quote(nxt.line, nxt.text))
    last = turns[-1]
    if last.health != 0:
        return Problem(f"the fight with {who} stopped at health {last.health}, not 0",
                       expected="the last turn line shows health 0",
                       actual=_quote(last.line, last.text))
    return None


def judge_win(printed: Printed) -> Problem | None:
    """`Neo wins!` once, after the last turn line (the one at 0), and no turn line after it."""
    if not printed.wins:
        tail = "; ".join(_quote(n, s) for n, s in enumerate(printed.lines, 1)
                         if n > len(printed.lines) - 2) or "nothing"
        return Problem(f"{WIN!r} was never printed", expected=f"a line {WIN!r} at the end",
                       actual=f"the output ends with {tail}")
    if len(printed.wins) > 1:
        return Problem(f"{WIN!r} was printed {len(printed.wins)} times",
                       expected=f"{WIN!r} once", actual=f"on lines {printed.wins}")
    last = printed.turns[-1]
    if printed.wins[0] < last.line:
        return Problem(f"{WIN!r} came before the fight ended",
                       expected=f"{WIN!r} after {_quote(last.line, last.text)}",
                       actual=f"{WIN!r} on line {printed.wins[0]}")
    return None


def judge_extra(printed: Printed) -> Problem | None:
    """Nothing is printed but turn lines and `Neo wins!`."""
    if printed.extra:
        number, line = printed.extra[0]
        more = f" (and {len(printed.extra) - 1} more)" if len(printed.extra) > 1 else ""
        return Problem(f"line {number} is neither a turn line nor {WIN!r}{more}",
                       expected=f"only turn lines and {WIN!r}", actual=_quote(number, line))
    return None


def judge_interleaving(printed: Printed) -> Problem | None:
    """Some agent's turn comes between two turns of another agent."""
    spans = {a: (ts[0].line, ts[-1].line) for a, ts in printed.by_agent().items()}
    for a, (first, last) in spans.items():
        if any(t.agent != a and first < t.line < last for t in printed.turns):
            return None
    order = ", ".join(f"Agent {a} on lines {f}-{la}" for a, (f, la) in spans.items())
    return Problem("each agent's fight was printed whole, one after the other",
                   expected="turns of different agents interleaved", actual=order)


# The given code ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Given:
    """What the assignment hands out: its classes (as syntax trees) and the names it imports."""

    classes: dict[str, str]
    sources: dict[str, str]  # each class as ast.unparse writes it, to show a difference
    imports: dict[str, tuple[str, str | None]]  # bound name -> (module, imported name or None)


def _imports(tree: ast.Module) -> dict[str, list[tuple[str, str | None]]]:
    bound: dict[str, list[tuple[str, str | None]]] = {}
    for node in tree.body:
        if isinstance(node, ast.Import):
            for alias in node.names:
                bound.setdefault(alias.asname or alias.name.split(".")[0], []).append(
                    (alias.name, None))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                bound.setdefault(alias.asname or alias.name, []).append(
                    (node.module, alias.name))
    return bound


def given(code: str) -> Given:
    """The classes and imports of the given code."""
    tree = ast.parse(code)
    defs = [n for n in tree.body if isinstance(n, ast.ClassDef)]
    imports = {name: found[0] for name, found in _imports(tree).items()}
    return Given({n.name: ast.dump(n) for n in defs}, {n.name: ast.unparse(n) for n in defs},
                 imports)


def _difference(given_text: str, found_text: str) -> str:
    """The lines that differ between two classes as ast.unparse writes them, as a diff."""
    diff = difflib.unified_diff(given_text.splitlines(), found_text.splitlines(),
                                "given", "found", n=1, lineterm="")
    return "\n".join(list(diff)[2:][:12]) or found_text[:400]


def _bound_names(node: ast.stmt) -> list[str]:
    """The module-level names a statement (re)binds."""
    names: list[str] = []
    if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
        names.append(node.name)
    targets: list[ast.expr] = []
    if isinstance(node, ast.Assign):
        targets = node.targets
    elif isinstance(node, ast.AnnAssign | ast.AugAssign):
        targets = [node.target]
    for target in targets:
        names.extend(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
    return names


def judge_given(source: str, wanted: Given) -> Problem | None:
    """The given classes, unmodified and defined once; the given imports, at module level."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        return Problem(f"the file is not valid Python: {exc.msg} (line {exc.lineno})",
                       expected="a file Python can parse", actual=f"SyntaxError: {exc}")
    for name, dump in wanted.classes.items():
        defs = [n for n in tree.body if name in _bound_names(n)]
        if not defs:
            return Problem(f"the given class {name} is not defined at module level",
                           expected=f"class {name} as given", actual="no such class")
        if len(defs) > 1:
            lines = ", ".join(str(n.lineno) for n in defs)
            return Problem(f"{name} is defined or assigned more than once (lines {lines})",
                           expected=f"class {name} as given, once", actual=f"lines {lines}")
        if not isinstance(defs[0], ast.ClassDef) or ast.dump(defs[0]) != dump:
            return Problem(f"class {name} (line {defs[0].lineno}) differs from the given code",
                           expected=f"class {name} exactly as the assignment gives it",
                           actual=_difference(wanted.sources[name], ast.unparse(defs[0])))
    found = _imports(tree)
    for name, (module, imported) in wanted.imports.items():
        what = f"import {module}" if imported is None else f"from {module} import {imported}"
        if found.get(name, [None])[-1] != (module, imported):
            return Problem(f"the given import {what!r} is missing at module level",
                           expected=what, actual="no module-level import binds " + repr(name))
        rebinds = [n.lineno for n in tree.body if name in _bound_names(n)]
        if rebinds:
            return Problem(f"{name}, which the given code imports, is assigned again at module "
                           f"level (line {rebinds[0]})", expected=what,
                           actual=f"line {rebinds[0]} rebinds {name}")
    return None
