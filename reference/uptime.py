"""The reference `uptime.py`: watch a list of sites, log every change of their status, and alert
a site's contact when it goes from working to failing (seed 002's site monitor).

Run it as `python uptime.py CSV INTERVAL [--timeout S] [--failures K] [--log FILE]
[--config FILE] [-v]`.
- The CSV is the seed's (`DOMAIN_NAME;tg_username,email`; fields split by `,` or `;`; blank
  lines and `#` comments skipped; a first line that names no site is the header). A site is a
  domain, checked at `https://DOMAIN/`, or a whole http(s) URL, checked as it is. A row without
  a site is skipped, and a Telegram name or e-mail that is not one is not used; each is said
  once on stderr with its line number.
- Each site has a task of its own, checking at start + k * INTERVAL (the loop's clock, so no
  drift); a check that runs over skips the slots it missed. HEAD first; a site that answers it
  405 or 501 is checked by GET from then on. 2xx and 3xx are working (redirects not followed);
  4xx, 5xx, an error of the connection (refused, reset, DNS, TLS) or no answer within
  `--timeout` (5 s) is failing. All checks share one session (a connection limit, a fresh
  connection each check, so that a refusal is seen).
- A site is down once its checks have failed K (`--failures`, 2) interval slots in a row: one
  failed check counts once, a check that ran over counts every slot it spanned (a hang of 5 s
  is not a flap). One working check brings it up again.
- Logging (stderr, and `--log FILE`): the first status of each site, then one line per change,
  `2026-12-06T10:00:05Z shop.example.org: 200 -> 502 (down)`; each check only with `-v`.
- Alerts, on working -> down only (none for a site that is down from the start), one per change,
  by every channel the environment sets up: the Telegram Bot API (`TELEGRAM_BOT_TOKEN`,
  `TELEGRAM_API_URL`; @username -> chat id from getUpdates), e-mail (`SMTP_HOST`, `SMTP_PORT`
  465 for TLS else STARTTLS, `SMTP_USER`, `SMTP_PASSWORD`, `SMTP_FROM`) and a webhook
  (`ALERT_WEBHOOK_URL`, a JSON POST). A site that was alerted about gets a recovery message.
  Each alert is a task of its own (one retry at most); a failed one is a warning, never a crash.
  The same settings may come from a TOML file (`--config`, e.g. `SMTP_HOST = "smtp.x.org"`,
  any case), so no secret need stand in the shell's history; the environment wins over it.
- No secret is ever printed: errors are put in words of our own, never aiohttp's (they hold
  the URL, and a bot's URL holds its token), and the log masks the token and the password.
Exit status: 0 after Ctrl+C or SIGTERM (a clean stop), 2 for a bad command line or CSV.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import os
import re
import signal
import smtplib
import socket
import ssl
import sys
import time
import tomllib
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

log = logging.getLogger("uptime")

CONNECTION_LIMIT = 100  # connections open at once, over all sites
ALERT_TIMEOUT = 10.0  # seconds one alert may take on one channel
RETRY_AFTER = 2.0  # seconds before the one retry of a failed alert
STOP_GRACE = 2.0  # seconds the alerts in flight get to finish at a stop
_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
DOMAIN = re.compile(rf"{_LABEL}(\.{_LABEL})*")
TELEGRAM_NAME = re.compile(r"@?([A-Za-z][A-Za-z0-9_]{0,31})")


def iso(timestamp: float) -> str:
    """A time.time() in UTC, ISO 8601 to the second, as every line and alert gives it."""
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- the CSV --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Row:
    """One site of the CSV: its name in logs and alerts, the URL checked, and its contact (a
    Telegram `@username` or numeric chat id, an e-mail address; None when the row has none)."""

    name: str
    url: str
    telegram: str | None
    email: str | None


def target(field: str) -> tuple[str, str] | None:
    """(name, URL) of a CSV's site field: a domain (`https://DOMAIN/`) or an http(s) URL;
    None when it is neither."""
    if "://" in field:
        parts = urlsplit(field)
        return (field, field) if parts.scheme in ("http", "https") and parts.hostname else None
    try:
        domain = field.rstrip(".").lower().encode("idna").decode("ascii")
    except UnicodeError:
        return None
    return (domain, f"https://{domain}/") if DOMAIN.fullmatch(domain) else None


def parse_rows(text: str) -> tuple[list[Row], list[str]]:
    """The sites of a CSV's text, in order, and a warning for each thing in it not used."""
    rows: list[Row] = []
    warnings: list[str] = []
    names: set[str] = set()
    header_possible = True
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        site, telegram, email, *extra = [f.strip() for f in re.split(r"[;,]", line)] + ["", ""]
        found = target(site) if site else None
        if header_possible and site and found is None:  # `DOMAIN_NAME;tg_username,email`
            header_possible = False
            continue
        header_possible = False
        where = f"line {number}"
        if found is None:
            warnings.append(f"{where}: {site!r} is not a domain or an http(s) URL, row skipped"
                            if site else f"{where}: no domain, row skipped")
            continue
        name, url = found
        if name in names:
            warnings.append(f"{where}: {name} is listed already, row skipped")
            continue
        names.add(name)
        chat: str | None = None
        if re.fullmatch(r"-?\d+", telegram):
            chat = telegram
        elif (match := TELEGRAM_NAME.fullmatch(telegram)) is not None:
            chat = "@" + match.group(1)
        elif telegram:
            warnings.append(f"{where}: {telegram!r} is not a Telegram username or chat id; "
                            f"no Telegram alerts for {name}")
        if email and "@" not in email:
            warnings.append(f"{where}: e-mail {email!r} has no @; no e-mail alerts for {name}")
            email = ""
        if any(extra):
            warnings.append(f"{where}: fields after the e-mail ignored")
        rows.append(Row(name, url, chat, email or None))
    return rows, warnings


