"""Tests of program descriptions (`transport: program` in conformance/_protocol.py and its
schema) as the taskqueue-client spec uses them: loading and its errors, filling a command line,
reading what a client printed; and the usage errors of taskqueue-client's --protocol,
--server-protocol, --server-command and --server-url. The verdicts of clients run through
descriptions and through a student's own server are tests/test_twins.py's (-k taskqueue-client)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from conformance._cli import main
from conformance._protocol import (
    ProtocolError,
    default_path,
    fill_argv,
    first_word,
    load,
    read_printed,
)
from conformance.specs.taskqueue_client import OPERATIONS
from conformance.specs.taskqueue_client._own_queue import number

STATUSES = ("queued", "running", "done", "failed")
STUDENT = Path(__file__).resolve().parents[1] / "fixtures" / "taskqueue_client"


def write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "client.protocol.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def ours() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(
        default_path("taskqueue-client").read_text(encoding="utf-8"))
    return data


def flags() -> dict[str, Any]:
    """A client of flags, types by name, Russian words and labelled answers."""
    return {
        "spec": "taskqueue-client", "transport": "program",
        "arguments": {"type": {"1": "reverse", "2": "swap", "3": "repeat"}},
        "words": {"status": {"queued": ["в очереди"], "running": ["выполняется"],
                             "done": ["готово"]}},
        "operations": {
            "task": {"argv": ["-c", "{type}", "{data}"],
                     "answer": {"id": {"regex": r"id: (\S+)"}}},
            "status": {"argv": ["-s", "{id}"],
                       "answer": {"status": {"regex": "Статус: (.+)"}}},
            "result": {"argv": ["--result={id}"]},
            "wait": {"argv": ["-b", "{type}", "{data}"],
                     "answer": {"id": {"pointer": "/id"}, "result": {"pointer": "/result"}}},
        },
    }


# Loading --------------------------------------------------------------------------------------

def test_the_default_is_our_subcommands() -> None:
    protocol = load(default_path("taskqueue-client"), spec="taskqueue-client",
                    operations=OPERATIONS)
    assert protocol.transport == "program"
    assert protocol.is_default
    assert fill_argv(protocol, "task", type=2, data="hello world") == ["task", "2",
                                                                     "hello world"]
    assert fill_argv(protocol, "status", id="7") == ["status", "7"]
    assert fill_argv(protocol, "wait", type=1, data="пример") == ["wait", "1", "пример"]


def test_the_students_description_loads() -> None:
    protocol = load(STUDENT / "student_flags_ru.protocol.yaml", spec="taskqueue-client",
                    operations=OPERATIONS)
    assert fill_argv(protocol, "result", id="ab12") == ["-r", "ab12"]


@pytest.mark.parametrize(("change", "says"), [
    (lambda d: d["operations"]["task"].pop("argv"), "'argv' is a required property"),
    (lambda d: d["operations"]["task"].update(argv=[]), "operations/task/argv"),
    (lambda d: d["operations"]["status"].update(method="GET"), "which only http or tcp has"),
    (lambda d: d["operations"]["status"].update(line="S {id}"), "which only http or tcp has"),
    (lambda d: d["operations"]["status"].update(answer={"status": {"regex": "("}}),
     "at status.answer.status: not a regular expression"),
    (lambda d: d["operations"].pop("wait"), "needs the operation 'wait'"),
    (lambda d: d.update(spec="taskqueue"), "describes the spec 'taskqueue'"),
    (lambda d: d["operations"]["task"].update(argv="task {type} {data}"), "is not of type"),
])
def test_a_bad_program_description_names_the_file_and_place(tmp_path: Path, change: Any,
                                                            says: str) -> None:
    data = ours()
    change(data)
    with pytest.raises(ProtocolError) as info:
        load(write(tmp_path, data), spec="taskqueue-client", operations=OPERATIONS)
    assert says in str(info.value)
    assert str(tmp_path) in str(info.value)


def test_a_server_description_still_needs_its_answers(tmp_path: Path) -> None:
    data: dict[str, Any] = yaml.safe_load(default_path("taskqueue").read_text(encoding="utf-8"))
    data["operations"]["status"].pop("answer")
    with pytest.raises(ProtocolError, match="'answer' is a required property"):
        load(write(tmp_path, data))
    data["operations"]["status"]["answer"] = {"status": {"pointer": "/status"}}
    data["operations"]["status"]["argv"] = ["status"]
    assert load(write(tmp_path, data)).transport == "http"  # argv means nothing over http


# Filling a command line, reading what was printed --------------------------------------------

def test_argv_words_keep_spaces_quotes_and_unicode(tmp_path: Path) -> None:
    protocol = load(write(tmp_path, flags()))
    data = 'Пример: «кот» & ёж, 100% "ok" 🙂 $HOME `x` \\n'
    assert fill_argv(protocol, "task", type=1, data=data) == ["-c", "reverse", data]
    assert fill_argv(protocol, "task", type=4, data="") == ["-c", "4", ""]  # unmapped: as is
    assert fill_argv(protocol, "result", id="a b") == ["--result=a b"]


def test_locators_read_stdout_and_map_words(tmp_path: Path) -> None:
    protocol = load(write(tmp_path, flags()))
    assert read_printed(protocol, "task", "Задача добавлена, id: ab12cd34\n") == {"id": "ab12cd34"}
    assert read_printed(protocol, "task", "no id here") == {}
    assert read_printed(protocol, "status", "Статус: выполняется\n") == {
        "status": "running", "status_shown": "выполняется"}
    assert read_printed(protocol, "result", "anything") == {}  # no locator: nothing read
    printed = json.dumps({"id": 12, "result": "ремирп"}, ensure_ascii=False)
    assert read_printed(protocol, "wait", printed) == {"id": "12", "result": "ремирп"}


def test_the_first_status_word_in_the_clients_words(tmp_path: Path) -> None:
    protocol = load(write(tmp_path, flags()))
    assert first_word(protocol, "status", "Статус задачи 1: ВЫПОЛНЯЕТСЯ, не готово",
                      STATUSES) == "running"
    assert first_word(protocol, "status", "в очереди", STATUSES) == "queued"
    assert first_word(protocol, "status", "неготово", STATUSES) is None  # whole words only
    assert first_word(protocol, "status", "failed", STATUSES) == "failed"  # stands for itself
    default = load(default_path("taskqueue-client"))
    assert first_word(default, "status", "Status: Running (not done)", STATUSES) == "running"
    assert first_word(default, "status", "undone", STATUSES) is None


def test_numeric_ids_count() -> None:
    assert number("41") == 41
    assert number("ab12") is None
    assert number(None) is None


# The command line -----------------------------------------------------------------------------

def usage(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run `conformance run taskqueue-client ARGS`: it must be a usage error (exit 2, from
    argparse or from the options' own checks); its message."""
    try:
        code = main(["run", "taskqueue-client", "--command", "python client.py", *args])
    except SystemExit as exc:
        code = exc.code
    assert code == 2
    return " ".join(capsys.readouterr().err.split())  # the message wraps


