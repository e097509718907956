"""The JUnit XML report: a testsuite per spec, a testcase per requirement.

Rules: a gating failure is a <failure>; a requirement not run because of a gating need is an
<error>; a non-gating failure (a SHOULD without --strict, a MAY, a bonus's), a skipped
requirement and one not implemented are <skipped> with the reason, so a CI system's red and
green agree with the exit code. A bonus's test cases are of the class `SPEC.bonus.LEVEL`, and
the suite's `bonus` property says how the bonus went (`attempted, 2/3 passed`).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from conformance._result import WORDS, RequirementResult, RunResult


def _details(r: RequirementResult) -> str:
    blocks = []
    for f in r.failures:
        blocks.append("\n".join(line for line in (
            f.message, f"expected: {f.expected}" if f.expected else "",
            f"actual:   {f.actual}" if f.actual else "",
            f"reproduce: {f.reproduce}" if f.reproduce else "", f"check: {f.check}",
        ) if line))
    return "\n\n".join(blocks)


def _case(result: RunResult, r: RequirementResult) -> ET.Element:
    req = r.requirement
    group = f"bonus.{req.level}" if req.bonus else req.level
    case = ET.Element("testcase", classname=f"{result.spec.name}.{group}",
                      name=f"{req.id} {req.statement}", time="0")
    gating = r.gating(result.strict)
    if r.verdict == "fail" and gating:
        node = ET.SubElement(case, "failure", message=r.reason, type=req.level)
        node.text = _details(r)
    elif r.verdict == "not_run" and gating:
        ET.SubElement(case, "error", message=f"not run: {r.reason}", type="not_run")
    elif r.verdict == "fail":
        node = ET.SubElement(case, "skipped",
                             message=f"{req.label} not met (does not gate): {r.reason}")
        node.text = _details(r)
    elif r.verdict in ("not_run", "skipped", "not_implemented"):
        ET.SubElement(case, "skipped", message=f"{WORDS[r.verdict]}: {r.reason}")
    if r.notes:
        ET.SubElement(case, "system-out").text = "\n".join(r.notes)
    return case


def to_element(results: list[RunResult]) -> ET.Element:
    """The <testsuites> element for one or more runs."""
    root = ET.Element("testsuites", name="conformance")
    for result in results:
        cases = [_case(result, r) for r in result.results]
        suite = ET.SubElement(
            root, "testsuite", name=result.spec.name, tests=str(len(cases)),
            failures=str(sum(c.find("failure") is not None for c in cases)),
            errors=str(sum(c.find("error") is not None for c in cases)),
            skipped=str(sum(c.find("skipped") is not None for c in cases)),
            time=f"{result.duration_s:.3f}", timestamp=result.started_at,
        )
        props = ET.SubElement(suite, "properties")
        for name, value in (("target", result.target), ("strict", str(result.strict).lower()),
                            ("seed", str(result.seed)), ("rerun", result.rerun)):
            ET.SubElement(props, "property", name=name, value=value)
        bonus = result.bonus()
        if bonus is not None:
            ET.SubElement(props, "property", name="bonus", value=bonus.words())
        if result.error:
            ET.SubElement(suite, "system-err").text = result.error
        suite.extend(cases)
    return root


def write(results: list[RunResult], path: Path) -> None:
    """Write the JUnit XML file."""
    tree = ET.ElementTree(to_element(results))
    ET.indent(tree)
    tree.write(path, encoding="utf-8", xml_declaration=True)
