"""reference/fight.py on its own: random fights obey every rule, the bonus fights n agents in
interleaved turns, and a bad argument is a usage error."""

from __future__ import annotations

import subprocess

import pytest

from conformance.specs.fight import _rules as _fight
from tests.conftest import PY, ROOT

FIGHT = ROOT / "reference" / "fight.py"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PY, str(FIGHT), *args], capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("attempt", range(5))
def test_random_fight_obeys_every_rule(attempt: int) -> None:
    done = run()
    assert done.returncode == 0 and done.stderr == ""
    printed = _fight.parse(done.stdout)
    assert _fight.judge_format(printed) is None
    for judge in (_fight.judge_answers, _fight.judge_health, _fight.judge_stop):
        assert judge(printed.turns) is None
    assert _fight.judge_win(printed) is None and _fight.judge_extra(printed) is None


def test_many_agents_interleave_and_all_reach_zero() -> None:
    done = run("4")
    assert done.returncode == 0
    printed = _fight.parse(done.stdout, many=True)
    assert _fight.judge_format(printed, many=True) is None
    agents = printed.by_agent()
    assert sorted(agents) == [1, 2, 3, 4]
    for turns in agents.values():
        assert _fight.judge_health(turns) is None and _fight.judge_stop(turns) is None
    assert _fight.judge_win(printed) is None
    assert _fight.judge_interleaving(printed) is None


@pytest.mark.parametrize("args", [("zero",), ("0",), ("1", "2")])
def test_bad_argument_is_a_usage_error(args: tuple[str, ...]) -> None:
    done = run(*args)
    assert done.returncode == 2 and "usage:" in done.stderr and done.stdout == ""
