"""A fake Telegram Bot API for judging the alerts a program sends through a bot: an aiohttp
application that answers `/bot<token>/<method>` as api.telegram.org does, and records each call.

Rules: the bots and chats it knows are data (`BotAccount`, `Chat`), fixed when the application is
made; everything else is answered as the real API answers it: `{"ok": true, "result": ...}` or
`{"ok": false, "error_code": N, "description": "..."}` with the HTTP status N, for GET and POST,
with parameters from the query string and from an `application/json`,
`application/x-www-form-urlencoded` or `multipart/form-data` body (a body's parameter wins over
the query's of the same name; unknown parameters are ignored, as the real API ignores them).
Method names are case-insensitive, as they are there. A text with a parse_mode is parsed the way
Telegram parses it (its markup stripped, its entities returned; a mistake refused 400 with
Telegram's words) before the chat is looked at, as Telegram does. Every request is recorded, when
it has been answered, in the `Recorder` (`Arrival`: time, token, method, parameters as parsed,
body encoding, status, answer), which any thread may read. Not implemented: files, keyboards'
callbacks, webhooks beyond answering that none is set, the entities Telegram detects by itself
(URLs, mentions), rate limits (429), and every method a monitor's alert does not need (404).
"""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import itertools
import json
import re
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

MAX_TEXT = 4096  # characters of a message's text after its markup is parsed
LONG_POLL_CAP = 50.0  # seconds getUpdates waits at most for a timeout it is given
PARSE_MODES = ("html", "markdown", "markdownv2")
ChatType = Literal["private", "group", "supergroup", "channel"]


@dataclass(frozen=True)
class BotAccount:
    """A bot the fake knows, keyed by its token in `create_botapi_app`: what getMe answers, and the
    updates getUpdates hands out (each a dict as the real API sends it; an update without an
    `update_id` gets the next one in order)."""

    id: int
    username: str
    first_name: str = "Uptime alerts"
    updates: tuple[Mapping[str, Any], ...] = ()

    def user(self) -> dict[str, Any]:
        """The bot as a User object, as messages name it in `from`."""
        return {"id": self.id, "is_bot": True, "first_name": self.first_name,
                "username": self.username}


@dataclass(frozen=True)
class Chat:
    """A chat of the fake's Telegram: a user's private chat with bots, a group, a supergroup or
    a channel. `open_to` names (by username) the bots that may write there: for a user, the bots
    they started; for a group or a channel, the bots that are in it (None: every bot).
    `blocked` names the bots a user blocked after starting them."""

    id: int
    type: ChatType = "private"
    username: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    title: str | None = None
    open_to: frozenset[str] | None = None
    blocked: frozenset[str] = frozenset()

    def opens_to(self, bot: BotAccount) -> bool:
        """Whether `bot` may write here (before any block)."""
        return self.open_to is None or bot.username in self.open_to

    def as_object(self) -> dict[str, Any]:
        """The Chat object the API answers with: only the fields this chat has."""
        fields = {"id": self.id, "type": self.type, "title": self.title,
                  "username": self.username, "first_name": self.first_name,
                  "last_name": self.last_name}
        return {key: value for key, value in fields.items() if value is not None}


@dataclass(frozen=True)
class Arrival:
    """One request the fake answered: `at` is time.monotonic() when it arrived; `method` as the
    path named it; `parameters` as parsed (strings from a query, form or multipart body, JSON's
    own types from a JSON body; a file part as {"filename", "size"}); `encoding` is "query",
    "json", "form" or "multipart" (what the body was; "query" for none); `answer` the JSON sent."""

    at: float
    http_method: str
    token: str
    method: str
    parameters: Mapping[str, Any]
    encoding: str
    status: int
    answer: Mapping[str, Any]

    @property
    def ok(self) -> bool:
        """Whether the API accepted the call."""
        return bool(self.answer.get("ok"))


