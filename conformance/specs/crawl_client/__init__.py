"""The `crawl-client` spec's suite (openapi/crawl-client.requirements.yaml): `crawl.py`, a client
of the crawler's task API, checked against a scripted fake crawler server."""

from __future__ import annotations

from dataclasses import dataclass

from conformance._client_run import ClientOptions


@dataclass(frozen=True)
class Options(ClientOptions):
    """The crawl client's options: where it expects its server."""
