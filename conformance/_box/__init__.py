"""A local internet in a box: planned sites (names, faults, answers) that a program under test
reaches by name over HTTP and HTTPS inside the run's own network namespace, through our resolver
and test CA, with what every host and the resolver saw recorded for the suite.

Rules: suites import from here only; the parts (`_plan`, `_dns`, `_namespace`, `_hosts`,
`_tls`, `_box`) are the box's own. Importing this package starts nothing.
"""

from conformance._box._box import Box
from conformance._box._dns import Query, Resolver
from conformance._box._hosts import Hit, Hosts
from conformance._box._namespace import BoxUnavailable, blackhole_address
from conformance._box._plan import Answer, Dns, Port, Site, Tls, allocate
from conformance._box._tls import TlsMaterial

__all__ = [
    "Answer",
    "Box",
    "BoxUnavailable",
    "Dns",
    "Hit",
    "Hosts",
    "Port",
    "Query",
    "Resolver",
    "Site",
    "Tls",
    "TlsMaterial",
    "allocate",
    "blackhole_address",
]
