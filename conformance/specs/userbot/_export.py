"""Reading a student's export leniently: JSON by the usual names of a message's fields, Markdown
by where each message's text stands; and how a value answers for a date, a sender or a kind.

Rules:
- JSON: a list of messages, or an object whose `messages` (else its longest list of objects)
  is. A field is the first of its names (KEYS, compared without case or `_`) that the message
  has; Telethon's `to_dict()` nesting (`{"_": "PeerUser", "user_id": 7}`) is read through.
- A date is unix seconds (milliseconds above 1e12), ISO 8601 (no zone: UTC), or a few common
  day-first layouts. A sender answers for a user when any of its values is the user's id
  (`user7000002` too), @username, username, full name or first name.
- A media kind is found by its words anywhere in the media's value (a mime type or a file
  name counts); a voice note may be called audio, a document any kind of file.
- Markdown: every text of the world ends with a mark (`_world.mark`); a message's block runs
  from the end of the previous message's mark to the end of its own. Backslash escapes and
  HTML entities are undone and a quote's `> ` ignored before anything is looked for.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

KEYS = {
    "id": ("id", "messageid", "msgid", "mid", "messagenumber"),
    "date": ("date", "datetime", "timestamp", "time", "sentat", "sent", "createdat", "created",
             "dateunixtime", "unixtime", "postedat"),
    "sender": ("sender", "from", "fromid", "senderid", "author", "user", "fromuser",
               "sendername", "fromname", "authorname", "username", "name", "who"),
    "text": ("text", "message", "content", "body", "caption", "msg", "messagetext"),
    "reply": ("replyto", "replytomsgid", "replytomessageid", "replytoid", "inreplyto",
              "reply", "replyid", "replytomessage"),
    "media": ("media", "mediatype", "mediakind", "kind", "attachment", "attachments", "file",
              "mediafile", "photo", "document", "type", "mediapath", "filepath", "path",
              "video", "audio", "voice", "voicemessage", "filename", "mimetype"),
    "edited": ("editdate", "edited", "editedat", "editdateunixtime", "isedited", "edittime",
               "lastedited"),
    "service": ("service", "action", "servicemessage", "event", "isservice", "type",
                "actiontype"),
}
KIND_WORDS = {
    "photo": ("photo", "image", "picture", "jpg", "jpeg", "png"),
    "video": ("video", "mp4", "round", "gif"),
    "audio": ("audio", "music", "mp3", "song", "track"),
    "voice": ("voice", "ogg", "audio"),
    "document": ("document", "file", "pdf", "doc"),
}
DAY_FIRST = ("%d.%m.%Y %H:%M:%S", "%d.%m.%Y %H:%M", "%d/%m/%Y %H:%M:%S", "%d/%m/%Y %H:%M",
             "%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M:%S")


class Unreadable(Exception):
    """The export is not what its format says (its message says why)."""


def _norm(key: str) -> str:
    return re.sub(r"[^a-z]", "", key.lower())


def field(message: dict[str, Any], name: str) -> tuple[bool, Any]:
    """(has it, its value) for one of KEYS' fields."""
    by_norm = {_norm(k): k for k in message}
    for candidate in KEYS[name]:
        if candidate in by_norm:
            return True, message[by_norm[candidate]]
    return False, None


def values(message: dict[str, Any], name: str) -> list[Any]:
    """The values of every key of the message that is one of a field's names."""
    names = set(KEYS[name])
    return [v for k, v in message.items() if _norm(k) in names]


