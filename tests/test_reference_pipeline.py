"""The reference pipeline.py: a run's records written once each in receive order, the tables and
what the writer serves, the client's and services' 400s, the processor's timing, the receiver's
order, the processor or the writer down, a restarted writer, the command line and a clean stop.
(Its conformance to the whole spec is the suite's business.)"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from conformance._target import Process, free_port, is_listening, wait_until_listening
from reference import pipeline
from tests.conftest import ROOT

SCRIPT = ROOT / "reference" / "pipeline.py"
TIMEOUT = httpx.Timeout(15.0)
RECORDS_HEADER = "id | receive_time | write_time"
RECEIVED_HEADER = "id | receive_time"


def _four_ports() -> list[int]:
    ports: list[int] = []
    while len(ports) < 4:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


@dataclass
class Ports:
    """Four free loopback ports, one per role."""

    ports: list[int] = field(default_factory=_four_ports)

    def __getattr__(self, role: str) -> int:
        if role in pipeline.ROLES:
            return self.ports[pipeline.ROLES.index(role)]
        raise AttributeError(role)

    def url(self, role: str) -> str:
        return f"http://127.0.0.1:{getattr(self, role)}"

    def args(self) -> list[str]:
        return [word for role in pipeline.ROLES
                for word in (f"--{role}-port", str(getattr(self, role)))]


@contextmanager
def started(role: str, ports: Ports, out: Path, *extra: str) -> Iterator[Process]:
    """`pipeline.py role` on `ports`, writing to `out`, until the block ends (then Ctrl+C)."""
    proc = Process.start([sys.executable, str(SCRIPT), role, "--quiet", *ports.args(),
                          "--output-dir", str(out), *extra], writable=[out])
    try:
        port = ports.client if role == "all" else getattr(ports, role)
        if not wait_until_listening("127.0.0.1", port, 15,
                                    ended=lambda: proc.exited() is not None):
            pytest.fail(f"{role} did not listen on {port}: {proc.output_tail()}")
        yield proc
    finally:
        proc.stop()


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def rows(path: Path) -> list[list[str]]:
    """The table's rows, header left out, split into columns."""
    return [line.split(" | ") for line in lines(path)[1:]]


def ids(path: Path) -> list[int]:
    return [int(row[0]) for row in rows(path)]


def wait_for(condition: Any, limit: float, step: float = 0.02) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return bool(condition())


@pytest.fixture(scope="module")
def whole(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Ports, Path]]:
    """The four services started together (`all`), shared by the tests that only send to it."""
    ports, out = Ports(), tmp_path_factory.mktemp("pipeline") / "output"
    with started("all", ports, out):
        yield ports, out


# ------------------------------------------------------------------------------ in-process units

def test_parse_load_limits() -> None:
    assert pipeline.parse_load({}) == pipeline.Load(10, 10, 5.0)
    assert pipeline.parse_load({"connection_count": "1000", "connection_value": "100",
                                "delay_range": "0.25"}) == pipeline.Load(1000, 100, 0.25)
    for query in ({"connection_count": "0"}, {"connection_value": "-1"},
                  {"connection_count": "x"}, {"connection_count": "1.5"},
                  {"connection_count": "1001"}, {"connection_count": ""},
                  {"connection_count": "1000", "connection_value": "101"},
                  {"delay_range": "61"}, {"delay_range": "nan"}, {"delay_range": "inf"},
                  {"delay_range": "-1"}, {"delay_range": "1e1"}):
        with pytest.raises(pipeline.BadRequest):
            pipeline.parse_load(query)


def test_parse_job_limits() -> None:
    assert pipeline.parse_job({"id": 0, "delay": 60}) == (0, 60.0)
    assert pipeline.parse_job({"id": 7, "delay": 0.125, "extra": 1}) == (7, 0.125)
    for body in ({"id": 1}, {"delay": 1}, {"id": -1, "delay": 1}, {"id": True, "delay": 1},
                 {"id": 1.0, "delay": 1}, {"id": "1", "delay": 1}, {"id": 1, "delay": True},
                 {"id": 1, "delay": "1"}, {"id": 1, "delay": -0.1}, {"id": 1, "delay": 60.5},
                 {"id": 1, "delay": float("nan")}, {"id": 1, "delay": float("inf")}):
        with pytest.raises(pipeline.BadRequest):
            pipeline.parse_job(body)


