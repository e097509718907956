"""The reference userbot (reference/userbot.py) against the suite's own Telegram
(conformance/_telegram), run by the suite's own runner (_runs.py): the JSON and Markdown
exports' fields, media files, --no-media, an unknown chat, a FLOOD_WAIT, a missing login; and
the server itself, driven by a Telethon client in this process: an unimplemented method is
refused by name, calls recorded.
(The reference's conformance to the whole spec is the suite's business.)"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conformance._target import ProgramTarget, stop_group
from conformance._telegram import API_HASH, API_ID, SERVER
from conformance.specs.userbot._runs import Run, run_against_telegram
from conformance.specs.userbot._world import (
    ALICE,
    CLUB,
    PRIVATE_ALICE,
    TARGETS,
    chat,
    mark,
    media_bytes,
    world,
)
from tests.conftest import ROOT

SCRIPT = ROOT / "reference" / "userbot.py"
LIMIT = 60.0
WORLD = world()
CLUB_CHAT = chat(WORLD, CLUB)


def program(tmp: Path, *extra: str) -> ProgramTarget:
    """The reference as the suite runs it, in a folder of the test's."""
    argv = [sys.executable, str(SCRIPT), "{chat}", "{output}", *extra]
    return ProgramTarget(argv=argv, port=0, label="reference userbot", workdir=tmp)


def club_message(wanted: Any) -> dict[str, Any]:
    """The club's first message for which `wanted(message)` holds."""
    return next(m for m in CLUB_CHAT["messages"] if wanted(m))


def exported(run: Run) -> list[dict[str, Any]]:
    """The JSON export's messages (the run must have ended well)."""
    assert run.code == 0, run.actual()
    assert run.export is not None
    data = json.loads(run.export)
    assert data["count"] == len(data["messages"])
    messages: list[dict[str, Any]] = data["messages"]
    return messages


