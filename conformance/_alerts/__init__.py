"""Alert ends of our own: fakes of the services a program alerts through, each recording
what arrived, so a spec can judge alerts without the real Telegram or a real mail server."""

from conformance._alerts._botapi import (
    RECORDER,
    ApiError,
    Arrival,
    BotAccount,
    Chat,
    Recorder,
    create_botapi_app,
    parse_text,
)
from conformance._alerts._smtp import AuthFailure, Mail, MailAccount, Refusal, SmtpAlertEnd
from conformance._alerts._webhook import WebhookHit, WebhookRecorder, create_webhook_app

__all__ = [
    "RECORDER",
    "ApiError",
    "Arrival",
    "AuthFailure",
    "BotAccount",
    "Chat",
    "Mail",
    "MailAccount",
    "Recorder",
    "Refusal",
    "SmtpAlertEnd",
    "WebhookHit",
    "WebhookRecorder",
    "create_botapi_app",
    "create_webhook_app",
    "parse_text",
]
