"""The rules of `fight` as data and small judges over a fight's printed lines.

Rules: lines are compared with trailing spaces stripped and nothing else forgiven; a line that
starts with "Agent" and names an action or the health is a turn line and must match the format
exactly; every other line but `Neo wins!` is extra output. A turn line off the format is still
read for the other rules when it names, in order, the agent's action, Neo's action (each one of
the four, however spelt: `HIGH_KICK`, `highkick`) and then the health: one broken rule must not
hide the others. Each judge returns the first `Problem` it sees, or None, so a check can say
expected against actual for one line (and, for a line off the format, the part of it that
differs).
"""

from __future__ import annotations

import ast
import copy
import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

ANSWER = {"HIGHKICK": "HIGHBLOCK", "LOWKICK": "LOWBLOCK",
          "HIGHBLOCK": "LOWKICK", "LOWBLOCK": "HIGHKICK"}
BLOCKS = frozenset({"HIGHBLOCK", "LOWBLOCK"})
START_HEALTH = 5
WIN = "Neo wins!"
_ONE = re.compile(r"Agent: Action\.(?P<action>\w+), Neo: Action\.(?P<neo>\w+), "
                  r"Agent Health: (?P<health>-?\d+)")
_MANY = re.compile(r"Agent (?P<k>-?\d+): Action\.(?P<action>\w+), Neo: Action\.(?P<neo>\w+), "
                   r"Agent (?P<k2>-?\d+) Health: (?P<health>-?\d+)")
# An action however a script spells it: HIGHKICK, HIGH_KICK, high kick, HighKick.
_SPELT = re.compile(r"(?<![A-Za-z])(HIGH|LOW)[ _-]?(KICK|BLOCK)(?![A-Za-z])", re.IGNORECASE)
_NUMBER = re.compile(r"-?\d+")
_NUMBERED = re.compile(r"\s*agent\s*#?\s*(-?\d+)", re.IGNORECASE)
# Words, runs of spaces and single signs: the parts a line off the format is compared by.
_TOKEN = re.compile(r"\w+|\s+|[^\w\s]")


@dataclass(frozen=True)
class Problem:
    """What a judge found wrong: a message, and expected against actual."""

    message: str
    expected: str
    actual: str


@dataclass(frozen=True)
class Turn:
    """One turn line: where it is, whose turn (None in fight()), and what it says.

    `exact` is False for a line off the format that could still be read; `after_gap` is True
    when a turn line that could not be read at all came between it and the turn before, so the
    health it starts from is not known."""

    line: int
    text: str
    agent: int | None
    action: str
    neo: str
    health: int
    exact: bool = True
    after_gap: bool = False


@dataclass
class Printed:
    """A fight's output sorted into turn lines, malformed turn lines, wins and the rest.

    `turns` are every turn line that could be read, in the format or not; `malformed` every
    line meant as a turn line that is not exactly in the format (read or not); `near_wins` the
    lines that mean `Neo wins!` but are spelt otherwise."""

    rows: list[tuple[int, str]]
    turns: list[Turn] = field(default_factory=list)
    malformed: list[tuple[int, str]] = field(default_factory=list)
    wins: list[int] = field(default_factory=list)
    near_wins: list[tuple[int, str]] = field(default_factory=list)
    extra: list[tuple[int, str]] = field(default_factory=list)

    @property
    def lines(self) -> list[str]:
        """The lines, trailing spaces stripped."""
        return [line for _, line in self.rows]

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


def _canon(spelt: str) -> str:
    """The given action a spelling names: "high_kick" -> "HIGHKICK"."""
    return re.sub(r"[ _-]", "", spelt).upper()


def meant_as_turn(line: str) -> bool:
    """Whether a line is meant as a turn line: it starts with "Agent" and names an action or
    the health ("Agent defeated!" is not one)."""
    low = line.lstrip().lower()
    return low.startswith("agent") and (
        "action" in low or "health" in low or _SPELT.search(line) is not None)


def numbered(line: str) -> bool:
    """Whether a turn line names its agent by number, as fightmany's lines do."""
    return _NUMBERED.match(line) is not None


