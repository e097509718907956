"""Ports for started servers (`free_port`): below the kernel's ephemeral range, and never the
same for two runs at once, so a batch's parallel runs each check the server they started."""

from __future__ import annotations

import socket
import subprocess
from contextlib import closing

from conformance._target import _ephemeral_low, free_port
from tests.conftest import PY, ROOT

TAKE = ("import sys; from conformance._target import free_port; "
        "print(*[free_port() for _ in range(300)], flush=True); sys.stdin.read()")


def test_ports_are_free_and_below_the_ephemeral_range() -> None:
    low = _ephemeral_low()
    for port in [free_port() for _ in range(50)]:
        assert 1024 <= port < low
        with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
            sock.bind(("127.0.0.1", port))  # free: nothing else holds it


def test_two_runs_at_once_never_get_the_same_port() -> None:
    # 300 ports each out of 10,000: picked at random with no lock, about 9 would be shared.
    first = subprocess.Popen([PY, "-c", TAKE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True, cwd=ROOT)
    try:
        assert first.stdout is not None
        held = set(map(int, first.stdout.readline().split()))
        second = subprocess.run([PY, "-c", TAKE], input="", capture_output=True, text=True,
                                timeout=60, cwd=ROOT)
        other = set(map(int, second.stdout.split()))
        assert len(held) == len(other) == 300, second.stderr
        assert not held & other
    finally:
        first.communicate("", timeout=60)
    # Once a run ended, its ports are free for the next.
    again = subprocess.run([PY, "-c", TAKE], input="", capture_output=True, text=True,
                           timeout=60, cwd=ROOT)
    assert len(set(map(int, again.stdout.split()))) == 300
