"""Tests of the uptime spec's alert list (conformance/specs/uptime/_alerts_seen.py) on what the
real alert ends record, and of its Telegram world served by the userbot's MTProto server to an
unmodified Telethon."""

from __future__ import annotations

import asyncio
import json
import os
import smtplib
import ssl
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from email.message import EmailMessage
from typing import Any

import aiohttp
import pytest
import trustme
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from conformance._alerts import (
    RECORDER,
    Arrival,
    BotAccount,
    Chat,
    MailAccount,
    SmtpAlertEnd,
    WebhookHit,
    WebhookRecorder,
    create_botapi_app,
    create_webhook_app,
)
from conformance._telegram import API_HASH, API_ID, Scenario, Telegrams
from conformance.specs.uptime import _world
from conformance.specs.uptime._alerts_seen import (
    SMTP_REFUSED,
    Alert,
    clock_offset,
    collect,
    from_botapi,
    from_smtp,
    from_telethon,
    from_webhook,
)
from conformance.specs.uptime._telegram_world import world

TOKEN = "6100000001:AAF-uptime-token-0123456789abcdefgh"
CONTACTS = _world.contacts()
ANNA, BORIS, VERA = (_world.site(d).contact for d in
                     ("example.com", "shop.example.org", "api.example.net"))
MIZULINA = _world.site("mizulina.ru").contact
TIMEOUT = 5.0


def _alert(text: str) -> Alert:
    return Alert(0.0, "webhook", None, "POST /uptime", text, True)


# --- names() and sites() ----------------------------------------------------------------------

@pytest.mark.parametrize(("text", "domain", "named"), [
    ("example.com is down", "example.com", True),
    ("EXAMPLE.COM IS DOWN", "example.com", True),
    ("Down: Example.Com (502)", "example.com", True),
    ("late.example.com is down", "example.com", False),
    ("late.example.com is down", "late.example.com", True),
    ("shop.example.org is down", "example.org", False),
    ("https://example.com/ answered 502", "example.com", True),
    ("https://late.example.com/ answered 502", "example.com", False),
    ("http://example.com:443/health failed", "example.com", True),
    ("the site went down: example.com.", "example.com", True),
    ("example.com. is an FQDN", "example.com", True),
    ("example.com.au is down", "example.com", False),
    ("example.community is down", "example.com", False),
    ("my-example.com is down", "example.com", False),
    ("...example.com is down", "example.com", True),
    ('{"site": "example.com", "status": 502}', "example.com", True),
    ("site=example.com&status=502", "example.com", True),
    ("example.com\tdown", "example.com", True),
    ("examplexcom is down", "example.com", False),  # the dot is a dot, not any character
    ("сайт example.com упал", "example.com", True),
    ("", "example.com", False),
])
def test_names_a_domain_only_as_a_whole_name(text: str, domain: str, named: bool) -> None:
    assert _alert(text).names(domain) is named


def test_sites_lists_the_csv_domains_named() -> None:
    alert = _alert("DOWN: late.example.com (502), shop.example.org recovered")
    assert alert.sites() == ["shop.example.org", "late.example.com"]
    assert _alert("https://EXAMPLE.COM./ is down").sites() == ["example.com"]
    assert _alert("all is well").sites() == []


# --- the Bot API ------------------------------------------------------------------------------

def _bot_app() -> web.Application:
    bot = _world.BOT_USERNAME
    chats = [Chat(id=c.user_id, username=c.username, first_name=c.first_name,
                  open_to=frozenset({bot})) for c in CONTACTS]
    chats.append(Chat(id=555, first_name="Stranger", open_to=frozenset({bot})))
    return create_botapi_app({TOKEN: BotAccount(_world.BOT_ID, bot)}, chats)