def _delivery(seq: int, base: int = 0, status: str = "ok", stream: str = "s") -> dict[str, Any]:
    return {"stream": stream, "seq": seq, "base": base, "id": 100 + seq,
            "receive_time": f"2026-11-23T17:30:00.00000{seq}+00:00", "status": status}


def test_writer_reorders_passes_over_failed_and_refuses_repeats(tmp_path: Path) -> None:
    writer = pipeline.Writer(tmp_path / "out")
    writer.open()
    try:
        assert writer.take(_delivery(2))
        assert writer.take(_delivery(1, status="failed"))
        assert writer.state() == {"written": 0, "failed": 0, "waiting": 2}
        assert not writer.take(_delivery(2))  # buffered already
        assert writer.take(_delivery(0))
        assert writer.state() == {"written": 2, "failed": 1, "waiting": 0}
        assert not writer.take(_delivery(0))  # written already
        assert writer.take(_delivery(5, base=5, stream="other"))  # a new stream starts at base
        assert [r["id"] for r in writer.records()] == [100, 102, 105]
    finally:
        writer.close()
    again = pipeline.Writer(tmp_path / "out")  # a restart appends, no second header
    again.open()
    again.close()
    assert lines(tmp_path / "out" / "records.txt")[0] == RECORDS_HEADER
    assert lines(tmp_path / "out" / "received.txt") == [
        RECEIVED_HEADER, *(f"{100 + s} | 2026-11-23T17:30:00.00000{s}+00:00" for s in (0, 2, 5))]
    assert sum(line == RECORDS_HEADER for line in lines(tmp_path / "out" / "records.txt")) == 1


def test_receiver_base_is_the_lowest_seq_not_accepted() -> None:
    receiver = pipeline.Receiver(pipeline.PipelineConfig())
    assert receiver.base == 0
    seqs = [receiver.take_seq()[0] for _ in range(5)]
    assert seqs == [0, 1, 2, 3, 4]
    receiver._accepted.update({1, 2})
    assert receiver.base == 0
    receiver._accepted.add(0)
    assert receiver.base == 3
    receiver._accepted.update({3, 4})
    assert receiver.base == 5


# ------------------------------------------------------------------------------ the whole pipeline

def check_table_order(out: Path, first: int, last: int, before: int) -> None:
    """The lines after the first `before` rows: ids first..last once each, in receive order,
    the same in both tables, none written before it was received."""
    records, received = rows(out / "records.txt")[before:], rows(out / "received.txt")[before:]
    assert sorted(int(r[0]) for r in records) == list(range(first, last + 1))
    assert [r[:2] for r in records] == received
    times = [(datetime.fromisoformat(r[1]), datetime.fromisoformat(r[2])) for r in records]
    assert all(t.tzinfo is not None for pair in times for t in pair)
    for (a, _), (b, _) in itertools.pairwise(times):
        assert a <= b
    assert all(written >= got for got, written in times)


def test_a_run_is_written_once_each_in_receive_order(whole: tuple[Ports, Path]) -> None:
    ports, out = whole
    before = len(rows(out / "records.txt"))
    started_at = time.monotonic()
    answer = httpx.get(ports.url("client") + "/", timeout=TIMEOUT, params={
        "connection_count": 4, "connection_value": 10, "delay_range": 1})
    took = time.monotonic() - started_at
    assert answer.status_code == 200
    report = answer.json()
    assert took < 3
    assert (report["requests"], report["ok"], report["failed"], report["statuses"]) == (
        40, 40, 0, {"200": 40})
    assert (report["connection_count"], report["connection_value"], report["delay_range"]) == (
        4, 10, 1.0)
    assert report["last_id"] - report["first_id"] == 39
    assert lines(out / "records.txt")[0] == RECORDS_HEADER
    assert lines(out / "received.txt")[0] == RECEIVED_HEADER
    assert len(rows(out / "records.txt")) == before + 40
    check_table_order(out, report["first_id"], report["last_id"], before)

    # What the writer serves is what the files hold.
    writer = ports.url("writer")
    for name in ("records.txt", "received.txt"):
        table = httpx.get(f"{writer}/files/{name}", timeout=TIMEOUT)
        assert table.status_code == 200
        assert table.headers["content-type"] == "text/plain; charset=utf-8"
        assert table.text == (out / name).read_text(encoding="utf-8")
    listing = httpx.get(f"{writer}/records", timeout=TIMEOUT).json()
    assert listing["records"] == [{"id": int(i), "receive_time": r, "write_time": w}
                                  for i, r, w in rows(out / "records.txt")]
    assert listing["written"] == len(listing["records"]) and listing["waiting"] == 0
    for name in ("nope.txt", "..%2Frecords.txt", "records.txt%00", "output"):
        missing = httpx.get(f"{writer}/files/{name}", timeout=TIMEOUT)
        assert missing.status_code == 404 and "detail" in missing.json()


