"""GitHub Classroom: `conformance classroom SPEC` writes the template repository's
`.github/workflows/classroom.yml`, one grader step per requirement (or per level) worth its points.

Rules: the workflow is GitHub's own autograding template (push and repository_dispatch, not for
Classroom's bot, checks: write): set-up steps (checkout, Python, the kit), then one
`autograding-command-grader` step per scored requirement, each running
`conformance run SPEC --only ID --command CMD`, whose exit code is 0 exactly when that
requirement passed, then the reporter naming every grader step. Points are
`conformance._grades.points` (weights over MUST and SHOULD, adding up to --points); a
requirement whose share rounds to 0 gets no step (the header says so); MAY gets none; a bonus's
requirements get steps of their own only when --bonus-points is given. A SHOULD's step runs
with --strict, since a run's exit code counts a SHOULD only then; a bonus never moves the exit
code, so a bonus step reads the verdict from the run's JSON report (`python -m
conformance.graders._classroom passed FILE ID...`). The YAML is dumped from data, never from a
template, so its quoting is PyYAML's.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from conformance import __version__
from conformance._arguments import UsageError, word_type
from conformance._grades import points
from conformance._options import positive_int
from conformance._result import EXIT_OK
from conformance._spec import Requirement, Spec, load_spec

Group = Literal["requirement", "level"]
KIT_PACKAGE = "assignments-conformance-kit"
CHECKOUT = "actions/checkout@v4"
SETUP_PYTHON = "actions/setup-python@v5"
COMMAND_GRADER = "classroom-resources/autograding-command-grader@v1"
REPORTER = "classroom-resources/autograding-grading-reporter@v1"
DEFAULT_OUT = Path(".github/workflows/classroom.yml")


@dataclass(frozen=True)
class GraderStep:
    """One grader step: the requirements it judges, what it is worth, and how it runs."""

    id: str  # the step id: lowercase letters, digits and dashes, unique in the workflow
    name: str  # the test's name, as the student sees it
    requirements: tuple[str, ...]
    level: str  # "MUST", "SHOULD", or "bonus"
    points: int
    command: str  # the shell line the grader runs


def default_command(spec: Spec) -> str:
    """Our guess at how a student starts their solution: `python FILE`, FILE being the name of
    the reference's file (`reference/uptime.py` -> `python uptime.py`)."""
    for word in spec.reference_command:
        if word.startswith("{reference}/"):
            return shlex.join(["python", Path(word.removeprefix("{reference}/")).name])
    raise ValueError(f"{spec.name}: its reference command names no file of reference/; "
                     "give --command")


def default_kit() -> str:
    """The kit as installed here: its package name and version, for `pip install`."""
    return f"{KIT_PACKAGE}=={__version__}"


