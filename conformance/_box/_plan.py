"""What the box serves, as data: one `Site` per domain name, with how its DNS, its HTTP port and
its HTTPS port behave, and the loopback address the box gives it.

Rules: a plan is plain frozen data, made before the box starts and never changed by it, so a
suite knows what every host served without asking the box (a suite that changes a site's answer
while the box runs, `Box.switch`, keeps its own record of when); every fault is one value of one
field (a site has at most one DNS fault and one fault per port); addresses are given by
`allocate()`, never written by hand, and none is in 127.0.0.0/16 (127.0.0.1 is the machine's,
127.0.0.53 the box's resolver).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from enum import Enum


class Dns(Enum):
    """How the box's resolver answers for a name (None on a site: an A record at once)."""

    NXDOMAIN = "nxdomain"  # the name does not exist
    SERVFAIL = "servfail"  # the resolver fails
    SILENT = "silent"  # no answer ever comes
    LATE = "late"  # the answer comes after `Site.dns_delay` seconds


class Port(Enum):
    """A fault of a site's port 80 or 443 (None on a site: it answers with its `Answer`)."""

    REFUSED = "refused"  # nothing listens: the connect is refused
    BLACKHOLE = "blackhole"  # the connect never completes
    RESET = "reset"  # the connection is reset once the request came
    ENDLESS = "endless"  # headers come, then a body that never ends
    SILENT = "silent"  # the connection opens, no answer ever comes
    PLAIN_HTTP = "plain-http"  # on 443: plain HTTP, no TLS
    ELSEWHERE = "elsewhere"  # served by a server of the suite's own, on a socket Box.listen() gave


class Tls(Enum):
    """A certificate fault of a site's port 443 (None: a valid certificate for its name)."""

    EXPIRED = "expired"
    WRONG_NAME = "wrong-name"  # valid, but for another name
    UNKNOWN_CA = "unknown-ca"  # signed by a CA nobody trusts


@dataclass(frozen=True)
class Answer:
    """What a port answers to a request for `/`: status, headers and body. `redirect` sends
    a 301 to that URL first (one hop; a URL back to the site itself makes a loop); `delay` holds
    the answer's head back that many seconds (a slow site, working all the same). How the
    body travels: over `pace` seconds (in PACE_PIECES pieces, so a download is seen in flight),
    cut short after `cut` bytes (the connection closed, Content-Length still the whole body's),
    or reset (an RST) after `reset_after` bytes; `ranges` answers `Range: bytes=N-` with a 206
    from byte N."""

    status: int = 200
    server: str | None = "box"  # the Server header (None: none sent)
    languages: tuple[str, ...] = ()  # one Content-Language header per entry
    cookies: tuple[str, ...] = ()  # one Set-Cookie header per entry ("name=value; Path=/")
    body: bytes = b"<html><body>box</body></html>"
    gzip: bool = False  # the body is sent gzip-encoded (Content-Length is then the encoded size)
    head_differs: bool = False  # HEAD answers another status than GET (405)
    redirect: str | None = None
    content_type: str = "text/html; charset=utf-8"
    pace: float = 0.0
    cut: int | None = None
    reset_after: int | None = None
    ranges: bool = False
    delay: float = 0.0

    @property
    def streamed(self) -> bool:
        """Whether the body is sent piece by piece (paced, cut, reset or by range)."""
        return bool(self.pace or self.ranges) or self.cut is not None \
            or self.reset_after is not None


PACE_PIECES = 10


@dataclass(frozen=True)
class Site:
    """One domain of the box: its name, faults and answers; `address` once allocated. `paths`
    answers some paths (the query left out) otherwise than the port's answer, over both schemes
    (a fault of the port itself still wins): an image host's files, one fault each."""

    name: str
    dns: Dns | None = None
    dns_delay: float = 0.0  # for Dns.LATE: seconds before the answer
    http: Answer | Port = field(default_factory=Answer)
    https: Answer | Port = field(default_factory=Answer)
    tls: Tls | None = None
    address: str = ""
    paths: tuple[tuple[str, Answer | Port], ...] = ()

    def answer_for(self, spec: Answer | Port, path: str) -> Answer | Port:
        """What a port whose own answer is `spec` gives for `path`."""
        if isinstance(spec, Port):
            return spec
        return dict(self.paths).get(path.split("?", 1)[0], spec)


FIRST = ipaddress.IPv4Address("127.1.0.1")
LAST = ipaddress.IPv4Address("127.255.255.254")


def allocate(sites: Iterable[Site]) -> tuple[Site, ...]:
    """The sites with an address each, in order, from 127.1.0.1 up (x.y.0 and x.y.255 left
    out, as some programs take them for network or broadcast addresses); ValueError for a name
    given twice or more sites than addresses."""
    out: list[Site] = []
    seen: set[str] = set()
    address = FIRST
    for site in sites:
        name = site.name.lower().rstrip(".")
        if name in seen:
            raise ValueError(f"the name {name!r} is planned twice")
        seen.add(name)
        while int(address) & 0xFF in (0, 255):
            address += 1
        if address > LAST:
            raise ValueError("more sites than the box has addresses")
        out.append(replace(site, name=name, address=str(address)))
        address += 1
    return tuple(out)
