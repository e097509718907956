"""The `taskqueue-client` spec's suite (openapi/taskqueue-client.requirements.yaml): a client of
the task server, checked against our reference server run in-process."""

from __future__ import annotations

from dataclasses import dataclass

from conformance._client_run import ClientOptions


@dataclass(frozen=True)
class Options(ClientOptions):
    """The task client's options: where it expects its server."""
