"""The `screwdriver` spec's suite (openapi/screwdriver.requirements.yaml): a client of the audio
server, checked against our reference audio server run in-process, or through the student's own
server (--server-command, --server-url) when the client speaks that server's routes."""

from __future__ import annotations

from dataclasses import dataclass

from conformance._client_run import OwnServerOptions


@dataclass(frozen=True)
class Options(OwnServerOptions):
    """The screwdriver's options: where it expects its server, and the student's own server
    to judge it through, when given."""
