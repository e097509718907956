"""Checks of the `userbot` spec (openapi/userbot.requirements.yaml) against any Telethon userbot
that exports a chat's history, run against a Telegram of our own (conformance/_telegram).

Each run (club, flood, drop, private, group, unknown, other format) has a server of its own
and is made when a check first needs it and kept. Each check judges one run's evidence: the
export read leniently (_export.py) against the world (_world.py), the calls the server
recorded, the program's exit and output.

Rules: every failure names the messages (a few, and how many in all), expected vs actual, and
the reproducer, `conformance run userbot --command ...` with the run's situation. A run whose
server could not start, or whose program could not be started, makes its checks "not run";
an export the club run did not write (or that is not its format) makes the checks that read
it "not run": UB-01 fails it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import pytest

from conformance._checks import CheckFailure, NotImplementedFeature, NotRun, requirement
from conformance._client_run import shown
from conformance._options import RunOptions
from conformance._target import ProgramTarget
from conformance._telegram import Scenario, ServerUnavailable, Telegrams, interpreter
from conformance.specs.userbot import Options
from conformance.specs.userbot._export import (
    Block,
    Unreadable,
    as_epoch,
    as_int,
    blocks,
    flat,
    is_sender,
    messages_of,
    names_kind,
    names_of,
    text_of,
    unescape_markdown,
    values,
)
from conformance.specs.userbot._export import (
    field as field_of,
)
from conformance.specs.userbot._runs import Run, run_at
from conformance.specs.userbot._world import (
    TARGETS,
    label,
    mark,
    media_bytes,
    people,
    world,
)
from conformance.specs.userbot._world import (
    chat as chat_of,
)

LIMIT = 30.0  # seconds a run may take (a correct program takes two or three)
UNKNOWN_CHAT = "@no_such_chat_here"
# Methods that change the account, by the first word of their name (`upload.saveFilePart`,
# `messages.sendMessage`; never the namespace: `updates.getState` reads).
WRITES = ("send", "edit", "delete", "forward", "read", "join", "leave", "block", "unblock",
          "save", "set", "update", "import", "report", "mark", "toggle", "create", "invite",
          "add", "transfer", "pin", "unpin", "clear", "install", "uninstall",
          "reorder", "hide", "migrate", "exportChatInvite", "deleteHistory")
# Methods that may name any peer: finding the chat is not reading it.
ANY_PEER = {"contacts.resolveUsername", "messages.getDialogs", "messages.getPeerDialogs",
            "users.getUsers", "users.getFullUser", "channels.getChannels", "messages.getChats",
            "channels.getFullChannel", "messages.getFullChat", "contacts.getContacts"}
RUNS = {  # name -> (target, server faults: at the named chat's n-th history request)
    "club": ("club", {}),
    "flood": ("club", {"flood_at": 2}),
    "drop": ("club", {"drop_at": 2}),
    "private": ("private", {}),
    "group": ("group", {}),
}


@dataclass
class Seen:
    """Our Telegram and every run of one suite run, each run made when first needed."""

    program: ProgramTarget
    fmt: str
    runs: dict[str, Run] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=world)
    telegrams: Telegrams | None = None
    problem: str = ""
    exports: dict[tuple[str, str], Export | Unreadable] = field(default_factory=dict)

    @property
    def line(self) -> str:
        """The `conformance run` line that repeats the suite run."""
        option = " --format md" if self.fmt == "md" else ""
        return (f"conformance run userbot{option} --command "
                f"{shlex.quote(shlex.join(self.program.argv))}")

    def run(self, name: str) -> Run:
        """The run `name`; NotRun when our Telegram or the program could not start."""
        if name not in self.runs:
            self.runs[name] = self._make(name)
        run = self.runs[name]
        if run.code == 127 and not run.seconds:
            raise NotRun(f"the program could not be started: {run.stderr.strip()[:300]}")
        return run

    def read(self, name: str, target: str, fmt: str | None = None) -> Export:
        """Run `name`'s export of `target` read as `fmt` (the suite run's format unless
        given), once a suite run: most checks read the club run's; Unreadable when it is
        not."""
        key = (name, fmt or self.fmt)
        if key not in self.exports:
            try:
                self.exports[key] = read(self.run(name), self.chat(target), key[1])
            except Unreadable as exc:
                self.exports[key] = exc
        found = self.exports[key]
        if isinstance(found, Unreadable):
            raise found
        return found

    def _server(self) -> Telegrams:
        if self.problem:
            raise NotRun(self.problem)
        if self.telegrams is None:
            club = label(self.chat("club"))
            scenarios = [Scenario(name, fault_peer=club, **faults)
                         for name, (_, faults) in RUNS.items()]
            scenarios += [Scenario("unknown"), Scenario("other")]
            telegrams = Telegrams(interpreter(self.program), scenarios, self.data)
            try:
                telegrams.start()
            except ServerUnavailable as exc:
                self.problem = str(exc)
                raise NotRun(self.problem) from exc
            self.telegrams = telegrams
        return self.telegrams

    def _make(self, name: str) -> Run:
        server = self._server()
        if name == "unknown":
            return run_at(server, self.program, name, UNKNOWN_CHAT, self.fmt, LIMIT)
        if name == "other":
            other = "md" if self.fmt == "json" else "json"
            return run_at(server, self.program, name, TARGETS["club"].name, other, LIMIT)
        target, _ = RUNS[name]
        return run_at(server, self.program, name, TARGETS[target].name, self.fmt, LIMIT)

    def fail(self, run: Run, message: str, expected: str, actual: str = "") -> CheckFailure:
        """A failure about one run."""
        return CheckFailure(f"{run.name} run: {message}", expected=expected,
                            actual=run.actual(actual), reproduce=run.reproduce(self.line))

    def chat(self, target: str) -> dict[str, Any]:
        """The world's chat a target names."""
        return chat_of(self.data, TARGETS[target].cid)


