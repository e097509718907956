"""The sandbox every started target runs in, so a student's code cannot harm the grader, the
machine or another student's run: bubblewrap's namespaces, an unprivileged user, and limits
whose breach is named in the verdict.

Rules:
- One sandbox is in force per process (`using(sandbox)` around a run; otherwise one with the
  default limits, made when first asked). Every program the suite starts is started through
  `conformance._isolation.launched()`, which asks it for the command line: no launch site knows
  how a target is contained.
- The view (bwrap): `/` read-only; `/dev` minimal and `/proc` the target's own (a process
  namespace: when the target ends, every process it left ends with it, so no orphan keeps a
  port or a file); /home, /root, the grader's home and /tmp (and /var/tmp) hidden, and then
  shown again read-only, only what the command needs: the interpreters (ours, which runs the
  launcher, and the command's, with their venvs and base installs), the launcher, the folder of
  every path the command names, and for a module it names (`-m pkg.mod`, `pkg.mod:app`) the
  grader's folder it is imported from (only the module's own folder when a batch hid that
  folder: a roster's holds the other students' files). As root, a shown folder nobody may
  enter (pytest's 0700 ones) is shown as a readable copy, and a folder on the way that nobody
  may not pass (tox's 0700 .tox) is hidden too, what lies beyond it shown through folders it
  may pass. The working folder is writable, and folders named so (`writable=`, a spec option
  declared `written`); /tmp and /dev/shm are private folders of its own on disk (never
  memory). The box's files are bound where it asks (conformance/_box/).
- The user: as root, the target runs as `nobody` (65534), its writable folders given to it
  first; as another user it stays that user, in a user namespace. Either way it is in a user
  namespace of its own, where its processes are counted.
- Limits are rlimits set by the launcher inside the sandbox just before the target starts:
  memory (RLIMIT_DATA: what a program allocates, not the address space it reserves), processes
  (RLIMIT_NPROC), open files, file size and CPU time. `stopped_by()` names the one a target hit,
  from how it ended and what it printed ("stopped: memory limit (1024 MB)").
- The sandbox's own processes ignore Ctrl+C and SIGTERM (the target's launcher resets them), so
  a signal to the target's process group reaches the target alone, and its exit status is the
  target's own (a death by signal N shows as 128+N, as a shell shows it).
- Where no sandbox can be made (no bwrap, namespaces refused, not Linux), `describe()` says so,
  once per report and in the batch matrix, and what still applies: the limits but the process
  count (which would count the grader's own processes), and the private working folder.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from functools import cache
from pathlib import Path

NOBODY = 65534
# Ignored by the sandbox's own processes (bwrap's monitor and its init), inherited across exec.
_IGNORED = "INT TERM QUIT HUP"
_HIDDEN = ("/home", "/root", "/tmp", "/var/tmp")
_MB = 1024 * 1024
_UNITS = {"": 1, "k": 1 / 1024, "m": 1, "g": 1024}
_TIME_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600}


class LimitError(ValueError):
    """A limit cannot be taken (the message says why)."""


@dataclass(frozen=True)
class Limits:
    """What a target may use; every field is a teacher's to change (`--limit NAME=VALUE`, or a
    spec's `limits:`)."""

    memory: int = 1024  # MB a process may allocate (RLIMIT_DATA)
    processes: int = 256  # processes and threads of the target's user, all told
    open_files: int = 1024
    file_size: int = 1024  # MB one file may grow to
    cpu: int = 600  # seconds of CPU time a process may use

    @staticmethod
    def names() -> tuple[str, ...]:
        """The limits' names, as `--limit` takes them."""
        return tuple(f.name for f in fields(Limits))

    def changed(self, values: Mapping[str, str]) -> Limits:
        """These limits with `values` (name -> '512M', '2G', '300', '10m') taken over;
        LimitError naming the first that cannot be."""
        new: dict[str, int] = {}
        for name, text in values.items():
            key = name.replace("-", "_")
            if key not in self.names():
                raise LimitError(f"no limit {name!r} (limits: {', '.join(self.names())})")
            new[key] = _parse(key, str(text))
        return replace(self, **new)

    def words(self) -> str:
        """The limits in words, for the report."""
        return (f"memory {self.memory} MB, {self.processes} processes, {self.open_files} open "
                f"files, files up to {self.file_size} MB, {self.cpu} s of CPU")

    def rlimits(self, processes: bool = True) -> list[str]:
        """The launcher's `--rlimit` words for these limits (without the process count when
        it would count the grader's own processes too)."""
        values = {"data": self.memory * _MB, "nofile": self.open_files,
                  "fsize": self.file_size * _MB, "cpu": self.cpu}
        if processes:
            values["nproc"] = self.processes
        return [w for name, value in values.items() for w in ("--rlimit", f"{name}={value}")]


