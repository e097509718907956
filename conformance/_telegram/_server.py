"""A Telegram of our own on loopback: an MTProto 2.0 server that an unmodified Telethon
`TelegramClient` talks to, answering from a scripted world and recording every call.

Rules:
- Standalone: it imports the standard library and Telethon, nothing of the suite, because the
  suite starts it under the program's own interpreter (`python _server.py WORLD ...`) so that
  it speaks the TL layer of the Telethon the program has installed.
- No login and no key exchange: the auth key is made here and handed to the program in a
  session (a StringSession string, and a SQLite `.session` file) pointing at our address.
- Objects are Telethon's own TL classes, built by keyword (`_make`), missing required fields
  filled by their annotation, so one file serves many Telethon versions.
- Every request is logged (one JSON line: method, peer, arguments, answer) before it is
  answered; anything not implemented is answered with RPC error 400 `METHOD_NOT_IMPLEMENTED_*`
  naming it. Faults are scripted: a FLOOD_WAIT_X for the n-th history request, and a dropped
  connection on the n-th history request (its answer never sent), counting one peer's.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import datetime as dt
import gzip
import hashlib
import inspect
import json
import os
import re
import signal
import struct
import sys
import time
import zlib
from pathlib import Path
from typing import Any

from telethon import __version__ as TELETHON_VERSION
from telethon.crypto import AES, AuthKey
from telethon.extensions import BinaryReader
from telethon.network.mtprotostate import MTProtoState
from telethon.sessions import SQLiteSession, StringSession
from telethon.tl import types
from telethon.tl.alltlobjects import LAYER

DC_ID = 2
RPC_RESULT = 0xF35C6D01
CONTAINER = 0x73F1F8DC
GZIP_PACKED = 0x3072CFA1
VECTOR = 0x1CB5C415
MSGS_ACK = 0x62D6B459
PAGE_MAX = 100
# Methods that wrap the real query: their answer is the inner query's.
WRAPPERS = {"InvokeWithLayerRequest", "InitConnectionRequest", "InvokeWithoutUpdatesRequest",
            "InvokeAfterMsgRequest", "InvokeAfterMsgsRequest", "InvokeWithTakeoutRequest"}


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _when(epoch: float | None) -> dt.datetime | None:
    return None if epoch is None else dt.datetime.fromtimestamp(epoch, dt.UTC)


def _filler(annotation: Any) -> Any:
    """A value for a required field nobody named, by its annotation (a string in some
    Telethon versions, a typing object in others)."""
    text = str(annotation)
    if "List" in text or "list" in text:
        return []
    if "datetime" in text:
        return _now()
    if "bool" in text:
        return False
    if "bytes" in text:
        return b""
    if "str" in text:
        return ""
    if "float" in text:
        return 0.0
    if "int" in text:
        return 0
    if "PeerNotifySettings" in text:
        return _make(types.PeerNotifySettings)
    if "ChatPhoto" in text:
        return types.ChatPhotoEmpty()
    if "UserProfilePhoto" in text:
        return types.UserProfilePhotoEmpty()
    if "FileType" in text:
        return types.storage.FileUnknown()
    if "ExportedChatInvite" in text or "ChatParticipants" in text:
        return None
    raise TypeError(f"no default for a required field of type {text}")


def _make(cls: type, **given: Any) -> Any:
    """Telethon's `cls` from the fields we know; fields this Telethon does not have are
    dropped, required ones we do not know are filled."""
    params = inspect.signature(cls).parameters
    args = {k: v for k, v in given.items() if k in params}
    for name, p in params.items():
        if (name == "self" or name in args or p.default is not inspect.Parameter.empty
                or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)):
            continue
        args[name] = _filler(p.annotation)
    return cls(**args)


def _method(request: Any) -> str:
    """The TL method name of a request: `messages.GetHistoryRequest` -> `messages.getHistory`."""
    name = type(request).__name__
    if name.endswith("Request"):
        name = name[: -len("Request")]
    name = name[:1].lower() + name[1:]
    space = type(request).__module__.rsplit(".", 1)[-1]
    return name if space == "functions" else f"{space}.{name}"


class RpcError(Exception):
    """An RPC error to answer a request with (`error_code`, `error_message`)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Dropped(Exception):
    """The scripted dropped connection: close it, answer nothing."""