def test_runs_get_disjoint_ids_and_the_default_run_writes_100(
        whole: tuple[Ports, Path]) -> None:
    ports, out = whole
    before = len(rows(out / "records.txt"))
    small = httpx.get(ports.url("client") + "/?connection_count=1&connection_value=1"
                      "&delay_range=0", timeout=TIMEOUT).json()
    report = httpx.get(ports.url("client") + "/", timeout=TIMEOUT).json()
    assert report["requests"] == report["ok"] == 100
    assert (report["connection_count"], report["connection_value"], report["delay_range"]) == (
        10, 10, 5.0)
    assert report["first_id"] == small["last_id"] + 1
    assert report["elapsed_s"] < 8
    check_table_order(out, small["first_id"], report["last_id"], before)


@pytest.mark.parametrize("query", [
    "connection_count=0", "connection_count=-1", "connection_value=x", "delay_range=61",
    "connection_count=1000&connection_value=101", "delay_range=nan", "connection_count=2.5"])
def test_bad_client_parameters_answer_400_and_send_nothing(
        whole: tuple[Ports, Path], query: str) -> None:
    ports, out = whole
    before = lines(out / "received.txt")
    answer = httpx.get(f"{ports.url('client')}/?{query}", timeout=TIMEOUT)
    assert answer.status_code == 400 and answer.json()["detail"]
    time.sleep(0.05)
    assert lines(out / "received.txt") == before


def test_processor_waits_without_blocking(whole: tuple[Ports, Path]) -> None:
    url = whole[0].url("processor") + "/process"
    started_at = time.monotonic()
    answer = httpx.post(url, json={"id": 1, "delay": 0.5}, timeout=TIMEOUT)
    took = time.monotonic() - started_at
    assert (answer.status_code, answer.json()) == (200, {"asyncAnswer": "Ok"})
    assert 0.5 <= took < 1.5

    async def ten() -> float:
        async with httpx.AsyncClient(timeout=TIMEOUT) as c:
            begun = time.monotonic()
            answers = await asyncio.gather(*(c.post(url, json={"id": i, "delay": 1})
                                             for i in range(10)))
            assert all(a.json() == {"asyncAnswer": "Ok"} for a in answers)
            return time.monotonic() - begun

    assert 1 <= asyncio.run(ten()) < 2


@pytest.mark.parametrize("path", ["/process", "/requests"])
def test_bad_jobs_answer_400_at_once(whole: tuple[Ports, Path], path: str) -> None:
    ports, out = whole
    url = (ports.url("processor") if path == "/process" else ports.url("receiver")) + path
    before = lines(out / "received.txt")
    for body in (b"not json", b"[1, 2]", b'{"id": 1}', b'{"delay": 1}', b'{"id": 1, "delay": -1}',
                 b'{"id": 1, "delay": 61}', b'{"id": 1, "delay": "1"}',
                 b'{"id": 1, "delay": true}', b'{"id": -1, "delay": 0}',
                 b'{"id": 1, "delay": NaN}', b'{"id": 1, "delay": 1e999}', b""):
        started_at = time.monotonic()
        answer = httpx.post(url, content=body, timeout=TIMEOUT,
                            headers={"content-type": "application/json"})
        assert answer.status_code == 400, body
        assert answer.json()["detail"]
        assert time.monotonic() - started_at < 0.5
    assert lines(out / "received.txt") == before