@pytest.fixture(scope="session")
def seen(program: ProgramTarget, options: RunOptions[Options]) -> Iterator[Seen]:
    """The runs of this suite run; our Telegram stopped at its end."""
    runs = Seen(program, options.spec.format)
    try:
        yield runs
    finally:
        if runs.telegrams is not None:
            runs.telegrams.stop()



def regular(chat: dict[str, Any]) -> list[dict[str, Any]]:
    """The chat's messages that people wrote (not its service messages)."""
    return [m for m in chat["messages"] if not m.get("service")]


# -- reading an export -----------------------------------------------------------------------


@dataclass
class Export:
    """An export read: JSON entries, or Markdown blocks, each tied to the world's message ids
    it could be (`order` is the ids in the file's order, repeats included)."""

    fmt: str
    entries: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    strangers: list[str] = field(default_factory=list)  # JSON entries of no message
    order: list[int] = field(default_factory=list)
    blocks: dict[int, Block] = field(default_factory=dict)
    counts: dict[int, int] = field(default_factory=dict)  # Markdown: each mark's count
    text: str = ""
    plain: str = ""  # Markdown with its escapes undone (what the blocks index)


def read(run: Run, chat: dict[str, Any], fmt: str) -> Export:
    """The run's export of `chat` read as `fmt`; Unreadable when it is not."""
    raw = run.export
    if raw is None:
        raise Unreadable(f"no {run.output} was written")
    text = raw.decode("utf-8", errors="replace")
    out = Export(fmt, text=text)
    ids = {m["id"] for m in chat["messages"]}
    marks = {m["id"]: mark(m["id"]) for m in chat["messages"] if m.get("text")}
    if fmt == "md":
        out.plain = unescape_markdown(text)
        found, out.counts = blocks(text, marks)
        out.blocks = {b.mid: b for b in found}
        out.order = [b.mid for b in found]
        if not found:
            raise Unreadable("no message of the chat is in it (no text of the chat is found)")
        return out
    for index, entry in enumerate(messages_of(text)):
        has_id, value = field_of(entry, "id")
        mid = as_int(value) if has_id else None
        if mid not in ids:
            body = text_of(field_of(entry, "text")[1]) or ""
            mid = next((i for i, m in marks.items() if m in body), None)
        if mid is None:
            out.strangers.append(f"entry {index} (id {value!r})")
            continue
        out.entries.setdefault(mid, []).append(entry)
        out.order.append(mid)
    return out


