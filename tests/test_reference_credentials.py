"""The reference credentials.py: standard library only, port 8888 by default, a clean stop on
Ctrl+C, a clear message when the port is taken. (Its conformance is in the verdict tests.)"""

from __future__ import annotations

import ast
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from conformance._target import free_port, wait_until_listening
from reference import credentials
from tests.conftest import ROOT

SCRIPT = ROOT / "reference" / "credentials.py"


@contextmanager
def started(*argv: str) -> Iterator[tuple[subprocess.Popen[str], int]]:
    port = free_port()
    proc = subprocess.Popen([*argv, "--port", str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert wait_until_listening("127.0.0.1", port, 10, lambda: proc.poll() is not None), \
            proc.communicate()
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)


def test_imports_only_the_standard_library() -> None:
    tree = ast.parse(SCRIPT.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    assert names - {"__future__"} <= sys.stdlib_module_names, names - sys.stdlib_module_names


def test_runs_with_no_site_packages_at_all() -> None:
    # -I -S: no user site, no site-packages; only the standard library is importable.
    with started(sys.executable, "-I", "-S", str(SCRIPT), "--quiet") as (_, port):
        answer = httpx.get(f"http://127.0.0.1:{port}/?species=Time%20Lord", timeout=5,
                           trust_env=False)
    assert answer.status_code == 200
    assert answer.json() == {"credentials": "Rassilon"}
    assert answer.headers["content-type"] == "application/json"


def test_listens_on_local_port_8888_by_default() -> None:
    args = credentials.build_parser().parse_args([])
    assert (args.host, args.port) == ("127.0.0.1", 8888)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_stops_cleanly_on_ctrl_c_and_sigterm(sig: signal.Signals) -> None:
    with started(sys.executable, str(SCRIPT)) as (proc, _):
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert "Traceback" not in err
    assert "stopped" in err


def test_busy_port_is_a_clear_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        done = subprocess.run([sys.executable, str(SCRIPT), "--port", str(port)],
                              capture_output=True, text=True, timeout=10)
    assert done.returncode == 1
    assert "cannot listen" in done.stderr
    assert "Traceback" not in done.stderr


def _call(app, method: str, path: str, query: str = "") -> tuple[str, dict[str, str], bytes]:
    seen: dict = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        seen.update(status=status, headers=dict(headers))

    body = b"".join(app({"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query},
                        start_response))
    return seen["status"], seen["headers"], body


def test_head_is_get_without_the_body() -> None:
    app = credentials.create_app()
    get = _call(app, "GET", "/", "species=Dalek")
    head = _call(app, "HEAD", "/", "species=Dalek")
    assert head[0] == get[0] == "200 OK"
    assert head[1] == get[1]
    assert head[2] == b""


def test_repeated_species_uses_the_first() -> None:
    status, _, body = _call(credentials.create_app(), "GET", "/", "species=Dalek&species=Ood")
    assert (status, body) == ("200 OK", b'{"credentials": "Davros"}')


def test_app_factory_takes_its_own_table() -> None:
    app = credentials.create_app({"Tardis": "The Doctor"})
    assert _call(app, "GET", "/", "species=Tardis")[2] == b'{"credentials": "The Doctor"}'
    assert _call(app, "GET", "/", "species=Dalek")[0] == "404 Not Found"
