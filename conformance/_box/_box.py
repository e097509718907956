"""The box as one object: a local internet of planned sites (conformance/_box/_plan.py) that a
program under test reaches by name, over HTTP and HTTPS, without any change to its code.

Rules: a box runs inside the run's own network namespace only (BoxUnavailable says so once, with
what to do, elsewhere); it allocates the sites' addresses itself, so `Box.sites` (not the plan
given) is what it serves; the programs it serves are started with `command(argv)` (or
`command(argv, cwd)`) and `env()`, which show them our resolver and CA through the
launcher; it owns what it starts (resolver, hosts) and stops them on leaving, errors included;
the observations are the parts' own, passed through.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from conformance._box._dns import Query, Resolver
from conformance._box._hosts import Hit, Hosts, client_connections
from conformance._box._namespace import (
    binds,
    ca_env,
    check_available,
    resolver_timeout,
    write_view,
)
from conformance._box._plan import Answer, Port, Site, allocate
from conformance._box._tls import TlsMaterial
from conformance._isolation import launched


class Box:
    """A local internet of `sites` (planned, not yet allocated), its files in `folder`;
    `dns_delay` holds every DNS answer that long (so a program's queries overlap and
    `peak_dns_in_flight` shows its resolver's concurrency); `switchable` lets `switch()`
    change a site's answer while it runs. A context manager: entering starts it, leaving
    stops it."""

    def __init__(self, sites: Iterable[Site], folder: Path, dns_delay: float = 0.0, *,
                 switchable: bool = False) -> None:
        self.sites: tuple[Site, ...] = allocate(sites)
        self.folder = Path(folder)
        self.dns_delay = dns_delay
        self.switchable = switchable
        self.resolver_timeout = resolver_timeout(dns_delay)  # resolv.conf's timeout:, seconds
        self._by_name = {site.name: site for site in self.sites}
        self.tls: TlsMaterial | None = None
        self.resolver: Resolver | None = None
        self.hosts: Hosts | None = None
        self._view: dict[str, Path] = {}
        self._own: list[socket.socket] = []  # listen()'s sockets, closed on stop
        self.start_seconds: dict[str, float] = {}  # how long each part took to start

    # -- lifetime --------------------------------------------------------------------------

    def start(self) -> None:
        """Check that a box can run here, then make the CA, write the program's view, start
        the resolver and the hosts (BoxUnavailable, or OSError when a part cannot start;
        whatever had started is stopped first)."""
        clock = time.monotonic()
        check_available(self.folder)
        self._lap("check", clock)
        try:
            clock = time.monotonic()
            self.tls = TlsMaterial(self.folder / "tls")
            self._view = write_view(self.folder / "etc", self.dns_delay)
            self._lap("files", clock)
            clock = time.monotonic()
            self.resolver = Resolver(self.sites, self.dns_delay)
            self.resolver.start()
            self._lap("resolver", clock)
            clock = time.monotonic()
            self.hosts = Hosts(self.sites, self.tls, switchable=self.switchable)
            self.hosts.start()
            self._lap("hosts", clock)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the hosts and the resolver (idempotent); what they observed stays readable."""
        if self.hosts is not None:
            self.hosts.stop()
        if self.resolver is not None:
            self.resolver.stop()
        while self._own:
            self._own.pop().close()

    def __enter__(self) -> Box:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _lap(self, part: str, since: float) -> None:
        self.start_seconds[part] = time.monotonic() - since

    # -- serving and changing --------------------------------------------------------------

    def switch(self, name: str, spec: Answer | Port,
               schemes: Sequence[str] = ("http", "https")) -> float:
        """Make site `name` answer `spec` from now on (conformance/_box/_hosts.py says how);
        time.monotonic() once it holds."""
        if self.hosts is None:
            raise RuntimeError("the box is not started")
        return self.hosts.switch(name, spec, schemes)

    def listen(self, name: str, port: int) -> socket.socket:
        """A listening socket on site `name`'s address and `port`, for a server of the suite's
        own (a site whose port is Port.ELSEWHERE, or a port the hosts do not serve, such as an
        SMTP server's); closed when the box stops, if the server has not closed it."""
        site = self.site(name)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            # The hosts' wildcard on 80 and 443 says SO_REUSEPORT: so must this one to share
            # the port, and its own address wins over the wildcard's.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((site.address, port))
            sock.listen(128)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self._own.append(sock)
        return sock

    def tls_context(self, name: str) -> ssl.SSLContext:
        """The server-side TLS context with a certificate for site `name` from the box's CA."""
        if self.tls is None:
            raise RuntimeError("the box is not started")
        context = self.tls.context_for(self.site(name))
        if context is None:
            raise ValueError(f"{name}'s port 443 speaks plain HTTP")
        return context

    # -- starting a program under the box ----------------------------------------------------

    @property
    def ca_file(self) -> Path:
        """The bundle (PEM) of the box's CA, the one a program must trust."""
        if self.tls is None:
            raise RuntimeError("the box is not started")
        return self.tls.ca_file

    def command(self, argv: Sequence[str], cwd: Path | None = None) -> list[str]:
        """`argv` started under the box, in the sandbox, in `cwd` (conformance/_isolation.py):
        shown our resolv.conf, hosts and nsswitch.conf, and our CA over the system bundles and
        certifi's (of the interpreter `argv` names, and of ours)."""
        return launched(argv, binds(self._view, self.ca_file, argv), cwd)

    def env(self) -> dict[str, str]:
        """Variables to add to a program's environment: the box's CA for OpenSSL, requests
        and curl (certifi's file is covered by the launcher's binds)."""
        return ca_env(self.ca_file)

    # -- what it observed ------------------------------------------------------------------

    def site(self, name: str) -> Site:
        """The allocated site of `name` (any case, trailing dot ignored); KeyError if none."""
        return self._by_name[name.lower().rstrip(".")]

    @property
    def peak_connections(self) -> int:
        """Most connections open at once on the hosts, over all sites and ports."""
        return self.hosts.peak_connections if self.hosts is not None else 0

    @property
    def peak_dns_in_flight(self) -> int:
        """Most DNS queries received and not yet answered at once."""
        return self.resolver.peak_in_flight if self.resolver is not None else 0

    def client_connections(self) -> int:
        """Connections to the hosts that clients hold established now, as the kernel sees them
        (conformance/_box/_hosts.py), the box's own BLACKHOLE fillers among them."""
        return client_connections()

    def seen(self, name: str | None = None) -> list[Hit]:
        """The requests the hosts received: all, or site `name`'s."""
        return self.hosts.seen(name) if self.hosts is not None else []

    def queries(self) -> list[Query]:
        """The DNS queries the resolver received, in order of arrival."""
        return self.resolver.queries() if self.resolver is not None else []

    def last_query_at(self) -> float | None:
        """When the resolver's latest query came (time.monotonic()); None before the first."""
        return self.resolver.last_arrival() if self.resolver is not None else None