def export_of(seen: Seen, name: str, target: str, *, own: bool) -> tuple[Run, Export]:
    """A run and its export; an export not there or not readable is this check's failure when
    the run is the check's own (`own`), else makes it "not run" (UB-01 judges the club run)."""
    run = seen.run(name)
    try:
        return run, seen.read(name, target)
    except Unreadable as exc:
        if own:
            raise seen.fail(run, f"the export cannot be read: {exc}",
                            f"the chat's history in {run.output}") from None
        raise NotRun(f"the {name} run's export cannot be read ({exc}): UB-01") from None


def completeness(export: Export, chat: dict[str, Any]) -> list[str]:
    """What keeps an export from holding every message of the chat exactly once."""
    problems = []
    wanted = regular(chat)
    if export.fmt == "md":
        wanted = [m for m in wanted if m.get("text")]
        missing = [str(m["id"]) for m in wanted if not export.counts.get(m["id"])]
        twice = [str(m["id"]) for m in wanted if export.counts.get(m["id"], 0) > 1]
    else:
        missing = [str(m["id"]) for m in wanted if m["id"] not in export.entries]
        twice = [str(i) for i, e in export.entries.items() if len(e) > 1]
    if missing:
        problems.append(f"{len(missing)} of the {len(wanted)} messages are missing (ids "
                        f"{shown(missing)})")
    if twice:
        problems.append(f"messages there more than once: ids {shown(twice)}")
    if export.strangers:
        problems.append(f"entries that are no message of the chat: "
                        f"{shown(export.strangers)}")
    return problems


def direction(order: list[int]) -> tuple[str, str]:
    """("oldest first" | "newest first" | "", where the order breaks) of the ids' sequence."""
    firsts = list(dict.fromkeys(order))
    if len(firsts) < 2:
        return "oldest first", ""
    if all(a < b for a, b in pairwise(firsts)):
        return "oldest first", ""
    if all(a > b for a, b in pairwise(firsts)):
        return "newest first", ""
    up = firsts[1] > firsts[0]
    for i, (a, b) in enumerate(pairwise(firsts)):
        if (b > a) != up:
            return "", (f"after {i + 1} messages in {'rising' if up else 'falling'} order, id "
                        f"{a} is followed by id {b}")
    return "", ""  # pragma: no cover - one of the loops returns


def _calls(seen: Seen, run: Run, target: str) -> list[str]:
    """What a run did beyond reading the named chat: each call that changes the account, or
    reads another chat."""
    own = label(seen.chat(target))
    out = []
    for call in run.methods():
        method = call["method"]
        leaf = method.split(".")[-1]
        if leaf.startswith(WRITES):
            out.append(f"{method}" + (f" on {call['peer']}" if call.get("peer") else ""))
        elif call.get("peer") not in (None, "self", own) and method not in ANY_PEER:
            out.append(f"{method} of {call['peer']}")
    return out


# -- MUST ----------------------------------------------------------------------------------------


