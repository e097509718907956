"""The sandbox itself (conformance/_sandbox.py), fast and without a spec's run: its limits as a
teacher writes them, what `stopped_by` names, and real programs started through `launched()`:
what they cannot see, write or keep running, which limit stops them, and the fallback."""

from __future__ import annotations

import ast
import dataclasses
import errno
import os
import resource
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from conformance import _sandbox as sandbox
from conformance._isolation import launched, target_env
from conformance._sandbox import LimitError, Limits, Sandbox, _blocked, stopped_by
from tests.conftest import PY, ROOT, conformance

# -- the limits as a teacher writes them --------------------------------------------------------


@pytest.mark.parametrize(("name", "text", "value"), [
    ("memory", "512M", 512), ("memory", "2G", 2048), ("memory", "300", 300),
    ("memory", "2048k", 2), ("file_size", "64mb", 64), ("file-size", "1G", 1024),
    ("cpu", "10m", 600), ("cpu", "90s", 90), ("cpu", "2h", 7200), ("cpu", "45", 45),
    ("processes", "64", 64), ("open_files", " 32 ", 32),
])
def test_limits_are_read_with_their_units(name: str, text: str, value: int) -> None:
    limits = Limits().changed({name: text})
    assert getattr(limits, name.replace("-", "_")) == value
    # Every other limit keeps its default.
    others = {f: getattr(Limits(), f) for f in Limits.names() if f != name.replace("-", "_")}
    assert {f: getattr(limits, f) for f in others} == others