@pytest.fixture(scope="module")
def club_json(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """The club exported to JSON, media downloaded."""
    tmp = tmp_path_factory.mktemp("club-json")
    return run_against_telegram(program(tmp), "club", TARGETS["club"].name, "json", LIMIT)


@pytest.fixture(scope="module")
def club_md_flood(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """The club exported to Markdown, media downloaded, FLOOD_WAIT_2 on its 2nd history
    request."""
    tmp = tmp_path_factory.mktemp("club-md")
    return run_against_telegram(program(tmp), "flood", TARGETS["club"].name, "md", LIMIT,
                                flood_at=2, fault_peer=f"channel:{CLUB}")


# --- JSON ----------------------------------------------------------------------------------


def test_json_holds_every_message_oldest_first(club_json: Run) -> None:
    ids = [m["id"] for m in exported(club_json)]
    assert ids == [m["id"] for m in CLUB_CHAT["messages"]]


def test_json_gives_an_edited_reply_its_fields(club_json: Run) -> None:
    m = club_message(lambda m: m.get("reply_to") and m.get("edit_date"))
    entry = next(e for e in exported(club_json) if e["id"] == m["id"])
    assert entry["text"] == m["text"]
    assert entry["reply_to"] == m["reply_to"]
    assert entry["date"] == _iso(m["date"]) and entry["edit_date"] == _iso(m["edit_date"])
    assert entry["sender"]["id"] == m["from"]
    assert entry["media"] is None and entry["service"] is None


def test_json_gives_a_media_message_its_file(club_json: Run) -> None:
    m = club_message(lambda m: m.get("media") and not m["text"])
    media = m["media"]
    entry = next(e for e in exported(club_json) if e["id"] == m["id"])
    assert entry["text"] == ""
    assert {k: entry["media"][k] for k in ("kind", "mime", "size")} == {
        "kind": media["kind"], "mime": media["mime"], "size": media["size"]}
    saved = Path(entry["media"]["file"])
    assert saved.name == f"{m['id']}_{media['name']}"
    assert club_json.files[saved.as_posix()] == media_bytes(media["id"], media["kind"],
                                                            media["size"])


def test_json_marks_service_messages(club_json: Run) -> None:
    services = {e["id"]: e["service"] for e in exported(club_json) if e["service"]}
    assert services.keys() == {m["id"] for m in CLUB_CHAT["messages"] if m.get("service")}
    assert "pinned a message" in services.values()


def test_json_run_only_reads_the_named_chat(club_json: Run) -> None:
    methods = club_json.methods()
    history = [c for c in methods if c["method"] == "messages.getHistory"]
    assert all(c["peer"] == f"channel:{CLUB}" for c in history)
    assert sum(len(c["ids"]) for c in history) == len(CLUB_CHAT["messages"])  # each page once
    assert {c["peer"] for c in methods if c["method"] == "upload.getFile"} == {
        f"channel:{CLUB}"}
    assert not [c for c in methods if "send" in c["method"] or "read" in c["method"]]


def _iso(epoch: int) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat()


# --- Markdown and FLOOD_WAIT ---------------------------------------------------------------


def test_markdown_escapes_what_markdown_would_read(club_md_flood: Run) -> None:
    assert club_md_flood.code == 0, club_md_flood.actual()
    text = (club_md_flood.export or b"").decode()
    m = club_message(lambda m: m.get("text", "").startswith("Me! *bold*"))
    assert f"Me\\! \\*bold\\* claims and \\_underscores\\_ stay as typed {mark(m['id'])}" in text
    assert "\\# not a heading, \\[not\\]\\(a link\\) \\<b\\>not html\\</b\\>" in text
    assert text.count("\u2039") == sum(1 for x in CLUB_CHAT["messages"] if x.get("text"))


def test_markdown_links_each_media_file_it_downloaded(club_md_flood: Run) -> None:
    text = (club_md_flood.export or b"").decode()
    for m in (x for x in CLUB_CHAT["messages"] if x.get("media")):
        media = m["media"]
        # A photo has no file name on Telegram: the reference names it by its kind.
        found = re.search(rf"\[{media['kind']}\]\((export_media/{m['id']}_[^)]+)\)", text)
        assert found, (m["id"], media["kind"])
        assert club_md_flood.files[found[1]] == media_bytes(media["id"], media["kind"],
                                                            media["size"])


def test_flood_wait_is_said_on_stderr_and_waited_out(club_md_flood: Run) -> None:
    assert "FLOOD_WAIT" in club_md_flood.stderr and "2 s" in club_md_flood.stderr
    history = [c for c in club_md_flood.methods() if c["method"] == "messages.getHistory"]
    flood = next(i for i, c in enumerate(history) if c["answer"].startswith("FLOOD_WAIT"))
    assert history[flood + 1]["t"] - history[flood]["t"] >= 2.0


# --- --no-media, an unknown chat, no login -------------------------------------------------


def test_no_media_writes_the_kind_and_downloads_nothing(tmp_path: Path) -> None:
    run = run_against_telegram(program(tmp_path, "--no-media"), "private",
                               TARGETS["private"].name, "json", LIMIT)
    messages = exported(run)
    assert len(messages) == len(chat(WORLD, PRIVATE_ALICE)["messages"])
    photo = next(e for e in messages if e["media"])
    assert photo["media"]["kind"] == "photo" and photo["media"]["file"] is None
    assert list(run.files) == [run.output]
    assert not [c for c in run.methods() if c["method"] == "upload.getFile"]
    assert {e["sender"]["username"] for e in messages} == {ALICE["username"], "grader"}


def test_unknown_chat_is_exit_1_naming_it_without_traceback(tmp_path: Path) -> None:
    run = run_against_telegram(program(tmp_path), "unknown", "@no_such_chat_here", "json",
                               LIMIT)
    assert run.code == 1 and not run.traceback
    assert "@no_such_chat_here" in run.stderr
    assert run.export is None and not list(tmp_path.rglob("*.part"))


def test_missing_api_id_is_a_usage_error(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TG_")}
    env |= {"TG_API_HASH": API_HASH, "TG_SESSION": "1abc"}
    done = subprocess.run([sys.executable, str(SCRIPT), "@pyclub", "out.json"], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=LIMIT)
    assert done.returncode == 2
    assert "TG_API_ID" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out.json").exists()


# --- the server ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, Any], Path]]:
    """Our Telegram started as the suite starts it: (its ready file, its calls log)."""
    tmp = tmp_path_factory.mktemp("telegram")
    (tmp / "world.json").write_text(json.dumps(WORLD), encoding="utf-8")
    ready, log = tmp / "ready.json", tmp / "calls.jsonl"
    with (tmp / "server.err").open("wb") as err:
        proc = subprocess.Popen([sys.executable, str(SERVER), str(tmp / "world.json"),
                                 "--log", str(log), "--ready", str(ready)],
                                stdout=err, stderr=err, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ready.exists(), (tmp / "server.err").read_text()
        yield json.loads(ready.read_text()), log
    finally:
        stop_group(proc)


async def _talk(session: str) -> dict[str, Any]:
    from telethon import TelegramClient, errors
    from telethon.sessions import StringSession
    from telethon.tl import functions, types

    client = TelegramClient(StringSession(session), int(API_ID), API_HASH, timeout=10,
                            connection_retries=1, receive_updates=False)
    out: dict[str, Any] = {}
    async with client:
        me = await client.get_me()
        out["me"] = (me.id, me.username)
        try:
            await client(functions.account.GetAuthorizationsRequest())
        except errors.RPCError as e:
            out["unimplemented"] = (e.code, e.message)
        club = types.InputPeerChannel(channel_id=CLUB, access_hash=CLUB_CHAT["hash"])
        try:
            await client(functions.messages.GetPeerSettingsRequest(peer=club))
        except errors.RPCError as e:
            out["on_peer"] = e.message
        await client.send_message(types.InputPeerUser(user_id=ALICE["id"],
                                                      access_hash=ALICE["hash"]), "hi there")
    return out


def test_server_refuses_an_unimplemented_method_by_name_and_records_calls(
        server: tuple[dict[str, Any], Path]) -> None:
    ready, log = server
    got = asyncio.run(asyncio.wait_for(_talk(ready["session"]), 60))
    assert got["me"] == (7000001, "grader")
    assert got["unimplemented"] == (400, "METHOD_NOT_IMPLEMENTED_ACCOUNT_GETAUTHORIZATIONS")
    assert got["on_peer"] == "METHOD_NOT_IMPLEMENTED_MESSAGES_GETPEERSETTINGS"
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    by_method = {c["method"]: c for c in calls if "method" in c}
    assert by_method["initConnection"]["api_id"] == int(API_ID)
    assert by_method["account.getAuthorizations"]["answer"].startswith("METHOD_NOT_IMPLEMENTED")
    assert by_method["messages.getPeerSettings"]["peer"] == f"channel:{CLUB}"
    sent = by_method["messages.sendMessage"]
    assert (sent["peer"], sent["text"], sent["answer"]) == (f"user:{ALICE['id']}", "hi there",
                                                            "ok")
    assert [c["event"] for c in calls if "event" in c][:1] == ["connect"]


def test_serve_prints_the_variables_of_a_telegram_that_answers(tmp_path: Path) -> None:
    # The reproducers' last line: the same Telegram by hand, its variables printed to export.
    serve = subprocess.Popen([sys.executable, "-m", "conformance.specs.userbot._serve",
                              "--flood-at", "2"], cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        assert serve.stdout is not None
        lines = [serve.stdout.readline() for _ in range(6)]
        env = dict(re.findall(r"^export (\w+)=(\S+)$", "".join(lines), re.M))
        assert set(env) == {"TG_API_ID", "TG_API_HASH", "TG_SESSION", "TG_SESSION_FILE", "TZ"}
        done = subprocess.run([sys.executable, str(SCRIPT), "@alice_a", "out.json",
                               "--no-media"], cwd=tmp_path, capture_output=True, text=True,
                              timeout=LIMIT, env={**os.environ, **env})
        assert done.returncode == 0, done.stderr
        assert len(json.loads((tmp_path / "out.json").read_text())["messages"]) == 130
    finally:
        stop_group(serve)
