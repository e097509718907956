"""The Telegram an uptime monitor alerts through as a user (Telethon): the monitor's account and
every contact of the CSV, in the format our Telegram's server (conformance/_telegram/_server.py)
reads.

Rules: the same world every run (no randomness, no clock); standard library only. Each contact
is a user of their own (id, @username, access hash) in the account's contacts, with a private
chat holding two old messages, so that a monitor's `get_dialogs()` or entity cache finds them;
there is nothing else (no groups, no channels), so an alert can only reach a person.
"""

from __future__ import annotations

from typing import Any

from conformance.specs.uptime._world import MONITOR_ACCOUNT, Contact, contacts

START = 1772355600  # 2026-03-01 09:00:00 UTC: when the old messages were written
HASH_BASE = 92000  # access hashes 92001.. (the monitor's own is 92100)
PRIVATE_BASE = 9100000  # our id for the private chat with the n-th contact (its peer is the user)
FIRST_MESSAGE = 1000  # the n-th chat's messages are n*1000+1, n*1000+2: unique in the account


def user(contact: Contact, n: int) -> dict[str, Any]:
    """The contact as a user of the world (n: its place in the CSV, from 1)."""
    return {"id": contact.user_id, "first_name": contact.first_name,
            "username": contact.username, "hash": HASH_BASE + n, "contact": True}


def private_chat(contact: Contact, n: int) -> dict[str, Any]:
    """The account's private chat with the contact: two old messages, one each way."""
    first = n * FIRST_MESSAGE + 1
    messages = [
        {"id": first, "date": START + 60 * n, "from": contact.user_id,
         "text": f"Hi, {contact.first_name} here: alerts for my sites go to me, please"},
        {"id": first + 1, "date": START + 60 * n + 30, "from": MONITOR_ACCOUNT["id"],
         "text": "Noted, you will hear from the monitor when one goes down"},
    ]
    return {"id": PRIVATE_BASE + n, "kind": "user", "user": contact.user_id,
            "title": contact.first_name, "date": START, "messages": messages}


def world() -> dict[str, Any]:
    """The whole world, as the server reads it (see userbot/_world.py `world()`)."""
    people = contacts()
    return {"self": dict(MONITOR_ACCOUNT),
            "users": [user(c, n) for n, c in enumerate(people, 1)],
            "chats": [private_chat(c, n) for n, c in enumerate(people, 1)]}
