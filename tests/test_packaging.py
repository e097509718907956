"""The wheel: it carries the specs, schemas, suites and references, leaves tests and fixtures
out, and its `conformance` checks the embedded reference from any folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(out), str(ROOT)], check=True, timeout=300)
    (path,) = out.glob("*.whl")
    return path


def test_wheel_carries_what_a_run_needs(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("conformance/_openapi/credentials.yaml",
                   "conformance/_openapi/credentials.requirements.yaml",
                   "conformance/schemas/behaviour.schema.json",
                   "conformance/schemas/report.schema.json",
                   "conformance/specs/pytest.ini",
                   "conformance/specs/credentials/checks.py",
                   "conformance/specs/crawler/fixtures.py",
                   "conformance/specs/fight/_harness.py",
                   "reference/credentials.py", "reference/fight.py",
                   "reference/server_cached.py", "reference/audio.py",
                   "conformance/specs/audio/samples/tone.mp3",
                   "conformance/specs/audio/samples/program.exe",
                   "conformance/_openapi/pipeline.yaml", "reference/pipeline.py",
                   "conformance/schemas/batch.schema.json",
                   "conformance/templates/batch/index.html.j2"):
        assert needed in names, needed
    assert not any(n.startswith(("tests/", "fixtures/")) for n in names)


def test_installed_wheel_runs_the_embedded_default_elsewhere(wheel: Path,
                                                            tmp_path: Path) -> None:
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(site), str(wheel)], check=True, timeout=300)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    report = tmp_path / "report.json"
    env = {**os.environ, "PYTHONPATH": str(site)}
    done = subprocess.run(
        [sys.executable, "-m", "conformance", "run", "credentials", "--fuzz-seconds", "3",
         "--json", str(report)], cwd=elsewhere, env=env, capture_output=True, text=True,
        timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    data = json.loads(report.read_text())
    assert data["passed"] is True
    assert str(site) in data["target"], data["target"]