def _parse(name: str, text: str) -> int:
    match = re.fullmatch(r"\s*(\d+)\s*([a-zA-Z]?)[bB]?\s*", text)
    units = _TIME_UNITS if name == "cpu" else _UNITS if name in ("memory", "file_size") else {
        "": 1}
    if not match or match.group(2).lower() not in units:
        raise LimitError(f"{name}: not a number{' with a unit' if len(units) > 1 else ''}: "
                         f"{text!r}")
    value = int(int(match.group(1)) * units[match.group(2).lower()])
    if value < 1:
        raise LimitError(f"{name}: must be at least 1: {text!r}")
    return value


# -- what a target hit -------------------------------------------------------------------------

# What a program prints when an allocation, a fork or an open fails for want of room.
_MEMORY = re.compile(r"MemoryError|Cannot allocate memory|std::bad_alloc|out of memory", re.I)
# A fork or a thread refused (EAGAIN), unless the lines just above name a socket's or a pipe's
# operation, whose EAGAIN (also errno 11) is no process limit's.
_PROCESSES = re.compile(r"can't start new thread|fork: retry|BlockingIOError: \[Errno 11\]|"
                        r"Resource temporarily unavailable", re.I)
_NOT_A_FORK = re.compile(r"\b(recv|send|sendall|accept|connect|read|write|sock)\w*\(")
_OPEN_FILES = re.compile(r"Too many open files", re.I)
_FILE_SIZE = re.compile(r"File too large", re.I)


def stopped_by(code: int | None, output: str, limits: Limits | None = None) -> str:
    """Which limit stopped a program that ended with `code` having printed `output` (its last
    lines), in words ('stopped: memory limit (1024 MB)'); '' when none did, or it still runs."""
    limits = limits or current().limits
    if code is None or code == 0:
        return ""
    # A death by signal N: -N (Popen's, no sandbox) or 128+N (through bwrap). A plain exit
    # status 24 or 25 (sys.exit(25)) is the program's own, not SIGXCPU or SIGXFSZ.
    signals = {-code, code - 128}
    if signal.SIGXCPU in signals:
        return f"stopped: CPU time limit ({limits.cpu} s)"
    if signal.SIGXFSZ in signals or _FILE_SIZE.search(output):
        return f"stopped: file size limit ({limits.file_size} MB)"
    if _MEMORY.search(output):
        return f"stopped: memory limit ({limits.memory} MB)"
    found = _PROCESSES.search(output)
    if found and not _NOT_A_FORK.search("\n".join(
            output[:found.start()].splitlines()[-3:])):
        return f"stopped: more than {limits.processes} processes"
    if _OPEN_FILES.search(output):
        return f"stopped: more than {limits.open_files} open files"
    return ""


# -- whether a sandbox can be made -------------------------------------------------------------