@pytest.mark.parametrize(("values", "message"), [
    ({"memory": "lots"}, "memory: not a number with a unit: 'lots'"),
    ({"memory": "1k"}, "memory: must be at least 1"),
    ({"memory": "-5M"}, "memory: not a number"),
    ({"memory": "5T"}, "memory: not a number with a unit"),
    ({"processes": "10M"}, "processes: not a number: '10M'"),
    ({"cpu": "0"}, "cpu: must be at least 1"),
    ({"swap": "1G"}, "no limit 'swap' (limits: memory, processes, open_files, file_size, cpu)"),
])
def test_a_bad_limit_is_a_limit_error_saying_which(values: dict[str, str], message: str) -> None:
    with pytest.raises(LimitError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        Limits().changed(values)


def test_limits_in_words_and_as_the_launchers_rlimits() -> None:
    limits = Limits(memory=256, processes=64, open_files=100, file_size=8, cpu=30)
    assert limits.words() == ("memory 256 MB, 64 processes, 100 open files, files up to 8 MB, "
                              "30 s of CPU")
    words = limits.rlimits()
    assert words[::2] == ["--rlimit"] * 5
    assert words[1::2] == [f"data={256 << 20}", "nofile=100", f"fsize={8 << 20}", "cpu=30",
                           "nproc=64"]
    # Without a namespace of its own, a process count would count the grader's processes too.
    assert "nproc=64" not in limits.rlimits(processes=False)


def test_a_bad_limit_on_the_command_line_is_a_usage_error(tmp_path: Path) -> None:
    run = conformance("run", "credentials", "--limit", "memory=lots", tmp=tmp_path,
                      json_report=False)
    assert run.code == 2, (run.stdout, run.stderr)
    assert "memory: not a number with a unit: 'lots'" in run.stdout + run.stderr
    run = conformance("run", "credentials", "--limit", "memory", tmp=tmp_path,
                      json_report=False)
    assert run.code == 2 and "'memory' is not NAME=VALUE" in run.stdout + run.stderr


def test_a_runs_sandbox_takes_the_specs_limits_then_the_lines(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from conformance import load_spec
    from conformance._options import RunOptions
    from conformance._run import HIDE_VARIABLE, _sandbox_for
    from conformance._target import TargetError

    spec = dataclasses.replace(load_spec("credentials"),
                               limits={"memory": "512M", "cpu": "2m"})
    monkeypatch.setenv(HIDE_VARIABLE, os.pathsep.join([str(tmp_path / "a"), str(tmp_path)]))
    box = _sandbox_for(spec, RunOptions(limit={"memory": "256M", "processes": "64"}))
    assert box.limits == Limits(memory=256, processes=64, cpu=120)
    assert box.hide == (tmp_path / "a", tmp_path) and box.enabled
    assert not _sandbox_for(spec, RunOptions(no_sandbox=True)).enabled
    broken = dataclasses.replace(spec, limits={"memory": "lots"})
    with pytest.raises(TargetError, match="credentials: its limits: memory: not a number"):
        _sandbox_for(broken, RunOptions())


# -- what stopped a program ---------------------------------------------------------------------

SMALL = Limits(memory=128, processes=16, open_files=32, file_size=1, cpu=1)


@pytest.mark.parametrize(("code", "output", "reason"), [
    (128 + signal.SIGXCPU, "", "stopped: CPU time limit (1 s)"),
    (-signal.SIGXCPU, "", "stopped: CPU time limit (1 s)"),
    (-signal.SIGXFSZ, "", "stopped: file size limit (1 MB)"),
    (128 + signal.SIGXFSZ, "", "stopped: file size limit (1 MB)"),
    (1, "Traceback ...\nOSError: [Errno 27] File too large", "stopped: file size limit (1 MB)"),
    (1, "Traceback ...\nMemoryError", "stopped: memory limit (128 MB)"),
    (134, "terminate called after throwing an instance of 'std::bad_alloc'",
     "stopped: memory limit (128 MB)"),
    (1, "BlockingIOError: [Errno 11] Resource temporarily unavailable",
     "stopped: more than 16 processes"),
    (1, "RuntimeError: can't start new thread", "stopped: more than 16 processes"),
    # A non-blocking socket's EAGAIN is errno 11 too, and no process limit's.
    (1, '  File "x.py", line 3, in <module>\n    data = sock.recv(10)\n'
        "BlockingIOError: [Errno 11] Resource temporarily unavailable", ""),
    (1, "OSError: [Errno 24] Too many open files: 'x'", "stopped: more than 32 open files"),
    (1, "ValueError: no such species", ""),
    (0, "MemoryError", ""),  # it ended well: whatever it printed, nothing stopped it
    (None, "MemoryError", ""),  # it still runs
    (-signal.SIGKILL, "", ""),
    # A program's own exit status that happens to be a limit's signal number is no signal.
    (int(signal.SIGXCPU), "", ""),
    (int(signal.SIGXFSZ), "", ""),
])
def test_stopped_by_names_the_limit(code: int | None, output: str, reason: str) -> None:
    assert stopped_by(code, output, SMALL) == reason


def test_a_sandbox_keeps_each_stop_once() -> None:
    box = Sandbox(limits=SMALL)
    assert box.ended(1, "MemoryError") == "stopped: memory limit (128 MB)"
    assert box.ended(1, "MemoryError") == "stopped: memory limit (128 MB)"
    assert box.ended(0, "") == ""
    assert box.ended(-signal.SIGXCPU, "") == "stopped: CPU time limit (1 s)"
    assert box.stopped == ["stopped: memory limit (128 MB)", "stopped: CPU time limit (1 s)"]


def test_the_folders_hidden_include_the_home_and_those_asked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    hidden = Sandbox(hide=(ROOT / "openapi",))._hidden()
    assert Path("/root") in hidden and Path("/tmp").resolve() in hidden
    assert (ROOT / "openapi").resolve() in hidden
    # The fake home is under /tmp: hidden with it, not listed twice.
    assert not any(h.is_relative_to(Path("/tmp").resolve()) and h != Path("/tmp").resolve()
                   for h in hidden)


# -- real programs in a sandbox -----------------------------------------------------------------


@pytest.fixture
def bwrap() -> None:
    """Skip where no sandbox can be made here (never under CI, where that is a failure)."""
    why = sandbox._unavailable()
    if why:
        if os.environ.get("CI") == "true":
            pytest.fail(f"no sandbox can be made here: {why}")
        pytest.skip(f"no sandbox can be made here: {why}")


@dataclass
class Done:
    """How a program started in a sandbox ended."""

    code: int
    stdout: str
    stderr: str


def launch(box: Sandbox, code: str, cwd: Path, argv: list[str] | None = None,
           timeout: float = 30) -> Done:
    """Run the Python `code` (or `argv`) as a run starts a target: through `launched()` with
    `box` in force, in `cwd`, with `target_env()`."""
    cwd.mkdir(parents=True, exist_ok=True)
    with sandbox.using(box):
        done = subprocess.run(launched(argv or [PY, "-c", textwrap.dedent(code)], cwd=cwd),
                              cwd=cwd, env=target_env(), capture_output=True, text=True,
                              timeout=timeout, start_new_session=True, stdin=subprocess.DEVNULL)
    return Done(done.returncode, done.stdout, done.stderr)


@pytest.fixture
def fake_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A grader's home with a key in it, HOME pointing at it, and a secret variable."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_rsa").write_text("-----BEGIN KEY----- sandbox-test-key\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("SANDBOX_TEST_SECRET", "sandbox-test-secret")
    yield home


@pytest.mark.usefixtures("bwrap")
def test_a_program_sees_no_home_no_root_and_no_hidden_folder(tmp_path: Path,
                                                             fake_home: Path) -> None:
    box = Sandbox(limits=SMALL, hide=(fake_home, ROOT / "openapi"))
    done = launch(box, f"""
        import os
        def seen(path):
            try:
                return sorted(os.listdir(path))
            except OSError as exc:
                return exc.strerror
        print(seen({str(fake_home)!r}), seen({str(fake_home / '.ssh')!r}), seen('/root'),
              seen({str(ROOT / 'openapi')!r}), os.environ['HOME'],
              os.environ.get('SANDBOX_TEST_SECRET'), sep='|')
        """, tmp_path / "work")
    assert done.code == 0, done.stderr
    home, ssh, root, openapi, home_variable, secret = done.stdout.strip().split("|")
    assert home in ("[]", "No such file or directory")
    assert ssh == "No such file or directory"
    # Of /root only the way to a Python install (ours, under pyenv, say) is shown.
    installs = {Path(p).resolve() for p in (sys.base_prefix, sys.prefix)}
    shown = [Path("/root", name) for name in ast.literal_eval(root)]
    assert all(any(i.is_relative_to(s) for i in installs) for s in shown), shown
    # Hidden from it, not from us (not found: the checkout is in a hidden folder itself).
    assert openapi in ("[]", "No such file or directory") and os.listdir(ROOT / "openapi")
    assert home_variable == "/tmp"
    assert secret == "None"
    assert "sandbox-test-key" not in done.stdout + done.stderr


@pytest.mark.usefixtures("bwrap")
def test_a_program_writes_its_folder_and_tmp_only(tmp_path: Path) -> None:
    name = f"sandbox-test-{uuid.uuid4().hex}"
    outside = ROOT / name
    done = launch(Sandbox(limits=SMALL), f"""
        import os
        open('mine.txt', 'w').write('ok')
        open('/tmp/{name}', 'w').write('ok')
        for path in ({str(outside)!r}, '/usr/{name}', '/etc/{name}'):
            try:
                open(path, 'w')
                print(path, 'written')
            except OSError as exc:
                print(path, exc.errno)
        print('uid', os.getuid())
        """, tmp_path / "work")
    assert done.code == 0, done.stderr
    lines = done.stdout.splitlines()
    # (The checkout may be in a hidden folder, seen empty: its path is then not found.)
    assert lines[0] in (f"{outside} {errno.EROFS}", f"{outside} {errno.ENOENT}")
    assert lines[1:3] == [f"/usr/{name} {errno.EROFS}", f"/etc/{name} {errno.EROFS}"]
    assert not outside.exists()
    assert (tmp_path / "work" / "mine.txt").read_text() == "ok"
    # Its /tmp is a private folder of its own, not the grader's.
    assert not Path("/tmp", name).exists()
    expected = sandbox.NOBODY if os.geteuid() == 0 else os.geteuid()
    assert lines[3] == f"uid {expected}"


@pytest.mark.usefixtures("bwrap")
def test_a_child_left_running_ends_with_the_program(tmp_path: Path) -> None:
    marker = f"sandbox-test-orphan-{uuid.uuid4().hex}"
    done = launch(Sandbox(limits=SMALL), f"""
        import subprocess, sys
        child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)',
                                  {marker!r}], start_new_session=True)
        print(child.pid)
        """, tmp_path / "work")
    assert done.code == 0, done.stderr
    left = [p.pid for p in psutil.process_iter(["cmdline"])
            if marker in (p.info["cmdline"] or [])]
    assert left == []


@pytest.mark.usefixtures("bwrap")
@pytest.mark.parametrize(("code", "reason"), [
    ("x = [bytearray(32 << 20) for _ in range(16)]", "stopped: memory limit (128 MB)"),
    ("""
     import os, time
     for _ in range(100):
         if os.fork() == 0:
             time.sleep(5)
             os._exit(0)
     """, "stopped: more than 16 processes"),
    ("""
     with open('big', 'wb') as out:
         for _ in range(4):
             out.write(b'x' * (1 << 20))
     """, "stopped: file size limit (1 MB)"),
    ("while True: pass", "stopped: CPU time limit (1 s)"),
    ("files = [open('f%d' % n, 'w') for n in range(100)]", "stopped: more than 32 open files"),
], ids=["memory", "processes", "file_size", "cpu", "open_files"])
def test_each_limit_stops_a_program_and_is_named(tmp_path: Path, code: str,
                                                 reason: str) -> None:
    box = Sandbox(limits=SMALL)
    done = launch(box, code, tmp_path / "work")
    assert done.code != 0, done.stdout + done.stderr
    assert box.ended(done.code, done.stdout + done.stderr) == reason, (done.code, done.stderr)


@pytest.mark.usefixtures("bwrap")
def test_a_students_venv_in_a_hidden_folder_runs(tmp_path: Path) -> None:
    venv = tmp_path / "student" / ".venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=60, capture_output=True)
    script = tmp_path / "student" / "app.py"
    script.write_text("import json, sys\nprint(sys.prefix, json.dumps({'ok': 1}))\n")
    done = launch(Sandbox(limits=SMALL), "", tmp_path / "work",
                  argv=[str(venv / "bin" / "python"), str(script)])
    assert done.code == 0, done.stderr
    assert done.stdout.split() == [str(venv), '{"ok":', "1}"]


def test_without_a_sandbox_the_limits_but_the_process_count_still_apply(
        tmp_path: Path) -> None:
    box = Sandbox(limits=SMALL, enabled=False)
    assert box.why_not == "--no-sandbox was given"
    assert box.describe().startswith("no sandbox (--no-sandbox was given); still applied: a "
                                     "private working folder, the limits but the process count")
    command = box.command([PY, "-c", "pass"], launcher=["launcher"])
    assert "bwrap" not in command and "nproc=16" not in " ".join(command)
    done = launch(box, """
        import resource
        print(resource.getrlimit(resource.RLIMIT_DATA)[0] >> 20,
              resource.getrlimit(resource.RLIMIT_NOFILE)[0])
        x = bytearray(256 << 20)
        """, tmp_path / "work")
    assert done.stdout.split() == ["128", "32"]
    assert box.ended(done.code, done.stderr) == "stopped: memory limit (128 MB)"
    assert (tmp_path / "work").stat().st_uid == os.geteuid()  # nothing was given away


@pytest.mark.usefixtures("bwrap")
def test_a_sandbox_says_how_it_contains(tmp_path: Path) -> None:
    words = Sandbox(limits=SMALL).describe()
    assert words.startswith("sandbox (bubblewrap): the system read-only, homes and /tmp hidden")
    assert ("as nobody" if os.geteuid() == 0 else "in a namespace") in words
    assert words.endswith(f"limits: {SMALL.words()}")
    # Its rlimits are set for the program, not for the grader.
    assert resource.getrlimit(resource.RLIMIT_DATA)[0] != 128 << 20


def test_a_folder_nobody_may_pass_on_the_way_is_found(tmp_path: Path) -> None:
    # tox makes .tox 0700: a venv beyond it could not be run as nobody unless the sandbox
    # hides that folder and shows the venv through folders it may pass.
    closed = tmp_path / "project" / ".tox"
    venv = closed / "test" / "bin"
    venv.mkdir(parents=True)
    (tmp_path / "project").chmod(0o755)
    closed.chmod(0o700)
    # pytest's own folders are 0700 too: passable for the test's while, as ours would be.
    ours = [p for p in (tmp_path, *tmp_path.parents) if p.is_relative_to(Path("/tmp"))
            and p != Path("/tmp")]
    modes = {p: p.stat().st_mode & 0o7777 for p in ours}
    try:
        for path in ours:
            path.chmod(modes[path] | 0o011)
        assert _blocked([venv], hidden=[]) == [closed]
    finally:
        for path, mode in modes.items():
            path.chmod(mode)
    assert _blocked([venv], hidden=[Path("/tmp")]) == []  # in a hidden folder: made passable