def test_receiver_keeps_the_order_a_later_quicker_request_waits(
        whole: tuple[Ports, Path]) -> None:
    ports, out = whole
    url = ports.url("receiver") + "/requests"
    done: dict[str, float] = {}

    async def exercise() -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=TIMEOUT) as c:
            async def send(name: str, job_id: int, delay: float) -> dict[str, Any]:
                answer = await c.post(url, json={"id": job_id, "delay": delay})
                done[name] = time.monotonic()
                assert answer.status_code == 200
                return answer.json()

            slow = asyncio.create_task(send("A", 900_001, 1.0))
            await asyncio.sleep(0.1)
            quick = await send("B", 900_002, 0)
            assert "A" not in done  # B was answered first
            a_answer = await slow
            return {"A": a_answer, "B": quick}

    answers = asyncio.run(exercise())
    assert answers["A"]["asyncAnswer"] == "Ok" and answers["A"]["id"] == 900_001
    assert answers["A"]["receive_time"] < answers["B"]["receive_time"]
    # A's line appears within 1 s of A's answer, and B's is below it.
    assert wait_for(lambda: 900_001 in ids(out / "records.txt"), 1.0)
    assert time.monotonic() - done["A"] < 1.0
    written = ids(out / "records.txt")
    assert written.index(900_001) < written.index(900_002)
    assert ids(out / "received.txt")[-2:] == [900_001, 900_002]


# ------------------------------------------------------------------------------ failures

def writer_state(ports: Ports) -> dict[str, Any]:
    return httpx.get(ports.url("writer") + "/records", timeout=TIMEOUT).json()


def test_processor_down_answers_502_and_the_writer_passes_over_it(tmp_path: Path) -> None:
    ports, out = Ports(), tmp_path / "out"
    url = ports.url("receiver") + "/requests"
    with started("writer", ports, out), started("receiver", ports, out):
        down = httpx.post(url, json={"id": 1, "delay": 0}, timeout=TIMEOUT)
        assert down.status_code == 502 and down.json()["detail"].startswith("processor: ")
        assert wait_for(lambda: writer_state(ports)["failed"] == 1, 2)
        with started("processor", ports, out):
            ok = httpx.post(url, json={"id": 2, "delay": 0}, timeout=TIMEOUT)
            assert ok.status_code == 200
            assert wait_for(lambda: ids(out / "records.txt") == [2], 1)
        state = writer_state(ports)
        assert (state["written"], state["failed"], state["waiting"]) == (1, 1, 0)


def test_writer_down_answers_503_and_the_record_is_delivered_later(tmp_path: Path) -> None:
    ports, out = Ports(), tmp_path / "out"
    url = ports.url("receiver") + "/requests"
    with started("processor", ports, out), started("receiver", ports, out) as receiver:
        for job_id in (1, 2):
            down = httpx.post(url, json={"id": job_id, "delay": 0}, timeout=TIMEOUT)
            assert down.status_code == 503 and down.json()["detail"].startswith("writer: ")
        with started("writer", ports, out):
            assert wait_for(lambda: ids(out / "records.txt") == [1, 2], 3)
            ok = httpx.post(url, json={"id": 3, "delay": 0}, timeout=TIMEOUT)
            assert ok.status_code == 200
            assert wait_for(lambda: ids(out / "records.txt") == [1, 2, 3], 1)
            time.sleep(0.6)  # one more redelivery round: nothing is written twice
            assert ids(out / "records.txt") == [1, 2, 3]
        said = receiver.output_tail(5000)
    assert said.count("does not take deliveries") == 1
    assert said.count("takes deliveries again") == 1


def test_a_restarted_writer_starts_the_stream_at_base(tmp_path: Path) -> None:
    ports, out = Ports(), tmp_path / "out"
    url = ports.url("receiver") + "/requests"
    with started("processor", ports, out), started("writer", ports, out) as first, \
            started("receiver", ports, out):
        assert httpx.post(url, json={"id": 1, "delay": 0}, timeout=TIMEOUT).is_success

        async def exercise() -> None:
            async with httpx.AsyncClient(timeout=TIMEOUT) as c:
                # Slow enough to outlast a writer's stop and start on a loaded CI machine
                # (2.5 s did not).
                slow = asyncio.create_task(c.post(url, json={"id": 2, "delay": 8}))
                await asyncio.sleep(0.1)
                first.stop()
                with started("writer", ports, out):
                    quick = await c.post(url, json={"id": 3, "delay": 0})
                    assert quick.status_code == 200
                    # seq 0 was taken by the first writer; seq 1 is still being processed.
                    state = writer_state(ports)
                    assert (state["written"], state["waiting"]) == (0, 1)
                    assert (await slow).status_code == 200
                    assert wait_for(lambda: writer_state(ports)["written"] == 2, 5)

        asyncio.run(exercise())
    assert ids(out / "records.txt") == [1, 2, 3]
    assert lines(out / "records.txt").count(RECORDS_HEADER) == 1