def _is_win_attempt(line: str) -> bool:
    """A line that means `Neo wins!` however it is spelt or punctuated."""
    return re.sub(r"[^a-z]", "", line.lower()) == "neowins"


def read_turn(number: int, line: str, *, many: bool) -> Turn | None:
    """The turn a line says: exactly in the format, or off it but still readable (the agent's
    action, then Neo's, then the health); None when it cannot be read as a turn."""
    pattern = _MANY if many else _ONE
    match = pattern.fullmatch(line)
    if match and match["action"] in ANSWER and match["neo"] in ANSWER and (
            not many or match["k"] == match["k2"]):
        agent = int(match["k"]) if many else None
        return Turn(number, line, agent, match["action"], match["neo"], int(match["health"]))
    if not meant_as_turn(line):
        return None
    actions = list(_SPELT.finditer(line))
    if len(actions) < 2:
        return None
    healths = _NUMBER.findall(line[actions[1].end():])
    if not healths:
        return None
    agent_number = _NUMBERED.match(line)
    agent = int(agent_number[1]) if agent_number else None
    return Turn(number, line, agent, _canon(actions[0][0]), _canon(actions[1][0]),
                int(healths[-1]), exact=False)


def _sort(rows: list[tuple[int, str]], many: bool) -> Printed:
    printed = Printed(rows)
    gap = False
    for number, line in rows:
        if line == WIN:
            printed.wins.append(number)
            continue
        turn = read_turn(number, line, many=many)
        if turn is not None:
            if not turn.exact:
                printed.malformed.append((number, line))
            printed.turns.append(replace(turn, after_gap=gap))
            gap = False
        elif meant_as_turn(line):
            printed.malformed.append((number, line))
            gap = True
        elif _is_win_attempt(line):
            printed.near_wins.append((number, line))
        else:
            # "Agent defeated!" and the like: only extra output (FIGHT-09).
            printed.extra.append((number, line))
    return printed


def parse(text: str, *, many: bool = False) -> Printed:
    """Sort printed text into turns (of fightmany's numbered agents when `many`) and the rest."""
    return _sort([(n, line.rstrip()) for n, line in enumerate(text.splitlines(), 1)], many)


def parse_script(text: str) -> list[tuple[bool, Printed]]:
    """A script's own output, which may hold fight()'s lines and fightmany's (a main that runs
    both): split where the turn lines change from unnumbered to numbered or back, each part
    sorted by its own format (True for fightmany's). A line that is no turn line belongs with
    the turn line before it (so `Neo wins!` with the fight it ends), or with the first part."""
    parts: list[tuple[bool, list[tuple[int, str]]]] = []
    waiting: list[tuple[int, str]] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip()
        if not meant_as_turn(line):
            (parts[-1][1] if parts else waiting).append((number, line))
            continue
        kind = numbered(line)
        if not parts or parts[-1][0] != kind:
            parts.append((kind, waiting))
            waiting = []
        parts[-1][1].append((number, line))
    if waiting or not parts:
        parts.append((False, waiting))
    return [(kind, _sort(rows, kind)) for kind, rows in parts]


def _quote(number: int, line: str) -> str:
    return f"line {number}: {line!r}"


def in_format(turn: Turn, many: bool) -> str:
    """The line `turn` would be, said in the format."""
    if many:
        k = "K" if turn.agent is None else str(turn.agent)
        return (f"Agent {k}: Action.{turn.action}, Neo: Action.{turn.neo}, "
                f"Agent {k} Health: {turn.health}")
    return f"Agent: Action.{turn.action}, Neo: Action.{turn.neo}, Agent Health: {turn.health}"


