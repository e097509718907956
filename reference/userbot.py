"""The reference `userbot.py`: a Telethon userbot that exports the whole history of a chat you
name to JSON or Markdown, reading only (seed 002's userbot example).

Run it as `python userbot.py CHAT OUTPUT [--format json|md] [--no-media]`. Rules, as
openapi/userbot.requirements.yaml states them:
- the login: `TG_API_ID` and `TG_API_HASH`, and the session from `TG_SESSION` (a StringSession
  string) or else `TG_SESSION_FILE` (a `.session` file), or else `--session NAME`, which logs in
  interactively the first time (Telethon asks for the phone and the code). Never both asked.
- CHAT: `@username` or a t.me link (a user, a group or a channel), a numeric id, or the exact
  title of one of the account's dialogs (compared without case). An unknown chat is an error
  (exit 1) that names it; nothing is written then.
- the history is read oldest first (Telethon's `iter_messages(reverse=True)`, 100 a page), every
  message once, service messages (joins, pins...) included and marked. A FLOOD_WAIT is waited
  out and the export goes on from the last message it has (said on stderr); a dropped
  connection is Telethon's to reconnect (its default). Nothing is sent, edited, deleted or
  marked read, and no other chat is read.
- the format comes from `--format`, else from OUTPUT's suffix (`.md` / `.markdown` is
  Markdown, anything else JSON). JSON: `{"chat": {...}, "exported_at", "count", "messages":
  [...]}`, each message `id`, `date` and `edit_date` (ISO 8601, UTC), `sender` (`id`, `name`,
  `username`), `text`, `reply_to` (an id or null), `media` (`kind`, `mime`, `size`, `file`) or
  null, `service` (what happened) or null. Markdown: a heading for the chat, then per message a
  line `**Sender** (@username) · 2026-03-01 09:05 UTC · #id`, `↳ reply to #id`, the text with
  Markdown's characters escaped, and the media as a link to its file.
- media is downloaded into `OUTPUT-stem_media/` next to OUTPUT (`ID_name`), unless
  `--no-media`, when the kind alone is written. The output is written whole to a temporary
  file and renamed, so a failed run never leaves half an export.
Exit status: 0 on success, 1 when the chat is unknown or Telegram refuses, 2 for usage errors.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from telethon import TelegramClient, errors, utils
from telethon.sessions import StringSession
from telethon.tl import types

MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~])")


class Usage(Exception):
    """A usage error: the message is printed and the exit status is 2."""


def _iso(when: dt.datetime | None) -> str | None:
    return None if when is None else when.astimezone(dt.UTC).isoformat()


def _name(entity: Any) -> str:
    if entity is None:
        return ""
    if isinstance(entity, types.User):
        return " ".join(p for p in (entity.first_name, entity.last_name) if p) or str(entity.id)
    return getattr(entity, "title", "") or str(entity.id)


def media_kind(message: Any) -> str | None:
    """What a message carries, in the export's words (None for none)."""
    if message.media is None or isinstance(message.media, types.MessageMediaWebPage):
        return None
    if message.photo:
        return "photo"
    if message.voice:
        return "voice"
    if message.video_note or message.video or message.gif:
        return "video"
    if message.audio:
        return "audio"
    if message.document:
        return "document"
    return type(message.media).__name__.removeprefix("MessageMedia").lower()


def service_text(action: Any) -> str:
    """A service message's event, in words ("joined: 7000004", "pinned a message")."""
    name = type(action).__name__.removeprefix("MessageAction")
    if isinstance(action, types.MessageActionChatAddUser):
        return "added: " + ", ".join(str(u) for u in action.users)
    if isinstance(action, types.MessageActionPinMessage):
        return "pinned a message"
    if hasattr(action, "title"):
        return f"{name}: {action.title}"
    return name


async def resolve(client: TelegramClient, chat: str) -> Any:
    """The chat the user named: a username, a link or an id, else a dialog's exact title."""
    text = chat.strip()
    if text.startswith("@") or "t.me/" in text or re.fullmatch(r"-?\d+", text):
        target: Any = int(text) if re.fullmatch(r"-?\d+", text) else text
        try:
            return await client.get_entity(target)
        except (ValueError, errors.RPCError) as e:
            raise LookupError(f"no chat {chat!r}: {e}") from None
    async for dialog in client.iter_dialogs():
        if dialog.name.casefold() == text.casefold():
            return dialog.entity
    raise LookupError(f"no chat titled {chat!r} among your dialogs (use @username for others)")


async def history(client: TelegramClient, entity: Any) -> list[Any]:
    """Every message of the chat, oldest first; FLOOD_WAITs are waited out and the reading
    goes on from the last message it has."""
    got: list[Any] = []
    while True:
        last = got[-1].id if got else 0
        try:
            async for message in client.iter_messages(entity, reverse=True, min_id=last,
                                                      wait_time=0):
                got.append(message)
                if len(got) % 100 == 0:
                    print(f"read {len(got)} messages", file=sys.stderr, flush=True)
            return got
        except errors.FloodWaitError as e:
            print(f"Telegram asks to wait {e.seconds} s (FLOOD_WAIT); waiting",
                  file=sys.stderr, flush=True)
            await asyncio.sleep(e.seconds)