# ------------------------------------------------------------------------------ command line

def test_a_busy_port_is_one_line_and_exit_1(tmp_path: Path) -> None:
    ports = Ports()
    with closing(socket.socket()) as busy:
        busy.bind(("127.0.0.1", ports.processor))
        busy.listen()
        run = subprocess.run([sys.executable, str(SCRIPT), "all", *ports.args(),
                              "--output-dir", str(tmp_path)],
                             capture_output=True, text=True, timeout=30)
    assert run.returncode == 1
    assert f"processor cannot listen on 127.0.0.1:{ports.processor}" in run.stderr
    assert "Traceback" not in run.stderr
    assert not any(is_listening("127.0.0.1", getattr(ports, role))
                   for role in ("client", "receiver", "writer"))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_all_stops_cleanly(tmp_path: Path, sig: signal.Signals) -> None:
    ports = Ports()
    proc = subprocess.Popen([sys.executable, str(SCRIPT), "all", *ports.args(),
                             "--output-dir", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        assert wait_until_listening("127.0.0.1", ports.client, 15)
        assert all(is_listening("127.0.0.1", getattr(ports, role)) for role in pipeline.ROLES)
        proc.send_signal(sig)
        assert proc.wait(timeout=10) == 0
        said = proc.stdout.read() if proc.stdout else ""
    finally:
        # Its roles too, when it failed to stop them (they would outlive the test).
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert "Traceback" not in said
    listening = [line for line in said.splitlines() if " listening on " in line]
    assert [line.split(":")[0] for line in listening] == ["pipeline"] * 4
    assert [line.split()[1] for line in listening] == list(pipeline.START_ORDER)
    assert f"client listening on http://127.0.0.1:{ports.client}/" in said


def test_the_environment_configures_ports_and_output(tmp_path: Path) -> None:
    ports, out = Ports(), tmp_path / "from-env"
    env = {**os.environ, "PIPELINE_OUTPUT_DIR": str(out), **{
        f"PIPELINE_{role.upper()}_PORT": str(getattr(ports, role)) for role in pipeline.ROLES}}
    proc = Process.start([sys.executable, str(SCRIPT), "all", "--quiet"], env=env,
                         writable=[out])
    try:
        assert wait_until_listening("127.0.0.1", ports.client, 15,
                                    ended=lambda: proc.exited() is not None), proc.output_tail()
        report = httpx.get(ports.url("client") + "/?connection_count=2&connection_value=2"
                           "&delay_range=0", timeout=TIMEOUT).json()
        assert report["ok"] == 4
        assert len(rows(out / "records.txt")) == 4
    finally:
        proc.stop()


def test_flags_win_over_the_environment_and_bad_values_are_usage_errors(tmp_path: Path) -> None:
    env = {"PIPELINE_HOST": "::1", "PIPELINE_CLIENT_PORT": "6000",
           "PIPELINE_OUTPUT_DIR": "elsewhere"}
    args = pipeline.build_parser(env).parse_args(["all", "--client-port", "7000"])
    config = pipeline.config_from(args)
    assert (config.host, config.client_port, config.output_dir) == ("::1", 7000,
                                                                   Path("elsewhere"))
    assert config.receiver_url == "http://[::1]:5001"
    defaults = pipeline.config_from(pipeline.build_parser({}).parse_args(["writer"]))
    assert (defaults.writer_port, defaults.processor_url, defaults.output_dir) == (
        5003, "http://127.0.0.1:5002", Path("output"))
    for argv, env in ((["all", "--client-port", "x"], {}), (["all"], {"PIPELINE_WRITER_PORT": "x"}),
                      (["all", "--writer-port", "70000"], {}), (["nobody"], {}),
                      (["receiver", "--processor-url", "nowhere"], {}),
                      (["all", "--client-port", "5001"], {})):
        run = subprocess.run([sys.executable, str(SCRIPT), *argv, "--output-dir", str(tmp_path)],
                             capture_output=True, text=True, timeout=30,
                             env={**os.environ, **env})
        assert run.returncode == 2, (argv, env, run.stderr)
        assert "usage:" in run.stderr


def test_runs_from_any_folder(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, str(SCRIPT), "--help"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=30)
    assert run.returncode == 0 and "PIPELINE_OUTPUT_DIR" in run.stdout
