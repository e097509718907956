"""The verdict rules, on a toy suite: order follows needs, a failed need leaves its dependents
"not run", a check that reports several requirements fails only those it names, and a check
that breaks (a bug of ours) is never counted against the target; an optional feature found
absent is "not implemented" (and so is what needs it), a required one absent fails; a bonus
never gates."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conformance._result import RequirementResult, RunResult
from conformance._spec import Requirement, Spec

TOY_SUITE = '''
from conformance import CheckFailure, CheckFailures, requirement

ORDER = []

@requirement("T-02")
def test_declared_first_but_needs_t01():
    ORDER.append("T-02")

@requirement("T-01")
def test_fails():
    ORDER.append("T-01")
    raise CheckFailure("nope", expected="a", actual="b", reproduce="curl x")

@requirement("T-03")
def test_breaks():
    return {}["no such key"]

@requirement("T-04", "T-05")
def test_reports_several():
    raise CheckFailures([CheckFailure("only T-04", requirement="T-04")])

@requirement("T-06", "T-07")
def test_stops_at_first():
    raise CheckFailure("T-06 broke", requirement="T-06")

@requirement("T-08")
def test_passes():
    pass
'''

DRIVER = '''
import json, sys
from pathlib import Path
from conformance._options import RunOptions
from conformance._plugin import ConformancePlugin
from conformance._run import _pytest
from conformance._spec import Requirement, Spec
from conformance._suites import Suite
from conformance._target import ServerTarget

reqs = [Requirement(f"T-0{i}", "MUST", f"statement {i}", "source") for i in range(1, 9)]
reqs[1] = Requirement("T-02", "MUST", "statement 2", "source", needs=("T-01",))
spec = Spec(name="toy", title="toy", kind="http-server", seed="000", section="toy",
            requirements=tuple(reqs), reference_command=("none",))
plugin = ConformancePlugin(spec, ServerTarget("http://127.0.0.1:9/", "toy"), RunOptions())
code, _ = _pytest(Suite((Path(sys.argv[1]),), ()), plugin)
print(json.dumps({"code": code, "errors": plugin.errors,
                  "verdicts": {r.requirement.id: [r.verdict, r.reason] for r in plugin.results()}}))
'''


def _run_toy(tmp_path: Path, suite_text: str = TOY_SUITE, driver_text: str = DRIVER) -> dict:
    suite = tmp_path / "toy_suite.py"
    suite.write_text(suite_text)
    driver = tmp_path / "driver.py"
    driver.write_text(driver_text)
    done = subprocess.run([sys.executable, str(driver), str(suite)], capture_output=True,
                          text=True, timeout=120, cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_verdict_rules_on_a_toy_suite(tmp_path: Path) -> None:
    out = _run_toy(tmp_path)
    v = out["verdicts"]
    assert v["T-01"][0] == "fail"
    assert v["T-02"] == ["not_run", "needs T-01, which failed: nope"]
    assert v["T-03"][0] == "not_run" and "the check itself broke" in v["T-03"][1]
    assert "KeyError" in out["errors"][0]
    assert v["T-04"][0] == "fail" and v["T-05"][0] == "pass"
    assert v["T-06"][0] == "fail"
    assert v["T-07"] == ["not_run", "its check stopped at a failure of T-06"]
    assert v["T-08"][0] == "pass"


OPTIONAL_SUITE = '''
from conformance import CheckFailure, CheckFailures, NotImplementedFeature, requirement

@requirement("O-01")
def test_may_absent():
    raise NotImplementedFeature("no such route", expected="a route", actual="404")

@requirement("O-02")
def test_must_absent():
    raise NotImplementedFeature("no such route", expected="a route", actual="404")

@requirement("O-03")
def test_bonus_absent():
    raise NotImplementedFeature("no fightmany")

@requirement("O-04")
def test_bonus_needs_the_absent_one():
    pass

@requirement("O-05")
def test_may_there_but_wrong():
    raise CheckFailure("wrong count", expected="1", actual="2")

@requirement("O-06")
def test_should_needs_the_absent_may():
    pass

@requirement("O-07", "O-08")
def test_one_absent_one_wrong():
    raise CheckFailures([NotImplementedFeature("absent", requirement="O-07"),
                         CheckFailure("wrong", requirement="O-08")])
'''

OPTIONAL_DRIVER = '''
import json, sys
from pathlib import Path
from conformance._options import RunOptions
from conformance._plugin import ConformancePlugin
from conformance._run import _pytest
from conformance._spec import Requirement, Spec
from conformance._suites import Suite
from conformance._target import ServerTarget

reqs = (Requirement("O-01", "MAY", "s", "s"), Requirement("O-02", "MUST", "s", "s"),
        Requirement("O-03", "MUST", "s", "s", bonus=True),
        Requirement("O-04", "MUST", "s", "s", needs=("O-03",), bonus=True),
        Requirement("O-05", "MAY", "s", "s"),
        Requirement("O-06", "SHOULD", "s", "s", needs=("O-01",)),
        Requirement("O-07", "MAY", "s", "s"), Requirement("O-08", "MUST", "s", "s"))
spec = Spec(name="toy", title="toy", kind="http-server", seed="000", section="toy",
            requirements=reqs, reference_command=("none",))
plugin = ConformancePlugin(spec, ServerTarget("http://127.0.0.1:9/", "toy"), RunOptions())
code, _ = _pytest(Suite((Path(sys.argv[1]),), ()), plugin)
print(json.dumps({"errors": plugin.errors,
                  "verdicts": {r.requirement.id: [r.verdict, r.reason, len(r.failures)]
                               for r in plugin.results()}}))
'''


def test_absent_is_not_implemented_when_optional_and_a_failure_when_required(
        tmp_path: Path) -> None:
    out = _run_toy(tmp_path, OPTIONAL_SUITE, OPTIONAL_DRIVER)
    v = out["verdicts"]
    assert not out["errors"]
    assert v["O-01"] == ["not_implemented", "no such route", 0]
    assert v["O-02"] == ["fail", "no such route", 1]  # a MUST: absent is a failure
    assert v["O-03"] == ["not_implemented", "no fightmany", 0]
    assert v["O-04"] == ["not_implemented", "needs O-03, which is not implemented: no fightmany",
                         0]
    assert v["O-05"] == ["fail", "wrong count", 1]  # there but wrong: a failure, MAY or not
    # A required requirement cannot be "not implemented": what it needs is, so it is not run.
    assert v["O-06"] == ["not_run", "needs O-01, which is not implemented: no such route", 0]
    assert v["O-07"] == ["not_implemented", "absent", 0]
    assert v["O-08"] == ["fail", "wrong", 1]


def _result(level: str, verdict: str, strict: bool = False, error: str = "",
            bonus: bool = False) -> RunResult:
    spec = Spec(name="toy", title="toy", kind="http-server", seed="000", section="toy",
                requirements=(Requirement("T-01", level, "s", "s",  # type: ignore[arg-type]
                                          bonus=bonus),),
                reference_command=("none",))
    return RunResult(spec, "t", strict, 0, "now", 0.0,
                     [RequirementResult(spec.requirements[0], verdict)],  # type: ignore[arg-type]
                     error=error)


def test_exit_codes_follow_levels_and_strict() -> None:
    assert _result("MUST", "fail").exit_code == 1
    assert _result("MUST", "not_run").exit_code == 1
    assert _result("MUST", "pass").exit_code == 0
    assert _result("SHOULD", "fail").exit_code == 0
    assert _result("SHOULD", "fail", strict=True).exit_code == 1
    assert _result("MAY", "fail", strict=True).exit_code == 0
    assert _result("MUST", "pass", error="suite broke").exit_code == 3


def test_a_bonus_never_gates_and_not_implemented_never_does() -> None:
    for strict in (False, True):
        assert _result("MUST", "fail", strict=strict, bonus=True).exit_code == 0
        assert _result("MUST", "not_run", strict=strict, bonus=True).exit_code == 0
        assert _result("SHOULD", "fail", strict=strict, bonus=True).exit_code == 0
        assert _result("MAY", "not_implemented", strict=strict).exit_code == 0
        assert _result("MUST", "not_implemented", strict=strict, bonus=True).exit_code == 0
    assert not _result("MUST", "fail", bonus=True).results[0].gating(strict=True)
