"""Every target kept apart (conformance/_isolation.py): it starts clean whatever state the
grader is in; runs of a class that all need the assignment's fixed port are graded at once, each
by its own code; and where the network is shared, a fixed port is locked per run and a server is
judged only when the listener is the one the run started."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conformance import _sandbox as sandbox
from conformance._isolation import absolute_paths, target_env
from conformance._target import free_port
from tests.conftest import PY, ROOT, conformance, need_fixed_port, own_network_refused

PROBE = ("import json, os, signal; print(json.dumps({'int': signal.getsignal(signal.SIGINT) is "
         "signal.default_int_handler, 'quit': signal.getsignal(signal.SIGQUIT) == signal.SIG_DFL,"
         " 'hup': signal.getsignal(signal.SIGHUP) == signal.SIG_DFL, 'blocked': sorted("
         "signal.pthread_sigmask(signal.SIG_BLOCK, [])), "
         "'env': sorted(k for k in os.environ if k.lower() in ('http_proxy', 'https_proxy', "
         "'no_proxy')), 'path': os.environ.get('PYTHONPATH'), 'cwd': os.getcwd()}))")

DRIVER = f"""
import json, signal, sys, tempfile
from pathlib import Path
# The grader as a background job, nohup or cron leaves it: Ctrl+C, hang-up and quit ignored,
# one signal blocked.
for number in (signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):
    signal.signal(number, signal.SIG_IGN)
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
from conformance._target import ProgramTarget
with tempfile.TemporaryDirectory() as folder:
    target = ProgramTarget(argv=[sys.executable, "-c", {PROBE!r}], port=0, label="probe",
                           workdir=Path(folder))
    done = target.run(timeout=30)
    seen = json.loads(done.stdout)
    seen["workdir"] = str(Path(folder).resolve())
    print(json.dumps(seen))
