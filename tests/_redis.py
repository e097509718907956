"""A real `redis-server` for the tests: on a free loopback port, with no persistence, stopped
afterwards. Where none is installed the test is skipped, or failed when CI=true."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import redis

from conformance._target import free_port

INSTALL_HINT = "on Debian or Ubuntu: apt-get install redis-server"


def require_redis_server() -> str:
    """The path of `redis-server`; skips the test when there is none, fails it under CI=true.

    CI installs redis-server (.ci/run), so there a missing one is a broken setup, and a skip
    would hide that the real-Redis tests never ran.
    """
    path = shutil.which("redis-server")
    if path is not None:
        return path
    reason = f"redis-server is not installed ({INSTALL_HINT})"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI=true, where the real-Redis tests must run, not be skipped")
    pytest.skip(reason)


class RedisServer:
    """One redis-server process on 127.0.0.1, startable again on the same port after a stop."""

    def __init__(self, binary: str, port: int | None = None) -> None:
        self.binary = binary
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        # Its working folder and log: nothing is saved there (--save '', no AOF), but a stray
        # dump must not land in the repository.
        self.dir = Path(tempfile.mkdtemp(prefix="redis-test-"))
        self.log = self.dir / "redis.log"

    @property
    def url(self) -> str:
        """The redis:// URL of database 0."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        """Start it and wait until it answers PING; RuntimeError if it does not in `timeout`."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        argv = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(self.dir)]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if self.ping():
                return
            time.sleep(0.05)
        output = self.log.read_text(errors="replace")[-2000:]
        self.stop()
        raise RuntimeError(f"redis-server on port {self.port} did not answer PING within "
                           f"{timeout:g} s; its output ends:\n{output}")

    def ping(self) -> bool:
        """True when it answers PING right now."""
        client = self.client(timeout=0.5)
        try:
            return bool(client.ping())
        except (redis.RedisError, OSError):
            return False
        finally:
            client.close()

    def client(self, timeout: float = 5.0) -> redis.Redis:
        """A synchronous client (strings, not bytes) to look inside it."""
        return redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True,
                           socket_timeout=timeout, socket_connect_timeout=timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, and SIGKILL when it has not ended after `timeout` seconds."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)

    def close(self) -> None:
        """Stop it and remove its folder."""
        self.stop()
        with contextlib.suppress(OSError):
            shutil.rmtree(self.dir)
