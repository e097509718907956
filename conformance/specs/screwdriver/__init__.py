"""The `screwdriver` spec's suite (openapi/screwdriver.requirements.yaml): a client of the audio
server, checked against our reference audio server run in-process."""

from __future__ import annotations

from dataclasses import dataclass

from conformance._client_run import ClientOptions


@dataclass(frozen=True)
class Options(ClientOptions):
    """The screwdriver's options: where it expects its server."""
