"""The hostile twins (fixtures/hostile/) graded in one batch beside our reference and a correct
student, with small limits on every line: each is contained and reported (what a limit stopped
named in its report and the matrix), the good lines pass as they do alone, and the grader's
files, keys, environment and processes are as they were."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from conformance import _sandbox as sandbox
from conformance import batch as _batch
from tests.conftest import HARD_LIMIT, PY, ROOT, _env, conformance, own_network_refused
from tests.test_batch import FAST, write_roster

LIMITS = "--limit memory=256M --limit processes=64 --limit file_size=64M"
REFERENCE = f"{PY} reference/credentials.py --port {{port}}"
STUDENT = f"{PY} fixtures/credentials/student_wsgi.py {{port}}"
SECRET_NAME = "HOSTILE_TEST_SECRET"


def hostile(name: str, *words: str) -> str:
    """The roster's command for one hostile twin."""
    return shlex.join([PY, "-m", f"fixtures.hostile.{name}", "--port", "{port}", *words])


def snapshot(*folders: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under `folders`: path -> (size, mtime in ns)."""
    out: dict[str, tuple[int, int]] = {}
    for folder in folders:
        for path in [folder, *folder.rglob("*")]:
            info = path.lstat()
            out[str(path)] = (info.st_size, info.st_mtime_ns)
    return out


def plant(folder: Path, text: str) -> Path:
    """A canary folder: two files and a subfolder with one."""
    (folder / "sub").mkdir(parents=True)
    (folder / "main.py").write_text(f"print({text!r})\n")
    (folder / "notes.txt").write_text(text)
    (folder / "sub" / "data.csv").write_text("a,b\n1,2\n")
    return folder


@dataclass
class Graded:
    """One batch of the hostile class, and what the test planted for it."""

    code: int
    output: str
    out: Path
    home: Path
    other: Path
    readonly: Path
    secret: str
    key: str
    marker: str
    network: bool  # whether the network twin was on the roster (the runs have networks of
    # their own)
    before: dict[str, tuple[int, int]]  # the snapshot of the planted folders, before
    environ: dict[str, str]  # the test process's environment, before
    alone: dict[str, dict[str, str]]  # student -> verdicts of the same line run alone

    def students(self) -> dict[str, dict[str, Any]]:
        results = json.loads((self.out / "results.json").read_text(encoding="utf-8"))
        _batch.validate(results)
        return {s["student"]: s for s in results["students"]}


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> Graded:
    """The one batch every assertion reads: seven hostile twins (six where the runs share the
    machine's network), our reference and a correct student, three at a time."""
    why = sandbox._unavailable()
    if why:
        if os.environ.get("CI") == "true":
            pytest.fail(f"no sandbox can be made here: {why}")
        pytest.skip(f"no sandbox can be made here: {why}")
    tmp = tmp_path_factory.mktemp("hostile")
    tag = uuid.uuid4().hex
    secret, key, marker = f"secret-{tag}", f"key-{tag}", f"hostile-orphan-{tag}"
    home = plant(tmp / "home", "the grader's own")
    (home / ".ssh").mkdir()
    (home / ".ssh" / "id_rsa").write_text(f"-----BEGIN OPENSSH PRIVATE KEY-----\n{key}\n")
    classroom = tmp / "class"
    other = plant(classroom / "students" / "other", "another student's work")
    readonly = plant(tmp / "readonly", "shown to the deleter, read-only")
    network = not own_network_refused()
    rows = [
        ["Ada Reference", "credentials", REFERENCE, LIMITS],
        ["Sam Student", "credentials", STUDENT, LIMITS],
        # The readable folder is a word of its command (a sandbox shows it, read-only); the
        # grader's home and the other student's folder are one word each, as a program that
        # found them by itself would have them.
        ["Del Deleter", "credentials", hostile("deleter", str(readonly), f"--reach={home}",
                                               f"--reach={other}"), LIMITS],
        ["Lea Leaker", "credentials", hostile("leaker", f"--home={home}"), LIMITS],
        ["Fo Forkbomb", "credentials", hostile("forkbomb"), LIMITS],
        ["Mem Hog", "credentials", hostile("memory"), LIMITS],
        ["Di Diskfill", "credentials", hostile("disk"), LIMITS],
        ["Or Orphan", "credentials", hostile("orphan", "--marker", marker, "--seconds", "60"),
         LIMITS],
    ]
    if network:  # on a shared network its datagram would leave (to a never routed address)
        rows.append(["Net Sender", "credentials", hostile("network"), LIMITS])
    roster = write_roster(classroom / "roster.csv", rows)
    before = snapshot(home, other, readonly)
    environ = grader_environment()
    out = tmp / "out"
    done = subprocess.run(
        [PY, "-m", "conformance", "batch", str(roster), "--out", str(out), "--jobs", "3",
         "--target-timeout", "60", *FAST], cwd=ROOT, capture_output=True, text=True,
        timeout=HARD_LIMIT, env={**_env(), "COLUMNS": "200", "HOME": str(home),
                                 SECRET_NAME: secret,
                                 # The grader's own cache (hypothesis's tables) goes beside the
                                 # home: the home's snapshot is what the targets could touch.
                                 "XDG_CACHE_HOME": str(tmp / "cache")})
    alone = {}
    for student, command in (("Ada Reference", REFERENCE), ("Sam Student", STUDENT)):
        run = conformance("run", "credentials", "--command", command, *FAST, tmp=tmp)
        alone[student] = run.verdicts()
    return Graded(done.returncode, done.stdout + done.stderr, out, home, other, readonly,
                  secret, key, marker, network, before, environ, alone)


def grader_environment() -> dict[str, str]:
    """This process's environment, but pytest's note of the test's phase."""
    return {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}


def target_output(student: dict[str, Any]) -> str:
    return student["report"]["target_output"] or ""


@pytest.mark.slow(40)
def test_a_hostile_class_is_contained_and_graded_beside_the_good(graded: Graded) -> None:
    # One test, one batch: split across workers, tests sharing a module's fixture would each
    # grade the class again.
    students = graded.students()
    assert graded.code == 1, graded.output
    names = ["Ada Reference", "Sam Student", "Del Deleter", "Lea Leaker", "Fo Forkbomb",
             "Mem Hog", "Di Diskfill", "Or Orphan"] + (["Net Sender"] if graded.network else [])
    assert list(students) == names

    # Every line was graded: a report, verdicts, no problem of the batch's own; each ran in
    # the sandbox, with the line's limits.
    for name, student in students.items():
        assert student["problem"] == "" and student["report"] is not None, (name, student)
        assert set(student["verdicts"]) == set(graded.alone["Ada Reference"]), name
        assert "sandbox (bubblewrap)" in student["report"]["isolation"], name
        assert "memory 256 MB, 64 processes" in student["report"]["isolation"], name

    # The good lines pass, with the verdicts they get alone; so does the orphan's server.
    for name in ("Ada Reference", "Sam Student"):
        assert students[name]["passed"], (name, students[name]["verdicts"])
        assert students[name]["verdicts"] == graded.alone[name], name
    assert students["Or Orphan"]["passed"], students["Or Orphan"]["verdicts"]

    # What a limit stopped is named in the report and the matrix; no other line was stopped.
    html = (graded.out / "index.html").read_text(encoding="utf-8")
    stopped = {"Fo Forkbomb": "stopped: more than 64 processes",
               "Mem Hog": "stopped: memory limit (256 MB)",
               "Di Diskfill": "stopped: file size limit (64 MB)"}
    for name, student in students.items():
        reason = stopped.get(name)
        assert student["report"]["stopped"] == ([reason] if reason else []), name
        if reason:
            assert not student["passed"] and student["verdicts"]["CRED-01"] == "fail", name
            assert reason in target_output(student), name
            assert f'<small class="stopped">{reason}</small>' in html, name
    assert html.count('class="stopped"') == len(stopped)

    # The deleter found neither the grader's home nor the other student's folder, and could
    # remove nothing of the folder it was shown; every planted file is as it was.
    deleted = target_output(students["Del Deleter"])
    assert f"hostile-deleter: {graded.home}: not found" in deleted, deleted
    assert f"hostile-deleter: {graded.other}: not found" in deleted, deleted
    assert (f"hostile-deleter: {graded.readonly}: 0 removed, 4 refused (Read-only file "
            f"system)") in deleted, deleted
    assert snapshot(graded.home, graded.other, graded.readonly) == graded.before

    # The leaker printed what it could read, and that held neither the key nor the secret;
    # nothing the batch wrote does.
    leaked = target_output(students["Lea Leaker"])
    assert "hostile-leaker: environment: {" in leaked, leaked
    assert f"hostile-leaker: {graded.home}/.ssh: No such file or directory" in leaked, leaked
    for path in graded.out.rglob("*"):
        if path.is_file():
            text = path.read_bytes()
            assert graded.secret.encode() not in text and graded.key.encode() not in text, path

    # No process the orphan left holds its port, or anything else, now.
    assert [p.pid for p in psutil.process_iter(["cmdline"])
            if graded.marker in " ".join(p.info["cmdline"] or [])] == []

    # Nothing left the run's own network.
    if graded.network:
        sent = target_output(students["Net Sender"])
        assert "udp to 192.0.2.1: [Errno 101] Network is unreachable" in sent, sent
        assert "tcp to 192.0.2.1: [Errno 101] Network is unreachable" in sent, sent
    elif os.environ.get("CI") == "true":
        pytest.fail(f"the network twin needs networks of the runs' own: {own_network_refused()}")

    # The grader's environment is as it was (names only in a failure: values may be secret).
    now = grader_environment()
    assert {k for k in {*now, *graded.environ} if now.get(k) != graded.environ.get(k)} == set()


# -- the twins are hostile: uncontained, each does what it says, within its own bounds ----------


@dataclass
class Alone:
    """How a twin's act went, run alone."""

    returncode: int
    stdout: str
    stderr: str


def uncontained(name: str, *words: str, cwd: Path, env: dict[str, str] | None = None,
                timeout: float = 60) -> Alone:
    """Run a twin's act alone, without a sandbox or limits (`--no-serve`). Its output goes to
    files, not pipes: a process it leaves would hold a pipe open, and us waiting."""
    with (cwd / "out.txt").open("w+") as out, (cwd / "err.txt").open("w+") as err:
        done = subprocess.run([PY, "-m", f"fixtures.hostile.{name}", "--port", "0",
                               "--no-serve", *words], cwd=cwd, stdout=out, stderr=err,
                              timeout=timeout,
                              env={**_env(), "PYTHONPATH": str(ROOT), **(env or {})})
        out.seek(0)
        err.seek(0)
        alone = Alone(done.returncode, out.read(), err.read())
    for name in ("out.txt", "err.txt"):  # not kept: the leaker's holds an environment
        (cwd / name).unlink()
    return alone


def test_uncontained_the_deleter_deletes_and_the_leaker_leaks(tmp_path: Path) -> None:
    canary = plant(tmp_path / "canary", "doomed")
    done = uncontained("deleter", str(canary), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"hostile-deleter: {canary}: 4 removed" in done.stdout
    assert canary.is_dir() and list(canary.iterdir()) == []
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_rsa").write_text("the-planted-key")
    done = uncontained("leaker", cwd=tmp_path, env={"HOME": str(home), SECRET_NAME: "s3cret"})
    # Not its output in a failure: it holds this process's environment (its parent's).
    leaked = "the-planted-key" in done.stdout and "s3cret" in done.stdout
    assert done.returncode == 0 and leaked


def test_uncontained_the_bounded_twins_stop_at_their_own_bounds(tmp_path: Path) -> None:
    done = uncontained("forkbomb", "--attempts", "5", "--seconds", "1", cwd=tmp_path)
    assert "hostile-forkbomb: not contained: 5 children made" in done.stdout, done.stderr
    done = uncontained("memory", "--cap-mb", "64", cwd=tmp_path)
    assert "hostile-memory: not contained: 64 MB allocated" in done.stdout, done.stderr
    done = uncontained("disk", "--cap-mb", "3", cwd=tmp_path)
    assert "hostile-disk: not contained: 3 MB written" in done.stdout, done.stderr
    assert not (tmp_path / "hostile-disk.bin").exists()


def test_uncontained_the_orphan_outlives_its_server(tmp_path: Path) -> None:
    marker = f"hostile-orphan-test-{uuid.uuid4().hex}"
    done = uncontained("orphan", "--marker", marker, "--seconds", "20", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    left = [p for p in psutil.process_iter(["cmdline"])
            if marker in (p.info["cmdline"] or []) and "--hold" in (p.info["cmdline"] or [])]
    try:
        assert len(left) == 1 and left[0].ppid() != os.getpid()
        assert any(c.status == psutil.CONN_LISTEN for c in left[0].net_connections("tcp"))
    finally:
        for process in left:  # the holder this test started, by its id
            os.kill(process.pid, signal.SIGKILL)