def test_protocol_command_prints_the_client_default(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["protocol", "taskqueue-client"]) == 0
    out = capsys.readouterr().out
    assert out == default_path("taskqueue-client").read_text(encoding="utf-8")
    assert "--protocol" in out and "--server-protocol" in out


def test_bad_protocol_files_are_usage_errors(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    data = ours()
    data["operations"]["task"].pop("argv")
    assert "'argv' is a required property" in usage(["--protocol", str(write(tmp_path, data))],
                                                    capsys)
    server = str(default_path("taskqueue"))
    assert "describes the spec 'taskqueue', not 'taskqueue-client'" in usage(
        ["--protocol", server], capsys)
    assert "cannot be read" in usage(["--protocol", str(tmp_path / "none.yaml")], capsys)


def test_server_options_are_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "--server-command or --server-url, not both" in usage(
        ["--server-command", "python server.py --port {port}",
         "--server-url", "http://127.0.0.1:8888/"], capsys)
    client = str(default_path("taskqueue-client"))
    assert "describes the spec 'taskqueue-client', not 'taskqueue'" in usage(
        ["--server-command", "python server.py", "--server-protocol", client], capsys)
    assert "give it with --server-command or --server-url" in usage(
        ["--server-protocol", str(default_path("taskqueue"))], capsys)
