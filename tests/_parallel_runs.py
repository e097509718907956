"""Runs of `conformance` started together in a few threads, for verdict tests whose suite runs
spend most of their time waiting (each run is a process of its own, on a free port); the runs
that need 127.0.0.1:8888 go one after the other in a single worker."""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from conformance._target import is_listening
from tests.conftest import Run, conformance


def need_default_port() -> None:
    """Skip when something listens on 8888, where the suite must play the server (never in
    CI, where the port is ours and a skip would hide the default-address check)."""
    if is_listening("127.0.0.1", 8888):
        why = "127.0.0.1:8888 is taken, so a client's default address cannot be judged"
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)


class Started:
    """`runs` and `at_default_port` (name -> arguments of `conformance`), started at once;
    `get(name)` waits for one."""

    def __init__(self, base: Path, runs: dict[str, tuple[str, ...]],
                 at_default_port: dict[str, tuple[str, ...]], workers: int) -> None:
        self.base = base
        self.at_default_port = at_default_port
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="conformance")
        # One worker runs these in turn, from the start as they are the longest chain; when
        # 8888 is taken their tests skip (or fail under CI) without asking for them.
        self.default: Future[dict[str, Run]] | None = None
        if not is_listening("127.0.0.1", 8888):
            self.default = self.pool.submit(self._chain, at_default_port)
        self.futures: dict[str, Future[Run]] = {
            name: self.pool.submit(self._one, name, args)
            for name, args in runs.items() if name not in at_default_port}

    def _one(self, name: str, args: tuple[str, ...]) -> Run:
        folder = self.base / name.replace(" ", "-")
        folder.mkdir()
        return conformance(*args, tmp=folder)

    def _chain(self, runs: dict[str, tuple[str, ...]]) -> dict[str, Run]:
        return {name: self._one(name, args) for name, args in runs.items()}

    def get(self, name: str) -> Run:
        """The run called `name`, once it has ended."""
        if name in self.at_default_port:
            assert self.default is not None, "127.0.0.1:8888 was taken when the runs started"
            return self.default.result()[name]
        return self.futures[name].result()

    def close(self) -> None:
        """Wait for every run to end."""
        self.pool.shutdown(wait=True, cancel_futures=False)
