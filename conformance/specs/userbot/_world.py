"""The scripted Telegram the userbot is judged in: one account, its contacts and chats, every
message; written to `world.json` for the server (conformance/_telegram) and read back by the checks.

Rules: the same world every run (no randomness, no clock); standard library only. The chat
the program exports has more than two pages of history (Telegram pages by 100), ids with
gaps, replies, edits, media of every kind and service messages; the other chats exist so
that reading them can be seen.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Any

START = 1772355600  # 2026-03-01 09:00:00 UTC
ME: dict[str, Any] = {"id": 7000001, "first_name": "Grace", "last_name": "Grader",
                      "username": "grader", "phone": "15550000001", "hash": 91001}
ALICE: dict[str, Any] = {"id": 7000002, "first_name": "Alice", "last_name": "Archer",
                         "username": "alice_a", "contact": True, "hash": 91002}
BOB: dict[str, Any] = {"id": 7000003, "first_name": "Bob", "contact": True, "hash": 91003}
CAROL: dict[str, Any] = {"id": 7000004, "first_name": "Carol", "last_name": "Chen",
                         "username": "carol_c", "contact": True, "hash": 91004}
DAVE: dict[str, Any] = {"id": 7000005, "first_name": "Dave", "username": "dave_d",
                        "hash": 91005}
USERS = [ALICE, BOB, CAROL, DAVE]
MIME = {"photo": "image/jpeg", "audio": "audio/mpeg", "voice": "audio/ogg", "video": "video/mp4",
        "document": "application/pdf", "round": "video/mp4"}
SUFFIX = {"photo": "jpg", "audio": "mp3", "voice": "ogg", "video": "mp4", "document": "pdf",
          "round": "mp4"}

# The chats: (id, kind, title, username, messages, members).
CLUB = 1500000001
FAMILY = 4000001
NEWS = 1500000002
PRIVATE_ALICE = 9000002  # our id for the private chat; Telegram's peer is the user
PRIVATE_DAVE = 9000005


def media_bytes(media_id: int, kind: str, size: int) -> bytes:
    """The file's content: a header naming it, then bytes from its id (unique per file)."""
    head = f"{kind}:{media_id}\n".encode()
    out = bytearray(head)
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{media_id}/{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


def mark(mid: int) -> str:
    """The end of every text of the world: its message id in guillemets, which no Markdown
    escapes and no heading writes, so an export's text is found by it."""
    return f"\u2039{mid}\u203a"


def _text(i: int) -> str:
    """Message texts that a careless export gets wrong: markup, newlines, quotes, non-ASCII."""
    samples = [
        "Hi all, who is coming on Friday?",
        "Me! *bold* claims and _underscores_ stay as typed",
        "Line one\nline two\n\nline four",
        "Quotes \"double\" and 'single', a backslash \\ and a | pipe",
        "Привет, клуб! Ünïcödé и эмодзи 🐍🎉",
        "Code: `print(\"hi\")` and ```block```",
        "# not a heading, [not](a link) <b>not html</b>",
        "asyncio.gather(*tasks) is your friend",
    ]
    return samples[i % len(samples)]


def _club() -> list[dict[str, Any]]:
    """The exported chat: 260 entries over ids 1..~300, gaps where messages were deleted."""
    members = [ME["id"], ALICE["id"], BOB["id"], CAROL["id"]]
    msgs: list[dict[str, Any]] = []
    mid, t = 0, START
    kinds = ["photo", "audio", "video", "voice", "document"]
    for i in range(260):
        mid += 1 if i % 11 else 3  # deleted messages leave gaps
        t += 300 + (i * 37) % 400
        m: dict[str, Any] = {"id": mid, "date": t, "from": members[(i * 7 + i // 5) % 4]}
        if i == 0:
            m["service"] = {"kind": "create", "title": "Python Club", "users": members[1:]}
            m["from"] = ME["id"]
        elif i in (57, 190):
            m["service"] = {"kind": "join", "users": [CAROL["id"] if i == 57 else BOB["id"]]}
        elif i == 140:
            m["service"] = {"kind": "pin"}
            m["reply_to"] = msgs[120]["id"]
        else:
            m["text"] = _text(i)
            if i % 9 == 4:
                m["reply_to"] = msgs[i - 3]["id"] if msgs[i - 3].get("text") else msgs[i - 2]["id"]
            if i % 13 == 6:
                m["edit_date"] = t + 120
                m["text"] = m["text"] + " (corrected)"  # what it reads after the edit
            m["text"] += f" {mark(mid)}"
            if i % 23 == 10:
                kind = kinds[(i // 23) % len(kinds)]
                m["media"] = _media(CLUB, mid, kind)
                if i % 2:
                    m["text"] = ""  # media without a caption: no mark, found by its block
        msgs.append(m)
    return msgs


def _media(cid: int, mid: int, kind: str) -> dict[str, Any]:
    media_id = cid * 1000 + mid
    size = 3000 + (mid * 97) % 5000
    out = {"id": media_id, "kind": kind, "mime": MIME[kind], "size": size,
           "name": f"{kind}_{mid}.{SUFFIX[kind]}",
           "data": base64.b64encode(media_bytes(media_id, kind, size)).decode()}
    if kind in ("audio", "voice", "video", "round"):
        out["duration"] = 5 + mid % 50
    if kind == "audio":
        out["title"], out["performer"] = f"Track {mid}", "The Awaitables"
    return out


def _simple(cid: int, n: int, people: list[int], first: int, start: int,
            word: str) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        sender = people[i % len(people)] if people else None
        out.append({"id": first + i, "date": start + 600 * i, "from": sender,
                    "text": f"{word} message {i} {mark(first + i)}"})
    return out


def world() -> dict[str, Any]:
    """The whole world, as the server reads it."""
    chats = [
        {"id": CLUB, "kind": "megagroup", "title": "Python Club", "username": "pyclub",
         "hash": 81001, "date": START,
         "members": [ME["id"], ALICE["id"], BOB["id"], CAROL["id"]], "messages": _club()},
        {"id": PRIVATE_ALICE, "kind": "user", "user": ALICE["id"], "title": "Alice Archer",
         "date": START, "messages": _private_alice()},
        {"id": FAMILY, "kind": "group", "title": "Family", "date": START,
         "members": [ME["id"], BOB["id"], DAVE["id"]],
         "messages": _simple(FAMILY, 15, [BOB["id"], ME["id"], DAVE["id"]], 5001, START + 50,
                             "family")},
        {"id": NEWS, "kind": "channel", "title": "Secret News", "username": "secret_news",
         "hash": 81002, "date": START,
         "messages": _simple(NEWS, 40, [], 1, START + 70, "secret")},
        {"id": PRIVATE_DAVE, "kind": "user", "user": DAVE["id"], "title": "Dave",
         "date": START, "messages": _simple(PRIVATE_DAVE, 6, [DAVE["id"], ME["id"]], 6001,
                                            START + 90, "dave")},
    ]
    return {"self": ME, "users": USERS, "chats": chats}


def _private_alice() -> list[dict[str, Any]]:
    msgs = _simple(PRIVATE_ALICE, 130, [ALICE["id"], ME["id"]], 3001, START + 30, "hello")
    msgs[3]["reply_to"] = msgs[1]["id"]
    msgs[7]["media"] = _media(PRIVATE_ALICE, msgs[7]["id"], "photo")
    msgs[8]["edit_date"] = msgs[8]["date"] + 60
    msgs[8]["text"] = msgs[8]["text"].replace(" \u2039", " (corrected) \u2039")
    return msgs


@dataclass(frozen=True)
class Target:
    """A chat a run asks the program to export, and how it is named on the command line."""

    cid: int
    name: str
    kind: str


TARGETS = {"club": Target(CLUB, "@pyclub", "megagroup"),
           "private": Target(PRIVATE_ALICE, "@alice_a", "user"),
           "group": Target(FAMILY, "Family", "group")}


def chat(data: dict[str, Any], cid: int) -> dict[str, Any]:
    """One chat of the world by our id."""
    return next(c for c in data["chats"] if c["id"] == cid)


def label(chat: dict[str, Any]) -> str:
    """How our Telegram's call log names a chat's peer: `channel:ID`, `chat:ID` (a basic
    group) or `user:ID` (a private chat: the user's id)."""
    if chat["kind"] == "user":
        return f"user:{chat['user']}"
    if chat["kind"] == "group":
        return f"chat:{chat['id']}"
    return f"channel:{chat['id']}"


def people(data: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """Every user of the world (the account included) by id."""
    return {u["id"]: u for u in [data["self"], *data["users"]]}
