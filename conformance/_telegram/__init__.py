"""A Telegram of our own for the suites: an MTProto 2.0 server on loopback that an unmodified
Telethon client talks to (_server.py, run as a process of its own), and its harness
(_harness.py). The userbot spec exports a chat from it; the uptime spec's monitors alert a
user through it.

Rules: suites import from here only; importing this package starts nothing and imports no
Telethon (the server does, in its own process).
"""

from conformance._telegram._harness import (
    API_HASH,
    API_ID,
    READY_WAIT,
    SERVER,
    Scenario,
    ServerUnavailable,
    Telegrams,
    interpreter,
)

__all__ = [
    "API_HASH",
    "API_ID",
    "READY_WAIT",
    "SERVER",
    "Scenario",
    "ServerUnavailable",
    "Telegrams",
    "interpreter",
]
