"""The userbot suite's parts that need no process: the lenient export reader (_export.py), the
scripted world's invariants (_world.py), and how our Telegram (conformance/_telegram) pages a
history and renders messages as Telethon objects."""

from __future__ import annotations

import base64
import datetime as dt
import importlib.util
import json
import sys
from functools import cache
from types import ModuleType
from typing import Any

import pytest

from conformance._telegram import SERVER
from conformance.specs.userbot import _world as w
from conformance.specs.userbot._export import (
    Unreadable,
    as_epoch,
    as_int,
    blocks,
    field,
    is_sender,
    messages_of,
    names_kind,
    text_of,
    values,
)

WORLD = w.world()
CLUB = w.chat(WORLD, w.CLUB)
WHEN = 1772355900  # 2026-03-01 09:05:00 UTC


@cache
def telegram() -> ModuleType:
    """The server's module, loaded from its path as the suite runs it (a standalone script)."""
    spec = importlib.util.spec_from_file_location("userbot_telegram_under_test", SERVER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def server_world() -> Any:
    """The server's World over the suite's world."""
    return telegram().World(WORLD)


def first(chat: dict[str, Any], wanted: Any) -> dict[str, Any]:
    """The chat's first message for which `wanted(message)` holds."""
    return next(m for m in chat["messages"] if wanted(m))


# --- messages_of ---------------------------------------------------------------------------


def test_messages_of_reads_a_plain_list() -> None:
    assert messages_of('[{"id": 1}, {"id": 2}]') == [{"id": 1}, {"id": 2}]


def test_messages_of_reads_the_messages_key() -> None:
    text = json.dumps({"chat": {"id": 5}, "count": 1, "messages": [{"id": 9}]})
    assert messages_of(text) == [{"id": 9}]


def test_messages_of_takes_the_longest_list_of_objects_without_a_messages_key() -> None:
    text = json.dumps({"tags": ["a", "b", "c"], "members": [{"id": 1}],
                       "history": [{"id": 1}, {"id": 2}]})
    assert [m["id"] for m in messages_of(text)] == [1, 2]


@pytest.mark.parametrize("text", ["not json", '{"chat": "x"}', '"a string"',
                                  '[{"id": 1}, 2]'])
def test_messages_of_refuses_what_holds_no_list_of_messages(text: str) -> None:
    with pytest.raises(Unreadable):
        messages_of(text)


def test_messages_of_reads_telethons_to_dict_dumped_with_default_str() -> None:
    m = first(CLUB, lambda m: m.get("reply_to") and m.get("edit_date"))
    message = server_world().message(w.CLUB, m)
    entry = messages_of(json.dumps([message.to_dict()], default=str))[0]
    assert as_int(field(entry, "id")[1]) == m["id"]
    assert as_epoch(field(entry, "date")[1]) == m["date"]
    assert text_of(field(entry, "text")[1]) == m["text"]
    assert as_int(field(entry, "reply")[1]) == m["reply_to"]
    sender = w.people(WORLD)[m["from"]]
    assert any(is_sender(v, sender) for v in values(entry, "sender"))
    assert as_epoch(field(entry, "edited")[1]) == m["edit_date"]


def test_messages_of_reads_a_to_dict_media_by_its_mime_type() -> None:
    m = first(CLUB, lambda m: (m.get("media") or {}).get("kind") == "audio")
    message = server_world().message(w.CLUB, m)
    entry = messages_of(json.dumps([message.to_dict()], default=str))[0]
    assert names_kind(field(entry, "media")[1], "audio")


# --- as_epoch ------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [
    "2026-03-01T09:05:00Z", "2026-03-01T09:05:00+00:00", "2026-03-01T12:05:00+03:00",
    "2026-03-01T09:05:00", "2026-03-01 09:05:00", "2026-03-01 09:05:00 UTC",
    WHEN, float(WHEN), str(WHEN), WHEN * 1000, "01.03.2026 09:05:00", "01.03.2026 09:05",
    "01/03/2026 09:05", {"unix": WHEN},
])
def test_as_epoch_reads_a_layout(value: Any) -> None:
    assert as_epoch(value) == WHEN


@pytest.mark.parametrize("value", [None, True, "yesterday", "", []])
def test_as_epoch_is_none_for_no_date(value: Any) -> None:
    assert as_epoch(value) is None