async def record(client: TelegramClient, message: Any, media_dir: Path | None,
                 base: Path) -> dict[str, Any]:
    """One message as the JSON export holds it (downloading its media when asked)."""
    sender = await message.get_sender()
    kind = media_kind(message)
    media: dict[str, Any] | None = None
    if kind is not None:
        file = message.file
        media = {"kind": kind, "mime": getattr(file, "mime_type", None),
                 "size": getattr(file, "size", None), "file": None}
        if media_dir is not None:
            media_dir.mkdir(parents=True, exist_ok=True)
            name = (file.name if file and file.name else f"{kind}{file.ext if file else ''}")
            path = media_dir / f"{message.id}_{Path(name).name}"
            await client.download_media(message, file=str(path))
            media["file"] = os.path.relpath(path, base)
    service = service_text(message.action) if isinstance(message, types.MessageService) else None
    return {
        "id": message.id,
        "date": _iso(message.date),
        "edit_date": _iso(getattr(message, "edit_date", None)),
        "sender": {"id": message.sender_id, "name": _name(sender),
                   "username": getattr(sender, "username", None)},
        "text": message.message or "",
        "reply_to": message.reply_to_msg_id,
        "media": media,
        "service": service,
    }


def _escape(text: str) -> str:
    return MARKDOWN_SPECIAL.sub(r"\\\1", text)


def markdown(chat: dict[str, Any], messages: list[dict[str, Any]]) -> str:
    """The Markdown export: a heading, then one block per message."""
    title = _escape(chat["title"]) + (f" (@{chat['username']})" if chat["username"] else "")
    lines = [f"# {title}", "", f"{len(messages)} messages, exported {chat['exported_at']}", ""]
    for m in messages:
        when = dt.datetime.fromisoformat(m["date"]).strftime("%Y-%m-%d %H:%M UTC")
        who = _escape(m["sender"]["name"] or "unknown")
        if m["sender"]["username"]:
            who += f"** (@{_escape(m['sender']['username'])})"
        else:
            who += "**"
        edited = " · edited" if m["edit_date"] else ""
        lines.append(f"**{who} · {when} · #{m['id']}{edited}")
        if m["reply_to"]:
            lines.append(f"↳ reply to #{m['reply_to']}  ")
        if m["service"]:
            lines.append(f"*{_escape(m['service'])}*")
        if m["text"]:
            lines.append("  \n".join(_escape(line) for line in m["text"].split("\n")))
        if m["media"]:
            media = m["media"]
            label = f"[{media['kind']}]"
            lines.append(f"{label}({media['file']})" if media["file"] else f"*{label}*")
        lines.append("")
    return "\n".join(lines)


def client_from_env(session_name: str | None) -> TelegramClient:
    """The client the environment (or --session) logs in with."""
    api_id, api_hash = os.environ.get("TG_API_ID"), os.environ.get("TG_API_HASH")
    if not api_id or not api_id.isdigit() or not api_hash:
        raise Usage("set TG_API_ID (digits) and TG_API_HASH (from my.telegram.org)")
    session: Any
    if os.environ.get("TG_SESSION"):
        session = StringSession(os.environ["TG_SESSION"])
    elif os.environ.get("TG_SESSION_FILE"):
        session = os.environ["TG_SESSION_FILE"]
    elif session_name:
        session = session_name
    else:
        raise Usage("set TG_SESSION (a StringSession) or TG_SESSION_FILE, or pass --session NAME")
    # FLOOD_WAITs are ours to wait out (history() says so on stderr), not Telethon's silently.
    return TelegramClient(session, int(api_id), api_hash, flood_sleep_threshold=0)


async def export(args: argparse.Namespace) -> int:
    """Log in, find the chat, read it all, write the export; the exit status."""
    output = Path(args.output)
    fmt = args.format or ("md" if output.suffix.lower() in (".md", ".markdown") else "json")
    client = client_from_env(args.session)
    async with client:
        if not await client.is_user_authorized():
            await client.start()  # interactive login, for --session NAME the first time
        try:
            entity = await resolve(client, args.chat)
        except LookupError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        messages = await history(client, entity)
        media_dir = None if args.no_media else output.with_name(output.stem + "_media")
        records = [await record(client, m, media_dir, output.parent) for m in messages]
    chat = {"id": utils.get_peer_id(entity), "title": _name(entity),
            "username": getattr(entity, "username", None),
            "type": type(entity).__name__.lower(),
            "exported_at": _iso(dt.datetime.now(dt.UTC))}
    if fmt == "md":
        text = markdown(chat, records)
    else:
        text = json.dumps({"chat": chat, "count": len(records), "messages": records},
                          ensure_ascii=False, indent=2)
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".part")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, output)
    print(f"exported {len(records)} messages of {chat['title']} to {output}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """The command line; returns the exit status."""
    parser = argparse.ArgumentParser(description="Export a Telegram chat's history.")
    parser.add_argument("chat", help="@username, t.me link, id, or a dialog's title")
    parser.add_argument("output", help="the file to write (.json or .md)")
    parser.add_argument("--format", choices=("json", "md"),
                        help="default: from OUTPUT's suffix (.md is Markdown, else JSON)")
    parser.add_argument("--no-media", action="store_true",
                        help="write media kinds only, download no files")
    parser.add_argument("--session", help="a session file name, when no TG_SESSION* is set")
    args = parser.parse_args(argv)
    try:
        return asyncio.run(export(args))
    except Usage as e:
        print(f"usage error: {e}", file=sys.stderr)
        return 2
    except errors.RPCError as e:
        print(f"error: Telegram refused: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
