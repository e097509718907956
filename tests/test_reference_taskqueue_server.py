"""The reference taskqueue_server.py: the three transformations, one task at a time in FIFO
order while requests are answered, statuses and times, results read again and again, 404/409/
422/503, eviction of old tasks, and a clean stop. (Its conformance to the whole spec is the
suite's business: tests/test_twins.py and tests/test_taskqueue_verdicts.py.)"""

from __future__ import annotations

import asyncio
import itertools
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import httpx
import pytest

from conformance._target import free_port, wait_until_listening
from reference import crawler
from reference import taskqueue_server as server
from tests.conftest import ROOT

SCRIPT = ROOT / "reference" / "taskqueue_server.py"
API = "/api/v1/tasks"


@pytest.mark.parametrize(("kind", "data", "result"), [
    (1, "пример", "ремирп"),
    (2, "пример", "рпмире"),
    (2, "кот", "окт"),
    (3, "пример", "прриииммммееееерррррр"),
    (1, "Zß😀中𝄞", "𝄞中😀ßZ"),
    (2, "Zß😀中𝄞", "ßZ中😀𝄞"),
    (3, "a😀", "a😀😀"),
    (1, "", ""), (2, "", ""), (3, "", ""),
    (2, "x", "x"),
    (2, "ab", "ba"),
])
def test_transformations(kind: int, data: str, result: str) -> None:
    transform, _ = server.TYPES[kind]
    assert transform(data) == result


def test_delays_are_the_assignments() -> None:
    assert {k: d for k, (_, d) in server.TYPES.items()} == {1: 2.0, 2: 5.0, 3: 7.0}


@asynccontextmanager
async def client(**config: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The app of `QueueConfig(**config)`, its worker running, behind an in-process client."""
    app = server.create_app(server.QueueConfig(**config))
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://taskqueue") as c:
        yield c


async def wait_done(c: httpx.AsyncClient, task_id: str, limit: float = 5.0) -> dict[str, Any]:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        task = (await c.get(f"{API}/{task_id}")).json()
        if task["status"] in ("done", "failed"):
            return task
        await asyncio.sleep(0.01)
    pytest.fail(f"task {task_id} not done within {limit} s")


def test_one_at_a_time_in_order_while_answering() -> None:
    async def exercise() -> None:
        async with client(time_scale=0.05) as c:
            ids = []
            for kind, data in [(3, "пример"), (1, "a"), (2, "кот")]:
                answer = await c.post(API, json={"type": kind, "data": data})
                assert answer.status_code == 201
                assert answer.json()["status"] == "queued"
                ids.append(answer.json()["id"])
            await asyncio.sleep(0.05)
            statuses = [(await c.get(f"{API}/{i}")).json()["status"] for i in ids]
            assert statuses == ["running", "queued", "queued"]
            early = await c.get(f"{API}/{ids[1]}/result")
            assert early.status_code == 409 and early.json()["status"] == "queued"
            tasks = [await wait_done(c, i) for i in ids]
            times = [(datetime.fromisoformat(t["started_at"]),
                      datetime.fromisoformat(t["finished_at"])) for t in tasks]
            for (_, finished), (started, _) in itertools.pairwise(times):
                assert started >= finished
            for (started, finished), delay in zip(times, (0.35, 0.1, 0.25), strict=True):
                assert (finished - started).total_seconds() >= delay
            for _ in range(3):
                again = await c.get(f"{API}/{ids[2]}/result")
                assert again.json() == {"id": ids[2], "status": "done", "result": "окт"}

    asyncio.run(exercise())


@pytest.mark.parametrize("body", [
    {"type": True, "data": "x"}, {"type": 1.0, "data": "x"}, {"type": "1", "data": "x"},
    {"type": 4, "data": "x"}, {"type": 1, "data": 5}, {"type": 1}, {"data": "x"}, [1, "x"],
    {"type": 1, "data": "x" * 1001},
])
def test_bad_bodies_answer_422(body: Any) -> None:
    async def exercise() -> None:
        async with client() as c:
            assert (await c.post(API, json=body)).status_code == 422

    asyncio.run(exercise())


def test_unknown_ids_answer_404() -> None:
    async def exercise() -> None:
        async with client() as c:
            for path in (f"{API}/nope", f"{API}/nope/result"):
                answer = await c.get(path)
                assert (answer.status_code, answer.json()) == (404, {"detail": "task not found"})

    asyncio.run(exercise())


def test_full_queue_answers_503_and_old_tasks_are_dropped() -> None:
    async def exercise() -> None:
        async with client(time_scale=0.0, max_queued=2, max_finished=2) as c:
            ids = [(await c.post(API, json={"type": 1, "data": str(n)})).json()["id"]
                   for n in range(2)]
            full = await c.post(API, json={"type": 1, "data": "more"})
            assert full.status_code == 503 and full.headers["retry-after"] == "10"
            await wait_done(c, ids[1])
            for n in range(2):
                done = (await c.post(API, json={"type": 1, "data": f"later {n}"})).json()["id"]
                await wait_done(c, done)
            assert (await c.get(f"{API}/{ids[0]}")).status_code == 404
            assert (await c.get(f"{API}/{done}/result")).json()["result"] == "1 retal"

    asyncio.run(exercise())


def test_a_failing_transformation_fails_its_task_only(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(data: str) -> str:
        raise RuntimeError("bug")

    monkeypatch.setitem(server.TYPES, 2, (broken, 0.0))

    async def exercise() -> None:
        async with client(time_scale=0.0) as c:
            bad = (await c.post(API, json={"type": 2, "data": "x"})).json()["id"]
            good = (await c.post(API, json={"type": 1, "data": "ok"})).json()["id"]
            failed = await wait_done(c, bad)
            assert failed["status"] == "failed" and "RuntimeError: bug" in failed["error"]
            assert (await c.get(f"{API}/{bad}/result")).status_code == 409
            assert (await wait_done(c, good))["status"] == "done"

    asyncio.run(exercise())


def test_listening_socket_is_tcp_so_answers_are_not_held_by_nagle() -> None:
    # asyncio sets TCP_NODELAY only on sockets whose proto says TCP; without it a kept-alive
    # connection waited 40 ms per answer for the client's delayed ACK.
    sock = crawler._bind("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_process_stops_cleanly_with_tasks_queued(sig: signal.Signals) -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(SCRIPT), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert wait_until_listening("127.0.0.1", port, 15)
        for _ in range(3):
            httpx.post(f"http://127.0.0.1:{port}{API}", json={"type": 3, "data": "x"},
                       timeout=5).raise_for_status()
        proc.send_signal(sig)
        assert proc.wait(timeout=10) == 0
        out = proc.stdout.read() if proc.stdout else ""
    finally:
        proc.kill()
        proc.wait()
    assert "Traceback" not in out
    assert f"serving on http://127.0.0.1:{port}/ (delays 2/5/7 s x 1" in out


def test_defaults() -> None:
    args = server.build_parser().parse_args([])
    assert (args.host, args.port, args.time_scale, args.max_data, args.max_queued,
            args.max_finished) == ("127.0.0.1", 8888, 1.0, 1000, 10_000, 100_000)
