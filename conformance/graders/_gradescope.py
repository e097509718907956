"""`conformance gradescope SPEC --command CMD`: the autograder folder a teacher zips and uploads to
Gradescope (setup.sh, run_autograder, README.txt and, by default, the kit as a wheel in kit/).

Rules: run_autograder always exits 0 and always leaves results/results.json (Gradescope shows
nothing of a run that left none): the run's own (reports/_gradescope.py), or one failed test
saying why there is none. It grades the submission folder with `conformance run` as a teacher
would on their machine, so its verdicts are the kit's; `AUTOGRADER_ROOT` and `CONFORMANCE`
stand in for /autograder and the kit it installs, so a test can run it. Nothing here imports
more than the standard library at its top: every command line builds this parser.
"""

from __future__ import annotations

import argparse
import importlib.util
import shlex
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import conformance

FILES = ("setup.sh", "run_autograder", "README.txt")
WHEEL_TIMEOUT = 300  # seconds pip may take to build the kit's wheel from its source


class GraderError(Exception):
    """The autograder folder cannot be written as asked (a usage error)."""


@dataclass(frozen=True)
class Autograder:
    """What `conformance gradescope` was asked for."""

    spec: str
    command: str
    out: Path
    points: int = 100
    kit: str | None = None  # a pip requirement for the kit; None: a wheel of this one, in kit/
    zip: bool = False


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The `gradescope` subcommand's parser."""
    from conformance._arguments import word_type
    from conformance._options import positive_int

    p = sub.add_parser(
        "gradescope", help="write a Gradescope autograder folder for a spec",
        description="Write the folder of a Gradescope autograder that checks each submission "
                    "with `conformance run SPEC --command CMD` (run in the submission's "
                    "folder) and shows one test per requirement: setup.sh, run_autograder, "
                    "README.txt and the kit. Zip the files inside it, not the folder.")
    p.add_argument("spec", help="the spec id (see `conformance list`)")
    p.add_argument("--command", required=True, metavar="CMD",
                   help="how the student's program is started, from the submission folder "
                        "(e.g. 'python fight.py'; {port} as for `conformance run`)")
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="the folder to write (default: gradescope-SPEC)")
    p.add_argument("--points", type=word_type(positive_int), default=100, metavar="N",
                   help="points shared by weight over the MUST and SHOULD requirements "
                        "(%(default)s); a bonus is extra credit on top")
    p.add_argument("--kit", metavar="PIP_REQUIREMENT",
                   help="install the kit from this pip requirement (e.g. "
                        "git+https://github.com/OWNER/REPO@TAG) instead of a copy in kit/")
    p.add_argument("--zip", action="store_true",
                   help="also write DIR.zip, the files at its root, ready to upload")


def command(args: argparse.Namespace) -> int:
    """Run `conformance gradescope` from its parsed command line; GraderError for a usage
    error (SpecError for an unknown spec)."""
    from conformance._spec import load_spec

    spec = load_spec(args.spec)  # an unknown spec is a usage error naming the known ones
    request = Autograder(spec.name, args.command, args.out or Path(f"gradescope-{spec.name}"),
                         args.points, args.kit, args.zip)
    written = write(request)
    for path in written:
        print(path)
    return 0


def write(request: Autograder) -> list[Path]:
    """Write the autograder folder (and its zip, when asked); the paths written, the folder
    first. GraderError when the kit cannot be copied."""
    if not request.command.strip():
        raise GraderError("--command: give how the student's program starts")
    if request.out.exists() and not request.out.is_dir():
        raise GraderError(f"--out: {str(request.out)!r} exists and is not a folder")
    request.out.mkdir(parents=True, exist_ok=True)
    kit_dir = request.out / "kit"
    if kit_dir.exists():
        shutil.rmtree(kit_dir)  # an older kit would be installed next to this one
    if request.kit is None:
        _build_wheel(kit_dir)
    texts = {"setup.sh": setup_sh(request.kit), "run_autograder": run_autograder(request),
             "README.txt": readme(request)}
    for name, text in texts.items():
        path = request.out / name
        path.write_text(text, encoding="utf-8")
        path.chmod(0o755 if name != "README.txt" else 0o644)
    written = [request.out]
    if request.zip:
        written.append(_zip(request.out))
    return written


def _project_root() -> Path:
    """The source tree the running kit was installed from (editable or from a checkout)."""
    root = Path(conformance.__file__).resolve().parent.parent
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file() or "assignments-conformance-kit" not in pyproject.read_text(
            encoding="utf-8"):
        raise GraderError("this kit was not installed from its source tree, so it cannot copy "
                          "itself into the folder: give --kit PIP_REQUIREMENT (e.g. "
                          "git+https://github.com/OWNER/REPO@TAG)")
    return root


def _build_wheel(kit_dir: Path) -> None:
    """A wheel of the kit (about 1 MB) into kit_dir, built by pip from its source tree; its
    dependencies come from PyPI when setup.sh runs."""
    kit_dir.mkdir(parents=True)
    argv = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(kit_dir)]
    # With the build backend at hand, no fresh build environment (and no download) is needed.
    if importlib.util.find_spec("hatchling") is not None:
        argv.append("--no-build-isolation")
    try:
        done = subprocess.run([*argv, str(_project_root())], capture_output=True, text=True,
                              timeout=WHEEL_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise GraderError(f"pip took over {WHEEL_TIMEOUT} s to build the kit's wheel: "
                          "give --kit PIP_REQUIREMENT instead") from None
    wheels = list(kit_dir.glob("*.whl"))
    if done.returncode != 0 or len(wheels) != 1:
        last = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1:] or ["no wheel"]
        raise GraderError(f"pip could not build the kit's wheel ({last[0]}): give --kit "
                          "PIP_REQUIREMENT instead")


