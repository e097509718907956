"""The `probe` spec's suite (openapi/probe.requirements.yaml): seed 002's prober of many domains
over HTTP and HTTPS, judged in the box's local internet (conformance/_box); checks.py runs it.

Rules: import nothing heavy here (every command reads every spec's options).
"""

from __future__ import annotations

from dataclasses import dataclass

from conformance._options import SpecOptions, option


def _count(text: str) -> int:
    """A number of domains: a whole number from 1 to the seed's 10,000 and a little more (the
    connection bound is only seen with more domains than 1,000)."""
    value = int(text)
    if not 1 <= value <= 20_000:
        raise ValueError("a number of domains from 1 to 20000")
    return value


@dataclass(frozen=True)
class Options(SpecOptions):
    """The prober's options: how long a list of domains the box serves it."""

    domains: int = option(
        300, parse=_count, metavar="N",
        help="domains in the list the prober is given, every fault of the box among them "
             "(%(default)s; 10000 is the seed's full size)")