class Recorder:
    """What arrived at the fake, in order; filled by the server's thread, read by any."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._arrivals: list[Arrival] = []

    def add(self, arrival: Arrival) -> None:
        """Record one answered request."""
        with self._lock:
            self._arrivals.append(arrival)

    def arrivals(self) -> list[Arrival]:
        """A copy of every request recorded so far, oldest first."""
        with self._lock:
            return list(self._arrivals)

    def messages(self) -> list[dict[str, Any]]:
        """The Message objects of the sendMessage calls the API accepted, oldest first."""
        return [dict(a.answer["result"]) for a in self.arrivals()
                if a.ok and a.method.lower() == "sendmessage"]

    def reset(self) -> None:
        """Forget what was recorded."""
        with self._lock:
            self._arrivals.clear()


RECORDER = web.AppKey("botapi_recorder", Recorder)


class ApiError(Exception):
    """An answer of `{"ok": false}`: the HTTP status is the error code."""

    def __init__(self, code: int, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


def _bad(description: str) -> ApiError:
    return ApiError(400, f"Bad Request: {description}")


def _entities_error(reason: str) -> ApiError:
    return _bad(f"can't parse entities: {reason}")


# --- parsing the markup of a text: (plain text, entities), offsets in UTF-16 code units --------

def _utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _byte_offset(source: str, index: int) -> int:
    return len(source[:index].encode("utf-8"))


class _Builder:
    """The plain text being built and the entities found in it."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.entities: list[dict[str, Any]] = []
        self.length = 0  # UTF-16 units so far

    def add(self, text: str) -> None:
        self.parts.append(text)
        self.length += _utf16(text)

    def entity(self, kind: str, start: int, **extra: Any) -> None:
        if self.length > start:  # Telegram drops empty entities
            self.entities.append({"offset": start, "length": self.length - start,
                                  "type": kind, **extra})

    def result(self) -> tuple[str, list[dict[str, Any]]]:
        self.entities.sort(key=lambda e: (e["offset"], -e["length"]))
        return "".join(self.parts), self.entities


_V2_RESERVED = "_*[]()~`>#+-=|{}.!"
_V2_NAMES = {"bold": "Bold", "italic": "Italic", "underline": "Underline",
             "strikethrough": "Strikethrough", "spoiler": "Spoiler", "code": "Code",
             "pre": "Pre", "text_link": "TextUrl"}


def parse_markdown_v2(source: str) -> tuple[str, list[dict[str, Any]]]:
    """Parse a MarkdownV2 text as Telegram does (blockquotes and custom emoji aside): every
    reserved character outside an entity's markup must be escaped with a backslash."""
    out = _Builder()
    stack: list[tuple[str, int, int]] = []  # (entity type, start in out, index in source)
    i, n = 0, len(source)
    while i < n:
        c = source[i]
        nxt = source[i + 1] if i + 1 < n else ""
        if c == "\\" and nxt and ord(nxt) <= 126:
            out.add(nxt)
            i += 2
            continue
        top = stack[-1][0] if stack else ""
        if top in ("code", "pre"):  # inside code only the closing backticks are markup
            closing = "```" if top == "pre" else "`"
            if source.startswith(closing, i):
                kind, start, _ = stack.pop()
                out.entity(kind, start)
                i += len(closing)
            else:
                out.add(c)
                i += 1
            continue
        ends = {"bold": c == "*", "italic": c == "_" and nxt != "_",
                "underline": source.startswith("__", i), "strikethrough": c == "~",
                "spoiler": source.startswith("||", i), "text_link": c == "]"}
        if top and ends.get(top, False):
            kind, start, _ = stack.pop()
            if kind == "text_link":
                i += 1
                url = ""
                if source.startswith("(", i):
                    close = source.find(")", i)
                    if close < 0:
                        raise _entities_error(
                            f"Can't find end of a URL at byte offset {_byte_offset(source, i)}")
                    url = source[i + 1:close].replace("\\)", ")")
                    i = close + 1
                if url:
                    out.entity("text_link", start, url=url)
                continue
            out.entity(kind, start)
            i += 2 if kind in ("underline", "spoiler") else 1
            continue
        if c not in _V2_RESERVED:
            out.add(c)
            i += 1
            continue
        if c == "_":
            kind, width = ("underline", 2) if nxt == "_" else ("italic", 1)
        elif c == "*":
            kind, width = "bold", 1
        elif c == "~":
            kind, width = "strikethrough", 1
        elif c == "|" and nxt == "|":
            kind, width = "spoiler", 2
        elif c == "[":
            kind, width = "text_link", 1
        elif c == "`":
            kind, width = ("pre", 3) if source.startswith("```", i) else ("code", 1)
        elif c == ">" and (i == 0 or source[i - 1] == "\n"):
            i += 1  # a quoted line: the mark is dropped (the blockquote entity is not made)
            continue
        else:
            raise _entities_error(
                f"Character '{c}' is reserved and must be escaped with the preceding '\\'")
        stack.append((kind, out.length, i))
        i += width
        if kind == "pre":  # its first line, when more follows, names the language
            newline = source.find("\n", i)
            if newline >= 0 and re.fullmatch(r"[^\s`]*", source[i:newline]):
                i = newline + 1
    if stack:
        kind, _, at = stack[-1]
        raise _entities_error(
            f"Can't find end of {_V2_NAMES[kind]} entity at byte offset "
            f"{_byte_offset(source, at)}")
    return out.result()


