"""An SMTP alert end: a mail server of our own (aiosmtpd) that a program under test sends its
e-mail alerts to, recording every message that arrives so a suite can judge the alerts.

Rules: loopback only; two listeners, SMTPS (implicit TLS, as port 465) and submission (plain,
STARTTLS required before anything but EHLO/STARTTLS/QUIT, as port 587); AUTH PLAIN or LOGIN
is required before MAIL and accepts the one test account only (others get 535); a recipient
outside the allowed list gets 550 at RCPT and is recorded as a refusal, never as a mail. The
certificate comes from the run's test CA (a `trustme.CA`) or from given cert/key files. The
records are kept in lists behind a lock: the server's thread appends, the suite reads.
"""

from __future__ import annotations

import email
import email.policy
import socket
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal, TypeVar

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

Listener = Literal["smtps", "submission"]
T = TypeVar("T")

# Names the leaf certificate is valid for when none are given: a program may connect by
# address or by the name our resolver gives the mail host.
DEFAULT_NAMES = ("localhost", "127.0.0.1", "smtp.example.com")


@dataclass(frozen=True)
class MailAccount:
    """The one test account the server accepts at AUTH."""

    user: str
    password: str


@dataclass(frozen=True)
class Mail:
    """One delivered message: when (time.time()), on which listener, the envelope, the parsed
    message, whether the session was TLS and which AUTH user sent it."""

    at: float
    listener: Listener
    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage
    tls: bool
    auth_user: str | None

    @property
    def subject(self) -> str:
        """The Subject header, decoded and unfolded ('' when absent)."""
        return " ".join(str(self.message.get("Subject", "")).split())

    @property
    def sender(self) -> str:
        """The From header, decoded ('' when absent)."""
        return str(self.message.get("From", ""))

    @property
    def to(self) -> tuple[str, ...]:
        """The addresses of the To header (bare, as written)."""
        header = self.message.get("To")
        if header is None:
            return ()
        addresses = getattr(header, "addresses", ())
        return tuple(address.addr_spec for address in addresses) or (str(header),)

    @property
    def text(self) -> str:
        """The body as text: the text/plain part if there is one, else text/html, else ''."""
        part = self.message.get_body(preferencelist=("plain", "html"))
        if part is None:
            return ""
        content = part.get_content()
        return content if isinstance(content, str) else ""


@dataclass(frozen=True)
class Refusal:
    """One recipient refused (550) because it is outside the allowed list."""

    at: float
    listener: Listener
    mail_from: str
    rcpt_to: str
    tls: bool
    auth_user: str | None


@dataclass(frozen=True)
class AuthFailure:
    """One AUTH refused (535): the user name offered and the mechanism."""

    at: float
    listener: Listener
    user: str
    mechanism: str


