"""The box's hosts (conformance/_box/_hosts.py, _tls.py) as a client sees them: every answer and
fault on ports 80 and 443 of sites on their own loopback addresses, the records, the peak of
connections, and the start of 10,000 sites.

Rules: each test runs its client in a child process that enters a network namespace of its own
first (the test process keeps its network, and ports 80 and 443 are the child's); clients go to
the addresses directly (DNS is the resolver's business) and trust the run's CA file only. Where
namespaces are refused the tests skip saying why, never under CI=true.
"""

from __future__ import annotations

import textwrap

import pytest

from tests.conftest import run_in_own_network

PRELUDE = '''
import functools, gzip, http.client, json, socket, ssl, sys, tempfile, time
from dataclasses import replace
from pathlib import Path
from conformance._isolation import enter_own_network
why = enter_own_network()
assert not why, why
from conformance._box._plan import Answer, Port, Site, Tls, allocate
from conformance._box._hosts import Hosts, client_connections
from conformance._box._tls import TlsMaterial

FOLDER = Path(tempfile.mkdtemp())


@functools.cache  # one per CA: making one costs more than a handshake, and skews the timings
def client_tls(tls):
    return ssl.create_default_context(cafile=str(tls.ca_file))


def fetch(site, port=80, method="GET", path="/", tls=None, headers=None, timeout=5.0):
    """(status, [(name, value)...], body) from site's address, over TLS when `tls` is given."""
    if tls is None:
        conn = http.client.HTTPConnection(site.address, port, timeout=timeout)
    else:
        # (its own default context would load the system's bundle each time: 30 ms)
        conn = http.client.HTTPSConnection(site.address, port, timeout=timeout,
                                           context=client_tls(tls))
        raw = socket.create_connection((site.address, port), timeout=timeout)
        conn.sock = client_tls(tls).wrap_socket(raw, server_hostname=site.name)
    try:
        conn.request(method, path, headers={"Host": site.name, **(headers or {})})
        response = conn.getresponse()
        return response.status, response.getheaders(), response.read()
    finally:
        conn.close()


def values(headers, name):
    return [v for k, v in headers if k.lower() == name.lower()]
'''


def in_box(code: str, timeout: float = 180) -> str:
    """Run PRELUDE + `code` in a child in a network namespace of its own; its stdout."""
    return run_in_own_network(PRELUDE + textwrap.dedent(code), timeout)


def test_every_answer_is_what_a_client_sees_over_http_and_https() -> None:
    in_box('''
    body = b"<html>" + b"hello " * 200 + b"</html>"
    plan = allocate([
        Site("plain.test"),
        Site("bare.test", http=Answer(server=None, status=404), https=Answer(server=None)),
        Site("many.test", http=Answer(languages=("ru-RU", "en"), cookies=("a=1; Path=/",
             "b=2; Path=/")), https=Answer(languages=("de",), cookies=("c=3",))),
        Site("zip.test", http=Answer(body=body, gzip=True), https=Answer(body=body, gzip=True)),
        Site("head.test", http=Answer(head_differs=True), https=Answer(head_differs=True)),
        Site("hop.test", http=Answer(redirect="https://hop.test/")),
        Site("loop.test", https=Answer(redirect="https://loop.test/")),
    ])
    sites = {site.name: site for site in plan}
    tls = TlsMaterial(FOLDER)
    with Hosts(plan, tls) as hosts:
        for port, kind in ((80, None), (443, tls)):
            status, headers, got = fetch(sites["plain.test"], port, tls=kind)
            assert (status, values(headers, "Server"), got) == (
                200, ["box"], b"<html><body>box</body></html>"), (status, headers, got)
            assert values(headers, "Content-Length") == [str(len(got))]
            assert values(headers, "Content-Language") == values(headers, "Set-Cookie") == []
            # A HEAD: GET's headers, no body.
            status, headers, got = fetch(sites["plain.test"], port, "HEAD", tls=kind)
            assert (status, got, values(headers, "Content-Length")) == (200, b"", ["29"])

            status, headers, got = fetch(sites["bare.test"], port, tls=kind)
            assert status == (404 if port == 80 else 200) and values(headers, "Server") == []

            status, headers, got = fetch(sites["zip.test"], port, tls=kind)
            assert values(headers, "Content-Encoding") == ["gzip"]
            assert gzip.decompress(got) == body and len(got) < len(body)
            assert values(headers, "Content-Length") == [str(len(got))]

            status, headers, got = fetch(sites["head.test"], port, tls=kind)
            assert status == 200
            status, headers, got = fetch(sites["head.test"], port, "HEAD", tls=kind)
            assert status == 405, status

        status, headers, _ = fetch(sites["many.test"], 80)
        assert values(headers, "Content-Language") == ["ru-RU", "en"], headers
        assert values(headers, "Set-Cookie") == ["a=1; Path=/", "b=2; Path=/"], headers
        status, headers, _ = fetch(sites["many.test"], 443, tls=tls)
        assert (values(headers, "Content-Language"), values(headers, "Set-Cookie")) == (
            ["de"], ["c=3"]), headers

        # One hop: http -> https, where the site answers; a loop: https -> itself, for ever.
        status, headers, _ = fetch(sites["hop.test"], 80)
        assert (status, values(headers, "Location")) == (301, ["https://hop.test/"])
        assert fetch(sites["hop.test"], 443, tls=tls)[0] == 200
        assert fetch(sites["hop.test"], 80, path="/elsewhere")[0] == 200
        for _ in range(3):
            status, headers, _ = fetch(sites["loop.test"], 443, tls=tls)
            assert (status, values(headers, "Location")) == (301, ["https://loop.test/"])
        assert fetch(sites["loop.test"], 80)[0] == 200
    print("ok")
    ''')


