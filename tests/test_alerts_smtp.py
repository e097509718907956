"""Tests of the e-mail and webhook alert ends (conformance/_alerts/_smtp.py, _webhook.py):
smtplib over SMTPS and STARTTLS against the run's trustme CA, AUTH, refusals; webhook bodies."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
import threading
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest
import trustme
from aiohttp import web

from conformance._alerts._smtp import MailAccount, SmtpAlertEnd
from conformance._alerts._webhook import WebhookRecorder, create_webhook_app

ACCOUNT = MailAccount("monitor@example.com", "s3cret")
CONTACT = "admin@example.com"
TIMEOUT = 5.0


@pytest.fixture(scope="module", name="ca")
def fixture_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module", name="end")
def fixture_end(ca: trustme.CA) -> Iterator[SmtpAlertEnd]:
    with SmtpAlertEnd(ACCOUNT, ca=ca, recipients=[CONTACT]) as end:
        yield end


@pytest.fixture(name="client_context")
def fixture_client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def _message(to: str = CONTACT) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = "DOWN: example.com"
    message["From"] = ACCOUNT.user
    message["To"] = to
    message.set_content("example.com went from 200 to 502\n")
    return message


def test_smtps_delivers_and_records(end: SmtpAlertEnd, client_context: ssl.SSLContext) -> None:
    end.clear()
    with smtplib.SMTP_SSL("127.0.0.1", end.smtps_port, context=client_context,
                          timeout=TIMEOUT) as client:
        client.login(ACCOUNT.user, ACCOUNT.password)
        client.send_message(_message())
    [mail] = end.wait_for_mails(1, TIMEOUT)
    assert (mail.listener, mail.tls, mail.auth_user) == ("smtps", True, ACCOUNT.user)
    assert (mail.mail_from, mail.rcpt_tos) == (ACCOUNT.user, (CONTACT,))
    assert (mail.subject, mail.sender, mail.to) == ("DOWN: example.com", ACCOUNT.user, (CONTACT,))
    assert "200 to 502" in mail.text


def test_a_long_subject_reads_unfolded(end: SmtpAlertEnd,
                                       client_context: ssl.SSLContext) -> None:
    end.clear()
    message = _message()
    long = "ALERT: shop.example.org is DOWN (502; was 200) at 2026-12-06T10:00:05Z, " * 2
    del message["Subject"]
    message["Subject"] = long
    with smtplib.SMTP_SSL("127.0.0.1", end.smtps_port, context=client_context,
                          timeout=TIMEOUT) as client:
        client.login(ACCOUNT.user, ACCOUNT.password)
        client.send_message(message)
    [mail] = end.wait_for_mails(1, TIMEOUT)
    assert mail.subject == long.strip()


def test_starttls_then_auth_login(end: SmtpAlertEnd, client_context: ssl.SSLContext) -> None:
    end.clear()
    with smtplib.SMTP("127.0.0.1", end.submission_port, timeout=TIMEOUT) as client:
        client.ehlo()
        assert client.has_extn("starttls") and not client.has_extn("auth")
        client.starttls(context=client_context)
        client.ehlo()
        assert "LOGIN" in client.esmtp_features["auth"]
        # smtplib tries CRAM-MD5, PLAIN, LOGIN in that order: force LOGIN to cover it.
        client.user, client.password = ACCOUNT.user, ACCOUNT.password
        code, _ = client.auth("LOGIN", client.auth_login)
        assert code == 235
        client.send_message(_message())
    [mail] = end.wait_for_mails(1, TIMEOUT)
    assert (mail.listener, mail.tls, mail.auth_user) == ("submission", True, ACCOUNT.user)


def test_submission_refuses_before_starttls(end: SmtpAlertEnd) -> None:
    with smtplib.SMTP("127.0.0.1", end.submission_port, timeout=TIMEOUT) as client:
        client.ehlo()
        code, _ = client.docmd("AUTH", "PLAIN AGZvbwBiYXI=")
        assert code == 530
        code, _ = client.mail(ACCOUNT.user)
        assert code == 530


def test_wrong_password_and_no_auth_are_refused(end: SmtpAlertEnd,
                                                client_context: ssl.SSLContext) -> None:
    end.clear()
    with smtplib.SMTP_SSL("127.0.0.1", end.smtps_port, context=client_context,
                          timeout=TIMEOUT) as client:
        with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
            client.login(ACCOUNT.user, "wrong")
        assert refused.value.smtp_code == 535
        client.ehlo()
        code, _ = client.mail(ACCOUNT.user)
        assert code == 530  # MAIL without AUTH
    # smtplib tries each mechanism offered: both were refused.
    assert [(f.user, f.listener, f.mechanism) for f in end.auth_failures()] == [
        (ACCOUNT.user, "smtps", "PLAIN"), (ACCOUNT.user, "smtps", "LOGIN")]
    assert end.mails() == []


def test_recipient_outside_list_is_refused(end: SmtpAlertEnd,
                                           client_context: ssl.SSLContext) -> None:
    end.clear()
    with smtplib.SMTP_SSL("127.0.0.1", end.smtps_port, context=client_context,
                          timeout=TIMEOUT) as client:
        client.login(ACCOUNT.user, ACCOUNT.password)
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            client.send_message(_message("stranger@example.com"))
        assert refused.value.recipients["stranger@example.com"][0] == 550
        # One good and one bad recipient: delivered to the good one only.
        rejected = client.send_message(_message(), to_addrs=[CONTACT, "x@example.org"])
        assert rejected["x@example.org"][0] == 550
    [mail] = end.wait_for_mails(1, TIMEOUT)
    assert mail.rcpt_tos == (CONTACT,)
    assert [(r.rcpt_to, r.tls, r.auth_user) for r in end.refusals()] == [
        ("stranger@example.com", True, ACCOUNT.user), ("x@example.org", True, ACCOUNT.user)]


def test_cert_files_and_given_port(tmp_path: Path, ca: trustme.CA,
                                   client_context: ssl.SSLContext) -> None:
    chain = tmp_path / "chain.pem"
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(chain))
    with SmtpAlertEnd(ACCOUNT, cert_file=chain) as first, pytest.raises(OSError):
        # The port taken: a second end on it fails to start, and says so.
        SmtpAlertEnd(ACCOUNT, cert_file=chain, smtps_port=first.smtps_port).start()
    with SmtpAlertEnd(ACCOUNT, cert_file=chain) as end, smtplib.SMTP_SSL(
            "127.0.0.1", end.smtps_port, context=client_context, timeout=TIMEOUT) as client:
        client.login(ACCOUNT.user, ACCOUNT.password)
        client.sendmail(ACCOUNT.user, ["anyone@example.net"], b"Subject: hi\r\n\r\nbody\r\n")
        [mail] = end.wait_for_mails(1, TIMEOUT)
        assert (mail.subject, mail.text.strip()) == ("hi", "body")
    with pytest.raises(ValueError):
        SmtpAlertEnd(ACCOUNT)


@pytest.fixture(name="webhook")
def fixture_webhook() -> Iterator[tuple[WebhookRecorder, str]]:
    recorder = WebhookRecorder()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    runner = web.AppRunner(create_webhook_app(recorder), access_log=None)

    async def start() -> int:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return int(runner.addresses[0][1])

    port = asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=TIMEOUT)
    try:
        yield recorder, f"http://127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=TIMEOUT)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=TIMEOUT)
        loop.close()


def test_webhook_records_bodies(webhook: tuple[WebhookRecorder, str]) -> None:
    recorder, url = webhook
    recorder.script([502])
    with httpx.Client(base_url=url, timeout=TIMEOUT) as client:
        assert client.post("/hooks/a?x=1", json={"site": "example.com"}).status_code == 502
        assert client.post("/b", data={"site": "example.com", "to": "502"}).status_code == 200
        assert client.post("/c", content=b'{"raw": 1}',
                           headers={"Content-Type": "text/plain"}).status_code == 200
        client.post("/d", files={"doc": ("log.txt", b"x")}, data={"site": "s"})
        client.get("/health")
    hits = recorder.wait_for(4, TIMEOUT)
    assert [hit.path for hit in hits] == ["/hooks/a", "/b", "/c", "/d"]
    assert (hits[0].json, hits[0].query, hits[0].form) == ({"site": "example.com"}, {"x": ["1"]},
                                                           None)
    assert (hits[1].form, hits[1].json) == ({"site": ["example.com"], "to": ["502"]}, None)
    assert (hits[2].json, hits[2].headers["content-type"]) == ({"raw": 1}, "text/plain")
    assert hits[3].form == {"site": ["s"], "doc": ["log.txt"]}
    assert [hit.method for hit in recorder.hits(None)][-1] == "GET"