# -- alert channels -------------------------------------------------------------------------------

class AlertError(Exception):
    """An alert not delivered; `retry` says whether trying again may help."""

    def __init__(self, reason: str, retry: bool = True) -> None:
        super().__init__(reason)
        self.retry = retry


def failure(exc: BaseException, timeout: float) -> str:
    """A failure in words, e.g. `connection refused`, built from the exception's kind and
    never from its text: aiohttp's errors carry the URL, and a bot's URL holds its token."""
    if isinstance(exc, TimeoutError):
        return f"timeout after {timeout:g} s"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return "TLS certificate not trusted"
    if isinstance(exc, aiohttp.ClientSSLError | ssl.SSLError):
        return "TLS error"
    if isinstance(exc, aiohttp.ClientConnectorDNSError) or (
            isinstance(exc, aiohttp.ClientConnectorError)
            and isinstance(exc.os_error, socket.gaierror)):  # aiodns's resolver, or the stdlib's
        return "DNS: " + (exc.strerror or "name not resolved").lower()
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "server disconnected"
    if isinstance(exc, OSError) and exc.errno:
        return os.strerror(exc.errno).lower()  # connection refused, connection reset by peer
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", type(exc).__name__).lower()  # client payload error


class Channel:
    """A way to alert: `contact(row)` is whom it would tell about that row's site (None: no
    one), `send` delivers one message or raises AlertError."""

    name = "channel"

    def contact(self, row: Row) -> str | None:
        """The row's contact on this channel, or None."""
        raise NotImplementedError

    async def send(self, contact: str, row: Row, subject: str, payload: dict[str, Any]) -> None:
        """Deliver `payload["text"]` to `contact`."""
        raise NotImplementedError


class Telegram(Channel):
    """The Telegram Bot API: a user's @username is looked up in getUpdates (their /start
    message gives their chat id), the answers cached and read again when a name is not there."""

    name = "telegram"

    def __init__(self, session: aiohttp.ClientSession, token: str, api: str) -> None:
        self.session, self.token, self.api = session, token, api.rstrip("/")
        self.chats: dict[str, int] = {}  # lower-case username -> chat id
        self.lock = asyncio.Lock()  # one getUpdates at a time

    def contact(self, row: Row) -> str | None:
        return row.telegram

    async def call(self, method: str, **params: Any) -> Any:
        """The result of one Bot API method; AlertError with Telegram's own description."""
        url = f"{self.api}/bot{self.token}/{method}"
        try:
            async with self.session.post(url, json=params, timeout=aiohttp.ClientTimeout(
                    total=ALERT_TIMEOUT), allow_redirects=False) as response:
                answer = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise AlertError(failure(exc, ALERT_TIMEOUT)) from None
        if not isinstance(answer, dict) or not answer.get("ok"):
            description = answer.get("description") if isinstance(answer, dict) else None
            raise AlertError(f"{description or 'no answer'} ({response.status})",
                             retry=response.status >= 500 or response.status == 429)
        return answer["result"]

    async def chat_id(self, contact: str) -> int | str:
        """The chat to write to: a numeric id as it is, a @username as getUpdates knows it."""
        if not contact.startswith("@"):
            return contact
        name = contact[1:].lower()
        async with self.lock:
            if name not in self.chats:
                # No offset: the updates stay with Telegram, so a restarted monitor finds them.
                for update in await self.call("getUpdates", limit=100, timeout=0):
                    message = update.get("message") or update.get("edited_message") or {}
                    if "username" in message.get("from", {}) and "chat" in message:
                        self.chats[message["from"]["username"].lower()] = message["chat"]["id"]
        if name not in self.chats:
            raise AlertError(f"user {contact} not found: they have not sent /start to the bot",
                             retry=False)
        return self.chats[name]

    async def send(self, contact: str, row: Row, subject: str, payload: dict[str, Any]) -> None:
        await self.call("sendMessage", chat_id=await self.chat_id(contact),
                        text=payload["text"])