def test_paths_of_an_image_host_stream_cut_reset_and_range() -> None:
    in_box('''
    import threading
    image = bytes(range(256)) * 40  # 10,240 bytes
    site = allocate([Site("img.test", paths=(
        ("/a.png", Answer(body=image, content_type="image/png", server=None)),
        ("/slow.png", Answer(body=image, content_type="image/png", pace=0.5)),
        ("/cut.png", Answer(body=image, content_type="image/png", cut=4000)),
        ("/reset.png", Answer(body=image, content_type="image/png", reset_after=4000)),
        ("/range.png", Answer(body=image, content_type="image/png", ranges=True)),
        ("/gone.png", Answer(status=404, body=b"no")),
        ("/silent.png", Port.SILENT),
        ("/old.png", Answer(redirect="https://img.test/a.png")),
    ))])[0]
    tls = TlsMaterial(FOLDER)
    with Hosts([site], tls) as hosts:
        for port, kind in ((80, None), (443, tls)):
            status, headers, got = fetch(site, port, path="/a.png?size=big", tls=kind)
            assert (status, got, values(headers, "Content-Type")) == (200, image, ["image/png"])
            assert fetch(site, port, path="/other", tls=kind)[2] == b"<html><body>box</body></html>"
            assert fetch(site, port, path="/gone.png", tls=kind)[0] == 404
            status, headers, _ = fetch(site, port, path="/old.png", tls=kind)
            assert (status, values(headers, "Location")) == (301, ["https://img.test/a.png"])
            # A short body: Content-Length says 10,240, 4,000 bytes come, then the end.
            try:
                fetch(site, port, path="/cut.png", tls=kind)
                raise AssertionError("a cut body read whole")
            except http.client.IncompleteRead as exc:
                assert len(exc.partial) == 4000 and exc.expected == len(image) - 4000
            try:
                fetch(site, port, path="/reset.png", tls=kind)
                raise AssertionError("a reset body read whole")
            except (ConnectionResetError, http.client.IncompleteRead, ssl.SSLError):
                pass
            status, headers, got = fetch(site, port, path="/range.png", tls=kind,
                                         headers={"Range": "bytes=4000-"})
            assert (status, got) == (206, image[4000:])
            assert values(headers, "Content-Range") == [f"bytes 4000-10239/{len(image)}"]
            assert fetch(site, port, path="/range.png", tls=kind)[:3:2] == (200, image)
            try:
                fetch(site, port, path="/silent.png", tls=kind, timeout=0.5)
                raise AssertionError("a silent path answered")
            except TimeoutError:
                pass
        # Three paced downloads at once are three answers in flight; each takes its 0.5 s.
        hosts.reset()
        began = time.monotonic()
        threads = [threading.Thread(target=fetch, args=(site,), kwargs={"path": "/slow.png"})
                   for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert hosts.peak_answering == 3, hosts.peak_answering
        assert 0.45 <= time.monotonic() - began < 3
        # The hosts count an answer done once its last bytes are out, after the client has them.
        until = time.monotonic() + 2
        while hosts.answering and time.monotonic() < until:
            time.sleep(0.01)
        assert hosts.answering == 0
    print("ok")
    ''')


