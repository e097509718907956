"""Run options as declarations: every flag, usage error, re-run line, report field and roster
check comes from the options the core and each spec declare, and nothing else."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from conformance import load_spec, spec_names
from conformance._arguments import UsageError, parse_run, spec_options
from conformance._options import (
    OptionError,
    RunOptions,
    SpecOptions,
    core_options,
    declared,
    given,
    option,
    positive,
)
from conformance._result import RequirementResult, RunResult
from conformance._run import reference_command, rerun_command
from conformance.batch import RosterError, read_roster
from conformance.reports import from_dict, report_validator, to_dict
from tests.conftest import PY, conformance


@dataclass(frozen=True)
class Toy(SpecOptions):
    """Options of every kind a spec may declare."""

    host: str = option("127.0.0.1", help="a host (%(default)s)")
    count: int | None = option(None, help="a count")
    scale: float = option(1.0, parse=positive, help="a scale")
    loud: bool = option(False, help="a switch")
    roles: dict[str, str] = option({}, flag="--role", help="ROLE=URL", roster=False)


def test_declarations_give_flags_types_defaults_and_schemas() -> None:
    by_name = {o.name: o for o in declared(Toy)}
    assert [o.flag for o in by_name.values()] == ["--host", "--count", "--scale", "--loud",
                                                  "--role"]
    assert by_name["count"].optional and by_name["count"].default is None
    assert by_name["count"].json_schema() == {"anyOf": [{"type": "integer"}, {"type": "null"}]}
    assert by_name["roles"].json_schema()["type"] == "object" and not by_name["roles"].roster
    assert by_name["roles"].parse("writer=http://x/") == ("writer", "http://x/")
    with pytest.raises(OptionError, match="not KEY=VALUE"):
        by_name["roles"].parse("writer")
    with pytest.raises(OptionError, match="must be above 0"):
        by_name["scale"].parse("0")
    with pytest.raises(OptionError, match="not a whole number"):
        by_name["count"].parse("three")
    assert by_name["roles"].words({"a": "1", "b": "2"}) == ["--role", "a=1", "--role", "b=2"]
    assert by_name["loud"].words(True) == ["--loud"] and by_name["loud"].words(False) == []
    assert by_name["scale"].words(0.5) == ["--scale", "0.5"]


def test_an_option_of_an_unsupported_type_is_refused_when_declared() -> None:
    @dataclass(frozen=True)
    class Bad(SpecOptions):
        words: tuple[str, ...] = option((), help="no tuples")

    with pytest.raises(TypeError, match="option type"):
        declared(Bad)


def test_every_flag_is_declared_once_and_the_specs_that_share_one_are_named() -> None:
    owned = spec_options()
    flags = [w.option.flag for w in owned] + [o.flag for o in core_options()]
    assert len(flags) == len(set(flags))
    specs_of = {w.option.flag: w.specs for w in owned}
    assert specs_of["--fixture-host"] == ("crawler", "crawler-cached")
    assert specs_of["--server-port"] == ("crawl-client", "screwdriver", "taskqueue-client")
    for name in spec_names():
        for o in load_spec(name).options:
            assert name in specs_of[o.flag]


def test_a_spec_gets_its_own_options_and_refuses_others() -> None:
    request = parse_run(["crawler-cached", "--cache-timeout", "3", "--fixture-host", "10.0.0.2",
                         "--seed", "4"])
    options = request.options["crawler-cached"]
    assert (options.seed, options.spec.cache_timeout, options.spec.fixture_host) == (  # type: ignore[attr-defined]
        4, 3.0, "10.0.0.2")
    with pytest.raises(UsageError, match=r"--redis-url is not an option of credentials \(it "
                                         r"has no options of its own\)"):
        parse_run(["credentials", "--redis-url", "redis://x"])
    with pytest.raises(UsageError, match=r"--time-scale is not an option of crawler \(its "
                                         r"options: --fixture-host\)"):
        parse_run(["crawler", "--time-scale", "2"])
    with pytest.raises(UsageError, match="--output-dir: folder '/no/such/folder' does not"):
        parse_run(["pipeline", "--output-dir", "/no/such/folder"])
    with pytest.raises(UsageError, match="argument --service: 'writer' is not ROLE=URL"):
        parse_run(["pipeline", "--service", "writer"])


def test_all_takes_each_option_for_the_specs_that_have_it() -> None:
    request = parse_run(["all", "--time-scale", "0.5", "--timeout", "2"])
    assert request.options["taskqueue"].spec.time_scale == 0.5  # type: ignore[attr-defined]
    assert all(o.timeout == 2.0 for o in request.options.values())
    assert request.given == {"time_scale", "timeout"}


def test_the_reference_command_is_filled_from_the_options() -> None:
    spec = load_spec("taskqueue")
    line = reference_command(spec, dataclasses.replace(spec.options_class(), time_scale=0.25))
    assert "--time-scale 0.25" in line and "{" not in line.replace("{port}", "")


def test_the_rerun_line_names_every_option_given_and_no_default() -> None:
    spec = load_spec("pipeline")
    options: RunOptions[SpecOptions] = RunOptions(
        seed=3, strict=True, spec=spec.options_class(services={"writer": "http://h:1/"}))
    assert given(options) == {"seed": 3, "strict": True}
    line = rerun_command(spec, "http://h:5000/", None, options)
    assert line == ("conformance run pipeline --base-url http://h:5000/ --seed 3 --strict "
                    "--service writer=http://h:1/")
    assert parse_run(line.split()[2:]).options["pipeline"] == options


def test_the_report_carries_the_options_and_reads_back_the_same(tmp_path: Path) -> None:
    spec = load_spec("crawler-cached")
    options: RunOptions[SpecOptions] = RunOptions(
        timeout=2.0, spec=spec.options_class(cache_timeout=2.0))
    result = RunResult(spec=spec, target="t", strict=False, seed=0, started_at="2026-01-01",
                       duration_s=1.0, options=options, rerun="r",
                       results=[RequirementResult(r, "pass") for r in spec.requirements])
    doc = to_dict(result)
    report_validator().validate(doc)
    assert doc["options"]["cache_timeout"] == 2.0 and doc["options"]["timeout"] == 2.0
    back = from_dict(json.loads(json.dumps(doc)))
    assert back.options == options
    assert to_dict(back) == doc


def test_a_run_reports_the_options_its_checks_were_given(tmp_path: Path) -> None:
    run = conformance("run", "crawler-cached", "--only", "CRAWL-01", "--fuzz-seconds", "1",
                      tmp=tmp_path)
    assert run.code == 0, run.stdout
    # Our reference is started with a cache timeout of 2 s, and the checks are told so.
    assert run.report["options"]["cache_timeout"] == 2
    assert run.report["rerun"] == "conformance run crawler-cached --fuzz-seconds 1"


def test_a_roster_line_is_checked_against_its_own_specs_options(tmp_path: Path) -> None:
    roster = tmp_path / "roster.csv"

    def line(spec: str, args: str) -> tuple[str, ...]:
        roster.write_text(f"student,spec,target,args\nAda,{spec},{PY} x.py,{args}\n")
        return next(e.args for e in read_roster(roster))

    assert line("crawler-cached", "--cache-timeout 2") == ("--cache-timeout", "2")
    with pytest.raises(RosterError, match="roster line 2: args: --redis-url is not an option "
                                          "of credentials"):
        line("credentials", "--redis-url redis://h")
    with pytest.raises(RosterError, match="roster line 2: args: --seed is set by the batch"):
        line("credentials", "--seed 3")
    with pytest.raises(RosterError, match="roster line 2: args: argument --time-scale: must "
                                          "be above 0"):
        line("taskqueue", "--time-scale 0")