class Mail(Channel):
    """E-mail through an SMTP server: TLS from the start on port 465, else STARTTLS; smtplib
    runs in a thread, each of its steps under a timeout."""

    name = "e-mail"

    def __init__(self, host: str, port: int, user: str, password: str, sender: str) -> None:
        self.host, self.port, self.user, self.password = host, port, user, password
        self.sender = sender
        self.implicit_tls = port == 465  # SMTPS; any other port: STARTTLS

    def contact(self, row: Row) -> str | None:
        return row.email

    def deliver(self, to: str, subject: str, text: str) -> None:
        """Send one message (blocking)."""
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = self.sender, to, subject
        message.set_content(text)
        context = ssl.create_default_context()  # honours SSL_CERT_FILE
        client: smtplib.SMTP
        if self.implicit_tls:
            client = smtplib.SMTP_SSL(self.host, self.port, timeout=ALERT_TIMEOUT, context=context)
        else:
            client = smtplib.SMTP(self.host, self.port, timeout=ALERT_TIMEOUT)
            client.starttls(context=context)
        with client:
            if self.user:
                client.login(self.user, self.password)
            client.send_message(message)

    async def send(self, contact: str, row: Row, subject: str, payload: dict[str, Any]) -> None:
        try:
            await asyncio.wait_for(asyncio.to_thread(self.deliver, contact, subject,
                                                     payload["text"]), 2 * ALERT_TIMEOUT)
        except smtplib.SMTPException as exc:  # smtplib's words hold no password
            refused = isinstance(exc, smtplib.SMTPRecipientsRefused)
            raise AlertError(str(exc) or type(exc).__name__,
                             retry=not refused and getattr(exc, "smtp_code", 0) < 500) from None
        except (OSError, TimeoutError) as exc:
            raise AlertError(failure(exc, 2 * ALERT_TIMEOUT)) from None


class Webhook(Channel):
    """A JSON POST to one URL for every alert, naming the site and its contact."""

    name = "webhook"

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session, self.url = session, url

    def contact(self, row: Row) -> str | None:
        # Whom the hook is about (never its URL: a hook's URL is often a secret).
        return ", ".join(c for c in (row.telegram, row.email) if c) or row.name

    async def send(self, contact: str, row: Row, subject: str, payload: dict[str, Any]) -> None:
        body = {**payload, "contact": {"telegram": row.telegram, "email": row.email}}
        try:
            async with self.session.post(self.url, json=body, allow_redirects=False,
                                         timeout=aiohttp.ClientTimeout(total=ALERT_TIMEOUT)
                                         ) as response:
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise AlertError(failure(exc, ALERT_TIMEOUT)) from None
        if status >= 300:
            raise AlertError(f"answered {status}", retry=status >= 500)


def channels(session: aiohttp.ClientSession, env: dict[str, str]) -> list[Channel]:
    """The channels the environment sets up."""
    out: list[Channel] = []
    if env.get("TELEGRAM_BOT_TOKEN"):
        out.append(Telegram(session, env["TELEGRAM_BOT_TOKEN"],
                            env.get("TELEGRAM_API_URL") or "https://api.telegram.org"))
    if env.get("SMTP_HOST"):
        user = env.get("SMTP_USER", "")
        port = env.get("SMTP_PORT") or "465"
        out.append(Mail(env["SMTP_HOST"], int(port) if port.isdigit() else 465, user,
                        env.get("SMTP_PASSWORD", ""),
                        env.get("SMTP_FROM") or user or "uptime@localhost"))
    if env.get("ALERT_WEBHOOK_URL"):
        out.append(Webhook(session, env["ALERT_WEBHOOK_URL"]))
    return out


# -- the monitor ----------------------------------------------------------------------------------

