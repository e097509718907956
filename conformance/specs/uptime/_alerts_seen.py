"""The alerts an uptime monitor sent, as one list: what the four alert ends recorded (the Bot API
fake, the SMTP end, our Telegram's call log, the webhook end) turned into uniform `Alert`s.

Rules: every attempt the ends can tell the text of is an Alert, delivered or not (a refusal says
why in the service's words); who it reached is a contact of the CSV or None. Times are all
`time.monotonic()`: the Bot API fake records that already; the SMTP and webhook ends record
`time.time()`, and our Telegram's log counts seconds (`t`) from its start in wall-clock time
(`started`, in its ready.json); those are moved onto the monotonic clock by the offset between
`time.time()` and `time.monotonic()` taken once at collection (both clocks run at the same rate
over a run's half a minute, so the offset then is the offset when the alert came). Standard
library and the suite's fakes only; judging the alerts is the checks' part, not this module's.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlencode

from conformance._alerts import Arrival, Mail, Refusal, WebhookHit
from conformance.specs.uptime import _world
from conformance.specs.uptime._world import SITES, Contact

Channel = Literal["telegram bot", "telegram user", "e-mail", "webhook"]
CHANNELS: tuple[Channel, ...] = ("telegram bot", "telegram user", "e-mail", "webhook")
# The SMTP end's answer to a recipient outside the CSV (conformance/_alerts/_smtp.py): its
# Refusal records the address, not the reply.
SMTP_REFUSED = "550 5.1.1 Recipient not accepted here"
# A refusal belongs to the mail that went out on its session after it: the same listener and
# sender, no later than this, with the refused address in its headers.
REFUSAL_TO_MAIL = 10.0
_NAME_CHAR = r"[\w-]"  # a character of a host name's label (Unicode letters too, for IDNs)


def clock_offset() -> float:
    """time.time() - time.monotonic() now: subtract it from a wall-clock time to get the
    monotonic time of the same moment."""
    return time.time() - time.monotonic()


def mentions(text: str, name: str) -> bool:
    """Whether host name `name` occurs in `text` as a whole name: case-insensitive, not part of
    a longer name on either side (not `example.com` in `late.example.com` or in
    `example.com.au`), a trailing dot (end of a sentence, or the FQDN's) allowed."""
    pattern = (rf"(?<!{_NAME_CHAR})(?<!{_NAME_CHAR}\.){re.escape(name)}"
               rf"(?!{_NAME_CHAR})(?!\.{_NAME_CHAR})")
    return re.search(pattern, text, re.IGNORECASE) is not None


@dataclass(frozen=True)
class Alert:
    """One alert the monitor sent (or tried to), whatever the channel."""

    at: float  # time.monotonic() when it arrived
    channel: Channel
    to: Contact | None  # the contact it reached (None: nobody of the CSV)
    recipient: str  # as addressed: chat id / @name / user:ID / e-mail address / the webhook
    text: str  # what it said (e-mail: subject + body text; webhook: the body as text)
    delivered: bool  # the service accepted it
    problem: str = ""  # why not, in the service's words

    def names(self, domain: str) -> bool:
        """Whether the text names `domain` (as a whole name, case-insensitive)."""
        return mentions(self.text, domain)

    def sites(self) -> list[str]:
        """The domains of the CSV's sites the text names, in the CSV's order."""
        return [site.domain for site in SITES if self.names(site.domain)]


# --- who is who -------------------------------------------------------------------------------

def _by_user_id(contacts: Iterable[Contact], user_id: int) -> Contact | None:
    return next((c for c in contacts if c.user_id == user_id), None)


def _by_username(contacts: Iterable[Contact], name: str) -> Contact | None:
    wanted = name.strip().removeprefix("@").lower()
    return next((c for c in contacts if c.username.lower() == wanted), None)


def _by_email(contacts: Iterable[Contact], address: str) -> Contact | None:
    wanted = address.strip().strip("<>").lower()
    return next((c for c in contacts if c.email_ok and c.email.lower() == wanted), None)


def _integer(value: Any) -> int | None:
    text = str(value).strip()
    return int(text) if re.fullmatch(r"-?\d+", text) else None


# --- the Telegram Bot API -------------------------------------------------------------------

def _problem(answer: Mapping[str, Any], status: int) -> str:
    code = answer.get("error_code", status)
    return f"{code} {answer.get('description', 'no description')}"


def from_botapi(arrivals: Iterable[Arrival], contacts: Iterable[Contact]) -> list[Alert]:
    """The sendMessage calls, refused ones too (the API's description as the problem). A
    numeric chat id is the contact of that user id; an `@name` the contact of that username
    (never delivered: the Bot API does not write to a user by username)."""
    people = list(contacts)
    out = []
    for arrival in arrivals:
        if arrival.method.lower() != "sendmessage":
            continue
        chat = arrival.parameters.get("chat_id")
        recipient = "" if chat is None else str(chat).strip()
        number = _integer(recipient)
        if number is not None:
            to = _by_user_id(people, number)
        elif recipient.startswith("@"):
            to = _by_username(people, recipient)
        else:
            to = None
        if arrival.ok:  # the text as Telegram keeps it: its markup parsed away
            text = str(arrival.answer["result"].get("text", ""))
        else:
            raw = arrival.parameters.get("text")
            text = "" if raw is None or isinstance(raw, (dict, list)) else str(raw)
        out.append(Alert(arrival.at, "telegram bot", to, recipient, text, arrival.ok,
                         "" if arrival.ok else _problem(arrival.answer, arrival.status)))
    return out


# --- e-mail -----------------------------------------------------------------------------------

def _mail_text(mail: Mail) -> str:
    return f"{mail.subject}\n{mail.text}"


def _addressed(mail: Mail) -> set[str]:
    """Every address the mail's To, Cc and Bcc headers name, lower-cased."""
    out = set()
    for header in ("To", "Cc", "Bcc"):
        for value in mail.message.get_all(header, []):
            for address in getattr(value, "addresses", ()):
                out.add(address.addr_spec.lower())
    return out


def _mail_of(refusal: Refusal, mails: Sequence[Mail]) -> Mail | None:
    """The mail the refused recipient was meant to get: the first that went out after the
    refusal from the same sender on the same listener, naming the address in its headers."""
    address = refusal.rcpt_to.strip("<>").lower()
    for mail in mails:
        if (refusal.at <= mail.at <= refusal.at + REFUSAL_TO_MAIL
                and mail.listener == refusal.listener and mail.mail_from == refusal.mail_from
                and address in _addressed(mail)):
            return mail
    return None


def from_smtp(mails: Iterable[Mail], refusals: Iterable[Refusal], contacts: Iterable[Contact],
              *, offset: float | None = None) -> list[Alert]:
    """One Alert per recipient of each mail (its envelope's), delivered; a refused recipient as
    an undelivered Alert when its text can be told (the rest of its mail went out, to someone
    else), else not at all. `offset`: clock_offset() at collection (taken now if None)."""
    people = list(contacts)
    shift = clock_offset() if offset is None else offset
    sent = sorted(mails, key=lambda m: m.at)
    out = []
    for mail in sent:
        for address in mail.rcpt_tos:
            out.append(Alert(mail.at - shift, "e-mail", _by_email(people, address), address,
                             _mail_text(mail), True))
    for refusal in refusals:
        meant = _mail_of(refusal, sent)
        if meant is not None:
            out.append(Alert(refusal.at - shift, "e-mail", _by_email(people, refusal.rcpt_to),
                             refusal.rcpt_to, _mail_text(meant), False, SMTP_REFUSED))
    return out


# --- Telegram as a user (our MTProto server's call log) --------------------------------------

def from_telethon(calls: Iterable[Mapping[str, Any]], contacts: Iterable[Contact], *,
                  started: float, offset: float | None = None) -> list[Alert]:
    """The `messages.sendMessage` entries of our Telegram's call log (Telegrams.calls). A peer
    `user:ID` is the contact of that user id. `started`: the wall-clock time the log's `t`
    counts from (Telegrams.ready["runs"][name]["started"]); `offset`: clock_offset() at
    collection (taken now if None)."""
    people = list(contacts)
    shift = clock_offset() if offset is None else offset
    out = []
    for entry in calls:
        if entry.get("method") != "messages.sendMessage":
            continue
        peer = str(entry.get("peer") or "")
        kind, _, number = peer.partition(":")
        user_id = _integer(number) if kind == "user" else None
        to = None if user_id is None else _by_user_id(people, user_id)
        answer = str(entry.get("answer", ""))
        out.append(Alert(started + float(entry.get("t", 0.0)) - shift, "telegram user", to,
                         peer, str(entry.get("text") or ""), answer == "ok",
                         "" if answer == "ok" else answer))
    return out


# --- the webhook ------------------------------------------------------------------------------

def _pairs(values: Mapping[str, list[str]]) -> str:
    return "\n".join(f"{key}={value}" for key, items in values.items() for value in items)


def webhook_text(hit: WebhookHit) -> str:
    """The body as text: a form's fields decoded (`name=value` lines), JSON as JSON (non-ASCII
    and `\\/` unescaped), anything else as sent; query parameters, if any, after it."""
    if hit.form is not None:
        text = _pairs(hit.form)
    elif hit.json is not None:
        text = json.dumps(hit.json, ensure_ascii=False)
    else:
        text = hit.text
    if hit.query:
        text = f"{text}\n{_pairs(hit.query)}" if text else _pairs(hit.query)
    return text


def _named_contact(text: str, people: Sequence[Contact]) -> Contact | None:
    """The contact whose @username or e-mail address occurs in `text`; of several, the one
    whose site the text names (None: none, or no way to tell which)."""
    found = []
    for contact in people:
        handle = re.search(rf"@{re.escape(contact.username)}(?![\w])", text, re.IGNORECASE)
        email = contact.email_ok and re.search(
            rf"(?<![\w.+-]){re.escape(contact.email)}(?![\w-]|\.[\w-])", text, re.IGNORECASE)
        if handle or email:
            found.append(contact)
    if len(found) <= 1:
        return found[0] if found else None
    named = [c for c in found
             if any(s.contact == c and mentions(text, s.domain) for s in SITES)]
    return named[0] if len(named) == 1 else None


def from_webhook(hits: Iterable[WebhookHit], contacts: Iterable[Contact], *,
                 statuses: Sequence[int] | None = None,
                 offset: float | None = None) -> list[Alert]:
    """One Alert per request. Its contact is the one its text names (see _named_contact); the
    recipient is `METHOD /path`. `statuses`: what each hit was answered with, in order, when
    the recorder was scripted (default 200 each: the end's own answer); 2xx is delivered.
    `offset`: clock_offset() at collection (taken now if None)."""
    people = list(contacts)
    shift = clock_offset() if offset is None else offset
    out = []
    for i, hit in enumerate(hits):
        status = statuses[i] if statuses is not None and i < len(statuses) else 200
        text = webhook_text(hit)
        path = hit.path + (f"?{urlencode(hit.query, doseq=True)}" if hit.query else "")
        delivered = 200 <= status < 300
        out.append(Alert(hit.at - shift, "webhook", _named_contact(text, people),
                         f"{hit.method} {path}", text, delivered,
                         "" if delivered else f"HTTP {status}"))
    return out


# --- all of them ------------------------------------------------------------------------------

def collect(*, arrivals: Iterable[Arrival] = (), mails: Iterable[Mail] = (),
            refusals: Iterable[Refusal] = (), calls: Iterable[Mapping[str, Any]] = (),
            telegram_started: float | None = None, hits: Iterable[WebhookHit] = (),
            webhook_statuses: Sequence[int] | None = None,
            contacts: Iterable[Contact] | None = None,
            offset: float | None = None) -> list[Alert]:
    """Every alert of every end, oldest first (contacts: the CSV's unless given). The clock
    offset is taken once, here, for all of them; `telegram_started` is needed when `calls`
    holds anything."""
    people = _world.contacts() if contacts is None else list(contacts)
    shift = clock_offset() if offset is None else offset
    log = list(calls)
    alerts = from_botapi(arrivals, people)
    alerts += from_smtp(mails, refusals, people, offset=shift)
    if log:
        if telegram_started is None:
            raise ValueError("the Telegram log's times need telegram_started")
        alerts += from_telethon(log, people, started=telegram_started, offset=shift)
    alerts += from_webhook(hits, people, statuses=webhook_statuses, offset=shift)
    return sorted(alerts, key=lambda a: a.at)
