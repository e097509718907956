"""Tests of the fake Telegram Bot API (conformance/_alerts/_botapi.py): each body encoding, the
real API's error answers, MarkdownV2/Markdown/HTML parsing, recording and message ids."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from conformance._alerts import RECORDER, BotAccount, Chat, Recorder, create_botapi_app, parse_text
from conformance._servers import AiohttpServer

TOKEN = "123456:AAF-monitor-token-0123456789abcdefgh"
OTHER = "654321:AAF-other-token-0123456789abcdefghi"
BOT = BotAccount(id=123456, username="uptime_alert_bot")
OTHER_BOT = BotAccount(id=654321, username="other_bot",
                       updates=({"message": {"text": "/start"}}, {"message": {"text": "hi"}}))
ALICE = Chat(id=1001, username="alice", first_name="Alice",
             open_to=frozenset({"uptime_alert_bot"}))
BOB = Chat(id=1002, username="bob", first_name="Bob", open_to=frozenset())  # never started it
CAROL = Chat(id=1003, username="carol", first_name="Carol",
             open_to=frozenset({"uptime_alert_bot"}), blocked=frozenset({"uptime_alert_bot"}))
CHANNEL = Chat(id=-1001234, type="channel", username="status_news", title="Status")
GROUP = Chat(id=-42, type="group", title="Ops", open_to=frozenset({"other_bot"}))

Call = Callable[..., Awaitable[tuple[int, dict[str, Any]]]]


def serve(test: Callable[[Call, Recorder], Awaitable[None]]) -> None:
    """Run `test` against a fresh fake on a loopback port, with a `call(http, method, **kw)`."""
    async def main() -> None:
        app = create_botapi_app({TOKEN: BOT, OTHER: OTHER_BOT}, [ALICE, BOB, CAROL, CHANNEL, GROUP])
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            async def call(http: str, path: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
                async with client.request(http, path, timeout=aiohttp.ClientTimeout(total=5),
                                          **kwargs) as response:
                    return response.status, await response.json()
            await test(call, app[RECORDER])
    asyncio.run(main())


def send(token: str = TOKEN) -> str:
    return f"/bot{token}/sendMessage"


@pytest.mark.parametrize("encoding", ["query", "json", "form", "multipart"])
def test_each_body_encoding_sends_and_is_recorded(encoding: str) -> None:
    params = {"chat_id": "1001", "text": "example.com is DOWN (502)"}
    kwargs: dict[str, Any] = {
        "query": {"params": params},
        "json": {"json": {**params, "chat_id": 1001}},
        "form": {"data": params},
        "multipart": {"data": aiohttp.FormData(params, default_to_multipart=True)},
    }[encoding]

    async def test(call: Call, recorder: Recorder) -> None:
        status, answer = await call("GET" if encoding == "query" else "POST", send(), **kwargs)
        assert (status, answer["ok"]) == (200, True), answer
        message = answer["result"]
        assert message["text"] == params["text"]
        assert message["chat"] == {"id": 1001, "type": "private", "username": "alice",
                                   "first_name": "Alice"}
        assert message["from"]["username"] == "uptime_alert_bot"
        [arrival] = recorder.arrivals()
        assert (arrival.token, arrival.method, arrival.encoding, arrival.status) == (
            TOKEN, "sendMessage", encoding, 200)
        assert str(arrival.parameters["chat_id"]) == "1001"
        assert arrival.parameters["text"] == params["text"]
        assert recorder.messages() == [message]
    serve(test)


def test_json_keeps_types_and_query_merges_under_the_body() -> None:
    async def test(call: Call, recorder: Recorder) -> None:
        status, _ = await call("POST", send(), params={"chat_id": "9", "parse_mode": "HTML"},
                               json={"chat_id": 1001, "text": "<b>up</b>"})
        assert status == 200
        assert recorder.arrivals()[0].parameters == {"chat_id": 1001, "parse_mode": "HTML",
                                                     "text": "<b>up</b>"}
    serve(test)


@pytest.mark.parametrize(("path", "params", "code", "description"), [
    ("/bot999:nope/getMe", {}, 401, "Unauthorized"),
    ("/bot999:nope/noSuchMethod", {}, 401, "Unauthorized"),
    (f"/bot{TOKEN}/noSuchMethod", {}, 404, "Not Found"),
    ("/", {}, 404, "Not Found"),
    (send(), {"chat_id": "@alice", "text": "x"}, 400, "Bad Request: chat not found"),
    (send(), {"chat_id": "@nobody", "text": "x"}, 400, "Bad Request: chat not found"),
    (send(), {"chat_id": "777", "text": "x"}, 400, "Bad Request: chat not found"),
    (send(), {"text": "x"}, 400, "Bad Request: chat_id is empty"),
    (send(), {"chat_id": "1003", "text": "x"}, 403, "Forbidden: bot was blocked by the user"),
    (send(), {"chat_id": "1002", "text": "x"}, 403,
     "Forbidden: bot can't initiate conversation with a user"),
    (send(), {"chat_id": "-42", "text": "x"}, 403,
     "Forbidden: bot is not a member of the group chat"),
    (send(), {"chat_id": "1001"}, 400, "Bad Request: message text is empty"),
    (send(), {"chat_id": "1001", "text": "  "}, 400, "Bad Request: message text is empty"),
    (send(), {"chat_id": "1001", "text": "x" * 4097}, 400, "Bad Request: message is too long"),
    (send(), {"chat_id": "1001", "text": "x", "parse_mode": "XML"}, 400,
     "Bad Request: unsupported parse_mode"),
    (f"/bot{TOKEN}/getChat", {"chat_id": "1002"}, 400, "Bad Request: chat not found"),
])
def test_error_answers(path: str, params: dict[str, str], code: int, description: str) -> None:
    async def test(call: Call, recorder: Recorder) -> None:
        status, answer = await call("POST", path, data=params)
        assert status == code
        assert answer == {"ok": False, "error_code": code, "description": description}
        if path != "/":
            assert recorder.arrivals()[-1].status == code
    serve(test)


def test_markup_is_refused_before_the_chat_is_looked_at() -> None:
    async def test(call: Call, recorder: Recorder) -> None:
        status, answer = await call("POST", send(), json={
            "chat_id": 777, "text": "example.com is down", "parse_mode": "MarkdownV2"})
        assert status == 400
        assert answer["description"] == ("Bad Request: can't parse entities: Character '.' is "
                                         "reserved and must be escaped with the preceding '\\'")
        assert not recorder.messages()
    serve(test)


@pytest.mark.parametrize(("mode", "text", "error"), [
    ("MarkdownV2", "site-a down", "Character '-' is reserved and must be escaped with the "
                                  "preceding '\\'"),
    ("MarkdownV2", "*down", "Can't find end of Bold entity at byte offset 0"),
    ("MarkdownV2", "🏟 🏟_abacaba", "Can't find end of Italic entity at byte offset 9"),
    ("markdown", "my_site.com down", "Can't find end of the entity starting at byte offset 2"),
    ("HTML", "a < b", 'Unsupported start tag "" at byte offset 2'),
    ("HTML", "down<br>now", 'Unsupported start tag "br" at byte offset 4'),
    ("HTML", "<b>down", 'Can\'t find end tag corresponding to start tag "b"'),
    ("HTML", "x <b", "Unclosed start tag at byte offset 2"),
    ("HTML", "x</b>", "Unexpected end tag at byte offset 1"),
    ("HTML", "<b>x</b", "Unclosed end tag at byte offset 4"),
    ("HTML", "<span>x</span>", 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
    ("HTML", "<b>down</i>", 'Unmatched end tag at byte offset 7, expected "</b>", found "</i>"'),
])
def test_markup_refusals(mode: str, text: str, error: str) -> None:
    with pytest.raises(Exception) as caught:
        parse_text(text, mode)
    assert str(caught.value) == f"Bad Request: can't parse entities: {error}"


@pytest.mark.parametrize(("mode", "text", "plain", "entities"), [
    ("MarkdownV2", r"*example\.com* is _down_ \(502\)", "example.com is down (502)",
     [{"offset": 0, "length": 11, "type": "bold"}, {"offset": 15, "length": 4, "type": "italic"}]),
    ("MarkdownV2", "[site](http://a.b/) `x.y`", "site x.y",
     [{"offset": 0, "length": 4, "type": "text_link", "url": "http://a.b/"},
      {"offset": 5, "length": 3, "type": "code"}]),
    ("Markdown", "*a.com* down \\_x", "a.com down _x",
     [{"offset": 0, "length": 5, "type": "bold"}]),
    ("HTML", "<b>a.com</b> &lt;502&gt; <a href='http://a.com'>open</a>", "a.com <502> open",
     [{"offset": 0, "length": 5, "type": "bold"},
      {"offset": 12, "length": 4, "type": "text_link", "url": "http://a.com"}]),
    ("", "*as is*", "*as is*", []),
])
def test_markup_parsed_to_text_and_entities(mode: str, text: str, plain: str,
                                            entities: list[dict[str, Any]]) -> None:
    assert parse_text(text, mode) == (plain, entities)


def test_message_ids_increase_per_chat_and_channel_by_username() -> None:
    async def test(call: Call, recorder: Recorder) -> None:
        ids = []
        for chat_id in ("1001", "1001", "@status_news", "1001", "-1001234"):
            status, answer = await call("POST", send(), data={"chat_id": chat_id, "text": "t"})
            assert status == 200, answer
            ids.append((answer["result"]["chat"]["id"], answer["result"]["message_id"]))
        assert ids == [(1001, 1), (1001, 2), (-1001234, 1), (1001, 3), (-1001234, 2)]
        assert "sender_chat" in recorder.messages()[2]
    serve(test)


def test_get_me_get_chat_and_get_updates() -> None:
    async def test(call: Call, recorder: Recorder) -> None:
        status, me = await call("GET", f"/bot{TOKEN}/getme")  # names are case-insensitive
        assert status == 200
        assert me["result"]["username"] == "uptime_alert_bot" and me["result"]["is_bot"]
        _, chat = await call("GET", f"/bot{TOKEN}/getChat", params={"chat_id": "1001"})
        assert chat["result"]["first_name"] == "Alice"
        _, none = await call("POST", f"/bot{TOKEN}/getUpdates", json={"timeout": 0})
        assert none == {"ok": True, "result": []}
        _, two = await call("POST", f"/bot{OTHER}/getUpdates")
        assert [u["update_id"] for u in two["result"]] == [1, 2]
        _, one = await call("POST", f"/bot{OTHER}/getUpdates", data={"offset": "2"})
        assert [u["message"]["text"] for u in one["result"]] == ["hi"]
        _, gone = await call("POST", f"/bot{OTHER}/getUpdates", data={"offset": "3"})
        assert gone["result"] == []
        assert [a.method for a in recorder.arrivals()] == [
            "getme", "getChat", "getUpdates", "getUpdates", "getUpdates", "getUpdates"]
    serve(test)


def test_bad_json_body_is_refused() -> None:
    async def test(call: Call, recorder: Recorder) -> None:
        status, answer = await call("POST", send(), data=b"{not json",
                                    headers={"Content-Type": "application/json"})
        assert status == 400 and answer["ok"] is False
    serve(test)


def test_recorder_is_read_safely_from_another_thread() -> None:
    seen: list[int] = []

    async def test(call: Call, recorder: Recorder) -> None:
        for n in range(3):
            await call("POST", send(), data={"chat_id": "1001", "text": f"m{n}"})
        reader = threading.Thread(target=lambda: seen.append(len(recorder.arrivals())))
        reader.start()
        reader.join(5)
        recorder.reset()
        assert recorder.arrivals() == []
    serve(test)
    assert seen == [3]



class _Served(AiohttpServer):
    """The fake as a suite serves it: from a thread, each body read first by the recording."""

    recorder = Recorder()

    def _app(self) -> web.Application:
        return create_botapi_app({TOKEN: BOT}, [ALICE], recorder=self.recorder)


def test_every_encoding_through_a_background_server_that_reads_bodies_first() -> None:
    params = {"chat_id": "1001", "text": "<b>a.com</b> down", "parse_mode": "HTML"}
    with _Served() as server:
        url = f"{server.base_url}{send()}"
        with httpx.Client(timeout=5) as client:
            answers = [client.get(url, params=params), client.post(url, json=params),
                       client.post(url, data=params),
                       client.post(url, data=params, files={"photo": ("a.png", b"12345")})]
        assert [a.status_code for a in answers] == [200] * 4, [a.text for a in answers]
        assert [a.json()["result"]["message_id"] for a in answers] == [1, 2, 3, 4]
        assert {a.json()["result"]["text"] for a in answers} == {"a.com down"}
        arrivals = server.recorder.arrivals()
        assert [a.encoding for a in arrivals] == ["query", "json", "form", "multipart"]
        assert arrivals[3].parameters == {**params, "photo": {"filename": "a.png", "size": 5}}


def test_get_updates_long_poll_waits_out_its_timeout() -> None:
    async def test(call: Call, recorder: Recorder) -> None:
        started = time.monotonic()
        status, answer = await call("GET", f"/bot{TOKEN}/getUpdates", params={"timeout": "1"})
        assert (status, answer) == (200, {"ok": True, "result": []})
        assert 0.9 <= time.monotonic() - started < 3
    serve(test)