def test_as_epoch_reads_a_zoneless_time_as_utc_not_local(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    assert as_epoch("2026-03-01 09:05:00") == WHEN


# --- is_sender -----------------------------------------------------------------------------


@pytest.mark.parametrize("value", [
    7000002, "7000002", "user7000002", "@alice_a", "alice_a", "@Alice_A", "Alice Archer",
    "alice", {"_": "PeerUser", "user_id": 7000002},
    {"id": 7000002, "name": "Alice Archer", "username": "alice_a"}, ["Alice Archer"],
])
def test_is_sender_names_alice(value: Any) -> None:
    assert is_sender(value, w.ALICE)


@pytest.mark.parametrize("value", [
    7000003, "@bob", "Bob", {"_": "PeerUser", "user_id": 7000003}, None, True, "Alice Chen",
    "user7000004",
])
def test_is_sender_does_not_name_alice(value: Any) -> None:
    assert not is_sender(value, w.ALICE)


def test_is_sender_names_a_user_without_username_or_last_name() -> None:
    assert is_sender("Bob", w.BOB)
    assert is_sender({"id": 7000003}, w.BOB)
    assert not is_sender("@bob", w.BOB)  # Bob has no username


# --- names_kind ----------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "kind"), [
    ("image/jpeg", "photo"), ("audio/mpeg", "audio"), ("video/mp4", "video"),
    ("audio/ogg", "voice"), ("application/pdf", "document"), ("photo_5.jpg", "photo"),
    ("voice_12.ogg", "voice"), ("media/video_7.mp4", "video"), ("track.mp3", "audio"),
    ({"kind": "Document", "file": None}, "document"),
    ("audio", "voice"),  # a voice note may be called audio
])
def test_names_kind_finds_the_kind(value: Any, kind: str) -> None:
    assert names_kind(value, kind)


@pytest.mark.parametrize(("value", "kind"), [
    ("image/jpeg", "video"), ("application/pdf", "photo"), ("photo_5.jpg", "audio"),
    ("video/mp4", "photo"), (None, "photo"), ("voice", "audio"),
])
def test_names_kind_refuses_another_kind(value: Any, kind: str) -> None:
    assert not names_kind(value, kind)


# --- blocks --------------------------------------------------------------------------------


def test_blocks_find_marks_through_markdown_escapes() -> None:
    marks = {5: w.mark(5), 6: w.mark(6), 7: w.mark(7)}
    markdown = ("# Python Club\n\n"
                "**Alice** · 2026-03-01 09:05 UTC · #5\n"
                "Me\\! \\*bold\\* claims and \\_underscores\\_ stay as typed " + w.mark(5) + "\n\n"
                "**Bob** · 2026-03-01 09:10 UTC · #6\n"
                "> &lt;b&gt;not html&lt;/b&gt; \\[not\\]\\(a link\\) " + w.mark(6) + "\n")
    found, counts = blocks(markdown, marks)
    assert [b.mid for b in found] == [5, 6]
    assert counts == {5: 1, 6: 1, 7: 0}
    assert "Me! *bold* claims and _underscores_ stay as typed" in found[0].text
    assert "**Alice** · 2026-03-01 09:05 UTC · #5" in found[0].text
    assert found[1].text.startswith("\n\n**Bob**")  # from the end of the previous mark
    assert "<b>not html</b> [not](a link)" in found[1].text
    assert found[1].text.endswith(w.mark(6))


def test_blocks_follow_the_files_order_and_count_repeats() -> None:
    marks = {1: w.mark(1), 11: w.mark(11)}
    markdown = f"eleven {w.mark(11)}\none {w.mark(1)}\neleven again {w.mark(11)}\n"
    found, counts = blocks(markdown, marks)
    assert [b.mid for b in found] == [11, 1]  # mark(1) is not found inside mark(11)
    assert counts == {1: 1, 11: 2}


# --- the world -----------------------------------------------------------------------------


def test_the_club_has_260_entries_over_more_than_two_pages() -> None:
    msgs = CLUB["messages"]
    assert len(msgs) == 260 > 2 * telegram().PAGE_MAX
    assert sum(1 for m in msgs if m.get("service")) == 4


