"""`conformance batch ROSTER`: a class graded in one go. The roster is read and checked first
(`_roster`), then every line is one `conformance run`, forked from a warm fork server (`_preload`),
in parallel and time-bounded (`_grading`); the reports are those of `conformance.reports`.
"""

from conformance.batch._grading import (
    BatchOptions,
    grade_all,
    grade_line,
    run_argv,
    run_batch,
    summary_table,
    validate,
    write_fallback_junit,
    write_results,
)
from conformance.batch._roster import RosterError, read_roster

__all__ = [
    "BatchOptions",
    "RosterError",
    "grade_all",
    "grade_line",
    "read_roster",
    "run_argv",
    "run_batch",
    "summary_table",
    "validate",
    "write_fallback_junit",
    "write_results",
]