def test_every_fault_is_what_a_client_sees() -> None:
    out = in_box('''
    plan = allocate([
        Site("refused.test", http=Port.REFUSED, https=Port.REFUSED),
        Site("hole.test", http=Port.BLACKHOLE, https=Port.BLACKHOLE),
        Site("reset.test", http=Port.RESET, https=Port.RESET),
        Site("endless.test", http=Port.ENDLESS, https=Port.ENDLESS),
        Site("silent.test", http=Port.SILENT, https=Port.SILENT),
        Site("plain443.test", http=Answer(status=203), https=Port.PLAIN_HTTP),
        Site("expired.test", tls=Tls.EXPIRED),
        Site("wrong.test", tls=Tls.WRONG_NAME),
        Site("unknown.test", tls=Tls.UNKNOWN_CA),
        Site("good.test"),
    ])
    s = {site.name.split(".")[0]: site for site in plan}
    tls = TlsMaterial(FOLDER)

    def fails(site, port, kind, timeout=1.0):
        try:
            fetch(site, port, tls=kind, timeout=timeout)
        except Exception as exc:
            return exc
        raise AssertionError(f"{site.name}:{port} answered")

    with Hosts(plan, tls) as hosts:
        for port, kind in ((80, None), (443, tls)):
            assert isinstance(fails(s["refused"], port, kind), ConnectionRefusedError)
            began = time.monotonic()
            probe = socket.socket()
            probe.settimeout(1.0)
            try:
                probe.connect((s["hole"].address, port))
                raise AssertionError("a blackhole's connect completed")
            except TimeoutError:
                assert time.monotonic() - began >= 0.9
            finally:
                probe.close()
            assert isinstance(fails(s["reset"], port, kind), ConnectionResetError), port
            assert isinstance(fails(s["silent"], port, kind), TimeoutError)

            # Endless: the head comes, then bytes keep coming and the body never ends.
            if kind is None:
                conn = http.client.HTTPConnection(s["endless"].address, port, timeout=2)
            else:
                conn = http.client.HTTPSConnection(s["endless"].address, port, timeout=2)
                conn.sock = client_tls(tls).wrap_socket(socket.create_connection(
                    (s["endless"].address, port), timeout=2), server_hostname="endless.test")
            conn.request("GET", "/")
            response = conn.getresponse()
            assert response.status == 200
            got, until = b"", time.monotonic() + 1.0
            while time.monotonic() < until:
                got += response.read1(100)
            assert len(got) >= 32 and not response.isclosed(), len(got)
            conn.close()

        # Plain HTTP on 443: the site's HTTP answer there, and a TLS client fails its handshake.
        assert fetch(s["plain443"], 443)[0] == 203
        error = fails(s["plain443"], 443, tls)
        assert isinstance(error, ssl.SSLError), repr(error)
        for name, words in (("expired", "expired"), ("wrong", "Hostname mismatch"),
                            ("unknown", "unable to get local issuer")):
            error = fails(s[name], 443, tls)
            assert isinstance(error, ssl.SSLCertVerificationError), repr(error)
            assert words in error.verify_message + str(error), (name, error)
            assert fetch(s[name], 80)[0] == 200
        assert fetch(s["good"], 443, tls=tls)[0] == 200
        # The certificate follows SNI where it names a site: good.test's name at the expired
        # site's address gets good.test's certificate (the expired site's answer).
        assert fetch(replace(s["good"], address=s["expired"].address), 443, tls=tls)[0] == 200
        assert hosts.seen("expired.test")[-1].sni == "good.test"

        # Each fault's request was recorded before the fault, and the refused got none.
        hits = {(hit.site, hit.port) for hit in hosts.seen()}
        for name in ("reset", "silent", "endless"):
            assert {(s[name].name, 80), (s[name].name, 443)} <= hits, hits
        assert not hosts.seen("refused.test") and not hosts.seen("hole.test")
    print("ok")
    ''')
    assert out.strip() == "ok"


