"""Keeping a target apart from the grader, from other runs and from other programs: a clean
start for every process a run starts, and a network of the run's own.

Rules:
- Every process a run starts (a server, each run of a client) starts clean, whatever state the
  grader is in: every signal at its default disposition and none blocked (through
  `_launch.py`), an environment without proxy settings or our Python paths, and the run's own
  working folder; a relative path in its command that names a file or folder where the grader
  stands is made absolute first, and that folder is the target's one Python path (for `-m` and
  `uvicorn main:app`), so the command means what it meant there.
- A run that starts its own target moves itself, before it starts anything, into a network
  namespace of its own with its own loopback (Linux: `unshare(CLONE_NEWNET)`, inside a user
  namespace of its own when not root), so the fixed ports of the assignments (8888, 5000-5003)
  never collide: thirty runs bind 8888 at once, each its own.
- A program under a box (conformance/_box/) also gets a mount namespace of its own, made by
  the launcher (`launched(argv, binds)`), which shows it our resolv.conf, hosts and CA; a box
  runs only where `in_own_network()`.
- Where no namespace can be had (a kernel that refuses them, not Linux), or the run must reach
  something outside it (a target by URL, a service or Redis the grader started, a crawler on
  another machine), the run shares the machine's network: a fixed port is then locked across
  runs (a run waits for another that holds it), and a server is judged only when the listener
  on its port belongs to the processes the run started.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import socket
import struct
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from conformance import _sandbox as sandbox

LAUNCHER = Path(__file__).resolve().with_name("_launch.py")
# Variables a target must not inherit: proxies (its servers are on loopback) and the Python
# paths of the grader's own environment (a tox or test run's).
NOT_INHERITED = frozenset({
    "http_proxy", "https_proxy", "all_proxy", "no_proxy", "ftp_proxy",
    "pythonpath", "pythonhome", "pythonstartup", "pythoninspect", "pytest_addopts",
    "pytest_plugins",
})
# The grader's variables a target gets (with LC_*); any other (a CI's tokens, a teacher's keys)
# it does not.
KEPT = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TERM", "COLUMNS",
    "LINES", "NO_COLOR", "FORCE_COLOR", "PYTHONUNBUFFERED", "PYTHONIOENCODING", "PYTHONUTF8",
    "PYTHONDONTWRITEBYTECODE", "VIRTUAL_ENV",
})
_CLONE_NEWNET = 0x40000000
_CLONE_NEWUSER = 0x10000000
_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1
_PORT_LOCKS = Path(tempfile.gettempdir()) / "conformance-fixed-ports.lock"


# -- a clean start -----------------------------------------------------------------------------


def target_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a target starts with: of the grader's own variables only those a
    program from a fresh shell needs (`KEPT`: PATH, locale, terminal, user, home), none of its
    secrets, proxies or Python paths; every variable `base` sets that the grader's environment
    has not, or has otherwise (the suite's: the box's CA, a bot's token), kept; and the folder
    where the command was given (the grader's) as the one Python path: a target runs in a
    folder of its own, and `python -m students.ada.server` or `uvicorn main:app` still import
    what they would have found there. In a sandbox, HOME is its private /tmp."""
    source = os.environ if base is None else base
    env = {k: v for k, v in source.items()
           if (k in KEPT or k.startswith("LC_") or os.environ.get(k) != v)
           and k.lower() not in NOT_INHERITED}
    env["PYTHONPATH"] = os.getcwd()
    if not sandbox.current().why_not:
        env["HOME"] = "/tmp"
    return env


def launched(argv: Sequence[str], binds: Sequence[tuple[Path, Path]] = (),
             cwd: Path | None = None, writable: Sequence[Path] = ()) -> list[str]:
    """`argv` started in the sandbox in force (conformance/_sandbox.py), in `cwd`, through the
    launcher, which resets signals and sets the limits before it becomes `argv`; each of
    `binds` (SOURCE, TARGET) shows it the file SOURCE at TARGET (the box's resolver and CA,
    conformance/_box/), and each of `writable` a folder of the suite's it may write to. Start
    it with `cwd` as its working folder too."""
    return sandbox.current().command(argv, binds, cwd, writable=writable,
                                     launcher=[sys.executable, "-I", "-S", str(LAUNCHER)])


def limit_hit(code: int | None, output: str) -> str:
    """Note how a target ended (its status, the end of its output) for the run's report: which
    of the sandbox's limits stopped it, in words ('stopped: memory limit (1024 MB)'), or ''."""
    return sandbox.current().ended(code, output[-4000:])