@cache
def _unavailable() -> str:
    """'' when bwrap makes a sandbox here (tried once); else why not, in a line."""
    if not sys.platform.startswith("linux"):
        return f"sandboxes need Linux namespaces, and this is {sys.platform}"
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return "bubblewrap is not installed (Debian, Ubuntu: apt-get install bubblewrap)"
    try:
        done = subprocess.run(
            [bwrap, "--die-with-parent", "--unshare-pid", "--ro-bind", "/", "/", "--dev", "/dev",
             "--proc", "/proc", "--", "true"], stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bwrap could not be run: {exc}"
    if done.returncode != 0:
        why = done.stderr.strip().splitlines()[-1:] or [f"exit {done.returncode}"]
        return (f"bwrap cannot make namespaces here ({why[0]}): run as root, or allow "
                f"unprivileged user namespaces")
    return ""


# -- the sandbox -------------------------------------------------------------------------------


@dataclass
class Sandbox:
    """How targets are contained in this process: the limits, and whether bwrap is used."""

    limits: Limits = field(default_factory=Limits)
    enabled: bool = True  # False: asked for none (--no-sandbox); limits still apply
    hide: tuple[Path, ...] = ()  # more folders to hide (a batch's roster folder)
    writable: tuple[Path, ...] = ()  # folders every target may write (a spec option's)
    stopped: list[str] = field(default_factory=list)  # what its limits stopped, each once
    _made: list[Path] = field(default_factory=list, repr=False)

    def ended(self, code: int | None, output: str) -> str:
        """Note how a target ended (`code`, its output's end): which limit stopped it, in
        words, kept for the report; '' when none did."""
        reason = stopped_by(code, output, self.limits)
        if reason and reason not in self.stopped:
            self.stopped.append(reason)
        return reason

    @property
    def why_not(self) -> str:
        """'' when targets run in bwrap; else why not."""
        if not self.enabled:
            return "--no-sandbox was given"
        return _unavailable()

    @property
    def as_root(self) -> bool:
        """Whether the grader is root, so that a target is made `nobody`."""
        return hasattr(os, "geteuid") and os.geteuid() == 0

    def describe(self) -> str:
        """How targets were contained, in a line, for the report and the batch matrix."""
        limits = f"limits: {self.limits.words()}"
        why = self.why_not
        if why:
            return (f"no sandbox ({why}); still applied: a private working folder, the "
                    f"limits but the process count ({limits.removeprefix('limits: ')})")
        user = "as nobody" if self.as_root else "as the grader's user, in a namespace"
        return (f"sandbox (bubblewrap): the system read-only, homes and /tmp hidden, a private "
                f"working folder and /tmp, {user}, its processes ended with it; {limits}")

    # -- one target's command line --

    def command(self, argv: Sequence[str], binds: Sequence[tuple[Path, Path]] = (),
                cwd: Path | None = None, launcher: Sequence[str] = (),
                writable: Sequence[Path] = ()) -> list[str]:
        """The command line that starts `argv` (a target) in this sandbox, in `cwd`, shown
        each of `binds` (our file, the path it is seen at) and each of `writable` (a folder
        of the suite's it writes to, at its own path); `launcher` is the launcher's own
        command (interpreter, flags, script)."""
        bind_words = [w for source, target in binds for w in ("--bind", f"{source}={target}")]
        if self.why_not:
            return [*launcher, *self.limits.rlimits(processes=False), *bind_words, "--", *argv]
        private = self._private()
        work = Path(cwd).resolve() if cwd else private / "work"
        # A folder the target is to make is writable through its nearest existing parent.
        writable = [next(p for p in (Path(w).resolve(), *Path(w).resolve().parents)
                         if p.exists()) for w in (*self.writable, *writable)]
        if self.as_root:
            for folder in (work, *writable):
                give(folder)
        inner = [*launcher, *self.limits.rlimits()]
        if self.as_root:
            inner += ["--user", str(NOBODY)]
        words = ["bwrap", "--die-with-parent", "--unshare-pid", "--unshare-ipc",
                 "--unshare-uts", "--unshare-cgroup-try",
                 "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
        shown_all = self._shown(argv, launcher)
        hidden = self._hidden()
        if self.as_root:
            # A folder on the way that nobody may not pass (tox's .tox is 0700) is hidden too,
            # and what lies beyond it shown through folders it may pass.
            needed = [*shown_all, work, *writable, *(Path(t) for _, t in binds)]
            hidden = self._hidden(_blocked(needed, hidden))
        for folder in hidden:
            if folder != Path("/tmp"):
                words += ["--tmpfs", str(folder)]
        words += ["--bind", str(private / "tmp"), "/tmp", "--bind", str(private / "shm"),
                  "/dev/shm"]
        made: set[Path] = set()

        def reach(path: Path) -> None:
            # bwrap makes a missing folder on the way to a bind 0700, which the target's
            # user could not pass through: every one is made 0755 first.
            under = [h for h in hidden if path.is_relative_to(h) and path != h]
            for parent in reversed(path.parents):
                if under and parent.is_relative_to(under[0]) and parent != under[0] \
                        and parent not in made:
                    made.add(parent)
                    words.extend(["--perms", "0755", "--dir", str(parent)])

        bound: list[Path] = []
        for shown in shown_all:
            if any(shown.is_relative_to(h) and shown != h for h in hidden) and not any(
                    shown.is_relative_to(b) for b in bound):
                bound.append(shown)
                reach(shown)
                # What nobody may not read (a folder of mode 0700, as pytest's and many
                # archives' are) is shown as a copy it may.
                source = shown if not self.as_root or _others_read(shown) else _readable_copy(
                    shown, private / "shown" / str(len(made)))
                words += ["--ro-bind", str(source), str(shown)]
                made.add(shown)
        for folder in (work, *writable):
            reach(folder)
            words += ["--bind", str(folder), str(folder)]
        for source, target in binds:
            reach(Path(target))
            words += ["--ro-bind", str(source), str(target)]
        for folder in hidden:
            if folder != Path("/tmp"):
                words += ["--remount-ro", str(folder)]
        words += ["--chdir", str(work), "--", *inner, "--", *argv]
        shell = ["/bin/sh", "-c", f"trap '' {_IGNORED}; exec \"$@\"", "sandbox"]
        return [*shell, *words]

    def _hidden(self, more: Sequence[Path] = ()) -> list[Path]:
        """The folders hidden from a target (each shown empty, then read-only), `more` too."""
        found = [Path(p) for p in _HIDDEN] + [Path.home(), *self.hide, *more]
        out: list[Path] = []
        for folder in found:
            with contextlib.suppress(OSError):
                real = folder.resolve()
                if real.is_dir() and real != Path("/") and real not in out and not any(
                        real.is_relative_to(o) for o in out):
                    out = [o for o in out if not o.is_relative_to(real)] + [real]
        return sorted(out)

    def _shown(self, argv: Sequence[str], launcher: Sequence[str]) -> list[Path]:
        """What a target needs to see of the hidden folders, read-only: interpreters and their
        installs, the launcher, the folders the command's paths and modules name."""
        wanted: list[Path] = []
        for prefix in {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}:
            wanted.append(Path(prefix))
        programs = [w for w in (*launcher[:1], *argv[:1]) if w]
        for word in programs:
            found = shutil.which(word, path=os.environ.get("PATH")) if os.sep not in word \
                else word
            if found:
                wanted += _install_of(Path(found))
        for word in (*launcher[1:], *argv):
            if os.path.isabs(word) and os.path.exists(word):
                path = Path(word)
                wanted.append(path if path.is_dir() else path.parent)
                if path.is_file() and path.stat().st_mode & 0o111:
                    wanted += _install_of(path)
        base = Path(os.getcwd())
        hidden_on_purpose = any(base.is_relative_to(h) for h in self.hide)
        for module in _modules(argv):
            if not hidden_on_purpose:
                # A module is imported from the grader's folder (the target's Python path),
                # with whatever else it imports from there: shown whole, unless a batch hid
                # it (a roster's folder holds the other students' files).
                wanted.append(base)
                continue
            parts = module.split(".")
            for n in range(len(parts), 0, -1):
                folder = base.joinpath(*parts[:n])
                if folder.is_dir():
                    wanted.append(folder)
                    break
                if folder.with_suffix(".py").is_file():
                    wanted.append(folder.parent)
                    break
        out: list[Path] = []
        for path in wanted:
            with contextlib.suppress(OSError):
                for one in (path.absolute(), path.resolve()):
                    if one.exists() and one not in out:
                        out.append(one)
        # Outer folders first (one inside another is bound only where the outer is not).
        return sorted(out, key=lambda p: len(p.parts))

    def _private(self) -> Path:
        """A new private folder for one target's /tmp and /dev/shm (and its working folder
        when it is given none)."""
        private = Path(tempfile.mkdtemp(prefix="conformance-sandbox-"))
        self._made.append(private)
        for name in ("tmp", "shm", "work"):
            (private / name).mkdir()
            (private / name).chmod(0o1777)  # not the umask's
        return private

    def clean(self) -> None:
        """Remove the private folders made for targets so far."""
        while self._made:
            shutil.rmtree(self._made.pop(), ignore_errors=True)


def give(folder: Path) -> None:
    """Give `folder` and what it holds to the sandbox's user (as root), so a target may write
    there, what the suite put there included."""
    with contextlib.suppress(OSError):
        os.chown(folder, NOBODY, NOBODY)
    for root, dirs, files in os.walk(folder):
        for name in (*dirs, *files):
            with contextlib.suppress(OSError):
                os.lchown(os.path.join(root, name), NOBODY, NOBODY)


def _blocked(paths: Sequence[Path], hidden: Sequence[Path]) -> list[Path]:
    """The folders on the way to `paths`, outside `hidden`, that other users may not pass."""
    out: list[Path] = []
    for path in paths:
        for parent in reversed(Path(path).parents):
            if any(parent.is_relative_to(h) for h in (*hidden, *out)):
                continue
            with contextlib.suppress(OSError):
                if not parent.stat().st_mode & 0o001:
                    out.append(parent)
    return out


def _others_read(folder: Path) -> bool:
    """Whether any user may list `folder` and enter it (what lies in it keeps its own modes: a
    file of the grader's own that nobody may read stays so)."""
    try:
        return folder.stat().st_mode & 0o005 == 0o005
    except OSError:
        return False


def _readable_copy(folder: Path, where: Path) -> Path:
    """A copy of `folder` at `where` that any user may read (and run what its owner may)."""
    shutil.copytree(folder, where, symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__", ".git", ".venv", "venv", ".tox"))
    for root, _dirs, files in os.walk(where):
        os.chmod(root, 0o755)
        for name in files:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                mode = os.stat(path).st_mode
                os.chmod(path, 0o755 if mode & 0o100 else 0o644)
    return where


def _install_of(program: Path) -> list[Path]:
    """The folders an interpreter at `program` runs from: its venv (pyvenv.cfg beside or above
    its folder) and the base install that names, and its own install (the folder above bin/)."""
    out: list[Path] = []
    with contextlib.suppress(OSError):
        for path in dict.fromkeys((program, program.resolve())):
            install = path.parent.parent
            out.append(install)
            cfg = install / "pyvenv.cfg"
            if cfg.is_file():
                for line in cfg.read_text(encoding="utf-8", errors="replace").splitlines():
                    key, _, value = line.partition("=")
                    if key.strip() == "home" and value.strip():
                        home = Path(value.strip())
                        out += [home.parent, home.resolve().parent]
    return out


def _modules(argv: Sequence[str]) -> list[str]:
    """Modules a command names: the word after `-m`, and `pkg.mod:app` words (uvicorn's,
    gunicorn's)."""
    out = []
    for i, word in enumerate(argv):
        if i and argv[i - 1] == "-m":
            out.append(word)
        elif re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.()]*", word):
            out.append(word.partition(":")[0])
    return out


# -- the sandbox in force ----------------------------------------------------------------------

_current: Sandbox | None = None


def current() -> Sandbox:
    """The sandbox targets started now run in."""
    global _current
    if _current is None:
        _current = Sandbox()
        atexit.register(_current.clean)
    return _current


@contextlib.contextmanager
def using(sandbox: Sandbox) -> Iterator[Sandbox]:
    """Put `sandbox` in force for the block (a run), then remove what it made."""
    global _current
    before = _current
    _current = sandbox
    try:
        yield sandbox
    finally:
        sandbox.clean()
        _current = before
