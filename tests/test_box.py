"""The box as a program under test sees it (conformance/_box/: the resolver, the launcher's view,
the Box facade): names resolve through getaddrinfo and aiodns to the planned addresses, faults
behave, the resolver's peak tells an async resolver from a thread pool, HTTPS trusts the box's
CA without a change to the program, the grader's own files stay as they were, and a box refuses
to run, saying why, where it has no network of its own.

Rules: each box runs in a child process that enters a network namespace of its own first (the
test process keeps its network; port 53 and the sites' ports are the child's); programs are
started through the box's launcher words, as a suite starts them. Where namespaces are refused
the tests skip saying why, never under CI=true.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from tests.conftest import PY, ROOT, run_in_own_network

PRELUDE = '''
import json, os, subprocess, sys, tempfile, time
from pathlib import Path
from conformance._isolation import enter_own_network, target_env
why = enter_own_network()
assert not why, why
from conformance._box import Answer, Box, Dns, Port, Site, Tls, blackhole_address

FOLDER = Path(tempfile.mkdtemp())


def run(box, code, env=None, timeout=60):
    """Run Python `code` as a program under `box`; its stdout read as JSON."""
    script = FOLDER / f"program{len(list(FOLDER.glob('program*')))}.py"
    script.write_text(code)
    argv = [sys.executable, str(script)]
    done = subprocess.run(box.command(argv), capture_output=True, text=True, timeout=timeout,
                          env={**target_env(), **(box.env() if env is None else env)})
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)
'''

RESOLVE = '''
import asyncio, json, socket, time
import aiodns

def gai(name):
    began = time.monotonic()
    try:
        return [socket.getaddrinfo(name, 80, socket.AF_INET, socket.SOCK_STREAM)[0][4][0],
                round(time.monotonic() - began, 2)]
    except socket.gaierror as exc:
        return [exc.errno, round(time.monotonic() - began, 2)]

async def ares(name):
    resolver = aiodns.DNSResolver(timeout=3, tries=1)
    try:
        answer = await resolver.query_dns(name, "A")
        return [record.data.addr for record in answer.answer]
    except aiodns.error.DNSError as exc:
        return f"error {exc.args[0]}"

names = ["www.good.test", "WWW.Good.Test.", "nope.test", "nx.test", "sf.test", "late.test",
         "silent.test"]
out = {"gai": {name: gai(name) for name in names},
       "aiodns": {name: asyncio.run(ares(name)) for name in names},
       "resolv.conf": open("/etc/resolv.conf").read(),
       "hosts": open("/etc/hosts").read()}
print(json.dumps(out))
'''


def in_box(code: str, timeout: float = 180) -> str:
    """Run PRELUDE + `code` in a child in a network namespace of its own; its stdout."""
    return run_in_own_network(PRELUDE + textwrap.dedent(code), timeout)


def test_a_program_resolves_planned_names_only_with_each_fault() -> None:
    graders = Path("/etc/resolv.conf").read_text()
    out = json.loads(in_box(f'''
    sites = [Site("www.good.test"), Site("nx.test", dns=Dns.NXDOMAIN),
             Site("sf.test", dns=Dns.SERVFAIL), Site("late.test", dns=Dns.LATE, dns_delay=1.0),
             Site("silent.test", dns=Dns.SILENT)]
    with Box(sites, FOLDER / "box") as box:
        seen = run(box, {RESOLVE!r})
        seen["graders"] = open("/etc/resolv.conf").read()
        from dnslib import DNSRecord
        over_tcp = DNSRecord.question("www.good.test").send("127.0.0.53", 53, tcp=True,
                                                             timeout=5)
        seen["tcp"] = [str(record.rdata) for record in DNSRecord.parse(over_tcp).rr]
        seen["address"] = box.site("www.good.test").address
        seen["late"] = box.site("late.test").address
        seen["timeout"] = box.resolver_timeout
        seen["queries"] = [(q.name, q.type, q.answered is not None) for q in box.queries()]
    print(json.dumps(seen))
    '''))
    address, late = out["address"], out["late"]
    gai, ares = out["gai"], out["aiodns"]
    assert gai["www.good.test"][0] == gai["WWW.Good.Test."][0] == address, out
    assert ares["www.good.test"] == ares["WWW.Good.Test."] == [address], out
    # An unplanned name and NXDOMAIN: "Name or service not known" (EAI_NONAME, -2); aiodns's
    # ARES_ENOTFOUND is 4.
    assert gai["nope.test"][0] == gai["nx.test"][0] == -2, out
    assert ares["nope.test"] == ares["nx.test"] == "error 4", out
    # SERVFAIL: "Temporary failure in name resolution" (EAI_AGAIN, -3) at once; ARES_ESERVFAIL.
    assert gai["sf.test"][0] == -3 and gai["sf.test"][1] < 1, out
    assert ares["sf.test"] == "error 3", out
    # LATE answers after its delay, within the resolver's timeout.
    assert gai["late.test"][0] == late and gai["late.test"][1] >= 1.0, out
    assert ares["late.test"] == [late], out
    # SILENT: glibc gives up after resolv.conf's two attempts of `timeout` (EAI_AGAIN); c-ares
    # says ETIMEOUT (12).
    assert gai["silent.test"][0] == -3, out
    assert 2 * out["timeout"] <= gai["silent.test"][1] < 2 * out["timeout"] + 2, out
    assert ares["silent.test"] == "error 12", out
    assert out["tcp"] == [address], out
    assert out["resolv.conf"].startswith("nameserver 127.0.0.53\n"), out
    assert "localhost" in out["hosts"] and "test" not in out["hosts"], out
    assert ("silent.test", "A", False) in [tuple(q) for q in out["queries"]]
    assert ("www.good.test", "A", True) in [tuple(q) for q in out["queries"]]
    # The grader's view, in the box's process and in the test's, is the machine's.
    assert out["graders"] == graders == Path("/etc/resolv.conf").read_text()


ASYNC_QUERIES = '''
import asyncio, json, aiodns
async def main():
    resolver = aiodns.DNSResolver(timeout=5, tries=1)
    answers = await asyncio.gather(*(resolver.query_dns(f"s{i}.test", "A") for i in range(50)))
    return [a.answer[0].data.addr for a in answers]
print(json.dumps(asyncio.run(main())))
'''

POOL_QUERIES = '''
import json, socket
from concurrent.futures import ThreadPoolExecutor
def one(i):
    return socket.getaddrinfo(f"s{i}.test", 443, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
with ThreadPoolExecutor(4) as pool:
    print(json.dumps(list(pool.map(one, range(50)))))
'''


@pytest.mark.slow(15)
def test_the_peak_of_queries_in_flight_tells_async_from_a_pool_of_four() -> None:
    out = json.loads(in_box(f'''
    sites = [Site(f"s{{i}}.test") for i in range(50)]
    peaks = {{}}
    for kind, code in (("async", {ASYNC_QUERIES!r}), ("pool", {POOL_QUERIES!r})):
        with Box(sites, FOLDER / kind, dns_delay=0.3) as box:
            addresses = run(box, code)
            assert addresses == [s.address for s in box.sites], addresses
            peaks[kind] = box.peak_dns_in_flight
    print(json.dumps(peaks))
    '''))
    assert out["async"] >= 45, out  # all 50 out at once (a few may be answered already)
    assert out["pool"] <= 4, out  # one A query per thread (AF_INET asks no AAAA)


HTTPS_CLIENTS = '''
import asyncio, json, ssl, urllib.request
import aiohttp, httpx, requests
URL = "https://www.good.test/"
out = {}
with urllib.request.urlopen(URL, timeout=10, context=ssl.create_default_context()) as answer:
    out["ssl default context"] = answer.status
out["requests (certifi)"] = requests.get(URL, timeout=10).status_code
out["httpx (certifi)"] = httpx.get(URL, timeout=10).status_code
async def fetch(url):
    connector = aiohttp.TCPConnector(resolver=aiohttp.AsyncResolver())
    async with aiohttp.ClientSession(connector=connector) as session:
        try:
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=10)) as answer:
                return answer.status
        except aiohttp.ClientError as exc:
            return type(exc).__name__
out["aiohttp"] = asyncio.run(fetch(URL))
out["aiohttp, unknown CA"] = asyncio.run(fetch("https://stranger.test/"))
print(json.dumps(out))
'''


@pytest.mark.slow(10)
def test_https_trusts_the_box_ca_with_and_without_its_variables() -> None:
    out = json.loads(in_box(f'''
    sites = [Site("www.good.test"), Site("stranger.test", tls=Tls.UNKNOWN_CA)]
    with Box(sites, FOLDER / "box") as box:
        # With the variables, and with none of them: then certifi's file and the system
        # bundle, bound over, are what the clients trust.
        seen = {{"env": run(box, {HTTPS_CLIENTS!r}),
                "binds only": run(box, {HTTPS_CLIENTS!r}, env={{}}),
                "hits": len(box.seen("www.good.test")), "peak": box.peak_connections}}
    print(json.dumps(seen))
    '''))
    for how in ("env", "binds only"):
        assert out[how] == {"ssl default context": 200, "requests (certifi)": 200,
                            "httpx (certifi)": 200, "aiohttp": 200,
                            "aiohttp, unknown CA": "ClientConnectorCertificateError"}, out
    assert out["hits"] == 8 and out["peak"] >= 1, out


def test_a_blackhole_address_never_completes_a_connect() -> None:
    out = json.loads(in_box('''
    import socket
    seen = {}
    for port in (80, 443):
        began = time.monotonic()
        try:
            socket.create_connection((blackhole_address(port), port), timeout=1.0)
            seen[port] = "connected"
        except OSError as exc:
            seen[port] = [type(exc).__name__, round(time.monotonic() - began, 1)]
    print(json.dumps(seen))
    '''))
    assert out == {"80": ["TimeoutError", 1.0], "443": ["TimeoutError", 1.0]}, out


@pytest.mark.slow(20)
def test_a_box_of_ten_thousand_sites_starts_in_seconds() -> None:
    out = json.loads(in_box('''
    began = time.monotonic()
    box = Box([Site(f"site{i}.test") for i in range(10_000)], FOLDER / "box")
    with box:
        started = time.monotonic() - began
        last = run(box, "import json, socket; print(json.dumps(socket.gethostbyname("
                        "'site9999.test')))")
        print(json.dumps({"seconds": started, "last": last,
                          "planned": box.site("site9999.test").address}))
    '''))
    print(f"a box of 10,000 sites started in {out['seconds']:.2f} s")
    assert out["last"] == out["planned"], out
    assert out["seconds"] < 10, out


def test_a_box_without_a_network_of_its_own_says_what_to_do(tmp_path: Path) -> None:
    # This test process shares the machine's network: the box refuses before it binds anything.
    code = ("from pathlib import Path; import sys\n"
            "from conformance._box import Box, BoxUnavailable, Site\n"
            "try:\n    Box([Site('a.test')], Path(sys.argv[1])).start()\n"
            "except BoxUnavailable as exc:\n    print(exc)\n")
    done = subprocess.run([PY, "-c", code, str(tmp_path)], capture_output=True, text=True,
                          timeout=60, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert "network namespace of the run's own" in done.stdout, done.stdout
    assert "root" in done.stdout and "user namespaces" in done.stdout, done.stdout


UNPRIVILEGED = '''
import ctypes, os, subprocess, sys
libc = ctypes.CDLL(None, use_errno=True)
uid, gid = os.geteuid(), os.getegid()
# What conformance/_isolation.py's enter_own_network does for a normal user.
assert libc.unshare(0x10000000 | 0x40000000) == 0, os.strerror(ctypes.get_errno())
for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"),
                   ("gid_map", f"{gid} {gid} 1")):
    with open(f"/proc/self/{name}", "w") as out:
        out.write(text)
done = subprocess.run([sys.executable, "-I", "-S", sys.argv[1], "--bind",
                       f"{sys.argv[2]}=/etc/resolv.conf", "--", "sh", "-c",
                       "cat /etc/resolv.conf; id -u"], capture_output=True, text=True, timeout=30)
print(done.returncode, done.stdout, done.stderr)
'''


def test_the_launcher_binds_for_a_normal_user_in_the_runs_user_namespace() -> None:
    # After exec the launcher has no capabilities in the run's user namespace: it makes a
    # nested one with its own ids mapped to themselves. Tried as `nobody`, with Debian's
    # Python (the launcher is standard library only).
    setpriv, python = shutil.which("setpriv"), "/usr/bin/python3"
    if os.geteuid() != 0 or setpriv is None or not os.path.exists(python):
        message = "needs root (to become nobody), setpriv and /usr/bin/python3"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    # pytest's own folders are root's alone: nobody reads from one of its own.
    with tempfile.TemporaryDirectory(prefix="box-launcher-") as folder:
        tmp_path = Path(folder)
        tmp_path.chmod(0o755)
        done = _as_nobody(setpriv, python, tmp_path)
    if "Operation not permitted" in done.stdout + done.stderr and \
            os.environ.get("CI") != "true":
        pytest.skip(f"unprivileged user namespaces are refused here: {done.stdout}")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["0 nameserver 127.0.0.53", "65534"], done.stdout
    assert Path("/etc/resolv.conf").read_text() != "nameserver 127.0.0.53\n"


def _as_nobody(setpriv: str, python: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    launcher = tmp_path / "_launch.py"
    shutil.copy(ROOT / "conformance" / "_launch.py", launcher)
    view = tmp_path / "resolv.conf"
    view.write_text("nameserver 127.0.0.53\n")
    script = tmp_path / "driver.py"
    script.write_text(UNPRIVILEGED)
    for path in (launcher, view, script):
        path.chmod(0o644)
    return subprocess.run([setpriv, "--reuid=65534", "--regid=65534", "--clear-groups",
                           python, str(script), str(launcher), str(view)], capture_output=True,
                          text=True, timeout=60, cwd=tmp_path, env={"PATH": os.defpath})


def test_the_interpreter_and_certifi_of_a_command_are_found_without_running_it(
        tmp_path: Path) -> None:
    from conformance._box._namespace import certifi_bundles, interpreter_of, prefixes_of

    venv_python = Path(PY)
    script = tmp_path / "probe"
    script.write_text(f"#!{venv_python}\nprint('never run')\n")
    script.chmod(0o755)
    by_env = tmp_path / "probe-env"
    by_env.write_text("#!/usr/bin/env -S python3 -u\n")
    by_env.chmod(0o755)
    assert interpreter_of([PY, "-m", "x"]) == venv_python
    assert interpreter_of([str(script)]) == venv_python
    assert interpreter_of([str(by_env)]) == Path(shutil.which("python3") or "")
    assert interpreter_of(["sh", "-c", "true"]) is None
    assert interpreter_of([str(tmp_path / "missing")]) is None
    assert Path(sys.prefix) in prefixes_of(venv_python)
    import certifi

    assert Path(certifi.where()).resolve() in certifi_bundles([venv_python])