def absolute_paths(argv: Sequence[str], where: Path | None = None) -> list[str]:
    """`argv` with its relative paths (seen from `where`, the grader's folder by default) made
    absolute: a word that names an existing file, or an existing folder through a path with a
    separator (`students/ada`; a bare word like `data` may be anything). The word after `-m`
    (a module) or `-c` (code), options and the rest stay as they are."""
    base = where or Path.cwd()
    out = []
    for i, word in enumerate(argv):
        path = base / word
        looks_like_path = path.is_file() or (os.sep in word and path.exists())
        if (word and not word.startswith("-") and not os.path.isabs(word) and "{" not in word
                and looks_like_path and not (i and argv[i - 1] in ("-m", "-c"))):
            out.append(str(path.resolve()))
        else:
            out.append(word)
    return out


# -- a network of the run's own ----------------------------------------------------------------


@dataclass(frozen=True)
class Network:
    """The network a run's target has: its own, or the machine's, and why."""

    own: bool
    why: str = ""  # why it shares the machine's

    def describe(self) -> str:
        """How the target was kept apart, in words, for the report."""
        if self.own:
            return "a network of its own (namespace): its fixed ports were its own"
        return (f"this machine's network ({self.why}): a fixed port was locked for the run, and "
                f"a server judged only when the listener on its port was the one it started")


SHARED = Network(False, "its caller gave it no network of its own")


def _loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(sock, _SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack("16sh", b"lo", flags | _IFF_UP))


def _write(path: str, text: str) -> None:
    with open(path, "w", encoding="ascii") as out:
        out.write(text)


def enter_own_network() -> str:
    """Move this process into a new network namespace whose loopback is up; '' when done,
    else why not (nothing changed then). Call it before any thread or socket is made."""
    if not sys.platform.startswith("linux"):
        return f"network namespaces are Linux's, and this is {sys.platform}"
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError as exc:
        return f"the C library cannot be loaded: {exc}"
    uid, gid = os.geteuid(), os.getegid()
    flags = _CLONE_NEWNET if uid == 0 else _CLONE_NEWUSER | _CLONE_NEWNET
    if libc.unshare(flags) != 0:
        code = ctypes.get_errno()
        return (f"the kernel refused a network namespace ({errno.errorcode.get(code, code)}: "
                f"{os.strerror(code)})")
    try:
        if uid != 0:
            # The same ids inside as outside: a target sees its own user, not root.
            _write("/proc/self/setgroups", "deny")
            _write("/proc/self/uid_map", f"{uid} {uid} 1")
            _write("/proc/self/gid_map", f"{gid} {gid} 1")
        _loopback_up()
    except OSError as exc:
        # Half made: no loopback would fail every check, so say so rather than go on.
        raise RuntimeError(f"a network namespace was made but its loopback could not be "
                           f"brought up: {exc}") from exc
    global _entered
    _entered = True
    return ""


_entered = False  # whether enter_own_network() moved this process


def in_own_network() -> bool:
    """Whether this process is in a network namespace other than the machine's: one
    enter_own_network() made, or one it was started in (`unshare -n`), where that can be told
    (the first process's namespace is readable by root only)."""
    if _entered:
        return True
    try:
        return os.readlink("/proc/self/ns/net") != os.readlink("/proc/1/ns/net")
    except OSError:
        return False


# -- a shared network: fixed ports locked, listeners checked ------------------------------------


@contextlib.contextmanager
def fixed_port(port: int, wait: float) -> Iterator[bool]:
    """Hold the lock of a fixed port across the runs of this machine, waiting up to `wait`
    seconds for a run that holds it; yields False when it could not be had in time (and where
    there is no lock file to share, True: the check of the listener still stands)."""
    try:
        lock_file = _PORT_LOCKS.open("a+b")
    except OSError:
        yield True
        return
    with lock_file:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.lockf(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, port)
                break
            except OSError:
                if time.monotonic() >= deadline:
                    yield False
                    return
                time.sleep(0.2)
        try:
            yield True
        finally:
            with contextlib.suppress(OSError):
                fcntl.lockf(lock_file, fcntl.LOCK_UN, 1, port)


def listener_pids(port: int) -> set[int]:
    """The processes that hold a TCP socket listening on `port` (any address), of those this
    user may see."""
    try:
        found = psutil.net_connections(kind="tcp")
    except psutil.AccessDenied:  # macOS, unless root
        return set()
    return {c.pid for c in found if c.status == psutil.CONN_LISTEN and c.laddr
            and c.laddr.port == port and c.pid is not None}


def listener_is_ours(port: int, root: int) -> bool | None:
    """Whether a TCP socket listening on `port` belongs to `root` or a process below it; None
    when that cannot be told here."""
    try:
        top = psutil.Process(root)
        tree = [top, *top.children(recursive=True)]
    except psutil.NoSuchProcess:
        return False
    for one in tree:
        try:
            if any(c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port
                   for c in one.net_connections(kind="tcp")):
                return True
        except psutil.NoSuchProcess:
            continue
        except psutil.AccessDenied:
            return None
    return False