def test_records_and_the_peak_of_connections() -> None:
    in_box('''
    # No site refuses: each port is one wildcard socket (and the blackhole one of its own).
    plan = allocate([Site("a.test"), Site("b.test", https=Port.SILENT),
                     Site("hole.test", http=Port.BLACKHOLE)])
    a, b, hole = plan
    tls = TlsMaterial(FOLDER)
    with Hosts(plan, tls) as hosts:
        probe = socket.socket()
        probe.settimeout(1.0)
        try:
            probe.connect((hole.address, 80))
            raise AssertionError("a blackhole's connect completed beside a wildcard")
        except TimeoutError:
            pass
        finally:
            probe.close()
        assert fetch(hole, 443, tls=tls)[0] == 200
        before = time.monotonic()
        fetch(a, 80, "POST", "/x?y=1", headers={"Accept-Language": "ru-RU", "X-Twice": "1"})
        fetch(a, 443, tls=tls, headers={"Accept-Language": "ru-RU"})
        hits = hosts.seen("a.test")
        assert [(h.scheme, h.port, h.method, h.path, h.sni) for h in hits] == [
            ("http", 80, "POST", "/x?y=1", None), ("https", 443, "GET", "/", "a.test")], hits
        assert hits[0].header("accept-language") == ["ru-RU"] == hits[1].header("Accept-Language")
        assert ("X-Twice", "1") in hits[0].headers and ("Host", "a.test") in hits[0].headers
        assert before <= hits[0].at <= hits[1].at <= time.monotonic()
        assert hosts.seen("b.test") == [] and len(hosts.seen()) == 3  # a, a, hole

        # 30 connections held open at once (20 plain, 10 TLS that never get an answer): 30,
        # which the kernel counts at the clients' end beside the blackhole's own filler.
        hosts.reset()
        fillers = client_connections()
        held = [socket.create_connection((a.address, 80), timeout=5) for _ in range(20)]
        for _ in range(10):
            raw = socket.create_connection((b.address, 443), timeout=5)
            tlsed = client_tls(tls).wrap_socket(raw, server_hostname="b.test")
            tlsed.sendall(b"GET / HTTP/1.1\\r\\nHost: b.test\\r\\n\\r\\n")
            held.append(tlsed)
        deadline = time.monotonic() + 5
        while hosts.open_connections < 30 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (hosts.open_connections, hosts.peak_connections) == (30, 30), (
            hosts.open_connections, hosts.peak_connections)
        assert client_connections() - fillers == 30 and fillers >= 1, fillers
        for sock in held:
            sock.close()
        assert client_connections() == fillers  # at once: the clients' end is closed
        deadline = time.monotonic() + 5
        while hosts.open_connections and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (hosts.open_connections, hosts.peak_connections) == (0, 30)
        assert len(hosts.seen("b.test")) == 10
    hosts.stop()  # twice: nothing
    print("ok")
    ''')


@pytest.mark.slow(10)
def test_ten_thousand_sites_start_fast_and_answer() -> None:
    out = in_box('''
    # REFUSED on port 80: a socket per site there (7,500); port 443 on one wildcard socket.
    faults = [None, Port.REFUSED, Port.SILENT, Port.RESET]
    plan = allocate([Site(f"d{i}.test", http=faults[i % 4] or Answer(),
                          https=Port.RESET if i % 50 == 7 else Answer())
                     for i in range(10_000)])
    tls = TlsMaterial(FOLDER)
    began = time.monotonic()
    hosts = Hosts(plan, tls)
    hosts.start()
    started = time.monotonic() - began
    print(f"10,000 sites: {hosts.start_seconds:.2f} s to start ({started:.2f} s with the plan "
          f"told to the certificates)")
    try:
        began = time.monotonic()
        assert fetch(plan[0], 443, tls=tls)[0] == 200
        first = time.monotonic() - began
        began = time.monotonic()
        assert fetch(plan[4], 443, tls=tls)[0] == 200  # the same certificate group
        second = time.monotonic() - began
        began = time.monotonic()
        for site in plan[8:8 + 40 * 64:64]:  # 40 sites, each of another group
            assert fetch(site, 443, tls=tls)[0] == 200
        groups = (time.monotonic() - began) / 40
        print(f"first HTTPS request {first * 1000:.1f} ms, same group {second * 1000:.1f} ms,"
              f" a new group each {groups * 1000:.1f} ms; certificates made: {tls.made}")
        assert fetch(plan[9_996], 80)[0] == 200
        try:
            fetch(plan[9_997], 80, timeout=2)
            raise AssertionError("a refused port answered")
        except ConnectionRefusedError:
            pass
        assert started < 60, started
    finally:
        began = time.monotonic()
        hosts.stop()
        print(f"stop: {time.monotonic() - began:.2f} s")
    ''', timeout=300)
    print(out)


