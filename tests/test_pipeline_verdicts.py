"""The suite's verdicts on pipelines that no twin's data can say (the twins themselves, each
started with its services on free ports: tests/test_twins.py): the tables can be read from a
folder instead of the writer, one service can be checked alone, services that are not there
fail in bounded time, a run's rerun line names the services it was told of, and the tables are
read in the formats students write."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from conformance._target import free_port, wait_until_listening
from conformance.specs.pipeline._observation import parse_table
from tests.conftest import PY, ROOT

ROLES = ("receiver", "processor", "writer")


def set_args(tmp: Path) -> tuple[list[str], list[str]]:
    """The ports and folder of one set of services: (its own options, the suite's options, which
    read the tables from the folder)."""
    ports = {role: free_port() for role in ROLES}
    own = [f"--{role}-port={port}" for role, port in ports.items()] + [f"--output-dir={tmp}"]
    suite = [a for role, port in ports.items()
             for a in ("--service", f"{role}=http://127.0.0.1:{port}/")]
    return own, [*suite, "--output-dir", str(tmp)]


@contextmanager
def reference_set(tmp: Path) -> Iterator[tuple[int, list[str]]]:
    """Our reference's four services on free ports, writing into `tmp`."""
    own, suite = set_args(tmp)
    client = free_port()
    proc = subprocess.Popen([PY, str(ROOT / "reference" / "pipeline.py"), "all", "--quiet",
                             f"--client-port={client}", *own], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert wait_until_listening("127.0.0.1", client, 15, lambda: proc.poll() is not None)
        yield client, suite
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(10)


def test_tables_are_read_from_the_output_folder_when_given(run_conformance,
                                                           tmp_path: Path) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    with reference_set(folder) as (client, suite):
        run = run_conformance("run", "pipeline", "--base-url", f"http://127.0.0.1:{client}/",
                              "--only", "PIPE-02", "PIPE-05", *suite)
    assert run.code == 0, run.stdout
    assert run.verdicts() == {"PIPE-02": "pass", "PIPE-05": "pass"}, run.stdout
    assert "--output-dir" in run.report["rerun"], run.report["rerun"]
    assert "--service receiver=http://127.0.0.1:" in run.report["rerun"], run.report["rerun"]


def test_one_service_is_checked_alone(run_conformance, tmp_path: Path) -> None:
    with reference_set(tmp_path) as (_, suite):
        processor = next(a for a in suite if a.startswith("processor="))
        # Nothing listens at the base URL: only the processor's requirements are asked for.
        run = run_conformance("run", "pipeline", "--base-url",
                              f"http://127.0.0.1:{free_port()}/", "--service", processor,
                              "--only", "PROC-01", "PROC-02", "PROC-03", "PROC-04", "--strict")
    assert run.code == 0, run.stdout
    assert set(run.verdicts().values()) == {"pass"}, run.verdicts()


def test_services_that_are_not_there_fail_in_bounded_time(run_conformance) -> None:
    started = time.monotonic()
    run = run_conformance("run", "pipeline", "--base-url", f"http://127.0.0.1:{free_port()}/",
                          *[a for role in ROLES
                            for a in ("--service", f"{role}=http://127.0.0.1:{free_port()}/")],
                          timeout=60)
    assert run.code == 1, run.stdout
    assert {"WRITE-01", "PROC-01"} <= run.failed(), run.stdout
    assert "connection refused" in run.requirement("WRITE-01")["failures"][0]["actual"]
    # The client and the receiver are asked for too, though what else they need failed.
    for rid, role in (("PIPE-01", "client"), ("RECV-01", "receiver")):
        assert rid in run.failed(), run.stdout
        message = run.requirement(rid)["failures"][0]["message"]
        assert f"where the {role} service is expected" in message, message
    assert time.monotonic() - started < 30


@pytest.mark.parametrize(("text", "header", "ids", "said"), [
    # Rows between bars and no header: the bars make no empty id, the first row is kept.
    ("| 7 | 2026-11-23 17:30:00.1 | 2026-11-23 17:30:01 |\n"
     "| 8 | 2026-11-23 17:30:00.2 | 2026-11-23 17:30:02 |\n",
     "", ["7", "8"], "no header line, rows between bars"),
    # A Markdown table: header, a line of dashes, rows; times of day only.
    ("| id | receive_time | write_time |\n|----|:---:|---|\n| 7 | 17:30:00.1 | 17:30:01 |\n",
     "| id | receive_time | write_time |", ["7"], "1 line of dashes skipped"),
    # Ids that are not integers, no header: still a record, since a time follows.
    ("a-1 | 1700000000.5 | 1700000001\n", "", ["a-1"], "Unix seconds"),
    # The header written again (a writer that started over) is no record; day-first dates.
    ("id | receive_time | write_time\n7 | 23.11.2026 17:30:00.5 | 23.11.2026 17:30:01.0\n"
     "id | receive_time | write_time\n8 | 23.11.2026 17:30:02.5 | 23.11.2026 17:30:03.0\n",
     "id | receive_time | write_time", ["7", "8"], "day.month.year"),
])
def test_tables_are_read_in_the_formats_students_write(text: str, header: str, ids: list[str],
                                                       said: str) -> None:
    table = parse_table("records", text)
    assert table.header == header
    assert [r.id for r in table.rows] == ids
    assert all(r.receive_time is not None and r.write_time is not None for r in table.rows)
    assert said in table.describe(), table.describe()
