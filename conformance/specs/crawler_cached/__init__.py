"""The `crawler-cached` spec's suite (openapi/crawler-cached.requirements.yaml): the crawler
with a Redis cache of codes and per-domain counters; every check of `crawler` runs too."""

from __future__ import annotations

from dataclasses import dataclass

from conformance._options import option, positive
from conformance.specs import crawler


@dataclass(frozen=True)
class Options(crawler.Options):
    """The caching crawler's options: the crawler's, and where its cache can be judged."""

    cache_timeout: float | None = option(
        None, parse=positive, metavar="S",
        help="the seconds the server's cache keeps a code, so the suite can check that an "
             "entry expires (unset: not checked)")
    redis_url: str | None = option(
        None, metavar="URL",
        help="the server's Redis, where the suite looks for the domain counters (read only)",
        outside=lambda _: True)
