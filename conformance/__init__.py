"""conformance: executable specs and conformance suites for async client-server assignments.

`conformance run SPEC` checks a server (by URL or start command) or a program against the
numbered requirements in `openapi/SPEC.requirements.yaml`; this package is that command's engine.
"""

__version__ = "0.1.0"

from conformance._checks import (
    CheckFailure,
    CheckFailures,
    NotRun,
    expect_equal,
    expect_json_member,
    expect_status,
    requirement,
)
from conformance._http import Exchange, Http
from conformance._plugin import RunOptions
from conformance._result import Failure, RequirementResult, RunResult
from conformance._run import run_spec
from conformance._spec import Requirement, Spec, SpecError, load_spec, spec_names
from conformance._target import Completed, ProgramTarget, ServerTarget, TargetError

__all__ = [
    "CheckFailure",
    "CheckFailures",
    "Completed",
    "Exchange",
    "Failure",
    "Http",
    "NotRun",
    "ProgramTarget",
    "Requirement",
    "RequirementResult",
    "RunOptions",
    "RunResult",
    "ServerTarget",
    "Spec",
    "SpecError",
    "TargetError",
    "__version__",
    "expect_equal",
    "expect_json_member",
    "expect_status",
    "load_spec",
    "requirement",
    "run_spec",
    "spec_names",
]