class World:
    """The scripted Telegram: the account, users, chats and their messages (`world.json`,
    made by the suite), answered as Telethon's TL objects."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.me = data["self"]
        self.users = {u["id"]: u for u in [self.me, *data["users"]]}
        self.chats = {c["id"]: c for c in data["chats"]}
        # Messages newest first, as Telegram pages them.
        self.history = {c["id"]: sorted(c["messages"], key=lambda m: -m["id"])
                        for c in data["chats"]}
        self.media: dict[int, tuple[int, dict[str, Any]]] = {}
        for chat in data["chats"]:
            for m in chat["messages"]:
                if m.get("media"):
                    self.media[m["media"]["id"]] = (chat["id"], m)
        self.sent = 0

    # --- peers ---------------------------------------------------------------------------
    def user(self, uid: int) -> Any:
        u = self.users[uid]
        return _make(types.User, id=uid, is_self=uid == self.me["id"], access_hash=u["hash"],
                     first_name=u.get("first_name"), last_name=u.get("last_name"),
                     username=u.get("username"), phone=u.get("phone"),
                     contact=u.get("contact", False))

    def chat(self, cid: int) -> Any:
        c = self.chats[cid]
        date = _when(c["date"])
        if c["kind"] == "group":
            return _make(types.Chat, id=cid, title=c["title"], photo=types.ChatPhotoEmpty(),
                         participants_count=len(c["members"]), date=date, version=1)
        return _make(types.Channel, id=cid, title=c["title"], photo=types.ChatPhotoEmpty(),
                     date=date, access_hash=c["hash"], username=c.get("username"),
                     megagroup=c["kind"] == "megagroup", broadcast=c["kind"] == "channel",
                     participants_count=len(c.get("members", [])))

    def peer(self, cid: int) -> Any:
        kind = self.chats[cid]["kind"]
        if kind == "user":
            return types.PeerUser(user_id=self.chats[cid]["user"])
        if kind == "group":
            return types.PeerChat(chat_id=cid)
        return types.PeerChannel(channel_id=cid)

    def entities(self, cids: list[int]) -> tuple[list[Any], list[Any]]:
        """The chats and users that answers about `cids` carry along."""
        chats, uids = [], {self.me["id"]}
        for cid in cids:
            c = self.chats[cid]
            if c["kind"] == "user":
                uids.add(c["user"])
            else:
                chats.append(self.chat(cid))
            uids.update(c.get("members", []))
            uids.update(m["from"] for m in c["messages"] if m.get("from"))
        return chats, [self.user(u) for u in sorted(uids)]

    def chat_of(self, input_peer: Any) -> int | None:
        """Our chat id for an InputPeer / InputChannel / InputUser, or None."""
        name = type(input_peer).__name__
        if name in ("InputPeerChannel", "InputChannel"):
            cid = int(input_peer.channel_id)
            return cid if cid in self.chats else None
        if name == "InputPeerChat":
            return int(input_peer.chat_id) if input_peer.chat_id in self.chats else None
        if name in ("InputPeerUser", "InputUser"):
            for cid, c in self.chats.items():
                if c["kind"] == "user" and c["user"] == input_peer.user_id:
                    return int(cid)
        return None

    def label(self, cid: int) -> str:
        """How the log names one of our chats (as peer_label names its InputPeer)."""
        c = self.chats[cid]
        if c["kind"] == "user":
            return f"user:{c['user']}"
        return f"{'chat' if c['kind'] == 'group' else 'channel'}:{cid}"

    def peer_label(self, input_peer: Any) -> str | None:
        name = type(input_peer).__name__
        if name in ("InputPeerSelf", "InputUserSelf"):
            return "self"
        for field, kind in (("channel_id", "channel"), ("chat_id", "chat"), ("user_id", "user")):
            if hasattr(input_peer, field):
                return f"{kind}:{getattr(input_peer, field)}"
        return None

    # --- messages ------------------------------------------------------------------------
    def media_of(self, m: dict[str, Any]) -> Any:
        media = m.get("media")
        if not media:
            return None
        date = _when(m["date"])
        size = len(base64.b64decode(media["data"]))
        if media["kind"] == "photo":
            photo = _make(types.Photo, id=media["id"], access_hash=media["id"] ^ 0x5A5A,
                          file_reference=b"ref", date=date, dc_id=DC_ID,
                          sizes=[_make(types.PhotoSize, type="x", w=640, h=480, size=size)])
            return _make(types.MessageMediaPhoto, photo=photo)
        attributes: list[Any] = [_make(types.DocumentAttributeFilename, file_name=media["name"])]
        if media["kind"] in ("audio", "voice"):
            attributes.append(_make(types.DocumentAttributeAudio, duration=media["duration"],
                                    voice=media["kind"] == "voice",
                                    title=media.get("title"), performer=media.get("performer")))
        if media["kind"] in ("video", "round"):
            attributes.append(_make(types.DocumentAttributeVideo, duration=media["duration"],
                                    w=320, h=240, round_message=media["kind"] == "round"))
        document = _make(types.Document, id=media["id"], access_hash=media["id"] ^ 0x5A5A,
                         file_reference=b"ref", date=date, mime_type=media["mime"], size=size,
                         dc_id=DC_ID, attributes=attributes)
        return _make(types.MessageMediaDocument, document=document)

    def message(self, cid: int, m: dict[str, Any]) -> Any:
        peer = self.peer(cid)
        out = m.get("from") == self.me["id"]
        from_id = types.PeerUser(user_id=m["from"]) if m.get("from") else None
        if self.chats[cid]["kind"] == "user" and not out:
            from_id = None  # as Telegram sends them: the peer is the sender
        reply = (_make(types.MessageReplyHeader, reply_to_msg_id=m["reply_to"])
                 if m.get("reply_to") else None)
        if m.get("service"):
            action = self.action(cid, m["service"])
            return _make(types.MessageService, id=m["id"], peer_id=peer, date=_when(m["date"]),
                         action=action, from_id=from_id, out=out, reply_to=reply)
        return _make(types.Message, id=m["id"], peer_id=peer, date=_when(m["date"]),
                     message=m.get("text", ""), out=out, from_id=from_id, reply_to=reply,
                     media=self.media_of(m), edit_date=_when(m.get("edit_date")),
                     entities=[])

    def action(self, cid: int, service: dict[str, Any]) -> Any:
        kind = service["kind"]
        if kind == "create":
            created = (types.MessageActionChatCreate if self.chats[cid]["kind"] == "group"
                       else types.MessageActionChannelCreate)
            return _make(created, title=service["title"], users=service.get("users", []))
        if kind == "join":
            return _make(types.MessageActionChatAddUser, users=service["users"])
        if kind == "title":
            return _make(types.MessageActionChatEditTitle, title=service["title"])
        if kind == "pin":
            return _make(types.MessageActionPinMessage)
        return _make(types.MessageActionEmpty)

    def page(self, cid: int, offset_id: int, offset_date: dt.datetime | None, add_offset: int,
             limit: int, max_id: int, min_id: int,
             keep: Any = None) -> tuple[list[dict[str, Any]], int]:
        """Telegram's paging of a history (newest first): start below `offset_id` (or
        `offset_date`), shift by `add_offset` (negative: newer), take `limit`, then drop ids
        outside (`min_id`, `max_id`). Returns the page and the count of the whole list."""
        msgs = [m for m in self.history[cid] if keep is None or keep(m)]
        if offset_id:
            base = sum(1 for m in msgs if m["id"] >= offset_id)
        elif offset_date and offset_date.timestamp() > 0:  # the wire's 0 reads as 1970
            stamp = offset_date.timestamp()
            base = sum(1 for m in msgs if m["date"] >= stamp)
        else:
            base = 0
        limit = max(0, min(limit or PAGE_MAX, PAGE_MAX))
        start, end = base + add_offset, base + add_offset + limit
        page = msgs[max(0, start):max(0, end)]
        page = [m for m in page if (not max_id or m["id"] < max_id) and m["id"] > min_id]
        return page, len(msgs)

    def messages_answer(self, cid: int, page: list[dict[str, Any]], count: int,
                        whole: bool = False) -> Any:
        chats, users = self.entities([cid])
        msgs = [self.message(cid, m) for m in page]
        if self.chats[cid]["kind"] in ("megagroup", "channel"):
            return _make(types.messages.ChannelMessages, pts=1, count=count, messages=msgs,
                         topics=[], chats=chats, users=users)
        if whole:
            return _make(types.messages.Messages, messages=msgs, chats=chats, users=users)
        return _make(types.messages.MessagesSlice, count=count, messages=msgs, chats=chats,
                     users=users)


KIND_FILTERS = {
    "InputMessagesFilterPhotos": {"photo"},
    "InputMessagesFilterVideo": {"video", "round"},
    "InputMessagesFilterPhotoVideo": {"photo", "video"},
    "InputMessagesFilterDocument": {"document", "audio", "video"},
    "InputMessagesFilterMusic": {"audio"},
    "InputMessagesFilterVoice": {"voice"},
    "InputMessagesFilterRoundVoice": {"voice", "round"},
    "InputMessagesFilterRoundVideo": {"round"},
}


class Telegram:
    """The server: accepts Telethon's TCP connections (full, intermediate or abridged
    transport), decrypts with the shared key, answers, logs."""

    def __init__(self, world: World, key: bytes, log: Any, flood_at: int = 0,
                 flood_seconds: int = 0, drop_at: int = 0,
                 fault_peer: str | None = None) -> None:
        self.world = world
        self.key = AuthKey(key)
        self.log = log
        self.flood_at, self.flood_seconds, self.drop_at = flood_at, flood_seconds, drop_at
        self.fault_peer = fault_peer  # faults count this peer's history requests only
        self.history_calls = 0
        self.connections = 0
        self.port = 0
        self.started = time.time()

    def record(self, entry: dict[str, Any]) -> None:
        entry["t"] = round(time.time() - self.started, 4)
        self.log.write(json.dumps(entry) + "\n")
        self.log.flush()

    # --- transport -----------------------------------------------------------------------
    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        conn = self.connections
        self.record({"event": "connect", "conn": conn})
        session = _Session(self, conn, writer)
        try:
            first = await reader.readexactly(1)
            if first == b"\xef":
                mode = "abridged"
            else:
                rest = await reader.readexactly(3)
                head = first + rest
                if head in (b"\xee\xee\xee\xee", b"\xdd\xdd\xdd\xdd"):
                    mode, head = "intermediate", b""
                else:
                    mode = "full"
            session.mode = mode
            while True:
                if mode == "abridged":
                    n = (await reader.readexactly(1))[0]
                    if n >= 0x7F:
                        n = int.from_bytes(await reader.readexactly(3), "little")
                    payload = await reader.readexactly(n * 4)
                elif mode == "intermediate":
                    n = struct.unpack("<i", await reader.readexactly(4))[0]
                    payload = await reader.readexactly(n)
                else:
                    raw = head if head else await reader.readexactly(4)
                    head = b""
                    n = struct.unpack("<i", raw)[0]
                    rest_ = await reader.readexactly(n - 4)
                    payload = rest_[4:-4]  # drop the sequence number and the CRC
                await session.packet(payload)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except Dropped:
            self.record({"event": "drop", "conn": conn})
        finally:
            writer.close()
            self.record({"event": "close", "conn": conn})


class _Session:
    """One connection's MTProto state: the client's session id, our message ids."""

    def __init__(self, server: Telegram, conn: int, writer: asyncio.StreamWriter) -> None:
        self.server, self.conn, self.writer = server, conn, writer
        self.mode = "full"
        self.session_id = 0
        self.sent_seq = 0
        self.last_msg_id = 0
        self.out_seq = 0

    # --- crypto --------------------------------------------------------------------------
    def decrypt(self, payload: bytes) -> tuple[int, bytes]:
        key = self.server.key
        if struct.unpack("<Q", payload[:8])[0] != key.key_id:
            raise ConnectionError("a message under an auth key we did not give")
        msg_key = payload[8:24]
        aes_key, aes_iv = MTProtoState._calc_key(key.key, msg_key, True)
        plain = AES.decrypt_ige(payload[24:], aes_key, aes_iv)
        if hashlib.sha256(key.key[88:120] + plain).digest()[8:24] != msg_key:
            raise ConnectionError("msg_key does not match")
        _salt, session_id, msg_id, _seq, length = struct.unpack("<qqqii", plain[:32])
        self.session_id = session_id
        return msg_id, plain[32:32 + length]

    def msg_id(self) -> int:
        now = time.time()
        new = (int(now) << 32) | ((int((now % 1) * 2**32)) & ~3) | 1
        if new <= self.last_msg_id:
            new = self.last_msg_id + 4
        self.last_msg_id = new
        return new

    async def send(self, body: bytes) -> None:
        key = self.server.key.key
        self.out_seq += 1
        data = struct.pack("<qqqii", 0, self.session_id, self.msg_id(), self.out_seq * 2 + 1,
                           len(body)) + body
        padding = os.urandom(-(len(data) + 12) % 16 + 12)
        msg_key = hashlib.sha256(key[96:128] + data + padding).digest()[8:24]
        aes_key, aes_iv = MTProtoState._calc_key(key, msg_key, False)
        packet = (struct.pack("<Q", self.server.key.key_id) + msg_key
                  + AES.encrypt_ige(data + padding, aes_key, aes_iv))
        if self.mode == "abridged":
            n = len(packet) // 4
            head = bytes([n]) if n < 0x7F else b"\x7f" + n.to_bytes(3, "little")
            frame = head + packet
        elif self.mode == "intermediate":
            frame = struct.pack("<i", len(packet)) + packet
        else:
            frame = struct.pack("<ii", len(packet) + 12, self.sent_seq) + packet
            frame += struct.pack("<I", zlib.crc32(frame))
            self.sent_seq += 1
        self.writer.write(frame)
        await self.writer.drain()

    # --- messages ------------------------------------------------------------------------
    async def packet(self, payload: bytes) -> None:
        if len(payload) == 4:
            raise ConnectionError("transport error from the client")
        msg_id, body = self.decrypt(payload)
        await self.body(msg_id, body)

    async def body(self, msg_id: int, body: bytes) -> None:
        cid = struct.unpack("<I", body[:4])[0]
        if cid == CONTAINER:
            reader = BinaryReader(body[4:])
            for _ in range(reader.read_int()):
                inner_id = reader.read_long()
                reader.read_int()
                inner = reader.read(reader.read_int())
                await self.body(inner_id, inner)
            return
        if cid == GZIP_PACKED:
            data = BinaryReader(body[4:]).tgread_bytes()
            await self.body(msg_id, gzip.decompress(data))
            return
        if cid == MSGS_ACK:
            return
        request = BinaryReader(body).tgread_object()
        await self.answer(msg_id, request)

    async def answer(self, msg_id: int, request: Any) -> None:
        query, layer = request, None
        while type(query).__name__ in WRAPPERS:
            if type(query).__name__ == "InvokeWithLayerRequest":
                layer = query.layer
            if type(query).__name__ == "InitConnectionRequest":
                # The client's layer beside ours: a Telethon of another layer reads our
                # answers wrong, and the suite says so.
                self.server.record({"conn": self.conn, "method": "initConnection",
                                    "api_id": query.api_id, "layer": layer,
                                    "server_layer": LAYER})
            query = query.query
        name = _method(query)
        if name in ("ping", "pingDelayDisconnect"):
            await self.send(bytes(types.Pong(msg_id=msg_id, ping_id=query.ping_id)))
            return
        entry: dict[str, Any] = {"conn": self.conn, "method": name}
        try:
            result = _handle(self.server, query, entry)
        except RpcError as e:
            entry["answer"] = e.message
            self.server.record(entry)
            error = types.RpcError(error_code=e.code, error_message=e.message)
            await self.send(struct.pack("<Iq", RPC_RESULT, msg_id) + bytes(error))
            return
        except Dropped:
            entry["answer"] = "dropped"
            self.server.record(entry)
            raise
        except Exception as e:
            entry["answer"] = f"server error: {type(e).__name__}: {e}"
            self.server.record(entry)
            error = types.RpcError(error_code=500, error_message="INTERNAL_SERVER_ERROR")
            await self.send(struct.pack("<Iq", RPC_RESULT, msg_id) + bytes(error))
            return
        entry.setdefault("answer", "ok")
        self.server.record(entry)
        await self.send(struct.pack("<Iq", RPC_RESULT, msg_id) + _serialize(result))


def _serialize(result: Any) -> bytes:
    if isinstance(result, list):
        return struct.pack("<Ii", VECTOR, len(result)) + b"".join(_serialize(r) for r in result)
    if result is True:
        return struct.pack("<I", 0x997275B5)
    if result is False:
        return struct.pack("<I", 0xBC799737)
    return bytes(result)


def _history_args(query: Any) -> dict[str, Any]:
    return {k: getattr(query, k) for k in ("offset_id", "add_offset", "limit", "max_id",
                                           "min_id") if hasattr(query, k)}


def _handle(server: Telegram, query: Any, entry: dict[str, Any]) -> Any:
    """The answer to one query, or an RpcError; `entry` gets what the log should say."""
    world = server.world
    name = entry["method"]
    now = _now()
    if name == "help.getConfig":
        dc = _make(types.DcOption, id=DC_ID, ip_address="127.0.0.1", port=server.port)
        return _make(types.Config, date=now, expires=now + dt.timedelta(hours=1),
                     this_dc=DC_ID, dc_options=[dc], chat_size_max=200,
                     megagroup_size_max=200000, forwarded_count_max=100,
                     message_length_max=4096, caption_length_max=1024,
                     online_update_period_ms=120000, offline_blur_timeout_ms=5000,
                     offline_idle_timeout_ms=30000, online_cloud_timeout_ms=300000,
                     notify_cloud_delay_ms=30000, notify_default_delay_ms=1500,
                     push_chat_period_ms=60000, push_chat_limit=2, edit_time_limit=172800,
                     revoke_time_limit=172800, revoke_pm_time_limit=172800,
                     rating_e_decay=2419200, stickers_recent_limit=200,
                     channels_read_media_period=604800, call_receive_timeout_ms=20000,
                     call_ring_timeout_ms=90000, call_connect_timeout_ms=30000,
                     call_packet_timeout_ms=10000, me_url_prefix="https://t.me/",
                     webfile_dc_id=DC_ID, dc_txt_domain_name="localhost")
    if name == "help.getNearestDc":
        return _make(types.NearestDc, country="XX", this_dc=DC_ID, nearest_dc=DC_ID)
    if name == "updates.getState":
        return _make(types.updates.State, pts=1, qts=0, date=now, seq=1, unread_count=0)
    if name == "updates.getDifference":
        return _make(types.updates.DifferenceEmpty, date=now, seq=1)
    if name == "updates.getChannelDifference":
        return _make(types.updates.ChannelDifferenceEmpty, pts=1, final=True, timeout=30)
    if name == "users.getUsers":
        out = []
        for u in query.id:
            label = world.peer_label(u)
            uid = world.me["id"] if label == "self" else getattr(u, "user_id", -1)
            if uid in world.users:
                out.append(world.user(uid))
        return out
    if name == "users.getFullUser":
        label = world.peer_label(query.id)
        uid = world.me["id"] if label == "self" else getattr(query.id, "user_id", -1)
        if uid not in world.users:
            raise RpcError(400, "USER_ID_INVALID")
        full = _make(types.UserFull, id=uid, settings=_make(types.PeerSettings),
                     notify_settings=_make(types.PeerNotifySettings), common_chats_count=0,
                     about=world.users[uid].get("about"))
        return _make(types.users.UserFull, full_user=full, chats=[], users=[world.user(uid)])
    if name == "contacts.resolveUsername":
        entry["username"] = query.username
        wanted = query.username.lower().lstrip("@")
        for cid, c in world.chats.items():
            if c["kind"] != "user" and (c.get("username") or "").lower() == wanted:
                chats, users = world.entities([cid])
                return _make(types.contacts.ResolvedPeer, peer=world.peer(cid), chats=chats,
                             users=users)
        for uid, u in world.users.items():
            if (u.get("username") or "").lower() == wanted:
                return _make(types.contacts.ResolvedPeer, peer=types.PeerUser(user_id=uid),
                             chats=[], users=[world.user(uid)])
        raise RpcError(400, "USERNAME_NOT_OCCUPIED")
    if name == "contacts.getContacts":
        contacts = [u for u in world.users.values() if u.get("contact")]
        return _make(types.contacts.Contacts,
                     contacts=[_make(types.Contact, user_id=u["id"], mutual=True)
                               for u in contacts],
                     saved_count=len(contacts), users=[world.user(u["id"]) for u in contacts])
    if name == "messages.getDialogs":
        cids = [c["id"] for c in world.data["chats"]]
        dialogs, tops = [], []
        for cid in cids:
            top = world.history[cid][0]
            dialogs.append(_make(types.Dialog, peer=world.peer(cid), top_message=top["id"],
                                 read_inbox_max_id=top["id"], read_outbox_max_id=top["id"],
                                 notify_settings=_make(types.PeerNotifySettings)))
            tops.append(world.message(cid, top))
        chats, users = world.entities(cids)
        return _make(types.messages.Dialogs, dialogs=dialogs, messages=tops, chats=chats,
                     users=users)
    if name in ("channels.getChannels", "messages.getChats"):
        ids = [world.chat_of(c) if not isinstance(c, int) else c for c in query.id]
        return _make(types.messages.Chats,
                     chats=[world.chat(c) for c in ids if c is not None and c in world.chats])
    if name in ("messages.getHistory", "messages.search"):
        cid = world.chat_of(query.peer)
        entry["peer"] = world.peer_label(query.peer)
        entry.update(_history_args(query))
        if cid is None:
            raise RpcError(400, "PEER_ID_INVALID")
        keep = None
        if name == "messages.search":
            kinds = KIND_FILTERS.get(type(query.filter).__name__)
            text = query.q.lower()
            entry["q"], entry["filter"] = query.q, type(query.filter).__name__

            def keep(m: dict[str, Any]) -> bool:
                if text and text not in (m.get("text") or "").lower():
                    return False
                return kinds is None or (m.get("media") or {}).get("kind") in kinds
        elif server.fault_peer in (None, entry["peer"]):
            server.history_calls += 1
            if server.flood_at and server.history_calls == server.flood_at:
                raise RpcError(420, f"FLOOD_WAIT_{server.flood_seconds}")
            if server.drop_at and server.history_calls == server.drop_at:
                raise Dropped()
        page, count = world.page(cid, query.offset_id, query.offset_date, query.add_offset,
                                 query.limit, query.max_id, query.min_id, keep)
        entry["ids"] = [m["id"] for m in page]
        return world.messages_answer(cid, page, count)
    if name in ("messages.getMessages", "channels.getMessages"):
        if name == "channels.getMessages":
            cid = world.chat_of(query.channel)
            entry["peer"] = world.peer_label(query.channel)
        else:
            # Without a channel, ids are the account's own numbering: ours are per chat, so
            # they are looked up in the private chats and basic groups.
            cid = None
            entry["peer"] = "account"
        wanted = [getattr(i, "id", None) for i in query.id]
        entry["ids"] = wanted
        found: list[dict[str, Any]] = []
        owner = cid
        for c in ([cid] if cid is not None else
                  [c for c, v in world.chats.items() if v["kind"] in ("user", "group")]):
            for m in world.history[c]:
                if m["id"] in wanted:
                    found.append(m)
                    owner = c
        if owner is None:
            return _make(types.messages.Messages, messages=[], chats=[], users=[])
        if cid is None:
            entry["peer"] = world.label(owner)
        return world.messages_answer(owner, found, len(found), whole=True)
    if name == "upload.getFile":
        loc = query.location
        media_id = getattr(loc, "id", None)
        if media_id not in world.media:
            raise RpcError(400, "FILE_REFERENCE_INVALID")
        cid, m = world.media[media_id]
        entry["peer"] = world.label(cid)
        entry["message"], entry["offset"], entry["limit"] = m["id"], query.offset, query.limit
        data = base64.b64decode(m["media"]["data"])
        return _make(types.upload.File, type=types.storage.FileUnknown(), mtime=0,
                     bytes=data[query.offset:query.offset + query.limit])
    if name in ("messages.sendMessage", "messages.sendMedia"):
        entry["peer"] = world.peer_label(query.peer)
        entry["text"] = getattr(query, "message", "")
        world.sent += 1
        return _make(types.UpdateShortSentMessage, id=100000 + world.sent, pts=1 + world.sent,
                     pts_count=1, date=now, out=True)
    if name in ("messages.readHistory", "messages.deleteMessages"):
        entry["peer"] = world.peer_label(getattr(query, "peer", None))
        return _make(types.messages.AffectedMessages, pts=1, pts_count=0)
    if name in ("channels.readHistory",):
        entry["peer"] = world.peer_label(query.channel)
        return True
    for field in ("peer", "channel"):
        if hasattr(query, field):
            entry["peer"] = world.peer_label(getattr(query, field))
    raise RpcError(400, "METHOD_NOT_IMPLEMENTED_" + re.sub(r"\W", "_", name).upper())


def sessions(key: bytes, port: int, session_file: Path | None) -> dict[str, Any]:
    """What the program is given: a StringSession for our address and key, and (asked for) a
    SQLite session file holding the same."""
    string = StringSession()
    string.set_dc(DC_ID, "127.0.0.1", port)
    string.auth_key = AuthKey(key)
    out: dict[str, Any] = {"session": string.save()}
    if session_file is not None:
        sqlite = SQLiteSession(str(session_file))
        sqlite.set_dc(DC_ID, "127.0.0.1", port)
        sqlite.auth_key = AuthKey(key)
        sqlite.save()
        sqlite.close()
        out["session_file"] = str(session_file)
    return out


async def _main(args: argparse.Namespace) -> None:
    world = World(json.loads(Path(args.world).read_text()))
    key = os.urandom(256)
    # One listener per scenario: a plan's (each its own port, faults, log and session file),
    # or the one the flags describe.
    scenarios: list[tuple[str, Path, Path | None, dict[str, Any]]]
    if args.plan:
        folder = Path(args.folder)
        scenarios = [(s["name"], folder / f"calls-{s['name']}.jsonl",
                      folder / f"{s['name']}.session", s)
                     for s in json.loads(Path(args.plan).read_text())]
    else:
        single = {"flood_at": args.flood_at, "flood_seconds": args.flood_seconds,
                  "drop_at": args.drop_at, "fault_peer": args.fault_peer}
        scenarios = [("main", Path(args.log),
                      Path(args.session_file) if args.session_file else None, single)]
    runs: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        listeners = []
        for name, log_path, session_path, faults in scenarios:
            log = stack.enter_context(open(log_path, "a", encoding="utf-8"))
            server = Telegram(world, key, log, flood_at=faults.get("flood_at") or 0,
                              flood_seconds=faults.get("flood_seconds") or 2,
                              drop_at=faults.get("drop_at") or 0,
                              fault_peer=faults.get("fault_peer") or None)
            tcp = await asyncio.start_server(server.serve, "127.0.0.1",
                                             0 if args.plan else args.port)
            server.port = tcp.sockets[0].getsockname()[1]
            listeners.append(tcp)
            # `started`: the wall-clock time (time.time()) the log's `t` counts from.
            runs[name] = {"port": server.port, "log": str(log_path), "started": server.started,
                          **sessions(key, server.port, session_path)}
        ready: dict[str, Any] = {"layer": LAYER, "telethon": TELETHON_VERSION,
                                 "python": sys.executable}
        if args.plan:
            ready["runs"] = runs
            ready_path = str(Path(args.folder) / "ready.json")
        else:
            ready.update(runs["main"])
            ready_path = args.ready
        Path(ready_path + ".tmp").write_text(json.dumps(ready))
        os.replace(ready_path + ".tmp", ready_path)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        for tcp in listeners:
            tcp.close()


def main(argv: list[str] | None = None) -> None:
    """`python _server.py WORLD --log CALLS --ready READY [--port N] [faults]`, or
    `python _server.py WORLD --plan PLAN --folder DIR`: a listener per scenario of PLAN (a
    JSON list of {name, flood_at, flood_seconds, drop_at, fault_peer}), its calls in
    DIR/calls-NAME.jsonl, its session in DIR/NAME.session, all of them in DIR/ready.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("world", help="the scripted world (JSON, made by the suite)")
    parser.add_argument("--log", help="calls are appended here, a JSON line each")
    parser.add_argument("--ready", help="written once listening: port, sessions, layer")
    parser.add_argument("--plan", help="a listener for each scenario of this JSON list")
    parser.add_argument("--folder", help="with --plan: where logs, sessions and ready.json go")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--session-file", help="also write a SQLite .session file here")
    parser.add_argument("--flood-at", type=int, default=0,
                        help="answer the n-th history request with FLOOD_WAIT")
    parser.add_argument("--flood-seconds", type=int, default=2)
    parser.add_argument("--drop-at", type=int, default=0,
                        help="drop the connection at the n-th history request")
    parser.add_argument("--fault-peer", help="count only this peer's history requests for "
                        "the faults (`channel:ID`, `user:ID`, `chat:ID`)")
    args = parser.parse_args(argv)
    if not (args.plan and args.folder) and not (args.log and args.ready):
        parser.error("give --log and --ready, or --plan and --folder")
    asyncio.run(_main(args))


if __name__ == "__main__":
    main()
