"""Reports, one format a module: of one run (terminal, JSON, JUnit XML) and of a graded class
(CSV, HTML). Each module states its rules at its top.
"""

from conformance.reports._csv import write as write_csv
from conformance.reports._gradescope import to_results as gradescope_results
from conformance.reports._gradescope import write as write_gradescope
from conformance.reports._json import from_dict, report_schema, report_validator, to_dict
from conformance.reports._json import write as write_json
from conformance.reports._junit import write as write_junit
from conformance.reports._terminal import render as render_terminal
from conformance.reports._terminal import summary_line

__all__ = [
    "from_dict",
    "gradescope_results",
    "render_terminal",
    "report_schema",
    "report_validator",
    "summary_line",
    "to_dict",
    "write_csv",
    "write_gradescope",
    "write_json",
    "write_junit",
]
