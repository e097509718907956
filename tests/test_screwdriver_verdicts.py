"""What the screwdriver's twins cannot show: --server-command and --server-url together are a
usage error, a client judged through a student's server already running at --server-url, and
how the suite reads a student's page (which entry is a file's link)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from conformance._target import free_port, wait_until_listening
from conformance.specs.audio._page import read_page
from conformance.specs.screwdriver._own_server import StudentServer
from tests.conftest import PY, ROOT, conformance

SONGS = ROOT / "fixtures" / "screwdriver"


def test_server_command_and_url_together_are_a_usage_error(tmp_path: Path) -> None:
    run = conformance("run", "screwdriver", "--command", "python screwdriver.py",
                      "--server-command", "python app.py", "--server-url",
                      "http://127.0.0.1:8888/", tmp=tmp_path, json_report=False)
    assert run.code == 2, run.stdout + run.stderr
    assert "--server-command or --server-url, not both" in run.stderr


def test_a_file_is_found_by_the_last_segment_of_its_link() -> None:
    page = read_page('<ul><li><a href="/media/sd1-%D0%BF.wav">sd1-п.wav</a></li>'
                     '<li><a href="/media/sd1-tone.wav.bak">other</a></li></ul>'
                     '<audio src="play?f=x"></audio>', "http://127.0.0.1:1/")
    assert StudentServer.link(page, "sd1-п.wav") == "http://127.0.0.1:1/media/sd1-%D0%BF.wav"
    assert StudentServer.link(page, "sd1-tone.wav") == ""  # a longer name is another file
    assert StudentServer.lists(page, "sd1-п.wav")
    assert not StudentServer.lists(page, "sd1-tone.wav")


def test_a_client_is_judged_through_a_server_running_at_its_url(tmp_path: Path) -> None:
    port = free_port()
    server = subprocess.Popen([PY, str(SONGS / "songs_app.py"), "--port", str(port), "--folder",
                               str(tmp_path / "songs")], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        assert wait_until_listening("127.0.0.1", port, 15), "the songs server did not start"
        run = conformance("run", "screwdriver", "--command",
                          f"{PY} {SONGS / 'songs_screwdriver.py'} --port {{port}}",
                          "--server-url", f"http://127.0.0.1:{port}/", tmp=tmp_path)
    finally:
        server.terminate()
        server.wait(10)
    assert run.code == 0, run.stdout + run.stderr
    assert run.report is not None
    verdicts = {r["id"]: r["verdict"] for r in run.report["requirements"]}
    assert verdicts["SCR-03"] == verdicts["SCR-04"] == "pass"
    assert f"http://127.0.0.1:{port}/" in str(run.report)  # the report names the server
