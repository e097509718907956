"""A few local websites for testing probers of seed 002 without the box: run as
`unshare --mount --propagation private -- python -m tests._probe_sites CONFIG.json` (as root), it
takes a network of its own, bind-mounts its own /etc/hosts and /etc/resolv.conf over the machine's
(inside that mount namespace only), serves each site of `SITES` on a loopback address of its own
(HTTP on 80, HTTPS on 443 with a trustme CA made for the run), runs the prober, and prints one
JSON object: the prober's exit status and stderr, the records of its `domain_status`, every
request the sites saw and the most connections they had open at once.

Rules: nothing here is reachable from, or reaches, the machine's network; the prober is given the
CA through SSL_CERT_FILE only; every socket has a timeout and the prober a time limit. CONFIG
holds `argv` (the prober's command, `{domains}` standing for the list's path), `lines` (the list)
and `timeout` (seconds the prober may take).
"""

from __future__ import annotations

import datetime
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import trustme

from conformance._isolation import enter_own_network


@dataclass(frozen=True)
class Page:
    """What one port of a site answers to any request."""

    status: int = 200
    server: str | None = "local"
    languages: tuple[str, ...] = ()  # one Content-Language header each
    cookies: tuple[str, ...] = ()  # one Set-Cookie header each
    body: bytes = b"<p>local</p>"
    location: str | None = None
    delay: float = 0.0  # seconds before the answer


@dataclass(frozen=True)
class Site:
    """A site: its HTTP and HTTPS answers, or a fault: `refused` (nothing listens), `silent`
    (the connection opens, nothing answers); `tls` a certificate fault of port 443: `expired`,
    `wrong-name`, `unknown-ca`, or `plain` (plain HTTP on 443)."""

    http: Page | str = field(default_factory=Page)
    https: Page | str = field(default_factory=Page)
    tls: str | None = None


def _slow(n: int) -> Site:
    return Site(Page(server=f"slow-{n}", delay=0.6), Page(server=f"slow-{n}s", delay=0.6))


SITES: dict[str, Site] = {
    "ok.test": Site(
        Page(server="box-http", languages=("ru-RU", "en, de"),
             cookies=("a=1; Path=/", "b=2; HttpOnly"), body=b"hello"),
        Page(server="box-https", cookies=("s=3; Secure",), body=b"secure hello!!")),
    "bare.test": Site(Page(server=None, body=b""), Page(status=404, server=None, body=b"nope")),
    "moved.test": Site(Page(status=301, location="http://moved.test/", body=b""),
                       Page(status=301, location="https://ok.test/", body=b"see ok")),
    "expired.test": Site(tls="expired"),
    "wrongname.test": Site(tls="wrong-name"),
    "unknownca.test": Site(tls="unknown-ca"),
    "plain.test": Site(tls="plain"),
    "refused.test": Site("refused", "refused"),
    "silent.test": Site("silent", "silent"),
    **{f"slow{n}.test": _slow(n) for n in range(12)},
}


class Observed:
    """What the sites saw: every request, and connections open now and at most. A connection
    counts from its accept until its answer starts going out (or it ends unanswered): once the
    answer is on its way the client may open its next connection, and a count that waited for
    our own close would see both at once however well the client kept its bound."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.hits: list[dict[str, Any]] = []
        self.open = 0
        self.peak = 0
        self._mine = threading.local()  # whether this thread's connection is counted still

    def opened(self) -> None:
        with self.lock:
            self.open += 1
            self.peak = max(self.peak, self.open)
        self._mine.counted = True

    def closed(self) -> None:
        if getattr(self._mine, "counted", False):
            self._mine.counted = False
            with self.lock:
                self.open -= 1


class Handler(BaseHTTPRequestHandler):
    """Answers every GET or HEAD with its server's page, and records the request."""

    server: SiteServer
    timeout = 10  # a client that stops sending is dropped

    def _answer(self, body: bool) -> None:
        server, page = self.server, self.server.page
        with server.observed.lock:
            server.observed.hits.append({
                "site": server.name, "scheme": server.scheme, "method": self.command,
                "path": self.path, "time": time.monotonic(),
                "headers": [[k.lower(), v] for k, v in self.headers.items()]})
        time.sleep(page.delay)
        # Not send_response: it would add a Server header of its own.
        self.send_response_only(page.status)
        headers = [("Server", page.server), ("Location", page.location),
                   *(("Content-Language", v) for v in page.languages),
                   *(("Set-Cookie", v) for v in page.cookies),
                   ("Content-Length", str(len(page.body))), ("Connection", "close")]
        for name, value in headers:
            if value is not None:
                self.send_header(name, value)
        server.observed.closed()
        self.end_headers()
        if body:
            self.wfile.write(page.body)

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the prober's output is what the test reads