"""


def test_a_target_starts_clean_whatever_the_graders_state(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "http_proxy": "http://10.9.9.9:1/",
           "NO_PROXY": "*"}
    done = subprocess.run([PY, "-c", DRIVER], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert (seen["int"], seen["quit"], seen["hup"]) == (True, True, True), seen
    assert seen["blocked"] == [], seen
    assert seen["env"] == [], seen
    # Not the grader's Python path: the folder the command was given in (for `-m`).
    assert seen["path"] == str(tmp_path), seen
    assert seen["cwd"] == seen["workdir"], seen


def test_a_client_judged_on_ctrl_c_passes_when_the_grader_ignores_it(tmp_path: Path) -> None:
    # Run from a launcher that ignores SIGINT, every program the suite started ignored Ctrl+C
    # too, and our own reference failed TQC-09.
    report = tmp_path / "report.json"
    done = subprocess.run(
        ["bash", "-c", 'trap "" INT; exec "$@"', "-", PY, "-m", "conformance", "run",
         "taskqueue-client", "--only", "TQC-09", "--json", str(report)],
        capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(report.read_text())["requirements"][0]["verdict"] == "pass"


def test_relative_paths_of_a_command_are_made_absolute(tmp_path: Path) -> None:
    (tmp_path / "server.py").write_text("")
    (tmp_path / "ada").mkdir()
    (tmp_path / "ada" / "main.py").write_text("")
    (tmp_path / "fixtures").mkdir()
    words = absolute_paths(["python", "server.py", "--port", "{port}", "out", "ada/main.py",
                            "ada", "-m", "fixtures", "-c", "server.py"], tmp_path)
    assert words == ["python", str(tmp_path / "server.py"), "--port", "{port}", "out",
                     str(tmp_path / "ada" / "main.py"), "ada", "-m", "fixtures", "-c",
                     "server.py"]


def test_the_environment_loses_proxies_python_paths_and_the_graders_secrets(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRADER_TOKEN", "s3cret")
    with sandbox.using(sandbox.Sandbox(enabled=False)):
        env = target_env({"PATH": "/bin", "PYTHONPATH": "/ours", "HTTPS_PROXY": "x",
                          "LANG": "C"})
        assert env == {"PATH": "/bin", "LANG": "C", "PYTHONPATH": os.getcwd()}
        # The grader's own variables pass only when kept; what the suite adds always does.
        given = target_env({**os.environ, "BOT_TOKEN": "ours"})
        assert "GRADER_TOKEN" not in given and given["BOT_TOKEN"] == "ours"
    with sandbox.using(sandbox.Sandbox()):
        if not sandbox.Sandbox().why_not:
            assert target_env()["HOME"] == "/tmp"  # its private /tmp: the home is hidden


@pytest.mark.slow(40)
def test_a_class_on_fixed_ports_is_graded_each_by_its_own_code(tmp_path: Path) -> None:
    if own_network_refused():
        if os.environ.get("CI") == "true":
            pytest.fail(f"no network of its own for a run: {own_network_refused()}")
        pytest.skip(f"no network of its own for a run here: {own_network_refused()}")
    reference = ROOT / "reference"
    roster = tmp_path / "roster.csv"
    exits = f"{PY} -c \"import sys; sys.exit('boom')\""
    # Each run narrowed to what shows whose program answered: the address, what was sent.
    server, client = "--only CRED-01 CRED-02", "--only CC-01 CC-02 CC-04"
    lines = [
        # Three servers that all bind 8888 (one exits at once: it must not be judged on
        # another's answers), and three clients that all expect their server there.
        f"Ada,credentials,{PY} {reference / 'credentials.py'},{server}",
        f"Bob,credentials,{PY} {reference / 'credentials.py'},{server}",
        f"Cy,credentials,{exits},{server}",
        *(f"{name},crawl-client,{PY} {reference / 'crawl.py'},{client}"
          for name in ("Dee", "Eve", "Fay")),
    ]
    roster.write_text("student,spec,target,args\n" + "\n".join(
        line.replace(f",{exits},", f',"{exits.replace(chr(34), chr(34) * 2)}",')
        for line in lines) + "\n")
    done = subprocess.run([PY, "-m", "conformance", "batch", str(roster), "--out",
                           str(tmp_path / "out"), "--jobs", "6"], capture_output=True,
                          text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 1, done.stdout + done.stderr
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    passed = {s["student"]: s["passed"] for s in results["students"]}
    assert passed == {"Ada": True, "Bob": True, "Cy": False, "Dee": True, "Eve": True,
                      "Fay": True}, done.stdout
    cy = next(s for s in results["students"] if s["student"] == "Cy")
    assert cy["verdicts"]["CRED-01"] == "fail"
    assert all(s["report"]["isolation"].startswith("a network of its own")
               for s in results["students"])


def test_a_run_has_its_fixed_port_though_another_program_holds_it(tmp_path: Path) -> None:
    need_fixed_port(8888)
    holder = socket.socket()
    try:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", 8888))
        holder.listen()
    except OSError:  # another program holds it already: all the better
        holder.close()
    try:
        run = conformance("run", "credentials", "--only", "CRED-02", "--command",
                          f"{PY} {ROOT / 'reference' / 'credentials.py'}", tmp=tmp_path)
    finally:
        holder.close()
    assert run.code == 0, run.stdout + run.stderr
    assert run.report["isolation"].startswith("a network of its own")


def test_on_a_shared_network_a_listener_not_started_by_the_run_is_not_judged(
        tmp_path: Path) -> None:
    port = free_port()
    server = ROOT / "reference" / "credentials.py"
    # While the command runs (and never listens), another program holds the port: one the
    # test started, outside the run. (A server the command itself left behind is the run's
    # now: its sandbox's process namespace keeps it in the run's tree, and ends it with it.)
    # It starts a while after the run did (one there before is refused as a usage error), and
    # before the run gives up waiting for its own.
    other = subprocess.Popen(["sh", "-c", f"sleep 5; exec {PY} {server} --port {port} --quiet"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        run = conformance("run", "credentials", "--shared-network", "--only", "CRED-01",
                          "--startup-timeout", "30", "--base-url", f"http://127.0.0.1:{port}/",
                          "--command", f"{PY} -c \"import time; time.sleep(60)\"",
                          tmp=tmp_path)
    finally:
        other.kill()
        other.wait(5)
    assert run.code == 2, run.stdout + run.stderr
    assert "is not the server this run started" in run.stderr, run.stderr


def test_on_a_shared_network_runs_on_one_fixed_port_wait_for_each_other(
        tmp_path: Path) -> None:
    port = free_port()
    command = f"{PY} {ROOT / 'reference' / 'credentials.py'} --port {port}"
    argv = [PY, "-m", "conformance", "run", "credentials", "--shared-network", "--only",
            "CRED-02", "--base-url", f"http://127.0.0.1:{port}/", "--command", command]
    started = time.monotonic()
    first = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    second = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120)
    out, _ = first.communicate(timeout=120)
    assert first.returncode == 0, out
    assert second.returncode == 0, second.stdout + second.stderr
    assert time.monotonic() - started < 120


def test_a_run_by_url_says_its_target_is_outside_it(tmp_path: Path) -> None:
    run = conformance("run", "credentials", "--only", "CRED-01", "--base-url",
                      f"http://127.0.0.1:{free_port()}/", tmp=tmp_path)
    assert run.report["isolation"].startswith("none: the target runs outside this run")
    assert sys.platform  # the report says so whatever the platform


def test_a_module_command_finds_its_module_where_it_was_given(tmp_path: Path) -> None:
    # `python -m students.ada.main`, given in the roster's folder, runs in a folder of its own.
    package = tmp_path / "students" / "ada"
    package.mkdir(parents=True)
    (package / "main.py").write_text("import os; print(os.getcwd())\n")
    driver = ("import sys; from pathlib import Path; from conformance._target import "
              "ProgramTarget; t = ProgramTarget(argv=[sys.executable, '-m', 'students.ada.main'],"
              " port=0, label='ada', workdir=Path(sys.argv[1])); d = t.run(timeout=30); "
              "print(d.code, d.stdout.strip(), d.stderr.strip()[-300:])")
    workdir = tmp_path / "work"
    workdir.mkdir()
    done = subprocess.run([PY, "-c", driver, str(workdir)], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.stdout.split()[:2] == ["0", str(workdir)], done.stdout + done.stderr
