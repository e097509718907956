"""The program's view of the box: the files it is shown in a mount namespace of its own (our
resolv.conf, hosts and nsswitch.conf; the box's CA over every bundle it might read) and the
environment it gets, so a program under test reaches the box without any change to its code.

Rules: nothing here runs the program or its interpreter (an interpreter is found from the
command's words and files: PATH, a script's `#!` line, pyvenv.cfg); the binds are made by
conformance/_launch.py in the program's own mount namespace, never in the grader's; only files
that exist are bound over (a bind needs its target); a box needs a network namespace of the
run's own and mount namespaces, and says once, clearly, what to do when it has not.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import math
import os
import shutil
import socket
import ssl
import struct
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from conformance._isolation import in_own_network, launched

RESOLVER = "127.0.0.53"
HOSTS = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
# Bundles a program may read without being told: Debian's and Fedora's system bundles, the
# one OpenSSL was built to read.
SYSTEM_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt",
                  "/etc/ssl/cert.pem")
CA_VARIABLES = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
WHAT_TO_DO = ("run the grader as root, or enable unprivileged user namespaces "
              "(sysctl user.max_user_namespaces=10000; on Debian kernels before 6.1 also "
              "kernel.unprivileged_userns_clone=1; on Ubuntu 24.04 "
              "kernel.apparmor_restrict_unprivileged_userns=0)")


class BoxUnavailable(RuntimeError):
    """A box cannot run here (no namespaces); the message says why and what to do."""


def resolver_timeout(dns_delay: float) -> int:
    """The seconds a program's resolver waits for an answer (resolv.conf's `timeout:`):
    past the box's hold of every answer, and within glibc's limit of 30."""
    return min(30, max(2, math.ceil(dns_delay) + 2))


def write_view(folder: Path, dns_delay: float = 0.0) -> dict[str, Path]:
    """Write the files a program under the box sees into `folder`; {system path: our file}.
    resolv.conf names the box's resolver only, with no search domain and two attempts (an
    answer lost in a program's full socket buffer costs one timeout, not the name; a name whose
    answer never comes costs two); hosts knows localhost only;
    nsswitch.conf is the machine's with `hosts: files dns`, so no mDNS, systemd-resolved or
    other module answers a name past our resolver (systemd-resolved is reachable over a Unix
    socket, which a network namespace does not separate)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "/etc/resolv.conf": (f"nameserver {RESOLVER}\n"
                             f"options timeout:{resolver_timeout(dns_delay)} attempts:2\n"),
        "/etc/hosts": HOSTS,
        "/etc/nsswitch.conf": _nsswitch(),
    }
    view: dict[str, Path] = {}
    for system, text in files.items():
        ours = folder / Path(system).name
        ours.write_text(text, encoding="utf-8")
        ours.chmod(0o644)
        view[system] = ours
    return view


def _nsswitch() -> str:
    try:
        lines = Path("/etc/nsswitch.conf").read_text(encoding="utf-8").splitlines()
    except OSError:
        lines = []
    kept = [line for line in lines if not line.strip().startswith("hosts:")]
    return "\n".join([*kept, "hosts:          files dns"]) + "\n"


# -- the interpreter a command runs, and its certifi ---------------------------------------------


def interpreter_of(argv: Sequence[str]) -> Path | None:
    """The Python a command runs with, found without running anything: its first word when
    that is a Python, else the interpreter its script's `#!` line names (`uvicorn`, a
    student's executable script; `/usr/bin/env python3` looked up on PATH); None otherwise."""
    if not argv:
        return None
    found = shutil.which(argv[0])
    if found is None:
        return None
    path = Path(found)
    if Path(argv[0]).name.startswith("python") or path.name.startswith("python"):
        return path
    try:
        with path.open("rb") as script:
            first = script.readline(512)
    except OSError:
        return None
    if not first.startswith(b"#!"):
        return None
    words = first[2:].decode("utf-8", "replace").split()
    if words and Path(words[0]).name == "env":
        words = [w for w in words[1:] if not w.startswith("-")]
        if not words:
            return None
        located = shutil.which(words[0])
        return Path(located) if located else None
    return Path(words[0]) if words and Path(words[0]).name.startswith("python") else None


def prefixes_of(python: Path) -> list[Path]:
    """The installation folders `python` imports from: its venv's (pyvenv.cfg beside or above
    it) and the base installation's; or the folder above its `bin`."""
    out: list[Path] = []
    for candidate in (python, python.resolve()):
        bin_folder = candidate.parent
        config = bin_folder.parent / "pyvenv.cfg"
        if config.is_file():
            out.append(bin_folder.parent)
            for line in config.read_text(encoding="utf-8", errors="replace").splitlines():
                key, _, value = line.partition("=")
                if key.strip() == "home" and value.strip():
                    out.append(Path(value.strip()).parent)
        else:
            out.append(bin_folder.parent)
    return list(dict.fromkeys(out))


def certifi_bundles(pythons: Sequence[Path]) -> list[Path]:
    """Every certifi `cacert.pem` the given interpreters (and this grader's Python) may import:
    in their prefixes' site-packages and dist-packages, /usr/local's and the user's."""
    prefixes: list[Path] = [Path(sys.prefix), Path(sys.base_prefix)]
    for python in pythons:
        prefixes += prefixes_of(python)
    patterns: list[str] = []
    for prefix in dict.fromkeys(prefixes):
        patterns += [f"{prefix}/lib/python3*/site-packages/certifi/cacert.pem",
                     f"{prefix}/lib/python3/dist-packages/certifi/cacert.pem",
                     f"{prefix}/local/lib/python3*/dist-packages/certifi/cacert.pem"]
    patterns.append(os.path.expanduser("~/.local/lib/python3*/site-packages/certifi/cacert.pem"))
    found = [Path(p).resolve() for pattern in patterns for p in glob.glob(pattern)]
    return [p for p in dict.fromkeys(found) if p.is_file()]