def differing_part(expected: str, actual: str, of: str = "the format") -> Problem | None:
    """The first part where `actual` differs from `expected`, compared word by word: a message
    naming it (an action not among the given four is said so), and that part expected against
    actual; None when they are the same."""
    want, got = _TOKEN.findall(expected), _TOKEN.findall(actual)
    edits = [op for op in difflib.SequenceMatcher(None, want, got, autojunk=False).get_opcodes()
             if op[0] != "equal"]
    if not edits:
        return None
    tag, i1, i2, j1, j2 = edits[0]
    part, instead = "".join(want[i1:i2]), "".join(got[j1:j2])
    # What comes before it, back to the second word ('Agent 1: ', 'Action.HIGHKICK'), tells
    # where in the line it is.
    start, words = i1, 0
    while start > 0 and words < 2:
        start -= 1
        words += want[start][0].isalnum() or want[start][0] == "_"
    before = "".join(want[start:i1])
    where = f"after {before!r}" if before else "at its start"
    more = (f" (and {len(edits) - 1} more difference{'s' * (len(edits) > 2)})"
            if len(edits) > 1 else "")
    spelt = _SPELT.fullmatch(instead.strip())
    if tag == "replace" and spelt and part in ANSWER:
        message = (f"{instead.strip()!r} is not one of the given actions "
                   f"({', '.join(ANSWER)}): the given name is {part!r}")
    elif tag == "replace":
        message = f"it has {instead!r} where {of} has {part!r}"
    elif tag == "delete":
        message = f"it lacks {part!r} {where}"
    else:
        message = f"it has {instead!r} {where}, which {of} does not"
    return Problem(message + more, expected=repr(part) if part else "nothing there",
                   actual=repr(instead) if instead else "nothing")


def _format_problem(number: int, line: str, many: bool) -> Problem:
    """What is off in one line meant as a turn line."""
    head = f"line {number} starts like a turn line but is not in the format {turn_format(many)!r}"
    turn = read_turn(number, line, many=many)
    if turn is not None:
        wanted = in_format(turn, many)
        part = differing_part(wanted, line)
        if part is not None:
            return Problem(f"{head}: {part.message}",
                           expected=f"{part.expected} (the line in the format: {wanted!r})",
                           actual=f"{part.actual} in {_quote(number, line)}")
    actions = list(_SPELT.finditer(line))
    if not actions:
        what = "; it names none of the given actions"
    elif len(actions) < 2:
        what = "; it names only one of the given actions, not the agent's and then Neo's"
    else:
        what = "; it has no health (a number after both actions)"
    return Problem(f"{head} (with X and Y actions){what}", expected=turn_format(many),
                   actual=_quote(number, line))


def judge_format(printed: Printed, *, many: bool = False) -> Problem | None:
    """Every line meant as a turn line is in the format, and there is one."""
    if printed.malformed:
        number, line = printed.malformed[0]
        problem = _format_problem(number, line, many)
        more = len(printed.malformed) - 1
        if more:
            problem = Problem(f"{problem.message}; {more} more line{'s' * (more > 1)} "
                              "off the format", problem.expected, problem.actual)
        return problem
    if not printed.turns:
        shown = "; ".join(_quote(n, s) for n, s in printed.rows[:3]) or "nothing"
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
    """Health starts at 5 and drops by one exactly on the agent's blocks. After a turn line
    that could not be read, the health is taken as shown: that turn's action is not known."""
    health = START_HEALTH
    for i, t in enumerate(turns, 1):
        if t.after_gap:
            health = t.health
            continue
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
    if not printed.wins and printed.near_wins:
        number, line = printed.near_wins[0]
        part = differing_part(WIN, line, of=repr(WIN))
        assert part is not None
        return Problem(f"line {number} is not {WIN!r}: {part.message}",
                       expected=f"{part.expected} (the line {WIN!r})",
                       actual=f"{part.actual} in {_quote(number, line)}")
    if not printed.wins:
        tail = "; ".join(_quote(n, s) for n, s in printed.rows[-2:]) or "nothing"
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
    """Nothing is printed but turn lines and `Neo wins!` (a misspelt `Neo wins!` is FIGHT-08's
    to report, a turn line off the format FIGHT-04's)."""
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
# "Unmodified" is judged on what the code does: a change that cannot alter behaviour (type
# hints, docstrings, formatting, comments) passes with a note; a changed value, name, base,
# statement or method fails.