class _Handler:
    """aiosmtpd's handler for one listener: checks recipients, records into the end."""

    def __init__(self, end: SmtpAlertEnd, listener: Listener) -> None:
        self.end = end
        self.listener = listener

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, mail_options: list[str]) -> str:
        """Refuse MAIL before AUTH (530), as a submission server does; aiosmtpd's own
        auth_required would also demand STARTTLS on the implicit-TLS listener."""
        if not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        """Accept an allowed recipient; refuse any other with 550 and record it."""
        if self.end.allows(address):
            envelope.rcpt_tos.append(address)
            return "250 OK"
        self.end._add(self.end._refusals, Refusal(
            time.time(), self.listener, str(envelope.mail_from or ""), address,
            _is_tls(server), _auth_user(session)))
        return "550 5.1.1 Recipient not accepted here"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Parse and record the message."""
        raw = envelope.original_content or envelope.content or b""
        data = raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogateescape")
        message = email.message_from_bytes(data, policy=email.policy.default)
        assert isinstance(message, EmailMessage)  # the default policy makes EmailMessage
        self.end._add(self.end._mails, Mail(
            time.time(), self.listener, str(envelope.mail_from or ""),
            tuple(envelope.rcpt_tos), message, _is_tls(server), _auth_user(session)))
        return "250 2.0.0 Message accepted for delivery"


def _is_tls(server: SMTP) -> bool:
    # After STARTTLS and on the implicit-TLS listener alike, the transport the session speaks
    # through is an SSL transport: it has an ssl_object.
    transport = server.transport
    return transport is not None and transport.get_extra_info("ssl_object") is not None


def _auth_user(session: Session) -> str | None:
    if not session.authenticated:
        return None
    data = session.auth_data
    return data if isinstance(data, str) else None


class _Controller(Controller):
    """A Controller on a socket bound beforehand: port 0 means a free port, known before the
    server starts, with no window for another process to take it."""

    def __init__(self, handler: _Handler, sock: socket.socket, **kwargs: Any) -> None:
        host, port = sock.getsockname()[:2]
        super().__init__(handler, hostname=host, port=port, **kwargs)
        self._sock = sock

    def _create_server(self) -> Awaitable[Any]:
        return self.loop.create_server(self._factory_invoker, sock=self._sock,
                                       ssl=self.ssl_context)


class SmtpAlertEnd:
    """The mail server: `start()` (or `with`) opens both listeners on `host`, `smtps_port`
    and `submission_port` (0: a free one; the attributes hold the real ports once started);
    `stop()` closes them. `mails()`, `refusals()` and `auth_failures()` are snapshots of what
    arrived; `wait_for_mails(n, timeout)` waits until n mails have arrived.

    TLS: give `ca` (a trustme.CA: a leaf for `names` is issued from it) or `cert_file` (PEM
    chain, key included unless `key_file` is given). `recipients`: the addresses accepted at
    RCPT (compared case-insensitively); None accepts any address."""

    def __init__(self, account: MailAccount, *, ca: trustme.CA | None = None,
                 cert_file: Path | str | None = None, key_file: Path | str | None = None,
                 recipients: Iterable[str] | None = None, host: str = "127.0.0.1",
                 smtps_port: int = 0, submission_port: int = 0,
                 names: Iterable[str] = DEFAULT_NAMES, server_name: str = "smtp.example.com",
                 ) -> None:
        if (ca is None) == (cert_file is None):
            raise ValueError("give either ca or cert_file")
        self.account = account
        self.recipients = (None if recipients is None
                           else frozenset(address.lower() for address in recipients))
        self.host = host
        self.smtps_port = smtps_port
        self.submission_port = submission_port
        self.server_name = server_name
        self._context = _server_context(ca, cert_file, key_file, tuple(names))
        self._lock = threading.Condition()
        self._mails: list[Mail] = []
        self._refusals: list[Refusal] = []
        self._auth_failures: list[AuthFailure] = []
        self._controllers: list[_Controller] = []

    # -- life ----------------------------------------------------------------------------

    def start(self) -> SmtpAlertEnd:
        """Open both listeners (each on its own thread and event loop, as aiosmtpd runs)."""
        try:
            # The whole SMTPS session is TLS: AUTH there needs no STARTTLS first.
            smtps = self._controller("smtps", self.smtps_port, ssl_context=self._context,
                                     auth_require_tls=False)
            self.smtps_port = smtps.port
            submission = self._controller("submission", self.submission_port,
                                          tls_context=self._context, require_starttls=True)
            self.submission_port = submission.port
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Close the listeners (idempotent)."""
        while self._controllers:
            self._controllers.pop().stop()

    def __enter__(self) -> SmtpAlertEnd:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _controller(self, listener: Listener, port: int, **smtp: Any) -> _Controller:
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, port))
        except OSError:
            sock.close()
            raise
        ssl_context = smtp.pop("ssl_context", None)
        controller = _Controller(
            _Handler(self, listener), sock, ssl_context=ssl_context, ready_timeout=5.0,
            # the banner's name: without it aiosmtpd asks socket.getfqdn(), a DNS look-up
            server_hostname=self.server_name,
            authenticator=self._authenticator(listener), **smtp)
        controller.start()
        self._controllers.append(controller)
        return controller

    def _authenticator(self, listener: Listener) -> Callable[..., AuthResult]:
        def authenticate(server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                         auth_data: Any) -> AuthResult:
            # PLAIN and LOGIN both hand over a LoginPassword of bytes.
            if isinstance(auth_data, LoginPassword):
                user = auth_data.login.decode("utf-8", "replace")
                password = auth_data.password.decode("utf-8", "replace")
                if user == self.account.user and password == self.account.password:
                    return AuthResult(success=True, auth_data=user)
            else:
                user = ""
            self._add(self._auth_failures, AuthFailure(time.time(), listener, user, mechanism))
            return AuthResult(success=False, handled=False)
        return authenticate

    # -- records ---------------------------------------------------------------------------

    def allows(self, address: str) -> bool:
        """Whether RCPT accepts `address`."""
        return self.recipients is None or address.strip("<>").lower() in self.recipients

    def _add(self, records: list[T], record: T) -> None:
        with self._lock:
            records.append(record)
            self._lock.notify_all()

    def mails(self) -> list[Mail]:
        """The delivered messages so far, oldest first."""
        with self._lock:
            return list(self._mails)

    def refusals(self) -> list[Refusal]:
        """The recipients refused so far, oldest first."""
        with self._lock:
            return list(self._refusals)

    def auth_failures(self) -> list[AuthFailure]:
        """The AUTH attempts refused so far, oldest first."""
        with self._lock:
            return list(self._auth_failures)

    def wait_for_mails(self, count: int, timeout: float) -> list[Mail]:
        """Wait up to `timeout` s until at least `count` mails have arrived; the mails then
        (fewer than `count` if the time ran out)."""
        with self._lock:
            self._lock.wait_for(lambda: len(self._mails) >= count, timeout)
            return list(self._mails)

    def clear(self) -> None:
        """Forget every record (between phases of a suite's timeline)."""
        with self._lock:
            self._mails.clear()
            self._refusals.clear()
            self._auth_failures.clear()


def _server_context(ca: trustme.CA | None, cert_file: Path | str | None,
                    key_file: Path | str | None, names: tuple[str, ...]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if ca is not None:
        ca.issue_cert(*names).configure_cert(context)
    else:
        context.load_cert_chain(str(cert_file), None if key_file is None else str(key_file))
    return context