def setup_sh(kit: str | None) -> str:
    """setup.sh: Python 3.11+ and a venv holding the kit, on Gradescope's Ubuntu base image."""
    if kit is None:
        install = '"$VENV/bin/pip" install "$SOURCE"/kit/*.whl'
        git = ""
    else:
        install = f'"$VENV/bin/pip" install {shlex.quote(kit)}'
        git = " git" if "git+" in kit else ""  # pip needs git to install from git
    return f"""#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder's image: Python 3.11 or
# later and a virtual environment at /autograder/venv holding the conformance kit (written by
# `conformance gradescope`).
set -euo pipefail
SOURCE="$(cd "$(dirname "${{BASH_SOURCE[0]}}")" && pwd)"
VENV=/autograder/venv
export DEBIAN_FRONTEND=noninteractive
apt-get update
# The kit needs Python 3.11+. Choose an Ubuntu 22.04 or 24.04 base image: on 24.04, python3
# is 3.12 (python3.12); on 22.04 python3 is 3.10, and python3.11 is a package of its own.
. /etc/os-release
case "${{VERSION_ID:-}}" in
  22.04) PYTHON=python3.11 ;;
  *) PYTHON=python3.12 ;;
esac
apt-get install -y --no-install-recommends "$PYTHON" "$PYTHON-venv" ca-certificates{git}
"$PYTHON" -m venv "$VENV"
{install}
"$VENV/bin/conformance" --version
"""


def run_autograder(request: Autograder) -> str:
    """run_autograder: one `conformance run` in the submission folder, results.json always."""
    run = shlex.join(["run", request.spec, "--command", request.command])
    fallback = (
        '{"score": 0, "output": "%s", "tests": [{"name": "the conformance run", "score": 0, '
        f'"max_score": {request.points}, "status": "failed", "output": "%s"}}]}}\\n')
    return f"""#!/usr/bin/env bash
# Gradescope runs this for every submission: it checks the files the student submitted
# against the spec {request.spec} and leaves results/results.json, a test per requirement.
# Written by `conformance gradescope`. AUTOGRADER_ROOT and CONFORMANCE stand in for
# /autograder and its kit when it is tried elsewhere.
set -u
ROOT="${{AUTOGRADER_ROOT:-/autograder}}"
CONFORMANCE="${{CONFORMANCE:-$ROOT/venv/bin/conformance}}"
RESULTS="$ROOT/results"
mkdir -p "$RESULTS"
# The run writes its results where the student's program cannot guess, and they replace
# whatever is at results/results.json (the program runs as the same user).
OWN="$(mktemp -d)"
# The student's program runs with the kit's Python (`python` in --command is it).
export PATH="$ROOT/venv/bin:$PATH"
export COLUMNS=120
status=0
if cd "$ROOT/submission"; then
  # What the student's program imports beyond the kit's own (aiohttp, httpx, Telethon...):
  # their requirements.txt, when they sent one, within five minutes.
  if [ -f requirements.txt ]; then
    timeout 300 "$(dirname "$CONFORMANCE")/python" -m pip install --quiet -r requirements.txt \\
      || echo "conformance: the submission's requirements.txt did not install" >&2
  fi
  "$CONFORMANCE" {run} \\
    --gradescope "$OWN/results.json" --gradescope-points {request.points} \\
    --json "$RESULTS/report.json" || status=$?
  why="The conformance run ended with exit code $status and wrote no results."
else
  why="There is no submission folder to check."
fi
# Gradescope shows nothing of a run that left no results.json: say why there are none.
if [ -s "$OWN/results.json" ]; then
  mv -f "$OWN/results.json" "$RESULTS/results.json"
else
  printf '{fallback}' "$why" "$why The autograder's output (shown to the instructor) says more." \\
    > "$RESULTS/results.json"
fi
rm -rf "$OWN"
# Whatever the verdicts, the results are in results.json: exit 0 so Gradescope shows them.
exit 0
"""


def readme(request: Autograder) -> str:
    """README.txt: how the teacher zips and uploads the folder, and what students submit."""
    kit = (f"the kit is installed from {request.kit}" if request.kit else
           "kit/ holds the conformance kit as a wheel; its dependencies come from PyPI")
    return f"""Gradescope autograder of the spec {request.spec} (`conformance gradescope` wrote it).

Upload: zip the files inside this folder, not the folder (setup.sh and run_autograder must be
at the root of the zip), e.g.
    cd {request.out.name} && zip -r ../{request.out.name}.zip .
or write it with `conformance gradescope {request.spec} ... --zip`. On the assignment's
Configure Autograder page, choose an Ubuntu 22.04 or 24.04 base image and upload the zip.

What students submit: the files that `{request.command}` runs, at the top of their submission
(not inside a folder): it is run from the submission's folder.

What they see: one test per requirement of the spec, its verdict, and for a failure what was
expected, what came and a command that reproduces it. The {request.points} points are shared
by weight over the MUST and SHOULD requirements; a MAY is worth none; a bonus requirement is
extra credit on top. setup.sh installs Python and the kit; {kit}.
"""


def _zip(folder: Path) -> Path:
    """DIR.zip next to DIR, its files at the root, executables kept executable."""
    target = folder.with_name(folder.name + ".zip")
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                info = zipfile.ZipInfo.from_file(path, path.relative_to(folder).as_posix())
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, path.read_bytes())
    return target