def test_the_club_has_11_media_of_5_kinds() -> None:
    media = [m["media"] for m in CLUB["messages"] if m.get("media")]
    assert len(media) == 11
    assert {x["kind"] for x in media} == {"photo", "audio", "video", "voice", "document"}
    assert any(not m["text"] for m in CLUB["messages"] if m.get("media"))  # uncaptioned


def test_ids_are_unique_and_rising_with_gaps_in_every_chat() -> None:
    for chat in WORLD["chats"]:
        ids = [m["id"] for m in chat["messages"]]
        assert ids == sorted(set(ids)), chat["title"]
    club = [m["id"] for m in CLUB["messages"]]
    assert club[-1] - club[0] + 1 > len(club)


def test_dates_rise_and_edits_come_after() -> None:
    for chat in WORLD["chats"]:
        dates = [m["date"] for m in chat["messages"]]
        assert dates == sorted(dates), chat["title"]
        for m in chat["messages"]:
            if m.get("edit_date"):
                assert m["edit_date"] > m["date"] and "(corrected)" in m["text"]


def test_replies_answer_an_earlier_message_of_the_same_chat() -> None:
    for chat in WORLD["chats"]:
        seen: set[int] = set()
        for m in chat["messages"]:
            if m.get("reply_to"):
                assert m["reply_to"] in seen, (chat["title"], m["id"])
            seen.add(m["id"])


def test_every_text_ends_with_its_mark() -> None:
    for chat in WORLD["chats"]:
        for m in chat["messages"]:
            if m.get("text"):
                assert m["text"].endswith(w.mark(m["id"])), (chat["title"], m["id"])
                assert m["text"].count("\u2039") == 1
            else:
                assert m.get("service") or m.get("media"), (chat["title"], m["id"])


def test_media_bytes_are_deterministic_sized_and_unique() -> None:
    assert w.media_bytes(42, "audio", 5000) == w.media_bytes(42, "audio", 5000)
    assert w.media_bytes(42, "audio", 5000).startswith(b"audio:42\n")
    media = [m["media"] for c in WORLD["chats"] for m in c["messages"] if m.get("media")]
    datas = [base64.b64decode(x["data"]) for x in media]
    assert all(len(d) == x["size"] for d, x in zip(datas, media, strict=True))
    assert all(d == w.media_bytes(x["id"], x["kind"], x["size"])
               for d, x in zip(datas, media, strict=True))
    assert len(set(datas)) == len(datas)
    assert len({x["id"] for x in media}) == len(media)


def test_the_targets_name_chats_of_the_world() -> None:
    assert w.chat(WORLD, w.TARGETS["club"].cid)["username"] == "pyclub"
    assert w.chat(WORLD, w.TARGETS["private"].cid)["user"] == w.ALICE["id"]
    assert w.chat(WORLD, w.TARGETS["group"].cid)["title"] == "Family"


def test_the_world_is_the_same_every_time() -> None:
    assert json.dumps(w.world()) == json.dumps(WORLD)


# --- the server's paging (Telegram's messages.getHistory) ----------------------------------


def page_ids(offset_id: int = 0, add_offset: int = 0, limit: int = 100, max_id: int = 0,
             min_id: int = 0, offset_date: dt.datetime | None = None) -> list[int]:
    """The ids of one page of the club's history as the server answers it."""
    page, count = server_world().page(w.CLUB, offset_id, offset_date, add_offset, limit,
                                      max_id, min_id)
    assert count == 260
    return [m["id"] for m in page]


NEWEST_FIRST = sorted((m["id"] for m in CLUB["messages"]), reverse=True)


def test_page_starts_at_the_newest() -> None:
    assert page_ids() == NEWEST_FIRST[:100]
    assert page_ids(limit=5) == NEWEST_FIRST[:5]


def test_page_goes_below_offset_id() -> None:
    offset = NEWEST_FIRST[99]
    assert page_ids(offset_id=offset) == NEWEST_FIRST[100:200]
    assert page_ids(offset_id=NEWEST_FIRST[200]) == NEWEST_FIRST[201:]


def test_page_below_a_missing_offset_id_starts_at_the_next_older() -> None:
    gap = next(i for i in range(1, NEWEST_FIRST[0]) if i not in set(NEWEST_FIRST))
    assert page_ids(offset_id=gap, limit=3) == [i for i in NEWEST_FIRST if i < gap][:3]