def step_id(text: str) -> str:
    """A step id from a requirement id or a level: lowercase, `[a-z0-9-]` only."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "step"


def _short(text: str, width: int = 70) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 3].rstrip() + "..."


def _run_line(spec: Spec, ids: Sequence[str], command: str, *, strict: bool,
              run_args: Sequence[str], report: str | None = None) -> str:
    words = ["conformance", "run", spec.name, "--only", *ids, "--command", command]
    if strict:
        words.append("--strict")
    words += run_args
    if report is None:
        return shlex.join(words)
    # A bonus never moves a run's exit code: its verdicts are read from the run's report.
    check = ["python", "-m", "conformance.graders._classroom", "passed", report, *ids]
    return f"{shlex.join([*words, '--json', report])}; {shlex.join(check)}"


def grader_steps(spec: Spec, *, command: str, total: int = 100, bonus_points: int = 0,
                 group: Group = "requirement",
                 run_args: Sequence[str] = ()) -> tuple[list[GraderStep], list[str]]:
    """The grader steps for SPEC, in spec order (a bonus's after the others), and the ids of
    the scored requirements left without a step because their points rounded to 0."""
    shares = points(spec, total)
    bonus_shares = points(spec, bonus_points, bonus=True) if bonus_points > 0 else {}
    scored = [r for r in spec.requirements if r.id in shares]
    bonus = [r for r in spec.requirements if r.id in bonus_shares]
    worth = {**shares, **bonus_shares}
    skipped = [r.id for r in scored + bonus if worth[r.id] == 0]
    parts: list[tuple[str, list[Requirement]]] = [
        ("MUST", [r for r in scored if r.level == "MUST" and worth[r.id]]),
        ("SHOULD", [r for r in scored if r.level == "SHOULD" and worth[r.id]]),
        ("bonus", [r for r in bonus if worth[r.id]]),
    ]
    steps: list[GraderStep] = []
    for level, reqs in parts:
        if not reqs:
            continue
        batches = [reqs] if group == "level" else [[r] for r in reqs]
        for batch in batches:
            ids = tuple(r.id for r in batch)
            if group == "level":
                sid = step_id(level)
                name = (f"{spec.name} {level} requirements" if level != "bonus"
                        else f"{spec.name} bonus") + f" ({', '.join(ids)})"
            else:
                r = batch[0]
                sid = step_id(r.id)
                name = f"{r.id} {'bonus ' if r.bonus else ''}{r.level}: {_short(r.statement)}"
            report = f"/tmp/conformance-{sid}.json" if level == "bonus" else None
            line = _run_line(spec, ids, command, strict=level == "SHOULD", run_args=run_args,
                             report=report)
            steps.append(GraderStep(sid, name, ids, level, sum(worth[i] for i in ids), line))
    seen: set[str] = set()
    for s in steps:  # ids of a spec are unique, and so are levels: a clash is a bug here
        if s.id in seen:
            raise AssertionError(f"two grader steps would have the id {s.id}")
        seen.add(s.id)
    return steps, skipped


def workflow(spec: Spec, *, command: str | None = None, total: int = 100,
             bonus_points: int = 0, group: Group = "requirement", kit: str | None = None,
             timeout: int = 10, run_args: Sequence[str] = (),
             regenerate: str = "") -> str:
    """The text of `.github/workflows/classroom.yml` grading SPEC in GitHub Classroom: a comment
    (the spec, the steps, how the points were shared, how to regenerate it), then the workflow.

    `command` is how the student's solution starts (default: `default_command`), `total` the
    points shared by the MUST and SHOULD requirements, `bonus_points` those of the bonus's (0:
    no bonus steps), `kit` what `pip install` installs (default: `default_kit`), `timeout` each
    step's limit in minutes, `run_args` more `conformance run` options for every step."""
    guessed = command is None
    command = command if command is not None else default_command(spec)
    kit = kit or default_kit()
    steps, skipped = grader_steps(spec, command=command, total=total,
                                  bonus_points=bonus_points, group=group, run_args=run_args)
    graders: list[dict[str, Any]] = [{
        "name": s.name,
        "id": s.id,
        "uses": COMMAND_GRADER,
        # No setup-command: the kit is installed once, before the first grader.
        "with": {"test-name": s.name, "command": s.command, "timeout": timeout,
                 "max-score": s.points},
    } for s in steps]
    data: dict[str, Any] = {
        "name": f"Autograding Tests ({spec.name})",
        "on": ["push", "repository_dispatch"],
        "permissions": {"checks": "write", "actions": "read", "contents": "read"},
        "jobs": {"run-autograding-tests": {
            "runs-on": "ubuntu-latest",
            "if": "github.actor != 'github-classroom[bot]'",
            "steps": [
                {"name": "Checkout code", "uses": CHECKOUT},
                {"name": "Set up Python", "uses": SETUP_PYTHON,
                 "with": {"python-version": "3.12"}},
                # Ubuntu 24.04 refuses unprivileged user namespaces, which the kit uses to give
                # each run a network of its own; without them it shares the runner's network.
                {"name": "Let the kit make network namespaces",
                 "run": "sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0 || true"},
                {"name": "Install the conformance kit",
                 "run": shlex.join(["python", "-m", "pip", "install", kit])},
                *graders,
                {"name": "Autograding Reporter", "uses": REPORTER,
                 "env": {f"{s.id.upper()}_RESULTS": f"${{{{steps.{s.id}.outputs.result}}}}"
                         for s in steps},
                 "with": {"runners": ",".join(s.id for s in steps)}},
            ],
        }},
    }
    body = yaml.safe_dump(data, sort_keys=False, width=1000, allow_unicode=True)
    return _header(spec, steps, skipped, total=total, bonus_points=bonus_points, group=group,
                   command=command, guessed=guessed, regenerate=regenerate) + body