def messages_of(text: str) -> list[dict[str, Any]]:
    """The list of message objects of a JSON export."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise Unreadable(f"not JSON: {exc}") from None
    if isinstance(data, dict):
        found = data.get("messages")
        if not isinstance(found, list):
            lists = [v for v in data.values()
                     if isinstance(v, list) and v and all(isinstance(x, dict) for x in v)]
            found = max(lists, key=len) if lists else None
        data = found
    if not isinstance(data, list):
        raise Unreadable("neither a list of messages nor an object holding one")
    items = [m for m in data if isinstance(m, dict)]
    if len(items) != len(data):
        raise Unreadable(f"{len(data) - len(items)} of its {len(data)} messages are not "
                         f"objects")
    return items


def flat(value: Any) -> str:
    """Every string and number inside a value, lower-cased, in one string."""
    if isinstance(value, dict):
        return " ".join(f"{k} {flat(v)}" for k, v in value.items()).lower()
    if isinstance(value, list | tuple):
        return " ".join(flat(v) for v in value).lower()
    return str(value).lower() if value is not None else ""


def as_int(value: Any) -> int | None:
    """An id from a number, a numeric string, or an object holding one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"#?\d+", value.strip()):
        return int(value.strip().lstrip("#"))
    if isinstance(value, dict):
        for k, v in value.items():
            if "id" in k.lower() and "peer" not in k.lower():
                got = as_int(v)
                if got is not None:
                    return got
    return None


def as_epoch(value: Any) -> float | None:
    """A date as unix seconds, or None when it is none of the layouts read."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return value / 1000 if value > 1e12 else float(value)
    if isinstance(value, dict):
        for v in value.values():
            got = as_epoch(v)
            if got is not None:
                return got
        return None
    text = str(value).strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return as_epoch(float(text))
    text = text.replace("Z", "+00:00").replace(" UTC", "").replace("UTC", "")
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        when = None
        for layout in DAY_FIRST:
            try:
                when = dt.datetime.strptime(text, layout)
                break
            except ValueError:
                continue
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


def names_of(user: dict[str, Any]) -> set[str]:
    """Every way an export may name a user, lower-cased."""
    out = {str(user["id"]), f"user{user['id']}", user["first_name"].lower()}
    full = " ".join(p for p in (user.get("first_name"), user.get("last_name")) if p)
    out.add(full.lower())
    if user.get("username"):
        out |= {user["username"].lower(), "@" + user["username"].lower()}
    return out


def _scalars(value: Any) -> Iterable[str]:
    if isinstance(value, dict):
        for v in value.values():
            yield from _scalars(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _scalars(v)
    elif value is not None and not isinstance(value, bool):
        yield str(value).strip().lower()


def is_sender(value: Any, user: dict[str, Any]) -> bool:
    """Whether an export's sender value names `user`."""
    names = names_of(user)
    return any(s in names for s in _scalars(value))


def text_of(value: Any) -> str | None:
    """A message's text: a string, or Telegram Desktop's list of parts."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(p if isinstance(p, str) else str(p.get("text", "")) if isinstance(p, dict)
                       else "" for p in value)
    return None


def names_kind(value: Any, kind: str) -> bool:
    """Whether a media value names `kind` (by KIND_WORDS) in its values, never its keys:
    Telethon's `to_dict()` of any media has `video`, `round` and `voice` keys."""
    words = " ".join(_scalars(value))
    return any(w in words for w in KIND_WORDS[kind])


def unescape_markdown(text: str) -> str:
    """Markdown's escapes undone: `\\*` is `*`, `&lt;` is `<`, a quote's `> ` dropped, hard
    breaks (two trailing spaces) dropped."""
    text = html.unescape(text)
    text = re.sub(r"\\([\\`*_{}\[\]()#+\-.!|<>~\"'])", r"\1", text)
    lines = [re.sub(r"^\s*>\s?", "", line).rstrip() for line in text.split("\n")]
    return "\n".join(lines)


@dataclass(frozen=True)
class Block:
    """One message found in a Markdown export: its mark's place and its block's text."""

    mid: int
    start: int
    end: int
    text: str


def blocks(markdown: str, marks: dict[int, str]) -> tuple[list[Block], dict[int, int]]:
    """The blocks of the messages whose marks are found, in the file's order, and how many
    times each mark is there."""
    text = unescape_markdown(markdown)
    places: list[tuple[int, int]] = []
    counts: dict[int, int] = {}
    for mid, mark in marks.items():
        spots = [m.start() for m in re.finditer(re.escape(mark), text)]
        counts[mid] = len(spots)
        if spots:
            places.append((spots[0], mid))
    places.sort()
    out, previous = [], 0
    for start, mid in places:
        end = start + len(marks[mid])
        out.append(Block(mid, start, end, text[previous:end]))
        previous = end
    return out, counts