@requirement("UB-01")
def test_exports_and_ends(seen: Seen, note: Callable[[str], None]) -> None:
    """The program logs in with the session given, writes the export and ends with 0."""
    run = seen.run("club")
    layers = {int(c["layer"]) for c in run.calls
              if c.get("method") == "initConnection" and c.get("layer") is not None}
    ours = run.server.get("layer")
    if layers - {ours}:
        raise seen.fail(run, f"the program's Telethon speaks layer {max(layers)}, our "
                        f"Telegram layer {ours} (it ran under {run.server.get('python')}, "
                        f"Telethon {run.server.get('telethon')})",
                        "our Telegram run with the program's own Telethon: name its Python "
                        "before the .py in the command (`--command \"/path/to/venv/bin/python "
                        "bot.py\"`); the suite's is used when it cannot tell")
    if not any(c.get("event") == "connect" for c in run.calls):
        raise seen.fail(run, "the program never connected to the Telegram it was given",
                        "a connection to the address of TG_SESSION / TG_SESSION_FILE (the "
                        "program logs in with one of them, not a session of its own)")
    if run.timed_out:
        raise seen.fail(run, f"the program did not end within {run.limit:g} s",
                        "the program ends by itself once the export is written")
    if run.code != 0:
        raise seen.fail(run, f"the program ended with status {run.code}",
                        "status 0 after a successful export")
    try:
        seen.read("club", "club")
    except Unreadable as exc:
        raise seen.fail(run, f"the export cannot be read: {exc}",
                        f"the chat's history written to {run.output} "
                        f"({'JSON' if seen.fmt == 'json' else 'Markdown'})") from None
    server = run.server
    note(f"club run: the program {run.ending()}; our Telegram ran with Telethon "
         f"{server.get('telethon')} (layer {server.get('layer')}) under {server.get('python')}")


@requirement("UB-02")
def test_every_message_once(seen: Seen) -> None:
    """Every message of the chat exactly once, across its three pages."""
    run, export = export_of(seen, "club", "club", own=False)
    problems = completeness(export, seen.chat("club"))
    if problems:
        raise seen.fail(run, "; ".join(problems), "each of the chat's 256 messages once "
                        "(ids 3..308 with gaps, three pages of history)")


@requirement("UB-03")
def test_in_the_chats_order(seen: Seen, note: Callable[[str], None]) -> None:
    """The messages in the chat's order, one way through the whole export."""
    run, export = export_of(seen, "club", "club", own=False)
    way, broken = direction(export.order)
    if not way:
        raise seen.fail(run, f"the messages are out of order: {broken}",
                        "ids rising all through the export (oldest first), or falling all "
                        "through (newest first)")
    note(f"club run: {len(set(export.order))} messages, {way}")


def _date_renderings(epoch: float) -> list[str]:
    when = dt.datetime.fromtimestamp(epoch, dt.UTC)
    return [when.strftime(f) for f in ("%Y-%m-%d", "%d.%m.%Y", "%d/%m/%Y", "%Y/%m/%d")]