def system_bundles() -> list[Path]:
    """The machine's CA bundles that exist (resolved: a bind lands on the file itself)."""
    names = [*SYSTEM_BUNDLES, ssl.get_default_verify_paths().openssl_cafile]
    found = [Path(name).resolve() for name in names if name and os.path.isfile(name)]
    return list(dict.fromkeys(found))


def binds(view: dict[str, Path], ca_file: Path, argv: Sequence[str] = ()) -> list[
        tuple[Path, Path]]:
    """(our file, system path) pairs for the launcher: the view's files, and the box's CA over
    the system bundles and every certifi bundle of the command's interpreter and ours."""
    pairs = [(ours, Path(system)) for system, ours in view.items() if os.path.exists(system)]
    python = interpreter_of(argv)
    bundles = system_bundles() + certifi_bundles([python] if python else [])
    pairs += [(ca_file, bundle) for bundle in dict.fromkeys(bundles)]
    # And at its own path, which the environment names (`ca_env`): in a sandbox the folder it
    # lies in is hidden.
    pairs.append((ca_file, ca_file))
    return pairs


def ca_env(ca_file: Path) -> dict[str, str]:
    """The environment that points a program's TLS at the box's CA."""
    return {name: str(ca_file) for name in CA_VARIABLES}


# -- whether a box can run here ------------------------------------------------------------------


def check_available(folder: Path) -> None:
    """Raise BoxUnavailable unless a box can run in this process: in a network namespace of
    the run's own, with a launcher that can make a program's mount namespace (tried once)."""
    if not sys.platform.startswith("linux"):
        raise BoxUnavailable(f"the box needs Linux namespaces, and this is {sys.platform}")
    if not in_own_network():
        raise BoxUnavailable(
            "the box needs a network namespace of the run's own and this run shares the "
            f"machine's network (no namespace could be made, or --shared-network): {WHAT_TO_DO}")
    folder.mkdir(parents=True, exist_ok=True)
    probe = folder / "mount-probe"
    probe.write_text("box\n", encoding="utf-8")
    target = folder / "mount-probe-target"
    target.write_text("", encoding="utf-8")
    try:
        done = subprocess.run(
            launched([sys.executable, "-I", "-S", "-c",
                      f"print(open({str(target)!r}).read(), end='')"], [(probe, target)]),
            capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BoxUnavailable(f"the box could not try a mount namespace: {exc}") from exc
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()
    with contextlib.suppress(OSError):
        target.unlink()
    if done.returncode != 0 or done.stdout != "box\n":
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise BoxUnavailable(f"the box needs a mount namespace for each program and the "
                             f"kernel refused one ({last}): {WHAT_TO_DO}")


# -- an address whose connects never complete ----------------------------------------------------

# RFC 2544's benchmarking range: never a real host's, and routed here to a device that no one
# reads, so a SYN sent there goes nowhere and a connect waits out the program's own timeout.
BLACKHOLE_NETWORK = "198.18.0.0/15"
_TUNSETIFF, _IFF_TUN, _IFF_NO_PI = 0x400454CA, 0x0001, 0x1000
_SIOCSIFADDR, _SIOCSIFNETMASK, _SIOCGIFFLAGS, _SIOCSIFFLAGS = 0x8916, 0x891C, 0x8913, 0x8914
_blackhole: int | None = None  # the open TUN device (closing it removes the route)


def blackhole_address(index: int = 0) -> str:
    """An address (198.18.0.2 up) where every connect, on every port, never completes: the
    first call routes BLACKHOLE_NETWORK to a TUN device of this network namespace that nothing
    reads (OSError when /dev/net/tun or the right to make it is missing). For a site whose
    ports must all be unreachable; one port alone is better served by a full listener on the
    site's own address (conformance/_box/_hosts.py's Port.BLACKHOLE)."""
    global _blackhole
    if _blackhole is None:
        if not in_own_network():
            raise BoxUnavailable("a blackhole route is made in a network of the run's own only")
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
        try:
            name = b"boxhole"
            fcntl.ioctl(fd, _TUNSETIFF, struct.pack("16sH", name, _IFF_TUN | _IFF_NO_PI))
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                for request, address in ((_SIOCSIFADDR, "198.18.0.1"),
                                         (_SIOCSIFNETMASK, "255.254.0.0")):
                    fcntl.ioctl(sock, request, struct.pack(
                        "16sH2s4s8s", name, socket.AF_INET, b"", socket.inet_aton(address),
                        b""))
                flags = struct.unpack("16sh", fcntl.ioctl(
                    sock, _SIOCGIFFLAGS, struct.pack("16sh", name, 0)))[1]
                fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack("16sh", name, flags | 1))
        except OSError:
            os.close(fd)
            raise
        _blackhole = fd
    if not 0 <= index < 2 ** 17 - 3:
        raise ValueError(f"no blackhole address number {index}")
    base = int.from_bytes(socket.inet_aton("198.18.0.2"), "big")
    return socket.inet_ntoa((base + index).to_bytes(4, "big"))