def _header(spec: Spec, steps: list[GraderStep], skipped: list[str], *, total: int,
            bonus_points: int, group: Group, command: str, guessed: bool,
            regenerate: str) -> str:
    counts = {level: sum(1 for s in steps if s.level == level) for level in
              ("MUST", "SHOULD", "bonus")}
    mays = [r.id for r in spec.requirements if r.level == "MAY" and not r.bonus]
    has_bonus = any(r.bonus for r in spec.requirements)
    lines = [
        f"GitHub Classroom autograding for spec {spec.name}: {spec.title}.",
        f"{len(steps)} grader steps ({counts['MUST']} MUST, {counts['SHOULD']} SHOULD, "
        f"{counts['bonus']} bonus), one per {group}; each runs `conformance run "
        f"{spec.name} --only ...` (what a requirement needs runs too) and scores its points "
        "when it exits 0, that is when its requirements passed (a SHOULD's step runs with "
        "--strict" + ("; a bonus step reads the run's JSON report" if counts["bonus"] else "")
        + ").",
        f"Points: {total} shared by weight over the MUST and SHOULD requirements, whole "
        "points, the largest remainders rounded up (conformance/_grades.py `points`).",
    ]
    if skipped:
        lines.append(f"No step for {', '.join(skipped)}: its share of the points rounds to 0.")
    if mays:
        lines.append(f"MAY requirements ({', '.join(mays)}) are never scored: no step.")
    if has_bonus:
        lines.append(f"The bonus: {bonus_points} points apart, by weight over its requirements."
                     if bonus_points > 0 else
                     "The bonus has no step (give --bonus-points N to score it apart).")
    lines.append(f"The student's program starts with: {command}"
                 + (" (a guess from the reference's file name: give --command if the "
                    "assignment's differs)" if guessed else ""))
    if regenerate:
        lines.append(f"Regenerate with: {regenerate}")
    out: list[str] = []
    for line in lines:
        out += _wrap(line)
    return "".join(f"# {line}\n" if line else "#\n" for line in out) + "\n"


def _wrap(text: str, width: int = 96) -> list[str]:
    return textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False) or [""]