def test_page_is_at_most_100_and_limit_0_means_100() -> None:
    assert len(page_ids(limit=500)) == 100
    assert len(page_ids(limit=0)) == 100


def test_page_shifts_by_add_offset() -> None:
    assert page_ids(add_offset=10, limit=5) == NEWEST_FIRST[10:15]
    offset = NEWEST_FIRST[50]
    assert page_ids(offset_id=offset, add_offset=-5, limit=10) == NEWEST_FIRST[46:56]


def test_page_for_telethons_reverse_reading_starts_at_the_oldest() -> None:
    """Telethon's iter_messages(reverse=True): offset_id=1, then the last id it has plus one,
    each with add_offset=-limit: the `limit` messages from offset_id on, newest first."""
    oldest = list(reversed(NEWEST_FIRST))
    assert page_ids(offset_id=1, add_offset=-100) == list(reversed(oldest[:100]))
    assert page_ids(offset_id=oldest[99] + 1, add_offset=-100) == list(
        reversed(oldest[100:200]))
    assert page_ids(offset_id=oldest[199] + 1, add_offset=-100) == list(reversed(oldest[200:]))
    assert page_ids(offset_id=oldest[-1] + 1, add_offset=-100) == []


def test_page_shifted_newer_holds_offset_id_itself() -> None:
    """As Telegram does (hence Telethon's +1): the window above offset_id starts at it."""
    oldest = list(reversed(NEWEST_FIRST))
    assert page_ids(offset_id=oldest[99], add_offset=-100) == list(reversed(oldest[99:199]))


def test_page_drops_ids_outside_min_id_and_max_id() -> None:
    lo, hi = NEWEST_FIRST[30], NEWEST_FIRST[10]
    assert page_ids(min_id=lo, max_id=hi) == NEWEST_FIRST[11:30]
    assert page_ids(min_id=NEWEST_FIRST[3]) == NEWEST_FIRST[:3]


def test_page_goes_below_offset_date() -> None:
    m = CLUB["messages"][-40]
    older = [x["id"] for x in reversed(CLUB["messages"]) if x["date"] < m["date"]]
    assert page_ids(offset_date=dt.datetime.fromtimestamp(m["date"], dt.UTC),
                    limit=10) == older[:10]
    # The wire's empty date is 1970: it means "no offset", not "older than 1970".
    assert page_ids(offset_date=dt.datetime.fromtimestamp(0, dt.UTC)) == NEWEST_FIRST[:100]


def test_page_counts_the_kept_messages_only() -> None:
    def photos(m: dict[str, Any]) -> bool:
        return (m.get("media") or {}).get("kind") == "photo"
    page, count = server_world().page(w.CLUB, 0, None, 0, 100, 0, 0, photos)
    assert count == len(page) == sum(1 for m in CLUB["messages"] if photos(m)) > 0


# --- the server's messages as Telethon objects ---------------------------------------------


def test_private_messages_from_the_peer_carry_no_from_id() -> None:
    chat = w.chat(WORLD, w.PRIVATE_ALICE)
    hers = first(chat, lambda m: m["from"] == w.ALICE["id"])
    mine = first(chat, lambda m: m["from"] == w.ME["id"])
    world = server_world()
    assert world.message(w.PRIVATE_ALICE, hers).from_id is None
    assert world.message(w.PRIVATE_ALICE, hers).peer_id.user_id == w.ALICE["id"]
    assert world.message(w.PRIVATE_ALICE, mine).out is True


def test_service_messages_are_message_service_with_their_action() -> None:
    world = server_world()
    actions = [type(world.message(w.CLUB, m).action).__name__
               for m in CLUB["messages"] if m.get("service")]
    assert actions == ["MessageActionChannelCreate", "MessageActionChatAddUser",
                       "MessageActionPinMessage", "MessageActionChatAddUser"]


def test_method_names_are_tl_names() -> None:
    from telethon.tl import functions
    method = telegram()._method
    assert method(functions.messages.GetHistoryRequest(
        peer=None, offset_id=0, offset_date=None, add_offset=0, limit=1, max_id=0, min_id=0,
        hash=0)) == "messages.getHistory"
    assert method(functions.PingRequest(ping_id=1)) == "ping"
