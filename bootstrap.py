#!/usr/bin/env python3
"""Set up this project's virtual environment when needed, then run a command from it.

    python3 bootstrap.py conformance run all    # the suite against our references
    python3 bootstrap.py tox                    # the whole test suite and lint

Standard library only, so it runs on a fresh machine with nothing but Python 3.11+. The
environment is `.venv/` beside this file; it is (re)installed when pyproject.toml changes. For
`tox` alone only tox and tox-uv go in at first (tox installs the project into environments of
its own, made with uv: installing it here too would cost a CI run a minute); any other command
installs the project.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
STAMP = VENV / ".bootstrap-stamp"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")


def _say(text: str) -> None:
    print(f"bootstrap: {text}", file=sys.stderr, flush=True)


def _wanted_stamp(what: str = "project") -> str:
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes())
    digest.update(sys.version.encode())
    return f"{what}:{digest.hexdigest()}"


def _tox_requirements() -> list[str]:
    """tox and its uv plugin as the project's dev extra asks for them (e.g. `tox>=4.14`)."""
    import tomllib  # here: an older Python must reach main()'s "3.11 or newer" message

    with (ROOT / "pyproject.toml").open("rb") as file:
        extras = tomllib.load(file)["project"]["optional-dependencies"]
    wanted = [r for r in extras.get("dev", []) if r.split(">")[0].split("=")[0].strip()
              in ("tox", "tox-uv")]
    return wanted or ["tox"]


def ensure_venv(only_tox: bool = False) -> None:
    """Create `.venv` and install the project with its test tools (or, `only_tox`, tox alone,
    unless the project is in already), unless already up to date."""
    stamp = STAMP.read_text() if STAMP.is_file() else ""
    if stamp == _wanted_stamp() or (only_tox and stamp == _wanted_stamp("tox")):
        return
    if not (BIN / "python").exists() and not (BIN / "python.exe").exists():
        _say(f"creating {VENV.relative_to(ROOT)}/ (first run only)")
        try:
            venv.create(VENV, with_pip=True, clear=True)
        except (subprocess.CalledProcessError, OSError) as exc:
            _say(f"cannot create a virtual environment ({exc}); on Debian or Ubuntu, "
                 "install the python3-venv package")
            sys.exit(2)
    python = str(BIN / "python")
    if only_tox:
        _say("installing tox into .venv/ (it installs the project in environments of its own)")
        wanted = _tox_requirements()
    else:
        _say("installing the project and its test tools into .venv/ (a minute, once)")
        wanted = ["-e", f"{ROOT}[dev]"]
    result = subprocess.run([python, "-m", "pip", "install", "--quiet",
                             "--disable-pip-version-check", *wanted])
    if result.returncode != 0:
        _say("pip could not install the project; see its message above")
        sys.exit(result.returncode)
    STAMP.write_text(_wanted_stamp("tox" if only_tox else "project"))


def main(argv: list[str]) -> int:
    """Ensure the environment, then run argv[0] from it with the rest as its arguments."""
    # This file may be run by an older python3 than the project supports: say so plainly.
    if sys.version_info < (3, 11):  # noqa: UP036
        _say(f"Python 3.11 or newer is needed; this is {sys.version.split()[0]}")
        return 2
    if not argv:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    ensure_venv(only_tox=argv[0] == "tox")
    program = BIN / argv[0]
    if not program.exists() and not program.with_suffix(".exe").exists():
        _say(f"{argv[0]!r} is not installed in .venv/bin")
        return 2
    env = {**os.environ, "VIRTUAL_ENV": str(VENV),
           "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("PYTHONHOME", None)
    return subprocess.call([str(program), *argv[1:]], cwd=ROOT, env=env)


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        sys.exit(130)