@dataclass
class Site:
    """A site being watched: how it is checked, its confirmed status, the failures since."""

    row: Row
    method: str = "HEAD"
    status: str = ""  # the confirmed status: "200", "502", "connection refused"...
    up: bool = True
    failed_slots: int = 0  # interval slots failed in a row while confirmed up
    alerted: bool = False  # its contact was told it is down (so is told when it is up)


class Monitor:
    """Checks every site on its own schedule and alerts on confirmed changes."""

    def __init__(self, session: aiohttp.ClientSession, rows: list[Row], interval: float,
                 timeout: float, failures: int, channels: list[Channel]) -> None:
        self.session, self.interval, self.failures = session, interval, failures
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.sites = [Site(row) for row in rows]
        self.channels = channels
        self.alerts: set[asyncio.Task[None]] = set()

    async def run(self, stop: asyncio.Event) -> None:
        """Watch every site until `stop` is set; then end the checks, give the alerts in
        flight a moment, and cancel what is left."""
        start = asyncio.get_running_loop().time()
        watchers = [asyncio.create_task(self.watch(site, start)) for site in self.sites]
        await stop.wait()
        for task in watchers:
            task.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
        if self.alerts:
            _, pending = await asyncio.wait(self.alerts, timeout=STOP_GRACE)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def watch(self, site: Site, start: float) -> None:
        """Check `site` at start + k * interval for ever, skipping slots a long check missed."""
        loop = asyncio.get_running_loop()
        slot = 0
        while True:
            up, status = await self.check(site)
            late = int((loop.time() - start) // self.interval) + 1
            spanned = max(late, slot + 1) - slot
            self.record(site, up, status, spanned, first=slot == 0)
            slot += spanned
            await asyncio.sleep(start + slot * self.interval - loop.time())

    async def check(self, site: Site) -> tuple[bool, str]:
        """Ask the site once: (working, its status code or why it failed)."""
        try:
            async with self.session.request(site.method, site.row.url, allow_redirects=False,
                                            timeout=self.timeout) as response:
                code = response.status
            if code in (405, 501) and site.method == "HEAD":
                site.method = "GET"  # HEAD not allowed there: GET from now on
                log.debug("%s: HEAD answered %d, checked by GET from now on", site.row.name, code)
                return await self.check(site)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return False, failure(exc, self.timeout.total or 0)
        return code < 400, str(code)

    def record(self, site: Site, up: bool, status: str, spanned: int, first: bool) -> None:
        """Take one check's outcome: log a confirmed change, alert on working -> down."""
        name = site.row.name
        log.debug("%s: %s", name, status)
        if first:
            site.status, site.up = status, up
            log.info("%s: %s (%s)", name, "up" if up else "down", status)
            return
        if site.up and not up:
            site.failed_slots += spanned
            if site.failed_slots < self.failures:
                return  # not confirmed yet: it may be a flap
        site.failed_slots = 0
        if (up, status) == (site.up, site.status):
            return
        previous, was_up = site.status, site.up
        site.status, site.up = status, up
        log.info("%s: %s -> %s (%s)", name, previous, status, "up" if up else "down")
        if was_up and not up:
            site.alerted = True
            self.alert(site, "down", f"ALERT: {name} is DOWN ({status}; was {previous})",
                       status, previous)
        elif up and not was_up and site.alerted:
            site.alerted = False
            self.alert(site, "up", f"RECOVERED: {name} is up again ({status})", status, previous)

    def alert(self, site: Site, event: str, headline: str, status: str, previous: str) -> None:
        """Send `headline` (with the time) to the site's contact on every channel, each in a
        task of its own, so that a slow channel never delays a check."""
        when = iso(time.time())
        payload = {"site": site.row.name, "event": event, "status": status,
                   "previous": previous, "text": f"{headline} at {when}", "time": when}
        for channel in self.channels:
            contact = channel.contact(site.row)
            if contact is not None:
                task = asyncio.create_task(self.deliver(channel, contact, site.row, headline,
                                                        payload))
                self.alerts.add(task)
                task.add_done_callback(self.alerts.discard)

    async def deliver(self, channel: Channel, contact: str, row: Row, subject: str,
                      payload: dict[str, Any]) -> None:
        """One alert on one channel, tried again once when that may help; the outcome is a log
        line (a failure a warning naming the channel, the contact and why)."""
        for attempt in (1, 2):
            try:
                await channel.send(contact, row, subject, payload)
            except AlertError as exc:
                if exc.retry and attempt == 1:
                    await asyncio.sleep(RETRY_AFTER)
                    continue
                log.warning("alert not sent by %s to %s: %s", channel.name, contact, exc)
            else:
                log.info("alert sent by %s to %s", channel.name, contact)
            return


# -- the program ----------------------------------------------------------------------------------

class Lines(logging.Formatter):
    """`TIME message` (ISO 8601, UTC; a warning says so), the secrets given masked."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = [secret for secret in secrets if secret]

    def format(self, record: logging.LogRecord) -> str:
        level = "" if record.levelno == logging.INFO else record.levelname.lower() + ": "
        line = f"{iso(record.created)} {level}{record.getMessage()}"
        for secret in self.secrets:
            line = line.replace(secret, "***")
        return line


def arguments(argv: list[str] | None) -> argparse.Namespace:
    """The command line, the CSV read; argparse exits 2 with the usage on a bad one."""
    parser = argparse.ArgumentParser(prog="uptime", description="Watch sites, alert on downs.")
    parser.add_argument("csv", type=Path, help="the sites: DOMAIN_NAME;tg_username,email")
    parser.add_argument("interval", type=float, help="seconds between checks")
    parser.add_argument("--timeout", type=float, default=5.0, metavar="S",
                        help="seconds a check may take (default 5)")
    parser.add_argument("--failures", type=int, default=2, metavar="K",
                        help="failed checks in a row that make a site down (default 2)")
    parser.add_argument("--log", type=Path, metavar="FILE", help="log to FILE too")
    parser.add_argument("--config", type=Path, metavar="FILE",
                        help="alert settings in TOML (TELEGRAM_BOT_TOKEN = ..., SMTP_HOST = ..."
                             "); the environment wins over it")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every check")
    options = parser.parse_args(argv)
    if not (0 < options.interval < 1e6 and 0 < options.timeout < 1e6 and options.failures > 0):
        parser.error("INTERVAL and --timeout must be above 0, --failures at least 1")
    try:
        text = options.csv.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeError) as exc:
        parser.error(f"cannot read {options.csv}: {getattr(exc, 'strerror', None) or exc}")
    options.rows, options.warnings = parse_rows(text)
    if not options.rows:
        parser.error(f"{options.csv} names no site")
    options.settings = {}
    if options.config is not None:
        try:
            table = tomllib.loads(options.config.read_text(encoding="utf-8"))
        except (OSError, UnicodeError, tomllib.TOMLDecodeError) as exc:
            parser.error(f"cannot read {options.config}: {getattr(exc, 'strerror', None) or exc}")
        options.settings = {key.upper(): str(value) for key, value in table.items()
                            if isinstance(value, str | int | float)}
    return options


def environment(options: argparse.Namespace) -> dict[str, str]:
    """The settings: the --config file's, the environment's over them."""
    return {**options.settings, **os.environ}


def setup_logging(options: argparse.Namespace, env: dict[str, str]) -> None:
    """Log lines to stderr (and to --log: OSError when it cannot be opened), secrets masked."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if options.log is not None:
        handlers.append(logging.FileHandler(options.log, encoding="utf-8"))
    lines = Lines([env.get(name, "") for name in ("TELEGRAM_BOT_TOKEN", "SMTP_PASSWORD",
                                                   "ALERT_WEBHOOK_URL")])
    for handler in handlers:
        handler.setFormatter(lines)
        log.addHandler(handler)
    log.setLevel(logging.DEBUG if options.verbose else logging.INFO)
    log.propagate = False


async def amain(options: argparse.Namespace, env: dict[str, str]) -> None:
    """Run the monitor until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    connector = aiohttp.TCPConnector(limit=CONNECTION_LIMIT, force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        chosen = channels(session, env)
        monitor = Monitor(session, options.rows, options.interval, options.timeout,
                          options.failures, chosen)
        log.info("watching %d sites every %g s (timeout %g s, down after %d failed checks); "
                 "alerts by %s", len(monitor.sites), options.interval, options.timeout,
                 options.failures, ", ".join(c.name for c in chosen) or "none")
        if not chosen:
            log.warning("no alert channel: set TELEGRAM_BOT_TOKEN, SMTP_HOST or "
                        "ALERT_WEBHOOK_URL; changes are only logged")
        await monitor.run(stop)
    log.info("stopped")


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, run until stopped; the exit status."""
    options = arguments(argv)
    env = environment(options)
    try:
        setup_logging(options, env)
    except OSError as exc:
        print(f"uptime: error: cannot write {options.log}: {exc.strerror}", file=sys.stderr)
        return 2
    for warning in options.warnings:
        log.warning("%s", warning)
    try:
        asyncio.run(amain(options, env))
    except KeyboardInterrupt:  # Ctrl+C before the signal handlers were in place
        log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
