"""The box's certificates: a test CA made per run (trustme), whose bundle a program under test
trusts, and the server side of every site's HTTPS, faults included.

Rules: the CA is made afresh for each `TlsMaterial` and never leaves the run (its bundle is
written to `folder/"ca.pem"`, nothing else is written but the private key files the contexts
load, in the same folder); certificates are made lazily, when a site's first handshake asks for
its context, and cached. Sites told beforehand (`prepare`) with a valid certificate share one
certificate per group of GROUP names (one key, one context: 10,000 sites cost a few hundred
certificates, not 10,000); a faulty site always has one of its own: EXPIRED (valid for its name,
expired yesterday), WRONG_NAME (valid, for `wrong-name.invalid` only), UNKNOWN_CA (for its name,
from a second CA that is in no bundle). Thread-safe: the hosts' thread asks, a suite may too.
"""

from __future__ import annotations

import datetime
import ssl
import threading
from collections.abc import Iterable
from pathlib import Path

import trustme

from conformance._box._plan import Port, Site, Tls

# Names per shared certificate: a group's first handshake costs about 1.5 ms whatever its size,
# and every handshake sends the whole list (some 25 bytes a name), so a few dozen keeps both
# small (measured: tests/test_box_hosts.py prints the costs).
GROUP = 64
WRONG_NAME = "wrong-name.invalid"


class TlsMaterial:
    """A run's test CA and the server-side TLS contexts of the box's sites. `ca_file` is the
    bundle (PEM) a program must trust; `context_for(site)` the context its port 443 serves
    with (None for a port 443 that speaks plain HTTP)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.ca = trustme.CA(organization_name="conformance box")
        self.ca_file = self.folder / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        self._unknown_ca: trustme.CA | None = None  # made when a site needs it
        self._lock = threading.Lock()
        self._contexts: dict[str, ssl.SSLContext] = {}  # by group key or site name
        self._groups: dict[str, tuple[str, tuple[str, ...]]] = {}  # name -> (key, names)
        self.made = 0  # certificates made so far (for the measurements)

    def prepare(self, sites: Iterable[Site]) -> None:
        """Group the sites that serve a valid certificate, GROUP names a certificate, so that
        their contexts are few; a site not prepared gets a certificate of its own."""
        names = [site.name for site in sites
                 if site.tls is None and site.https is not Port.PLAIN_HTTP]
        with self._lock:
            for start in range(0, len(names), GROUP):
                chunk = tuple(names[start:start + GROUP])
                key = f"group:{chunk[0]}"
                for name in chunk:
                    self._groups.setdefault(name, (key, chunk))

    def context_for(self, site: Site) -> ssl.SSLContext | None:
        """The server-side context of `site`'s port 443 (made on first use, then cached); None
        when that port speaks plain HTTP."""
        if site.https is Port.PLAIN_HTTP:
            return None
        with self._lock:
            if site.tls is None and site.name in self._groups:
                key, names = self._groups[site.name]
            else:
                key, names = f"{site.tls.value if site.tls else 'valid'}:{site.name}", (
                    site.name,)
            context = self._contexts.get(key)
            if context is None:
                context = self._make(site.tls, names, key)
                self._contexts[key] = context
            return context

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts the box's CA only (for tests and suites)."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    def _make(self, fault: Tls | None, names: tuple[str, ...], key: str) -> ssl.SSLContext:
        issuer = self.ca
        not_before = not_after = None
        if fault is Tls.EXPIRED:
            now = datetime.datetime.now(datetime.UTC)
            not_before, not_after = now - datetime.timedelta(days=30), now - datetime.timedelta(
                days=1)
        elif fault is Tls.WRONG_NAME:
            names = (WRONG_NAME,)
        elif fault is Tls.UNKNOWN_CA:
            if self._unknown_ca is None:
                self._unknown_ca = trustme.CA(organization_name="nobody trusts this")
            issuer = self._unknown_ca
        leaf = issuer.issue_cert(*names, not_before=not_before, not_after=not_after)
        self.made += 1
        # load_cert_chain reads files only: the key and chain go to a file of the run's folder
        # (trustme's own way writes and deletes a temporary file each time: slower).
        path = self.folder / f"leaf-{self.made}.pem"
        leaf.private_key_and_cert_chain_pem.write_to_path(str(path))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(path))
        # Only HTTP/1.1 is served: a client offering h2 is told so rather than left to guess.
        context.set_alpn_protocols(["http/1.1"])
        return context
