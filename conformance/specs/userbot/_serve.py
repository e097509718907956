"""Serve the suite's Telegram by hand, with the world and the faults a run had, and print the
environment a userbot needs to talk to it: `python -m conformance.specs.userbot._serve
[--flood-at 2 | --drop-at 2]`, then run the program in another shell with those variables.

Rules: the same server (conformance/_telegram) and world (_world.py) as the suite's runs;
faults count the history requests of @pyclub, as the flood and drop runs do; Ctrl+C stops it.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from conformance._telegram import API_HASH, API_ID, READY_WAIT, SERVER
from conformance.specs.userbot._world import CLUB, world


def main(argv: list[str] | None = None) -> int:
    """Start the server, print the variables, serve until Ctrl+C."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flood-at", type=int, default=0,
                        help="answer @pyclub's n-th history request with FLOOD_WAIT_2")
    parser.add_argument("--drop-at", type=int, default=0,
                        help="drop the connection at @pyclub's n-th history request")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="telegram-") as name:
        folder = Path(name)
        (folder / "world.json").write_text(json.dumps(world()), encoding="utf-8")
        command = [sys.executable, str(SERVER), str(folder / "world.json"),
                   "--log", str(folder / "calls.jsonl"), "--ready", str(folder / "ready.json"),
                   "--session-file", str(folder / "account.session"),
                   "--flood-at", str(args.flood_at), "--drop-at", str(args.drop_at),
                   "--fault-peer", f"channel:{CLUB}"]
        server = subprocess.Popen(command)
        try:
            deadline = time.monotonic() + READY_WAIT
            while not (folder / "ready.json").exists() and time.monotonic() < deadline:
                if server.poll() is not None:
                    return 1
                time.sleep(0.05)
            ready = json.loads((folder / "ready.json").read_text())
            print(f"# our Telegram on 127.0.0.1:{ready['port']} (Telethon {ready['telethon']}); "
                  f"calls are logged to {folder / 'calls.jsonl'}", flush=True)
            for key, value in (("TG_API_ID", API_ID), ("TG_API_HASH", API_HASH),
                               ("TG_SESSION", ready["session"]),
                               ("TG_SESSION_FILE", ready["session_file"]), ("TZ", "UTC")):
                print(f"export {key}={shlex.quote(value)}", flush=True)
            server.wait()
        except KeyboardInterrupt:
            server.terminate()
            server.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