def _bot_calls(calls: list[tuple[str, dict[str, Any]]]) -> list[Arrival]:
    """Make `calls` (path under /bot<token>/, JSON body) on the real fake; its arrivals."""
    async def main() -> list[Arrival]:
        app = _bot_app()
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            for method, body in calls:
                async with client.post(f"/bot{TOKEN}/{method}", json=body,
                                       timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as answer:
                    await answer.read()
        return app[RECORDER].arrivals()
    return asyncio.run(main())


def test_botapi_sendmessage_calls_become_alerts_refused_ones_too() -> None:
    before = time.monotonic()
    arrivals = _bot_calls([
        ("getUpdates", {}),
        ("sendMessage", {"chat_id": BORIS.user_id, "text": "<b>shop.example.org</b> is down",
                         "parse_mode": "HTML"}),
        ("sendMessage", {"chat_id": "@ops_anna", "text": "example.com is down"}),
        ("SENDMESSAGE", {"chat_id": str(VERA.user_id), "text": "api.example.net: refused"}),
        ("sendMessage", {"chat_id": 424242, "text": "example.com is down"}),
        ("sendMessage", {"chat_id": 555, "text": "late.example.com is down"}),
        ("sendMessage", {"chat_id": BORIS.user_id, "text": "<b>unclosed", "parse_mode": "HTML"}),
    ])
    after = time.monotonic()
    alerts = from_botapi(arrivals, CONTACTS)
    assert [(a.to, a.recipient, a.delivered) for a in alerts] == [
        (BORIS, str(BORIS.user_id), True), (ANNA, "@ops_anna", False),
        (VERA, str(VERA.user_id), True), (None, "424242", False), (None, "555", True),
        (BORIS, str(BORIS.user_id), False)]
    assert all(a.channel == "telegram bot" for a in alerts)
    assert alerts[0].text == "shop.example.org is down"  # as Telegram shows it: markup parsed
    assert alerts[0].problem == "" and alerts[0].sites() == ["shop.example.org"]
    assert alerts[1].problem == "400 Bad Request: chat not found"
    assert alerts[1].text == "example.com is down" and alerts[1].names("example.com")
    assert alerts[3].problem == "400 Bad Request: chat not found"
    assert alerts[5].problem.startswith("400 Bad Request: can't parse entities")
    assert all(before <= a.at <= after for a in alerts)
    assert [a.at for a in alerts] == sorted(a.at for a in alerts)


def test_botapi_with_another_token_is_an_unauthorized_alert() -> None:
    async def main() -> list[Arrival]:
        app = _bot_app()
        params = {"chat_id": str(ANNA.user_id), "text": "example.com"}
        async with (TestClient(TestServer(app, host="127.0.0.1")) as client,
                    client.get("/bot123:wrong/sendMessage", params=params,
                               timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as answer):
            assert answer.status == 401
        return app[RECORDER].arrivals()
    [alert] = from_botapi(asyncio.run(main()), CONTACTS)
    assert (alert.to, alert.delivered, alert.problem) == (ANNA, False, "401 Unauthorized")


# --- e-mail -----------------------------------------------------------------------------------

ACCOUNT = MailAccount(_world.SMTP_USER, "s3cret-pass")


@pytest.fixture(scope="module", name="ca")
def fixture_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(name="smtp")
def fixture_smtp(ca: trustme.CA) -> Iterator[tuple[SmtpAlertEnd, ssl.SSLContext]]:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    allowed = [c.email for c in CONTACTS if c.email_ok]
    with SmtpAlertEnd(ACCOUNT, ca=ca, recipients=allowed) as end:
        yield end, context


def _mail(subject: str, body: str, *to: str) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = ACCOUNT.user
    message["To"] = ", ".join(to)
    message.set_content(body)
    return message


def test_smtp_one_alert_per_recipient_and_refusals_with_their_mail(
        smtp: tuple[SmtpAlertEnd, ssl.SSLContext]) -> None:
    end, context = smtp
    with smtplib.SMTP_SSL("127.0.0.1", end.smtps_port, context=context,
                          timeout=TIMEOUT) as client:
        client.login(ACCOUNT.user, ACCOUNT.password)
        client.send_message(_mail("DOWN: shop.example.org", "502 since 12:00:05\n",
                                  BORIS.email, ANNA.email))
        # one recipient refused, the other served: the refusal's text is the mail's
        refused = client.send_message(_mail("DOWN: mizulina.ru", "refused\n",
                                            VERA.email, "stranger@nowhere.example"))
        assert list(refused) == ["stranger@nowhere.example"]
        # every recipient refused: no mail, nothing to tell the text by
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            client.send_message(_mail("DOWN: mizulina.ru", "x\n", MIZULINA.email))
    mails = end.wait_for_mails(2, TIMEOUT)
    assert len(end.refusals()) == 2
    offset = clock_offset()
    alerts = from_smtp(mails, end.refusals(), CONTACTS, offset=offset)
    assert [(a.to, a.recipient, a.delivered) for a in alerts] == [
        (BORIS, BORIS.email, True), (ANNA, ANNA.email, True), (VERA, VERA.email, True),
        (None, "stranger@nowhere.example", False)]
    assert alerts[0].text.startswith("DOWN: shop.example.org\n") and "12:00:05" in alerts[0].text
    assert alerts[0].sites() == ["shop.example.org"] and alerts[0].channel == "e-mail"
    assert alerts[3].problem == SMTP_REFUSED and alerts[3].names("mizulina.ru")
    now = time.monotonic()
    assert all(now - 10 < a.at <= now for a in alerts)  # moved onto the monotonic clock


# --- Telegram as a user: the call log ---------------------------------------------------------

def test_telethon_log_entries_become_alerts_on_the_monotonic_clock() -> None:
    started = 1_800_000_000.0
    calls = [
        {"event": "connect", "conn": 1, "t": 0.1},
        {"conn": 1, "method": "contacts.resolveUsername", "username": "shop_boris",
         "answer": "ok", "t": 0.2},
        {"conn": 1, "method": "messages.sendMessage", "peer": f"user:{BORIS.user_id}",
         "text": "ALERT: shop.example.org is down", "answer": "ok", "t": 5.25},
        {"conn": 1, "method": "messages.sendMessage", "peer": "user:999",
         "text": "example.com", "answer": "ok", "t": 6.0},
        {"conn": 1, "method": "messages.sendMessage", "peer": "self",
         "text": "api.example.net down", "answer": "ok", "t": 6.5},
        {"conn": 1, "method": "messages.sendMessage", "peer": f"user:{ANNA.user_id}",
         "text": "example.com", "answer": "server error: KeyError: 1", "t": 7.0},
    ]
    offset = started - 100.0  # the monotonic clock read 100 when the server started
    alerts = from_telethon(calls, CONTACTS, started=started, offset=offset)
    assert [(a.at, a.to, a.recipient, a.delivered) for a in alerts] == [
        (105.25, BORIS, f"user:{BORIS.user_id}", True), (106.0, None, "user:999", True),
        (106.5, None, "self", True), (107.0, ANNA, f"user:{ANNA.user_id}", False)]
    assert alerts[0].text == "ALERT: shop.example.org is down"
    assert alerts[3].problem == "server error: KeyError: 1"
    assert {a.channel for a in alerts} == {"telegram user"}


def test_telegram_world_has_every_contact_and_a_chat_with_each() -> None:
    data = world()
    assert data["self"]["id"] == _world.MONITOR_ACCOUNT["id"]
    users = {u["id"]: u for u in data["users"]}
    assert set(users) == {c.user_id for c in CONTACTS} and len(CONTACTS) == len(_world.SITES)
    assert all(users[c.user_id]["username"] == c.username and users[c.user_id]["contact"]
               for c in CONTACTS)
    hashes = [u["hash"] for u in data["users"]] + [data["self"]["hash"]]
    assert len(set(hashes)) == len(hashes)
    assert sorted(c["user"] for c in data["chats"]) == sorted(users)
    assert all(c["kind"] == "user" and len(c["messages"]) >= 2 for c in data["chats"])
    ids = [m["id"] for c in data["chats"] for m in c["messages"]]
    assert len(set(ids)) == len(ids)  # the account's message ids are one numbering
    json.dumps(data)  # the server reads it as JSON


TELETHON_SCRIPT = """
import asyncio, os, sys
from telethon import TelegramClient
from telethon.sessions import StringSession

def client():
    return TelegramClient(StringSession(os.environ["TG_SESSION"]),
                          int(os.environ["TG_API_ID"]), os.environ["TG_API_HASH"])

async def main():
    async with client() as first:  # by @username: resolved by our server
        await first.send_message("@shop_boris", "ALERT: shop.example.org is down")
    async with client() as second:  # by id, in a session that has not met the user yet
        user = await second.get_entity(int(sys.argv[1]))
        assert user.username == "shop_boris", user
        await second.send_message(user, "ALERT: shop.example.org is down (by id)")

asyncio.run(main())
"""


@pytest.mark.slow(3)
def test_telethon_sends_to_a_contact_by_username_and_by_id() -> None:
    telegrams = Telegrams(sys.executable, [Scenario("alerts")], world_data=world())
    telegrams.start()
    try:
        listener = telegrams.ready["runs"]["alerts"]
        env = {**os.environ, "TG_API_ID": API_ID, "TG_API_HASH": API_HASH,
               "TG_SESSION": listener["session"], "TG_SESSION_FILE": listener["session_file"],
               "TZ": "UTC"}
        before = time.monotonic()
        done = subprocess.run([sys.executable, "-c", TELETHON_SCRIPT, str(BORIS.user_id)],
                              env=env, capture_output=True, text=True, timeout=30)
        after = time.monotonic()
        assert done.returncode == 0, done.stderr[-2000:]
        time.sleep(0.05)  # the log's last lines, written as the client hung up
        calls = telegrams.calls("alerts")
    finally:
        telegrams.stop()
    methods = [c.get("method") for c in calls]
    assert "contacts.resolveUsername" in methods and "users.getUsers" in methods
    sent = [c for c in calls if c.get("method") == "messages.sendMessage"]
    assert [(c["peer"], c["text"]) for c in sent] == [
        (f"user:{BORIS.user_id}", "ALERT: shop.example.org is down"),
        (f"user:{BORIS.user_id}", "ALERT: shop.example.org is down (by id)")]
    alerts = from_telethon(calls, CONTACTS, started=listener["started"])
    assert [(a.to, a.delivered) for a in alerts] == [(BORIS, True), (BORIS, True)]
    assert all(before - 0.1 <= a.at <= after + 0.1 for a in alerts)


# --- the webhook ------------------------------------------------------------------------------

Post = Callable[..., Awaitable[None]]


def _webhook(posts: Callable[[Post], Awaitable[None]],
             statuses: tuple[int, ...] = ()) -> list[WebhookHit]:
    """Run `posts(post)` against the real webhook app; the hits it recorded."""
    recorder = WebhookRecorder()
    recorder.script(statuses)

    async def main() -> None:
        async with TestClient(TestServer(create_webhook_app(recorder),
                                         host="127.0.0.1")) as client:
            async def post(path: str = "/uptime", **kwargs: Any) -> None:
                async with client.post(path, timeout=aiohttp.ClientTimeout(total=TIMEOUT),
                                       **kwargs) as answer:
                    await answer.read()
            await posts(post)
    asyncio.run(main())
    return recorder.hits()


def test_webhook_bodies_of_every_kind_name_their_contact() -> None:
    async def posts(post: Post) -> None:
        await post(json={"text": "Сайт shop.example.org упал", "to": "@shop_boris"})
        await post(data={"site": "example.com", "contact": "anna@ops.example"})  # a form
        await post(data=b"api.example.net is down, tell @api_vera",
                   headers={"Content-Type": "text/plain"})
        await post(data=aiohttp.FormData({"msg": "down: example.com", "tg": "@ops_anna"},
                                         default_to_multipart=True))
        await post("/uptime?site=late.example.com&to=%40late_dina", data=b"")
        await post(json={"text": "example.com is down"})  # nobody named
        await post(json={"text": "example.com is down", "to": "@ops_annabel"})  # not Anna
    statuses = (200, 200, 500)  # the end does not record its answers: the script is known
    alerts = from_webhook(_webhook(posts, statuses), CONTACTS, statuses=statuses,
                          offset=clock_offset())
    dina = _world.site("late.example.com").contact
    assert [(a.to, a.delivered) for a in alerts] == [
        (BORIS, True), (ANNA, True), (VERA, False), (ANNA, True), (dina, True), (None, True),
        (None, True)]
    assert "Сайт shop.example.org упал" in alerts[0].text  # JSON shown unescaped
    assert "contact=anna@ops.example" in alerts[1].text  # a form decoded: %40 is @ again
    assert alerts[2].problem == "HTTP 500" and alerts[2].recipient == "POST /uptime"
    assert alerts[4].names("late.example.com") and alerts[4].recipient.startswith("POST /uptime?")
    assert {a.channel for a in alerts} == {"webhook"}
    now = time.monotonic()
    assert all(now - 10 < a.at <= now for a in alerts)


def test_webhook_naming_several_contacts_goes_to_the_one_whose_site_it_names() -> None:
    async def posts(post: Post) -> None:
        await post(json={"text": "shop.example.org is down", "to": "@shop_boris",
                         "cc": "@ops_anna"})
        await post(json={"text": "mizulina.ru is down", "to": ["@ops_anna", "@shop_boris"]})
        await post(json={"text": "example.com and shop.example.org are down",
                         "to": ["@ops_anna", "@shop_boris"]})
    alerts = from_webhook(_webhook(posts), CONTACTS)
    assert [a.to for a in alerts] == [BORIS, None, None]


# --- all of them ------------------------------------------------------------------------------

def test_collect_merges_every_end_oldest_first() -> None:
    offset = clock_offset()
    now = time.monotonic()
    arrival = Arrival(now - 3, "POST", TOKEN, "sendMessage",
                      {"chat_id": BORIS.user_id, "text": "shop.example.org down"}, "json", 200,
                      {"ok": True, "result": {"text": "shop.example.org down"}})
    hit = WebhookHit(now - 1 + offset, "POST", "/uptime", {}, {}, b"shop.example.org down",
                     None, None)
    calls = [{"method": "messages.sendMessage", "peer": f"user:{BORIS.user_id}",
              "text": "shop.example.org down", "answer": "ok", "t": 3.0}]
    alerts = collect(arrivals=[arrival], hits=[hit], calls=calls,
                     telegram_started=now - 5 + offset, offset=offset)
    assert [(a.channel, round(a.at - now, 6)) for a in alerts] == [
        ("telegram bot", -3.0), ("telegram user", -2.0), ("webhook", -1.0)]
    with pytest.raises(ValueError, match="telegram_started"):
        collect(calls=calls)
    assert collect() == []
