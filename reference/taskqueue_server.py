"""The reference taskqueue server: tasks run strictly one at a time, in submission order, while
every request is answered at once (assignment seed 004, protocol of openapi/taskqueue.yaml).

Run it as `python taskqueue_server.py [--host H] [--port P] [--time-scale F] [--max-data N]
[--max-queued N] [--max-finished N] [--quiet]`; it listens on 127.0.0.1:8888 by default.

Rules, as `openapi/taskqueue.yaml` and `openapi/taskqueue.requirements.yaml` state them:
- `POST /api/v1/tasks` takes `{"type": 1|2|3, "data": "<string>"}` (a JSON integer type, not
  `true` or `"1"`; data of at most --max-data characters, the empty string included; other
  members are ignored) and answers 201 with the task at once. Anything else answers 422 and
  queues nothing; a full queue (--max-queued unfinished tasks) answers 503 with Retry-After.
- One worker coroutine takes the tasks from a FIFO queue, one at a time: it marks the task
  running, sleeps the type's delay (2, 5 or 7 s, times --time-scale), computes the result and
  marks it done. Handlers only read and append: none ever waits for the worker.
- `GET /api/v1/tasks/{id}` answers the task: status queued -> running -> done (failed only if
  the transformation itself raised, which is a bug), with RFC 3339 UTC times. `GET
  /api/v1/tasks/{id}/result` answers 200 with the result, every time it is asked, once done,
  and 409 naming the status before that. An unknown id answers 404.
- Only the --max-finished most recently finished tasks are kept (the oldest go first, then
  404); nothing is kept across restarts, as the assignment allows.
- Ctrl+C or SIGTERM stops the server with exit status 0; queued tasks are dropped.
"""

# No `from __future__ import annotations`: FastAPI reads the endpoints' annotations at run time.
import argparse
import asyncio
import collections
import logging
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, field_validator

try:
    from reference import crawler as base
except ImportError:  # run as a script from this folder
    import crawler as base  # type: ignore[no-redef]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8888

log = logging.getLogger("taskqueue")


def reverse(data: str) -> str:
    """Type 1: the string backwards (`пример` -> `ремирп`)."""
    return data[::-1]


def swap_pairs(data: str) -> str:
    """Type 2: each pair of characters swapped; an odd last one stays (`кот` -> `окт`)."""
    swapped = list(data)
    swapped[0:len(data) - 1:2], swapped[1::2] = data[1::2], data[0:len(data) - 1:2]
    return "".join(swapped)


def repeat_by_position(data: str) -> str:
    """Type 3: the character at position k (from 1) repeated k times (`пример` ->
    `прриииммммееееерррррр`)."""
    return "".join(ch * k for k, ch in enumerate(data, start=1))


TaskType = Literal[1, 2, 3]
# type -> (transformation, delay in seconds), as the assignment lists them.
TYPES: dict[int, tuple[Callable[[str], str], float]] = {
    1: (reverse, 2.0),
    2: (swap_pairs, 5.0),
    3: (repeat_by_position, 7.0),
}


