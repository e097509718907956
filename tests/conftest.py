"""Shared helpers: run the `conformance` command as a user would, in a process of its own
(forked from a warm interpreter: tests/_forked.py), and read its JSON report; every run has a
hard time limit, so a hung suite fails the test instead of CI. A run gets a network of its own
(conformance/_isolation.py), so runs that need an assignment's fixed port (127.0.0.1:8888)
collide neither with each other nor with another program holding it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
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


@cache
def own_network_refused() -> str:
    """'' when a run can have a network of its own here, else why not (what the runs say)."""
    probe = subprocess.run([PY, "-c", "from conformance._isolation import enter_own_network; "
                            "print(enter_own_network())"], capture_output=True, text=True,
                           timeout=60)
    return probe.stdout.strip() or probe.stderr.strip()


def run_in_own_network(code: str, timeout: float = 180) -> str:
    """Run the Python `code` in a child that takes a network namespace of its own (the code
    enters it) from the repository root; its stdout. Fails under CI, skips elsewhere, where no
    network of its own can be had."""
    import os

    why = own_network_refused()
    if why:
        if os.environ.get("CI") == "true":
            pytest.fail(f"no network namespace for the box: {why}")
        pytest.skip(f"no network namespace for the box here: {why}")
    done = subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def need_fixed_port(port: int) -> None:
    """Skip when a run would share this machine's network and `port` is taken on it (never
    under CI, where runs get networks of their own and a skip would hide a check)."""
    from conformance._target import is_listening

    why = own_network_refused()
    if why and is_listening("127.0.0.1", port):
        message = f"no network of its own for a run ({why}) and 127.0.0.1:{port} is taken"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def conformance(*args: str, tmp: Path, json_report: bool = True,
                timeout: float = HARD_LIMIT) -> Run:
    """Run `python -m conformance ARGS` from the repository root (forked from a warm
    interpreter: tests/_forked.py)."""
    from tests import _forked

    report_path = tmp / "report.json"
    argv = list(args)
    if json_report:
        argv += ["--json", str(report_path)]
    code, stdout, stderr = _forked.run(argv, cwd=ROOT, env={**_env(), "COLUMNS": "200"},
                                       timeout=timeout)
    report = json.loads(report_path.read_text()) if json_report and report_path.exists() else None
    return Run(code, stdout, stderr, report)


def _env() -> dict[str, str]:
    import os

    env = dict(os.environ)
    env.pop("PYTEST_ADDOPTS", None)
    return env


def fixture_command(module: str, *args: str) -> str:
    """A --command line that starts one of our fixture servers on {port}."""
    return " ".join([PY, "-m", module, *args, "--port", "{port}"])


def twin_command(spec: str, name: str) -> str:
    """A --command line that starts one of a spec's twins (fixtures/_twins.py) on {port}."""
    from fixtures._twins import command, twin

    return command(twin(spec, name))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest tests first (marked `slow(SECONDS)`, roughly): run in parallel, a long one
    started last keeps every other worker waiting at the end."""
    def cost(item: pytest.Item) -> float:
        mark = item.get_closest_marker("slow")
        return float(mark.args[0]) if mark and mark.args else 0.0
    items.sort(key=cost, reverse=True)  # stable: otherwise in collection order


@pytest.fixture
def run_conformance(tmp_path: Path):
    """`run_conformance(*args)` runs the CLI with a JSON report in a temporary folder."""
    def runner(*args: str, **kwargs: Any) -> Run:
        return conformance(*args, tmp=tmp_path, **kwargs)
    return runner
