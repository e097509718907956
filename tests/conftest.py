"""Shared helpers: run the `conformance` command as a user would, in a subprocess, and read its
JSON report; every run has a hard time limit, so a hung suite fails the test instead of CI."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
HARD_LIMIT = 180


@dataclass
class Run:
    """What one `conformance` invocation did."""

    code: int
    stdout: str
    stderr: str
    report: Any

    def verdicts(self) -> dict[str, str]:
        """Requirement id -> verdict, from the JSON report."""
        return {r["id"]: r["verdict"] for r in self.report["requirements"]}

    def failed(self) -> set[str]:
        """Ids of the failed requirements, any level."""
        return {rid for rid, v in self.verdicts().items() if v == "fail"}

    def requirement(self, rid: str) -> dict[str, Any]:
        """One requirement's entry of the JSON report."""
        return next(r for r in self.report["requirements"] if r["id"] == rid)


def conformance(*args: str, tmp: Path, json_report: bool = True,
                timeout: float = HARD_LIMIT) -> Run:
    """Run `python -m conformance ARGS` from the repository root."""
    report_path = tmp / "report.json"
    argv = [PY, "-m", "conformance", *args]
    if json_report:
        argv += ["--json", str(report_path)]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**_env(), "COLUMNS": "200"})
    report = json.loads(report_path.read_text()) if json_report and report_path.exists() else None
    return Run(done.returncode, done.stdout, done.stderr, report)


def _env() -> dict[str, str]:
    import os

    env = dict(os.environ)
    env.pop("PYTEST_ADDOPTS", None)
    return env


def fixture_command(module: str, *args: str) -> str:
    """A --command line that starts one of our fixture servers on {port}."""
    return " ".join([PY, "-m", module, *args, "--port", "{port}"])


@pytest.fixture
def run_conformance(tmp_path: Path):
    """`run_conformance(*args)` runs the CLI with a JSON report in a temporary folder."""
    def runner(*args: str, **kwargs: Any) -> Run:
        return conformance(*args, tmp=tmp_path, **kwargs)
    return runner
