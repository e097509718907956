"""The `userbot` spec's suite (openapi/userbot.requirements.yaml): seed 002's Telethon userbot
that exports a chat's history, judged against a Telegram of our own on loopback
(conformance/_telegram, an MTProto server); checks.py runs it.

Rules: import nothing heavy here (every command reads every spec's options; Telethon is
imported only by the server, in a process of its own). The program's command takes the chat
and the output file through its placeholders (`{chat}`, `{output}`, `{format}`) or, without
any, appended in that order.
"""

from __future__ import annotations

from dataclasses import dataclass

from conformance._options import OptionError, SpecOptions, option


def _format(text: str) -> str:
    """json or md."""
    value = text.strip().lower().removeprefix(".")
    value = {"markdown": "md"}.get(value, value)
    if value not in ("json", "md"):
        raise OptionError(f"json or md, not {text!r}")
    return value


@dataclass(frozen=True)
class Options(SpecOptions):
    """The userbot's options: which format its export is judged in."""

    format: str = option(
        "json", parse=_format, metavar="json|md",
        help="the export the program is asked for and judged on (%(default)s); md for a "
             "program that writes Markdown only")
