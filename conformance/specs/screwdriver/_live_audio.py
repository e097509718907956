"""Our reference audio server (reference/audio.py, a Flask app) run in-process for judging a
client: on a given loopback port, storing into a folder of the caller's, every request recorded.

Rules: files are prepared over HTTP, as a client would upload them, and what the server holds is
read from its folder, so a check sees the bytes a client's upload really left there. Its
lifecycle is conformance._servers's (`InProcessServer`); once stopped it does not start again.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

import httpx

from conformance._servers import REQUEST_TIMEOUT, InProcessServer, WSGIBridge
from reference.audio import AudioConfig, create_app

FILES_PATH = "/api/files"
FIELD = "file"


class LiveAudio(InProcessServer):
    """Our reference audio server storing into `folder` (which it may create), taking files of
    at most `max_bytes` (None: its default); a context manager, or start() and stop() it."""

    def __init__(self, port: int, folder: Path, max_bytes: int | None = None) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        config = (AudioConfig(folder=folder, quiet=True) if max_bytes is None
                  else AudioConfig(folder=folder, max_bytes=max_bytes, quiet=True))
        self._bridge = WSGIBridge(create_app(config))
        super().__init__(port, self._bridge)

    def stop(self) -> None:
        """Stop the server, then let its bridge's threads end (so it cannot start again)."""
        try:
            super().stop()
        finally:
            self._bridge.close()

    def upload(self, name: str, content: bytes) -> httpx.Response:
        """Upload a file over HTTP, as a client would; the answer."""
        kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
        return httpx.post(self.url + FILES_PATH, files={FIELD: (name, content, kind)},
                          timeout=REQUEST_TIMEOUT, trust_env=False)

    def stored(self) -> dict[str, bytes]:
        """The files the server holds: name -> bytes (its hidden files, if any, left out)."""
        if not self.folder.is_dir():
            return {}
        return {p.name: p.read_bytes() for p in sorted(self.folder.iterdir())
                if p.is_file() and not p.name.startswith(".")}