def parse_markdown(source: str) -> tuple[str, list[dict[str, Any]]]:
    """Parse a legacy Markdown text as Telegram does: `*bold*`, `_italic_`, `` `code` ``,
    ```` ```pre``` ```` and `[text](url)`, not nested; `\\` escapes `_*`[` only."""
    out = _Builder()
    i, n = 0, len(source)
    kinds = {"*": "bold", "_": "italic", "`": "code", "[": "text_link"}
    while i < n:
        c = source[i]
        if c == "\\" and i + 1 < n and source[i + 1] in "_*`[":
            out.add(source[i + 1])
            i += 2
            continue
        if c not in kinds:
            out.add(c)
            i += 1
            continue
        begin = i
        if source.startswith("```", i):
            end_mark, kind = "```", "pre"
            i += 3
        else:
            end_mark, kind = ("]" if c == "[" else c), kinds[c]
            i += 1
        end = source.find(end_mark, i)
        if end < 0:
            raise _entities_error("Can't find end of the entity starting at byte offset "
                                  f"{_byte_offset(source, begin)}")
        start = out.length
        out.add(source[i:end])
        i = end + len(end_mark)
        if kind != "text_link":
            out.entity(kind, start)
        elif source.startswith("(", i) and source.find(")", i) > 0:
            close = source.find(")", i)
            out.entity(kind, start, url=source[i + 1:close])
            i = close + 1
    return out.result()


_HTML_TAGS = {"b": "bold", "strong": "bold", "i": "italic", "em": "italic",
              "u": "underline", "ins": "underline", "s": "strikethrough",
              "strike": "strikethrough", "del": "strikethrough", "tg-spoiler": "spoiler",
              "span": "spoiler", "a": "text_link", "code": "code", "pre": "pre",
              "blockquote": "blockquote", "tg-emoji": "custom_emoji"}
_HTML_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"', "apos": "'", "nbsp": "\xa0"}
_ATTRIBUTE = re.compile(r"""\s*([a-zA-Z-]+)\s*(?:=\s*("[^"]*"|'[^']*'|[^\s"'>]+))?""")


def _unescape_html(text: str) -> str:
    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith("#"):
            number = int(name[2:], 16) if name[1] in ("x", "X") else int(name[1:])
            return chr(number) if 0 < number < 0x110000 else match.group(0)
        return _HTML_ENTITIES.get(name, match.group(0))  # an unknown one stays as written

    return re.sub(r"&(#[xX][0-9a-fA-F]+|#[0-9]+|[a-zA-Z]+);", one, text)