@dataclass(frozen=True)
class Given:
    """What the assignment hands out: its classes (as syntax trees, type hints and docstrings
    aside) and the names it imports."""

    classes: dict[str, str]
    sources: dict[str, str]  # each class as ast.unparse writes it, to show a difference
    imports: dict[str, tuple[str, str | None]]  # bound name -> (module, imported name or None)


class _Inert(ast.NodeTransformer):
    """Takes out of a syntax tree what cannot change what the code does: type hints
    (`annotations`) and docstrings (`docstrings`)."""

    def __init__(self, *, annotations: bool = True, docstrings: bool = True) -> None:
        self.annotations = annotations
        self.docstrings = docstrings

    def _body(self, body: list[ast.stmt]) -> list[ast.stmt]:
        first = body[0] if body else None
        if self.docstrings and isinstance(first, ast.Expr) and \
                isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
            return body[1:]
        return body

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        node.body = self._body(node.body)
        return self.generic_visit(node)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        node.body = self._body(node.body)
        if self.annotations:
            node.returns = None
        return self.generic_visit(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> ast.AST:
        node.body = self._body(node.body)
        if self.annotations:
            node.returns = None
        return self.generic_visit(node)

    def visit_arg(self, node: ast.arg) -> ast.AST:
        if self.annotations:
            node.annotation = None
        return self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.AST | None:
        if not self.annotations:
            return self.generic_visit(node)
        if node.value is None:
            return None  # `x: int` alone only annotates: nothing is bound
        # `self.health: int = health` binds as `self.health = health` does.
        bound = ast.copy_location(ast.Assign(targets=[node.target], value=node.value), node)
        return self.generic_visit(bound)


def _inert(node: ast.ClassDef, *, annotations: bool = True,
           docstrings: bool = True) -> ast.ClassDef:
    """A copy of a class's tree without its type hints and docstrings (or only one of them)."""
    out = _Inert(annotations=annotations, docstrings=docstrings).visit(copy.deepcopy(node))
    assert isinstance(out, ast.ClassDef)
    return out


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
    defs = [_inert(n) for n in tree.body if isinstance(n, ast.ClassDef)]
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
    """The given classes, unmodified (type hints and docstrings aside) and defined once; the
    given imports, at module level."""
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
        if not isinstance(defs[0], ast.ClassDef) or ast.dump(_inert(defs[0])) != dump:
            found = ast.unparse(_inert(defs[0])) if isinstance(defs[0], ast.ClassDef) else \
                ast.unparse(defs[0])
            return Problem(f"class {name} (line {defs[0].lineno}) differs from the given code",
                           expected=f"class {name} exactly as the assignment gives it "
                                    "(type hints and docstrings aside)",
                           actual=_difference(wanted.sources[name], found))
    found_imports = _imports(tree)
    for name, (module, imported) in wanted.imports.items():
        what = f"import {module}" if imported is None else f"from {module} import {imported}"
        if found_imports.get(name, [None])[-1] != (module, imported):
            return Problem(f"the given import {what!r} is missing at module level",
                           expected=what, actual="no module-level import binds " + repr(name))
        rebinds = [n.lineno for n in tree.body if name in _bound_names(n)]
        if rebinds:
            return Problem(f"{name}, which the given code imports, is assigned again at module "
                           f"level (line {rebinds[0]})", expected=what,
                           actual=f"line {rebinds[0]} rebinds {name}")
    return None


def harmless_changes(source: str, wanted: Given) -> list[str]:
    """Notes on the given classes that differ from the given code only in what cannot change
    what they do (type hints, docstrings); judge_given has passed them."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    notes = []
    for node in tree.body:
        if not isinstance(node, ast.ClassDef) or node.name not in wanted.classes:
            continue
        kinds = [kind for kind, hints in (("type hints", True), ("docstrings", False))
                 if ast.dump(_inert(node, annotations=hints, docstrings=not hints))
                 != ast.dump(node)]
        if kinds and ast.dump(_inert(node)) == wanted.classes[node.name]:
            notes.append(f"class {node.name} (line {node.lineno}) adds {' and '.join(kinds)} "
                         "to the given code, which cannot change what it does: accepted as "
                         "unmodified")
    return notes
