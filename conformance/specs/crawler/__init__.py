"""The `crawler` spec's suite (openapi/crawler.requirements.yaml): a task API that fetches URLs
and reports their codes, checked with URLs of the suite's own fixture web."""

from __future__ import annotations

from dataclasses import dataclass

from conformance._options import SpecOptions, option


@dataclass(frozen=True)
class Options(SpecOptions):
    """The crawler's options (also those of every spec that extends it)."""

    fixture_host: str = option(
        "127.0.0.1", metavar="HOST",
        help="the address of this machine put into the URLs a crawler fetches, for a server "
             "under test that runs elsewhere (%(default)s)",
        outside=lambda host: host not in ("127.0.0.1", "localhost", "::1"))