def write_workflow(text: str, out: Path | None) -> None:
    """Write the workflow to `out` (its folders made), or to stdout when `out` is None."""
    if out is None:
        sys.stdout.write(text)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The `conformance classroom` subcommand's parser."""
    counted = word_type(positive_int)
    classroom = sub.add_parser(
        "classroom", help="write a GitHub Classroom workflow grading a spec",
        description="Write .github/workflows/classroom.yml for an assignment's template "
                    "repository: one GitHub Classroom grader step per MUST and SHOULD "
                    "requirement of SPEC (or per level), worth its share of --points by "
                    "weight, each running `conformance run SPEC --only ID` on the student's "
                    "program, and the reporter step. MAY requirements get no step.")
    classroom.add_argument("spec", help="the spec id (see `conformance list`)")
    classroom.add_argument("--command", metavar="CMD",
                           help="how the student's program starts, as `conformance run "
                                "--command` takes it (default: python and the reference's "
                                "file name, e.g. 'python uptime.py')")
    classroom.add_argument("--points", type=counted, default=100, metavar="N",
                           help="points shared by weight over the MUST and SHOULD "
                                "requirements (%(default)s)")
    classroom.add_argument("--bonus-points", type=word_type(_whole), default=0, metavar="N",
                           help="points shared over the bonus's requirements, in steps of "
                                "their own (default 0: no bonus steps)")
    classroom.add_argument("--group", choices=("requirement", "level"), default="requirement",
                           help="one step per requirement, or one per level (all MUSTs, all "
                                "SHOULDs: for a spec whose run is long) (%(default)s)")
    classroom.add_argument("--kit", metavar="PACKAGE",
                           help="what the workflow pip-installs (default: "
                                f"{default_kit()}, the kit as installed here); pass "
                                "git+https://github.com/OWNER/REPO@TAG when the kit is not "
                                "on PyPI")
    classroom.add_argument("--timeout", type=counted, default=10, metavar="MIN",
                           help="minutes each step may take (%(default)s)")
    classroom.add_argument("--run-args", default="", metavar="ARGS",
                           help="more `conformance run` options for every step, as one "
                                "string, e.g. '--workdir . --startup-timeout 30'")
    classroom.add_argument("--out", default=str(DEFAULT_OUT), metavar="FILE",
                           help="where the workflow goes, folders made; '-' prints it "
                                "(%(default)s)")


def _whole(word: str) -> int:
    value = int(word)
    if value < 0:
        raise ValueError(f"{word} is negative")
    return value


def command(args: argparse.Namespace) -> int:
    """Run `conformance classroom` with its parsed arguments; the exit code."""
    spec = load_spec(args.spec)  # an unknown spec is a usage error naming the known ones
    try:
        run_args = shlex.split(args.run_args)
        text = workflow(spec, command=args.command, total=args.points,
                        bonus_points=args.bonus_points, group=args.group, kit=args.kit,
                        timeout=args.timeout, run_args=run_args,
                        regenerate=_regenerate(args))
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    out = None if args.out == "-" else Path(args.out)
    write_workflow(text, out)
    if out is not None:
        print(f"wrote {out}")
    return EXIT_OK


def _regenerate(args: argparse.Namespace) -> str:
    words = ["conformance", "classroom", args.spec]
    given = [("--command", args.command, None), ("--points", args.points, 100),
             ("--bonus-points", args.bonus_points, 0), ("--group", args.group, "requirement"),
             ("--kit", args.kit, None), ("--timeout", args.timeout, 10),
             ("--run-args", args.run_args, ""), ("--out", args.out, str(DEFAULT_OUT))]
    for flag, value, default in given:
        if value != default:
            words += [flag, str(value)]
    return shlex.join(words)


def passed(report: Path, ids: Sequence[str]) -> tuple[bool, str]:
    """Whether every one of `ids` passed in the JSON report of a run, and a line saying so."""
    try:
        data = json.loads(report.read_text(encoding="utf-8"))
        verdicts = {r["id"]: r["verdict"] for r in data["requirements"]}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return False, f"no readable report at {report} ({exc}): the run did not finish"
    missing = [i for i in ids if verdicts.get(i) != "pass"]
    if missing:
        return False, "not passed: " + ", ".join(
            f"{i} ({verdicts.get(i, 'not reported')})" for i in missing)
    return True, "passed: " + ", ".join(ids)


def main(argv: Sequence[str]) -> int:
    """`python -m conformance.graders._classroom passed FILE ID...`: exit 0 when every ID
    passed in the run's JSON report FILE, else 1 (a bonus step's verdict)."""
    if len(argv) < 3 or argv[0] != "passed":
        sys.stderr.write("usage: python -m conformance.graders._classroom passed FILE ID...\n")
        return 2
    ok, line = passed(Path(argv[1]), argv[2:])
    print(line)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
