"""conformance: executable specs and conformance suites for async client-server assignments.

`conformance run SPEC` checks a server (by URL or start command) or a program against the
numbered requirements in `openapi/SPEC.requirements.yaml`; this package is that command's engine.

Rules: the public names below are imported when first used, not with the package: a light
module (a spec's options, the spec loader) can be imported without pytest, schemathesis and
httpx, which the programs our twins run would otherwise pay for at every start.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public name -> the private module that defines it.
_WHERE = {
    "CheckFailure": "_checks", "CheckFailures": "_checks", "NotRun": "_checks",
    "NotImplementedFeature": "_checks",
    "expect_equal": "_checks", "expect_json_member": "_checks", "expect_status": "_checks",
    "raise_all": "_checks", "requirement": "_checks",
    "Exchange": "_http", "Http": "_http",
    "Option": "_options", "RunOptions": "_options", "SpecOptions": "_options",
    "option": "_options",
    "Failure": "_result", "RequirementResult": "_result", "RunResult": "_result",
    "run_spec": "_run",
    "Requirement": "_spec", "Spec": "_spec", "SpecError": "_spec", "load_spec": "_spec",
    "spec_names": "_spec",
    "Completed": "_target", "ProgramTarget": "_target", "ServerTarget": "_target",
    "TargetError": "_target",
}

if TYPE_CHECKING:
    from conformance._checks import (
        CheckFailure,
        CheckFailures,
        NotImplementedFeature,
        NotRun,
        expect_equal,
        expect_json_member,
        expect_status,
        raise_all,
        requirement,
    )
    from conformance._http import Exchange, Http
    from conformance._options import Option, RunOptions, SpecOptions, option
    from conformance._result import Failure, RequirementResult, RunResult
    from conformance._run import run_spec
    from conformance._spec import Requirement, Spec, SpecError, load_spec, spec_names
    from conformance._target import Completed, ProgramTarget, ServerTarget, TargetError


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        value = getattr(importlib.import_module(f"conformance.{_WHERE[name]}"), name)
        globals()[name] = value  # looked up once
        return value
    raise AttributeError(f"module 'conformance' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])


__all__ = [
    "CheckFailure",
    "CheckFailures",
    "Completed",
    "Exchange",
    "Failure",
    "Http",
    "NotImplementedFeature",
    "NotRun",
    "Option",
    "ProgramTarget",
    "Requirement",
    "RequirementResult",
    "RunOptions",
    "RunResult",
    "ServerTarget",
    "Spec",
    "SpecError",
    "SpecOptions",
    "TargetError",
    "__version__",
    "expect_equal",
    "expect_json_member",
    "expect_status",
    "load_spec",
    "option",
    "raise_all",
    "requirement",
    "run_spec",
    "spec_names",
]