@dataclass(frozen=True)
class QueueConfig:
    """Everything the command line sets; `create_app` reads nothing else."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    time_scale: float = 1.0
    max_data: int = 1000
    max_queued: int = 10_000
    max_finished: int = 100_000
    quiet: bool = False


def _now() -> datetime:
    return datetime.now(UTC)


def _stamp(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat(timespec="microseconds")


@dataclass
class Task:
    """One task and what has happened to it."""

    id: str
    type: int
    data: str
    status: str = "queued"
    queued_at: datetime = field(default_factory=_now)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    result: str | None = None
    error: str | None = None

    def view(self) -> dict[str, Any]:
        """The task as `GET /api/v1/tasks/{id}` shows it."""
        shown: dict[str, Any] = {
            "id": self.id, "type": self.type, "status": self.status,
            "queued_at": _stamp(self.queued_at), "started_at": _stamp(self.started_at),
            "finished_at": _stamp(self.finished_at),
        }
        if self.error is not None:
            shown["error"] = self.error
        return shown


class QueueFull(Exception):
    """No room for another unfinished task."""


class TaskQueue:
    """The tasks by id, the FIFO of those waiting, and the one worker that runs them."""

    def __init__(self, config: QueueConfig) -> None:
        self.config = config
        self.tasks: dict[str, Task] = {}
        self._waiting: collections.deque[Task] = collections.deque()
        self._finished: collections.deque[str] = collections.deque()
        self._wake = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self.current: Task | None = None

    @property
    def unfinished(self) -> int:
        """Tasks queued or running."""
        return len(self._waiting) + (self.current is not None)

    def submit(self, task_type: int, data: str) -> Task:
        """Queue a task and return it; QueueFull when --max-queued tasks are unfinished."""
        if self.unfinished >= self.config.max_queued:
            raise QueueFull
        task = Task(id=str(uuid.uuid4()), type=task_type, data=data)
        self.tasks[task.id] = task
        self._waiting.append(task)
        self._wake.set()
        return task

    def get(self, task_id: str) -> Task | None:
        """The task named `task_id`, or None."""
        return self.tasks.get(task_id.lower())

    def start(self) -> None:
        """Start the worker (inside the running event loop)."""
        self._worker = asyncio.get_running_loop().create_task(self._work(), name="worker")

    async def stop(self) -> None:
        """Stop the worker; whatever is queued is dropped."""
        if self._worker is not None:
            self._worker.cancel()
            with suppress(asyncio.CancelledError):
                await self._worker

    async def _work(self) -> None:
        while True:
            if not self._waiting:
                self._wake.clear()
                await self._wake.wait()
                continue
            task = self.current = self._waiting.popleft()
            try:
                await self._run(task)
            finally:
                self.current = None
            self._finished.append(task.id)
            while len(self._finished) > self.config.max_finished:
                self.tasks.pop(self._finished.popleft(), None)

    async def _run(self, task: Task) -> None:
        transform, delay = TYPES[task.type]
        task.status, task.started_at = "running", _now()
        await asyncio.sleep(delay * self.config.time_scale)
        try:
            task.result = transform(task.data)
        except Exception as exc:  # a bug must not stop the worker: this task fails, visibly
            log.exception("task %s failed", task.id)
            task.error = f"{type(exc).__name__}: {exc}"
        task.finished_at = _now()
        task.status = "done" if task.error is None else "failed"


class NewTask(BaseModel):
    """The body of `POST /api/v1/tasks`."""

    type: TaskType
    data: str = Field(json_schema_extra={"description": "Any Unicode string."})

    @field_validator("type", mode="before")
    @classmethod
    def _integer_only(cls, value: object) -> object:
        # pydantic takes true and 1.0 for 1; the protocol says a JSON integer.
        if type(value) is not int:
            raise ValueError("type must be the integer 1, 2 or 3")
        return value


def _not_found() -> JSONResponse:
    return JSONResponse({"detail": "task not found"}, status_code=404)


def create_app(config: QueueConfig) -> FastAPI:
    """Return the taskqueue's ASGI application, configured by `config` alone."""
    queue = TaskQueue(config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        queue.start()
        try:
            yield
        finally:
            await queue.stop()

    app = FastAPI(title="taskqueue", version="1.0.0", lifespan=lifespan,
                  summary="A strictly sequential task server (the reference).")
    app.state.queue = queue

    # 400 is documented though never answered: the protocol (openapi/taskqueue.yaml) lets a
    # server answer it, and this document must list every status the protocol names.
    @app.post("/api/v1/tasks", status_code=201,
              responses={400: {"description": "Not answered by this server (it answers 422); "
                                              "the protocol lets a server answer 400 for a "
                                              "body that is not a task."},
                         422: {"description": "Not a task of type 1, 2 or 3 with string data "
                                              "of at most the allowed length."},
                         503: {"description": "The queue is full; try again later."}})
    async def submit_task(new: NewTask) -> JSONResponse:
        """Queue a task; answers at once with it."""
        if len(new.data) > config.max_data:
            return JSONResponse(
                {"detail": f"data is {len(new.data)} characters long; at most "
                           f"{config.max_data} are taken"}, status_code=422)
        try:
            task = queue.submit(new.type, new.data)
        except QueueFull:
            return JSONResponse({"detail": f"the queue is full ({config.max_queued} "
                                           f"unfinished tasks); try again later"},
                                status_code=503, headers={"Retry-After": "10"})
        return JSONResponse(task.view(), status_code=201)

    @app.get("/api/v1/tasks/{task_id}",
             responses={404: {"description": "No such task."}})
    async def get_task(task_id: str) -> JSONResponse:
        """The task's status and times."""
        task = queue.get(task_id)
        return _not_found() if task is None else JSONResponse(task.view())

    @app.get("/api/v1/tasks/{task_id}/result",
             responses={404: {"description": "No such task."},
                        409: {"description": "The task is not done (yet)."}})
    async def get_result(task_id: str) -> JSONResponse:
        """The result of a done task, as often as asked."""
        task = queue.get(task_id)
        if task is None:
            return _not_found()
        if task.status != "done":
            why = ("it failed: " + (task.error or "")) if task.status == "failed" else (
                "its result is not ready yet")
            return JSONResponse({"id": task.id, "status": task.status,
                                 "detail": f"the task is {task.status}; {why}"},
                                status_code=409)
        return JSONResponse({"id": task.id, "status": "done", "result": task.result})

    return app


def _scale(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1000, not {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The command line; its defaults are QueueConfig's."""
    d = QueueConfig()
    parser = argparse.ArgumentParser(
        description="A strictly sequential task server: types 1 reverse (2 s), 2 swap pairs "
                    "(5 s), 3 repeat by position (7 s).")
    parser.add_argument("--host", default=d.host, help="address to listen on (%(default)s)")
    parser.add_argument("--port", type=base._port, default=d.port, help="port (%(default)s)")
    parser.add_argument("--time-scale", type=_scale, default=d.time_scale, metavar="F",
                        help="multiply every delay by F, for tests and demos (%(default)s)")
    parser.add_argument("--max-data", type=base._positive_int, default=d.max_data, metavar="N",
                        help="characters a task's data may have (%(default)s)")
    parser.add_argument("--max-queued", type=base._positive_int, default=d.max_queued,
                        metavar="N", help="unfinished tasks held at most (%(default)s)")
    parser.add_argument("--max-finished", type=base._positive_int, default=d.max_finished,
                        metavar="N", help="finished tasks kept, oldest dropped first "
                                          "(%(default)s)")
    parser.add_argument("--quiet", action="store_true", help="log nothing but errors")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Start the server; 0 after Ctrl+C or SIGTERM, 1 if it cannot listen, 2 for bad options."""
    a = build_parser().parse_args(argv)
    config = QueueConfig(host=a.host, port=a.port, time_scale=a.time_scale,
                         max_data=a.max_data, max_queued=a.max_queued,
                         max_finished=a.max_finished, quiet=a.quiet)
    settings = (f"delays 2/5/7 s x {config.time_scale:g}, max-data {config.max_data}, "
                f"max-queued {config.max_queued}, max-finished {config.max_finished}")
    return base.serve(config, lambda: create_app(config), "taskqueue", settings)


if __name__ == "__main__":
    sys.exit(main())
