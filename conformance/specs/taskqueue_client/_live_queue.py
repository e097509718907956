"""Our reference taskqueue server run in-process, for judging a client: on a given loopback port,
with a given time scale, every request recorded and the queue's state open to inspection.

Rules: tasks are prepared over HTTP, as a client would, and the state is only read from outside
the server's thread.
"""

from __future__ import annotations

import time

import httpx

from conformance._servers import HOST, REQUEST_TIMEOUT, InProcessServer
from reference.taskqueue_server import QueueConfig, Task, TaskQueue, create_app

TASKS_PATH = "/api/v1/tasks"


class LiveQueue(InProcessServer):
    """Our reference taskqueue server (reference/taskqueue_server.py) with its delays times
    `time_scale`, its queue open to inspection."""

    def __init__(self, port: int, time_scale: float) -> None:
        self.time_scale = time_scale
        app = create_app(QueueConfig(host=HOST, port=port, time_scale=time_scale, quiet=True))
        self.queue: TaskQueue = app.state.queue
        super().__init__(port, app)

    def submit(self, task_type: int, data: str) -> str:
        """Queue a task over HTTP, as a client would; its id."""
        response = httpx.post(self.url + TASKS_PATH, json={"type": task_type, "data": data},
                              timeout=REQUEST_TIMEOUT, trust_env=False, verify=False)
        response.raise_for_status()
        return str(response.json()["id"])

    def tasks(self) -> list[Task]:
        """The tasks the server holds, in the order they were submitted."""
        # list() copies the dict in one step, so the server's thread cannot change it meanwhile.
        return list(self.queue.tasks.values())

    def task(self, task_id: str) -> Task | None:
        """The task named `task_id`, or None."""
        return self.queue.tasks.get(task_id)

    def wait_for(self, task_id: str, statuses: set[str], timeout: float) -> bool:
        """Wait until the task's status is one of `statuses`; False after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            task = self.task(task_id)
            if task is not None and task.status in statuses:
                return True
            time.sleep(0.01)
        return False
