"""The benchmarks' local web site: an aiohttp.web app that answers any GET with 200 and "ok".

`python bench/_fixture.py --serve PORT` runs it on 127.0.0.1:PORT until it is stopped;
`running_fixture()` starts that in a subprocess of its own, so the server's work is not counted
against (and does not compete for the event loop of) whatever is measured.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from aiohttp import web

from conformance._target import free_port, wait_until_listening


async def _ok(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def serve(port: int) -> None:
    """Serve the fixture on 127.0.0.1:port until SIGINT or SIGTERM."""
    app = web.Application()
    app.router.add_get("/{tail:.*}", _ok)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


@contextmanager
def running_fixture() -> Iterator[str]:
    """Start the fixture in a subprocess on a free port; yield its base URL (no trailing /)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--serve", str(port)],
                            stdin=subprocess.DEVNULL)
    try:
        if not wait_until_listening("127.0.0.1", port, 15, lambda: proc.poll() is not None):
            raise SystemExit("the fixture server did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def vm_kib(pid: int, field: str) -> int:
    """A memory figure of a running process from /proc/PID/status, in KiB (VmHWM: peak RSS)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise LookupError(f"{field} not in /proc/{pid}/status")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", type=int, metavar="PORT", required=True)
    serve(parser.parse_args().serve)