def test_switchable_hosts_change_a_site_while_serving() -> None:
    out = in_box('''
    plan = allocate([Site("flip.test"), Site("calm.test"), Site("slow.test",
                     http=Answer(delay=0.4), https=Answer(delay=0.4)),
                     Site("app.test", http=Port.ELSEWHERE, https=Port.ELSEWHERE)])
    s = {site.name.split(".")[0]: site for site in plan}
    tls = TlsMaterial(FOLDER)

    def status(site, port=80, timeout=2.0):
        try:
            return fetch(site, port, tls=tls if port == 443 else None, timeout=timeout)[0]
        except Exception as exc:
            return type(exc).__name__

    with Hosts(plan, tls, switchable=True) as hosts:
        assert status(s["flip"]) == 200 and status(s["flip"], 443) == 200
        hosts.switch("flip.test", Answer(status=502))
        assert status(s["flip"]) == 502 and status(s["flip"], 443) == 502
        assert status(s["calm"]) == 200
        # A kept-alive connection gets the new answer at its next request.
        conn = http.client.HTTPConnection(s["flip"].address, 80, timeout=2)
        conn.request("GET", "/", headers={"Host": "flip.test"})
        first = conn.getresponse(); first.read()
        hosts.switch("flip.test", Answer())
        conn.request("GET", "/", headers={"Host": "flip.test"})
        assert (first.status, conn.getresponse().status) == (502, 200)
        # Refused ends it (the kept-alive connection too); back again, it answers.
        hosts.switch("flip.test", Port.REFUSED)
        assert status(s["flip"]) == "ConnectionRefusedError"
        assert status(s["flip"], 443) == "ConnectionRefusedError"
        try:
            conn.request("GET", "/", headers={"Host": "flip.test"})
            kept = conn.getresponse().status
        except (OSError, http.client.HTTPException) as exc:
            kept = type(exc).__name__
        assert kept != 200, kept
        conn.close()
        assert status(s["calm"]) == 200
        hosts.switch("flip.test", Answer(status=503))
        assert status(s["flip"]) == 503 and status(s["flip"], 443) == 503
        hosts.switch("flip.test", Port.SILENT)
        assert status(s["flip"], timeout=0.5) == "TimeoutError"
        hosts.switch("flip.test", Answer())
        assert status(s["flip"]) == 200
        # A delayed answer comes after its delay; the request was recorded at once.
        began = time.monotonic()
        assert status(s["slow"]) == 200 and time.monotonic() - began >= 0.39
        try:
            hosts.switch("app.test", Answer())
            raise AssertionError("an ELSEWHERE port was switched")
        except ValueError:
            pass
        # ELSEWHERE: the hosts leave the address to a server of our own.
        assert status(s["app"]) in ("ConnectionRefusedError", "RemoteDisconnected")
    print("ok")
    ''')
    assert out.strip() == "ok"


def test_a_box_serves_an_app_of_ours_under_a_name() -> None:
    out = in_box('''
    from aiohttp import web
    from conformance._box import Box
    from conformance._servers import SocketAppServer

    async def ours(request):
        return web.json_response({"ours": True})

    box = Box([Site("api.test", https=Port.ELSEWHERE), Site("other.test")], FOLDER / "box")
    # Only the hosts are needed here: no resolver, no view (the test dials addresses).
    box.tls = TlsMaterial(FOLDER / "box-tls")
    box.hosts = Hosts(box.sites, box.tls)
    with box.hosts:
        site = box.site("api.test")
        app = web.Application()
        app.router.add_get("/", ours)
        with SocketAppServer(app, [(box.listen("api.test", 443), box.tls_context("api.test"))]):
            got = fetch(site, 443, tls=box.tls)
            assert got[0] == 200 and json.loads(got[2]) == {"ours": True}, got
            assert fetch(box.site("other.test"), 443, tls=box.tls)[0] == 200
            assert fetch(site, 80)[0] == 200  # its port 80 stays the hosts'
            assert [h.port for h in box.hosts.seen("api.test")] == [80]
    box.stop()
    print("ok")
    ''')
    assert out.strip() == "ok"