class SiteServer(ThreadingHTTPServer):
    """One port of one site; with a TLS context, each connection's handshake happens in its
    own thread, so a client that rejects the certificate holds up no other."""

    daemon_threads = True

    def __init__(self, name: str, scheme: str, address: str, page: Page,
                 context: ssl.SSLContext | None, observed: Observed) -> None:
        self.name, self.scheme, self.page = name, scheme, page
        self.context, self.observed = context, observed
        super().__init__((address, 443 if scheme == "https" else 80), Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        self.observed.opened()
        try:
            request.settimeout(10)
            if self.context is not None:
                request = self.context.wrap_socket(request, server_side=True)
            super().finish_request(request, client_address)
            request.close()
        except OSError:  # a handshake the client refused, a reset: its own business
            pass
        finally:
            self.observed.closed()


def _contexts(folder: Path) -> dict[str, ssl.SSLContext | None]:
    """Each site's server-side TLS context (None: plain HTTP on 443), writing the CA the
    prober must trust to folder/ca.pem."""
    ca, stranger = trustme.CA(), trustme.CA()
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=30)
    out: dict[str, ssl.SSLContext | None] = {}
    for name, site in SITES.items():
        if site.tls == "plain":
            out[name] = None
            continue
        if site.tls == "expired":
            cert = ca.issue_cert(name, not_before=past,
                                 not_after=past + datetime.timedelta(days=1))
        elif site.tls == "wrong-name":
            cert = ca.issue_cert("someone-else.test")
        elif site.tls == "unknown-ca":
            cert = stranger.issue_cert(name)
        else:
            cert = ca.issue_cert(name)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert.configure_cert(context)
        out[name] = context
    return out


def serve(folder: Path, observed: Observed) -> tuple[list[Any], str]:
    """Start every site; the servers and listening sockets to close, and the hosts file's
    text."""
    contexts = _contexts(folder)
    held: list[Any] = []
    hosts = ["127.0.0.1 localhost"]
    for number, (name, site) in enumerate(SITES.items(), 1):
        address = f"127.1.0.{number}"
        hosts.append(f"{address} {name}")
        for scheme, port in (("http", site.http), ("https", site.https)):
            if port == "refused":
                continue
            if port == "silent":
                # Listening, never accepting: the connect completes in the kernel and no
                # answer ever comes.
                sock = socket.create_server((address, 443 if scheme == "https" else 80))
                held.append(sock)
                continue
            assert isinstance(port, Page)
            context = contexts[name] if scheme == "https" else None
            server = SiteServer(name, scheme, address, port, context, observed)
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                             daemon=True).start()
            held.append(server)
    return held, "\n".join(hosts) + "\n"


def main(config_path: str) -> int:
    """Serve the sites, run the prober once, print what happened as JSON."""
    why = enter_own_network()
    if why:
        print(json.dumps({"error": why}))
        return 1
    config = json.loads(Path(config_path).read_text())
    observed = Observed()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        held, hosts = serve(folder, observed)
        (folder / "hosts").write_text(hosts)
        # No DNS server here: a name not in hosts fails at once (nothing listens on 53).
        (folder / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
        for name in ("hosts", "resolv.conf"):
            subprocess.run(["mount", "--bind", str(folder / name), f"/etc/{name}"], check=True,
                           timeout=10)
        work = folder / "work"
        work.mkdir()
        (work / "domains.csv").write_text("\n".join(config["lines"]) + "\n")
        argv = [word.replace("{domains}", str(work / "domains.csv")) for word in config["argv"]]
        env = {**os.environ, "SSL_CERT_FILE": str(folder / "ca.pem")}
        started = time.monotonic()
        done = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True,
                              timeout=config["timeout"])
        took = time.monotonic() - started
        output = work / "domain_status"
        records = json.loads(output.read_text()) if output.is_file() else None
        for item in held:
            if isinstance(item, SiteServer):
                item.shutdown()
                item.server_close()
            else:
                item.close()
    print(json.dumps({"code": done.returncode, "stderr": done.stderr, "records": records,
                      "hits": observed.hits, "peak": observed.peak, "seconds": took}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