def _time_rendering(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%H:%M")


def _json_problems(export: Export, chat: dict[str, Any], users: dict[int, Any]) -> list[str]:
    problems = []
    for m in regular(chat):
        entries = export.entries.get(m["id"])
        if not entries:
            continue
        entry = entries[0]
        has, value = field_of(entry, "id")
        if not has or as_int(value) != m["id"]:
            problems.append(f"{m['id']}: id {value!r}" if has else f"{m['id']}: no id")
        has, value = field_of(entry, "date")
        when = as_epoch(value) if has else None
        if when is None or abs(when - m["date"]) > 1:
            problems.append(f"{m['id']}: date {value!r}, not {m['date']} (unix, UTC)"
                            if has else f"{m['id']}: no date")
        sender = users[m["from"]]
        if not any(is_sender(v, sender) for v in values(entry, "sender")):
            problems.append(f"{m['id']}: no sender naming {sender['first_name']} "
                            f"(id {sender['id']})")
        has, value = field_of(entry, "text")
        got = text_of(value) if has else None
        if (got or "").strip() != m.get("text", "").strip():
            problems.append(f"{m['id']}: text {got!r}, not {m.get('text', '')!r}")
        has, value = field_of(entry, "reply")
        wanted = m.get("reply_to")
        got_reply = as_int(value) if has else None
        if wanted and got_reply != wanted:
            problems.append(f"{m['id']}: reply-to {value!r}, not {wanted}" if has
                            else f"{m['id']}: no reply-to (it answers {wanted})")
        if not wanted and got_reply:
            problems.append(f"{m['id']}: reply-to {got_reply}, but it answers nothing")
    return problems


def _md_problems(export: Export, chat: dict[str, Any], users: dict[int, Any]) -> list[str]:
    problems = []
    for m in regular(chat):
        block = export.blocks.get(m["id"])
        if block is None:
            continue
        body = block.text.lower()
        lines = [ln.strip() for ln in m["text"].split("\n") if ln.strip()]
        lines[-1] = lines[-1].removesuffix(mark(m["id"])).strip()
        lost = [ln for ln in lines if ln and ln.lower() not in body]
        if lost:
            problems.append(f"{m['id']}: its block lacks the text {lost[0]!r}")
        sender = users[m["from"]]
        if not any(n in body for n in names_of(sender)):
            problems.append(f"{m['id']}: its block names no sender "
                            f"({sender['first_name']})")
        if not any(d in block.text for d in _date_renderings(m["date"])) \
                or _time_rendering(m["date"]) not in block.text:
            problems.append(f"{m['id']}: its block lacks the date "
                            f"{_date_renderings(m['date'])[0]} {_time_rendering(m['date'])}")
    return problems


@requirement("UB-04")
def test_each_message_says_what_the_chat_says(seen: Seen) -> None:
    """Id, date, sender, text and reply-to as the chat has them."""
    run, export = export_of(seen, "club", "club", own=False)
    users = people(seen.data)
    chat = seen.chat("club")
    problems = (_md_problems if export.fmt == "md" else _json_problems)(export, chat, users)
    if problems:
        what = ("its text, with its sender and date (YYYY-MM-DD HH:MM, UTC) in its block"
                if export.fmt == "md" else
                "its id, date (unix seconds or ISO 8601, UTC), sender (id, @username or "
                "name), text as it reads now, and the id it replies to (none when it answers "
                "nothing)")
        raise seen.fail(run, f"messages not as the chat has them: {shown(problems)}",
                        f"each message with {what}")


def _media_files(run: Run) -> dict[bytes, str]:
    return {data: path for path, data in run.files.items() if path != run.output}


def _media_problems(run: Run, export: Export, chat: dict[str, Any]) -> list[str]:
    files = _media_files(run)
    problems = []
    msgs = chat["messages"]
    for index, m in enumerate(msgs):
        media = m.get("media")
        if not media:
            continue
        data = media_bytes(media["id"], media["kind"], media["size"])
        saved = files.get(data)
        if export.fmt == "md":
            region = _region(export, msgs, index)
            if region is None:
                continue  # missing altogether: UB-02's
            named = names_kind(region, media["kind"])
            linked = saved is not None and saved.rsplit("/", 1)[-1].lower() in region.lower()
        else:
            entries = export.entries.get(m["id"])
            if not entries:
                continue  # missing altogether: UB-02's
            entry = entries[0]
            named = any(names_kind(v, media["kind"]) for v in values(entry, "media"))
            linked = saved is not None and saved.rsplit("/", 1)[-1].lower() in flat(entry)
        if not (named or linked):
            problems.append(f"{m['id']} ({media['kind']}"
                            + (", saved as " + saved if saved else "") + ")")
    return problems


def _region(export: Export, msgs: list[dict[str, Any]], index: int) -> str | None:
    """Where a message's media may be told in a Markdown export: around its text, from the
    mark before it to the mark after it (in the file's order, so a heading before the text or
    a link after it both count); for a media message without a text, between the marks of
    its neighbours in the chat."""
    order, text = export.order, export.plain
    m = msgs[index]
    if m["id"] in export.blocks:
        at = order.index(m["id"])
        start = export.blocks[order[at - 1]].end if at else 0
        end = export.blocks[order[at + 1]].start if at + 1 < len(order) else len(text)
        return text[start:end]
    before = next((x["id"] for x in reversed(msgs[:index]) if x["id"] in export.blocks), None)
    after = next((x["id"] for x in msgs[index + 1:] if x["id"] in export.blocks), None)
    rising = direction(order)[0] != "newest first"
    if before is None or after is None:
        # The chat's first or last message: between its one neighbour and the file's edge.
        near = before if before is not None else after
        if near is None:
            return None
        one = export.blocks[near]
        towards_start = (before is None) == rising
        return text[:one.start] if towards_start else text[one.end:]
    a, b = export.blocks[before], export.blocks[after]
    first, last = (a, b) if a.start < b.start else (b, a)
    return text[first.end:last.start]


@requirement("UB-05")
def test_media_shown(seen: Seen) -> None:
    """A media message shows its kind or its downloaded file."""
    run, export = export_of(seen, "club", "club", own=False)
    problems = _media_problems(run, export, seen.chat("club"))
    if problems:
        raise seen.fail(run, f"media messages that do not show their media: {shown(problems)}",
                        "each of the 11 media messages with its kind (photo, video, audio, "
                        "voice, document) or the name of its downloaded file")


@requirement("UB-06")
def test_flood_wait_waited_out(seen: Seen, note: Callable[[str], None]) -> None:
    """FLOOD_WAIT_2 is waited out, then the export is completed."""
    run = seen.run("flood")
    club = label(seen.chat("club"))
    history = [c for c in run.methods() if c["method"] == "messages.getHistory"
               and c.get("peer") == club]
    flood = next((i for i, c in enumerate(history) if str(c.get("answer", "")).startswith(
        "FLOOD_WAIT")), None)
    if flood is None:
        raise NotRun(f"the program made {len(history)} history request(s), so the FLOOD_WAIT "
                     f"meant for the 2nd never came")
    later = history[flood + 1:]
    if not later:
        raise seen.fail(run, "after FLOOD_WAIT_2 the program asked for no more history",
                        "the request made again after 2 s, and the export completed")
    gap = later[0]["t"] - history[flood]["t"]
    if gap < 1.9:
        raise seen.fail(run, f"the next history request came {gap:.2f} s after FLOOD_WAIT_2",
                        "no history request for 2 s after FLOOD_WAIT_2")
    try:
        export = seen.read("flood", "club")
    except Unreadable as exc:
        raise seen.fail(run, f"after waiting, the export cannot be read: {exc}",
                        "the whole chat exported after the wait") from None
    problems = completeness(export, seen.chat("club"))
    if problems:
        raise seen.fail(run, "after waiting: " + "; ".join(problems),
                        "the whole chat exported after the wait")
    note(f"flood run: waited {gap:.1f} s after FLOOD_WAIT_2")


@requirement("UB-07")
def test_reads_only_the_named_chat(seen: Seen) -> None:
    """Nothing changed on the account, no other chat read."""
    for name, target in (("club", "club"), ("private", "private")):
        run = seen.run(name)
        done = _calls(seen, run, target)
        if done:
            raise seen.fail(run, f"the program did more than read {TARGETS[target].name}: "
                            f"{shown(done)}",
                            f"only reads of {TARGETS[target].name} (its history, messages and "
                            f"media), with the name resolved and dialogs listed if needed")


@requirement("UB-08")
def test_private_chat_exported(seen: Seen, note: Callable[[str], None]) -> None:
    """A private chat named by @username is exported too."""
    run, export = export_of(seen, "private", "private", own=True)
    problems = completeness(export, seen.chat("private"))
    if problems:
        raise seen.fail(run, "; ".join(problems), "the 130 messages of the private chat with "
                        "@alice_a, each once")
    note(f"private run: the program {run.ending()}")


# -- SHOULD ------------------------------------------------------------------------------------


@requirement("UB-09")
def test_oldest_first(seen: Seen) -> None:
    """Oldest first, as a conversation reads."""
    run, export = export_of(seen, "club", "club", own=False)
    way, broken = direction(export.order)
    if way != "oldest first":
        raise seen.fail(run, f"the messages are {way or 'out of order: ' + broken}",
                        "the oldest message first, the newest last")


@requirement("UB-10")
def test_dropped_connection_survived(seen: Seen, note: Callable[[str], None]) -> None:
    """A dropped connection is survived and the export completed."""
    run, export = export_of(seen, "drop", "club", own=True)
    if not any(c.get("event") == "drop" for c in run.calls):
        raise NotRun("the program made fewer than 2 history requests, so the connection was "
                     "never dropped")
    problems = completeness(export, seen.chat("club"))
    if problems:
        raise seen.fail(run, "after the dropped connection: " + "; ".join(problems),
                        "the whole chat exported after reconnecting")
    connects = sum(1 for c in run.calls if c.get("event") == "connect")
    note(f"drop run: {connects} connections, the export whole")


@requirement("UB-11")
def test_edits_said(seen: Seen) -> None:
    """An edited message says so."""
    run, export = export_of(seen, "club", "club", own=False)
    msgs = seen.chat("club")["messages"]
    wrong = []
    for m in msgs:
        if m.get("service"):
            continue
        if export.fmt == "md":
            block = export.blocks.get(m["id"])
            if block is None:
                continue
            # Its block and the rest of its mark's line: the world's texts never say "edit",
            # so a word of it there is the export's.
            region = block.text + export.plain[block.end:].split("\n", 1)[0]
            said = "edit" in region.lower()
            value: Any = "the word 'edited'" if said else "no word of an edit"
        else:
            entries = export.entries.get(m["id"])
            if not entries:
                continue
            has, value = field_of(entries[0], "edited")
            said = has and value not in (None, False, 0, "", "false", "no")
        if bool(m.get("edit_date")) != said:
            wrong.append(f"{m['id']} ({'edited' if m.get('edit_date') else 'not edited'}: "
                         f"{value!r})")
    if wrong:
        raise seen.fail(run, f"edits not said as they are: {shown(wrong)}",
                        "an edit date or an edited flag (Markdown: the word edited) on each "
                        "edited message, none on the others")


@requirement("UB-12")
def test_unknown_chat_refused(seen: Seen) -> None:
    """An unknown chat: a message naming it, status not 0, no traceback, nothing written."""
    run = seen.run("unknown")
    wrong = []
    if run.timed_out:
        wrong.append(f"still running after {run.limit:g} s")
    elif run.code == 0:
        wrong.append("status 0")
    if run.traceback:
        wrong.append("a traceback")
    if UNKNOWN_CHAT.lstrip("@") not in run.stdout + run.stderr:
        wrong.append(f"no message naming {UNKNOWN_CHAT}")
    if run.export is not None:
        wrong.append(f"{run.output} written")
    if wrong:
        raise seen.fail(run, f"asked for {UNKNOWN_CHAT}: {', '.join(wrong)}",
                        f"a message naming {UNKNOWN_CHAT}, a status other than 0, no "
                        "traceback, no export")


# -- MAY -------------------------------------------------------------------------------------------


SERVICE_WORDS = ("service", "action", "join", "added", "adduser", "pinned", "pin message",
                 "pinmessage", "created", "chatcreate", "channelcreate")


@requirement("UB-13")
def test_service_messages(seen: Seen) -> None:
    """Service messages exported, each once, marked."""
    run, export = export_of(seen, "club", "club", own=False)
    msgs = seen.chat("club")["messages"]
    service = [(i, m) for i, m in enumerate(msgs) if m.get("service")]
    wrong = []
    if export.fmt == "md":
        # No text to find them by: the place between their neighbours tells the event.
        told = [m["id"] for i, m in service
                if any(w in (_region(export, msgs, i) or "").lower() for w in SERVICE_WORDS)]
        if not told:
            raise NotImplementedFeature("no service message is in the export",
                                        expected="the 4 service messages, marked",
                                        actual=run.actual(), reproduce=run.reproduce(seen.line))
        wrong = [f"{m['id']} not told" for _, m in service if m["id"] not in told]
    else:
        if not any(m["id"] in export.entries for _, m in service):
            raise NotImplementedFeature("no service message is in the export",
                                        expected="the 4 service messages, marked",
                                        actual=run.actual(), reproduce=run.reproduce(seen.line))
        for _, m in service:
            entries = export.entries.get(m["id"], [])
            if len(entries) > 1:
                wrong.append(f"{m['id']} there {len(entries)} times")
            if len(entries) != 1:
                continue  # one missing among others is UB-02's (a page missed)
            has, value = field_of(entries[0], "service")
            marked = has and value not in (None, False, "", "message", "text", "regular")
            if not marked and not any(w in flat(entries[0]) for w in SERVICE_WORDS):
                wrong.append(f"{m['id']} not marked as a service message")
    if wrong:
        raise seen.fail(run, f"service messages: {shown(wrong)}",
                        "each of the 4 service messages once, marked as such")


@requirement("UB-14")
def test_other_format(seen: Seen) -> None:
    """The other format too."""
    run = seen.run("other")
    other = "md" if seen.fmt == "json" else "json"
    if run.export is None:
        raise NotImplementedFeature(f"no {run.output} was written",
                                    expected=f"the export in {other}", actual=run.actual(),
                                    reproduce=run.reproduce(seen.line))
    try:
        export = seen.read("other", "club", other)
    except Unreadable as exc:
        with contextlib.suppress(Unreadable):
            seen.read("other", "club")
            raise NotImplementedFeature(
                f"asked for {other}, the program wrote {seen.fmt} again",
                expected=f"the export in {other}", actual=run.actual(),
                reproduce=run.reproduce(seen.line)) from None
        raise seen.fail(run, f"the {other} export cannot be read: {exc}",
                        f"the chat's history in {other}") from None
    problems = completeness(export, seen.chat("club"))
    if problems:
        raise seen.fail(run, "; ".join(problems), f"every message once in the {other} export")


@requirement("UB-15")
def test_group_by_title(seen: Seen) -> None:
    """A basic group named by its title."""
    run = seen.run("group")
    if run.export is None:
        raise NotImplementedFeature("nothing was written for the group named Family",
                                    expected="the 15 messages of Family",
                                    actual=run.actual(), reproduce=run.reproduce(seen.line))
    run, export = export_of(seen, "group", "group", own=True)
    problems = completeness(export, seen.chat("group"))
    if problems:
        raise seen.fail(run, "; ".join(problems), "the 15 messages of Family, each once")


@requirement("UB-16")
def test_media_downloaded(seen: Seen) -> None:
    """Every media file of the chat downloaded, byte for byte."""
    run = seen.run("club")
    files = _media_files(run)
    media = [m["media"] for m in seen.chat("club")["messages"] if m.get("media")]
    with contextlib.suppress(Unreadable):
        held = seen.read("club", "club")
        if held.fmt == "json":  # a message missing altogether is UB-02's: not its file
            media = [m["media"] for m in seen.chat("club")["messages"]
                     if m.get("media") and m["id"] in held.entries]
    missing = [f"{x['name']} ({x['kind']}, {x['size']:,} bytes)" for x in media
               if media_bytes(x["id"], x["kind"], x["size"]) not in files]
    if len(missing) == len(media):
        raise NotImplementedFeature("no media file was downloaded",
                                    expected=f"the {len(media)} media files",
                                    actual=run.actual(), reproduce=run.reproduce(seen.line))
    if missing:
        raise seen.fail(run, f"media files not downloaded whole: {shown(missing)}",
                        f"each of the {len(media)} media files, byte for byte")
