"""Benchmark: does a slow client stall the reference credentials server (CRED-11, measured)?

Latency of 300 sequential requests while 10 slow clients hold connections open, each sending a
byte every 0.2 s, against the same server with no slow clients, measured in the same run.
Prints p50 and p99 for both and their ratios; the aim is a p99 ratio of at most 3x.
"""

from __future__ import annotations

import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from conformance._target import free_port, wait_until_listening

ROOT = Path(__file__).resolve().parent.parent
REQUESTS = 300
SLOW_CLIENTS = 10


def _latencies(url: str) -> list[float]:
    out = []
    with httpx.Client(trust_env=False, timeout=5) as client:
        for _ in range(REQUESTS):
            t0 = time.perf_counter()
            client.get(url).raise_for_status()
            out.append(time.perf_counter() - t0)
    return out


def _dribble(port: int, stop: threading.Event) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        for byte in b"GET /?species=Dalek HTTP/1.1\r\nHost: x\r\n":
            if stop.wait(0.2):
                return
            sock.sendall(bytes([byte]))
        stop.wait(30)


def _pcts(values: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(values, n=100)
    return q[49] * 1000, q[98] * 1000


def main() -> int:
    """Run both measurements against one server process and print the ratios."""
    port = free_port()
    server = subprocess.Popen([sys.executable, str(ROOT / "reference" / "credentials.py"),
                               "--port", str(port), "--quiet"])
    url = f"http://127.0.0.1:{port}/?species=Dalek"
    try:
        if not wait_until_listening("127.0.0.1", port, 10):
            raise SystemExit("the reference did not start")
        _latencies(url)  # warm-up
        idle = _pcts(_latencies(url))
        stop = threading.Event()
        threads = [threading.Thread(target=_dribble, args=(port, stop), daemon=True)
                   for _ in range(SLOW_CLIENTS)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        loaded = _pcts(_latencies(url))
        stop.set()
        for t in threads:
            t.join(timeout=5)
    finally:
        server.terminate()
        server.wait(timeout=10)
    print(f"idle:            p50 {idle[0]:.2f} ms   p99 {idle[1]:.2f} ms   (baseline)")
    print(f"{SLOW_CLIENTS} slow clients: p50 {loaded[0]:.2f} ms   p99 {loaded[1]:.2f} ms")
    ratio = loaded[1] / idle[1]
    print(f"ratio p50 {loaded[0] / idle[0]:.2f}x   p99 {ratio:.2f}x   (aim: p99 at most 3x) "
          f"{'OK' if ratio <= 3 else 'ABOVE AIM'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