def parse_html(source: str) -> tuple[str, list[dict[str, Any]]]:
    """Parse an HTML text as Telegram does: only its few tags (no <br>, no <p>), every `<` that
    is not one of them refused, `&lt;`-style and numeric entities decoded."""
    out = _Builder()
    stack: list[tuple[str, str, int, dict[str, str]]] = []  # (tag, type, start, attributes)
    i, n = 0, len(source)
    while i < n:
        lt = source.find("<", i)
        if lt < 0:
            lt = n
        if lt > i:
            out.add(_unescape_html(source[i:lt]))
            i = lt
            continue
        at = _byte_offset(source, i)
        if source.startswith("</", i):
            if not stack:
                raise _entities_error(f"Unexpected end tag at byte offset {at}")
            gt = source.find(">", i)
            if gt < 0:
                raise _entities_error(f"Unclosed end tag at byte offset {at}")
            name = source[i + 2:gt].strip().lower()
            tag, kind, start, attributes = stack.pop()
            if name != tag:
                raise _entities_error(f'Unmatched end tag at byte offset {at}, expected '
                                      f'"</{tag}>", found "</{name}>"')
            extra: dict[str, Any] = {}
            if kind == "text_link":
                extra["url"] = attributes.get("href", "")
            elif kind == "pre" and attributes.get("language"):
                extra["language"] = attributes["language"]
            if kind != "text_link" or extra["url"]:
                out.entity(kind, start, **extra)
            i = gt + 1
            continue
        name_end = i + 1  # the tag's name runs to a space or ">", as Telegram reads it
        while name_end < n and not source[name_end].isspace() and source[name_end] != ">":
            name_end += 1
        if name_end == n:
            raise _entities_error(f"Unclosed start tag at byte offset {at}")
        name = source[i + 1:name_end].lower()
        if name not in _HTML_TAGS:
            raise _entities_error(f'Unsupported start tag "{name}" at byte offset {at}')
        gt = source.find(">", name_end)
        if gt < 0:
            raise _entities_error(f"Unclosed start tag at byte offset {at}")
        attributes = {m.group(1).lower(): _unescape_html((m.group(2) or "").strip("\"'"))
                      for m in _ATTRIBUTE.finditer(source[name_end:gt])}
        if name == "span" and attributes.get("class") != "tg-spoiler":
            raise _entities_error(f'Tag "span" must have class "tg-spoiler" at byte offset {at}')
        if name == "code" and stack and stack[-1][0] == "pre":  # <pre><code class=language-X>
            language = attributes.get("class", "")
            if language.startswith("language-"):
                stack[-1][3]["language"] = language.removeprefix("language-")
        stack.append((name, _HTML_TAGS[name], out.length, attributes))
        i = gt + 1
    if stack:
        raise _entities_error(
            f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    return out.result()


def parse_text(text: str, parse_mode: str) -> tuple[str, list[dict[str, Any]]]:
    """The plain text and entities of `text` under `parse_mode` ("" for none; case-insensitive,
    as Telegram takes it); ApiError 400 for a mode it does not know or markup it refuses."""
    mode = parse_mode.lower()
    if mode == "":
        return text, []
    if mode not in PARSE_MODES:
        raise _bad("unsupported parse_mode")
    parser = {"html": parse_html, "markdown": parse_markdown,
              "markdownv2": parse_markdown_v2}[mode]
    return parser(text)


# --- the application --------------------------------------------------------------------------

@dataclass
class _State:
    """What one application knows and keeps: its bots, chats, message ids and pending updates."""

    bots: Mapping[str, BotAccount]
    chats: Sequence[Chat]
    recorder: Recorder
    next_message_id: dict[int, int] = field(default_factory=dict)
    pending: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for token, bot in self.bots.items():
            numbers = itertools.count(1)
            updates = []
            for update in bot.updates:
                number = next(numbers)
                updates.append({"update_id": number, **update})
            self.pending[token] = updates

    def find_chat(self, bot: BotAccount, chat_id: Any) -> Chat:
        """The chat `chat_id` names for `bot`: its id, or `@username` of a public group or
        channel (the Bot API does not resolve a user's @username: "chat not found")."""
        if chat_id is None or (isinstance(chat_id, str) and not chat_id.strip()):
            raise _bad("chat_id is empty")
        wanted = str(chat_id).strip()
        for chat in self.chats:
            if wanted.startswith("@"):
                if (chat.type != "private" and chat.username is not None
                        and chat.username.lower() == wanted[1:].lower()):
                    return chat
            elif re.fullmatch(r"-?\d+", wanted) and chat.id == int(wanted):
                return chat
        raise _bad("chat not found")

    def writable_chat(self, bot: BotAccount, chat_id: Any) -> Chat:
        """The chat `chat_id` names, when `bot` may write there; else the API's refusal."""
        chat = self.find_chat(bot, chat_id)
        if chat.type == "private":
            if bot.username in chat.blocked:
                raise ApiError(403, "Forbidden: bot was blocked by the user")
            if not chat.opens_to(bot):
                raise ApiError(403, "Forbidden: bot can't initiate conversation with a user")
        elif not chat.opens_to(bot):
            kind = "group" if chat.type == "group" else chat.type
            raise ApiError(403, f"Forbidden: bot is not a member of the {kind} chat")
        return chat


def _text_of(value: Any) -> str:
    if value is None or isinstance(value, (dict, list)):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


async def _get_me(state: _State, bot: BotAccount, params: Mapping[str, Any]) -> Any:
    return {**bot.user(), "can_join_groups": True, "can_read_all_group_messages": False,
            "supports_inline_queries": False, "can_connect_to_business": False,
            "has_main_web_app": False}


async def _send_message(state: _State, bot: BotAccount, params: Mapping[str, Any]) -> Any:
    # Telegram reads the text before it looks at the chat: bad markup is refused for any chat.
    text, entities = parse_text(_text_of(params.get("text")),
                                _text_of(params.get("parse_mode")))
    if not text.strip():
        raise _bad("message text is empty")
    if len(text) > MAX_TEXT:
        raise _bad("message is too long")
    chat = state.writable_chat(bot, params.get("chat_id"))
    message_id = state.next_message_id.get(chat.id, 1)
    state.next_message_id[chat.id] = message_id + 1
    message: dict[str, Any] = {"message_id": message_id, "from": bot.user(),
                               "chat": chat.as_object(), "date": int(time.time()), "text": text}
    if chat.type == "channel":
        del message["from"]  # a channel's post has a sender_chat, not a sender
        message["sender_chat"] = chat.as_object()
    if entities:
        message["entities"] = entities
    return message


async def _get_chat(state: _State, bot: BotAccount, params: Mapping[str, Any]) -> Any:
    chat = state.find_chat(bot, params.get("chat_id"))
    if not chat.opens_to(bot):  # a bot knows only the chats it has met
        raise _bad("chat not found")
    return {**chat.as_object(), "accent_color_id": 0, "max_reaction_count": 11}


def _integer(params: Mapping[str, Any], name: str, default: int) -> int:
    value = params.get(name)
    if value is None or value == "":
        return default
    try:
        return int(str(value))
    except ValueError:
        raise _bad(f'invalid {name} specified') from None


async def _get_updates(state: _State, bot: BotAccount, params: Mapping[str, Any],
                       token: str) -> Any:
    pending = state.pending[token]
    offset = _integer(params, "offset", 0)
    limit = min(max(_integer(params, "limit", 100), 1), 100)
    timeout = min(max(_integer(params, "timeout", 0), 0), LONG_POLL_CAP)
    if offset < 0:  # the last -offset updates; earlier ones are forgotten
        del pending[:max(len(pending) + offset, 0)]
    elif offset > 0:  # an offset confirms every update before it
        pending[:] = [u for u in pending if u["update_id"] >= offset]
    if not pending and timeout:
        await asyncio.sleep(timeout)  # nothing more will come: the long poll runs out
    return pending[:limit]


async def _delete_webhook(state: _State, bot: BotAccount, params: Mapping[str, Any]) -> Any:
    return True


async def _get_webhook_info(state: _State, bot: BotAccount, params: Mapping[str, Any],
                            token: str) -> Any:
    return {"url": "", "has_custom_certificate": False,
            "pending_update_count": len(state.pending[token])}


_METHODS = {"getme": _get_me, "sendmessage": _send_message, "getchat": _get_chat,
            "deletewebhook": _delete_webhook}
_METHODS_WITH_TOKEN = {"getupdates": _get_updates, "getwebhookinfo": _get_webhook_info}


def _multipart(content_type: str, body: bytes) -> dict[str, Any]:
    """The fields of a multipart/form-data body. Parsed from its bytes (by the stdlib's e-mail
    parser: the same MIME format), not streamed, so that a server that has read the body first
    (conformance._servers records every body) still hands it over whole."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    fields: dict[str, Any] = {}
    if not message.is_multipart():
        raise _bad("can't parse multipart/form-data body")
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        filename = part.get_filename()
        if filename is not None:
            fields[name] = {"filename": filename, "size": len(data)}
        else:
            fields[name] = data.decode(part.get_content_charset() or "utf-8", "replace")
    return fields


async def _parameters(request: web.Request) -> tuple[dict[str, Any], str]:
    """The call's parameters (the query's, then the body's over them) and the body's encoding."""
    params: dict[str, Any] = dict(request.query)
    # body_exists, not can_read_body: a server that recorded the body first has read it all
    if not request.body_exists:
        return params, "query"
    content_type = request.content_type
    if content_type == "application/json":
        raw = await request.read()
        if not raw.strip():
            return params, "json"
        try:
            body = json.loads(raw)
        except ValueError:
            raise _bad("can't parse JSON object") from None
        if not isinstance(body, dict):
            raise _bad("can't parse JSON object")
        return {**params, **body}, "json"
    if content_type == "multipart/form-data":
        params.update(_multipart(request.headers.get("Content-Type", ""), await request.read()))
        return params, "multipart"
    if content_type == "application/x-www-form-urlencoded":
        form = await request.post()
        params.update({key: value for key, value in form.items() if isinstance(value, str)})
        return params, "form"
    await request.read()  # another body: Telegram ignores it, and so do we
    return params, "query"


def _answer(status: int, payload: dict[str, Any]) -> web.Response:
    return web.json_response(payload, status=status)


def create_botapi_app(bots: Mapping[str, BotAccount], chats: Iterable[Chat], *,
               recorder: Recorder | None = None) -> web.Application:
    """The fake Bot API for `bots` (by token) and `chats`, recording into `recorder` (a new one
    when None; `app[RECORDER]` is it either way)."""
    state = _State(dict(bots), tuple(chats), recorder or Recorder())
    app = web.Application()
    app[RECORDER] = state.recorder

    async def call(request: web.Request) -> web.Response:
        arrived = time.monotonic()
        token, method = request.match_info["token"], request.match_info["method"]
        params: dict[str, Any] = dict(request.query)
        encoding = "query"
        try:
            bot = state.bots.get(token)
            if bot is None:
                raise ApiError(401, "Unauthorized")
            name = method.lower()
            if name not in _METHODS and name not in _METHODS_WITH_TOKEN:
                raise ApiError(404, "Not Found")
            params, encoding = await _parameters(request)
            if name in _METHODS:
                result = await _METHODS[name](state, bot, params)
            else:
                result = await _METHODS_WITH_TOKEN[name](state, bot, params, token)
            status, payload = 200, {"ok": True, "result": result}
        except ApiError as error:
            status = error.code
            payload = {"ok": False, "error_code": error.code, "description": error.description}
        state.recorder.add(Arrival(arrived, request.method, token, method, params, encoding,
                                   status, payload))
        return _answer(status, payload)

    async def elsewhere(request: web.Request) -> web.Response:
        return _answer(404, {"ok": False, "error_code": 404, "description": "Not Found"})

    app.router.add_route("GET", "/bot{token}/{method}", call)
    app.router.add_route("POST", "/bot{token}/{method}", call)
    app.router.add_route("*", "/{tail:.*}", elsewhere)
    return app
