"""Outgoing mail: the standard library's smtplib and email, behind one function.

BIOWEB_SMTP_URL says where mail goes:
    smtp://user:password@host:587?starttls=1   plain SMTP, upgraded with STARTTLS (submission)
    smtps://user:password@host:465             SMTP over TLS from the first byte
    smtp://127.0.0.1:2525                      plain SMTP, no login (a local relay, the tests)
User and password are percent-decoded (an "@" in a password is %40). BIOWEB_MAIL_FROM is the
sender ("bioweb <no-reply@example.com>"). Without BIOWEB_SMTP_URL each message is written to
the outbox, BIOWEB_MAIL_OUTBOX (default instance/outbox), one .eml file per message, and one
log line names its recipient, subject and file (never its content: the links in it are
credentials). So `make run` works offline: open the newest file there to follow a link.

send() connects, delivers and disconnects; it raises MailError when the message could not be
handed over, so the caller can tell the person. Callers send after their transaction has
committed, never while one is open.
"""

from __future__ import annotations

import logging
import os
import smtplib
import ssl
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from flask import current_app

log = logging.getLogger(__name__)

DEFAULT_FROM = "bioweb <no-reply@localhost>"


class MailError(Exception):
    """A message could not be handed to the mail server (or written to the outbox)."""


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    tls: bool  # TLS from the first byte (smtps)
    starttls: bool
    username: str | None
    password: str | None


_TRUE = {"1", "true", "yes", "on"}


def parse_smtp_url(url: str) -> SmtpSettings:
    """The settings BIOWEB_SMTP_URL spells; ValueError naming what is wrong (at app start)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("smtp", "smtps"):
        raise ValueError("BIOWEB_SMTP_URL must start with smtp:// or smtps://")
    if not parts.hostname:
        raise ValueError("BIOWEB_SMTP_URL names no host")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("BIOWEB_SMTP_URL has a port that is not a number from 1 to 65535") from None
    query = parse_qs(parts.query)
    unknown = set(query) - {"starttls"}
    if unknown:
        raise ValueError(f"BIOWEB_SMTP_URL: unknown parameter {sorted(unknown)[0]!r} (known: starttls)")
    starttls = query.get("starttls", ["0"])[-1].strip().lower() in _TRUE
    tls = parts.scheme == "smtps"
    if tls and starttls:
        raise ValueError("BIOWEB_SMTP_URL: smtps:// is TLS already; starttls=1 is for smtp://")
    return SmtpSettings(
        host=parts.hostname,
        port=port or (465 if tls else 587 if starttls else 25),
        tls=tls,
        starttls=starttls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def init_app(app) -> None:
    """Check BIOWEB_SMTP_URL at start, so a typo fails the deploy rather than the first sign-up."""
    url = app.config.get("BIOWEB_SMTP_URL")
    if url:
        parse_smtp_url(url)


def build(to: str, subject: str, body: str) -> EmailMessage:
    message = EmailMessage()
    sender = current_app.config.get("BIOWEB_MAIL_FROM") or DEFAULT_FROM
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime.now(UTC))
    domain = sender.rpartition("@")[2].rstrip(">").strip() or "localhost"
    message["Message-ID"] = make_msgid(domain=domain)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies, please
    message.set_content(body)
    return message


def send(to: str, subject: str, body: str) -> None:
    """Deliver one plain-text message to `to`: through BIOWEB_SMTP_URL, or into the outbox when
    it is unset. Raises MailError when that fails (the reason is logged, without the body)."""
    message = build(to, subject, body)
    url = current_app.config.get("BIOWEB_SMTP_URL")
    if not url:
        _to_outbox(message)
        return
    settings = parse_smtp_url(url)
    timeout = float(current_app.config.get("BIOWEB_SMTP_TIMEOUT", 10))
    try:
        if settings.tls:
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                settings.host, settings.port, timeout=timeout, context=ssl.create_default_context()
            )
        else:
            client = smtplib.SMTP(settings.host, settings.port, timeout=timeout)
        with client:
            if settings.starttls:
                client.starttls(context=ssl.create_default_context())
            if settings.username:
                client.login(settings.username, settings.password or "")
            client.send_message(message)
    except (smtplib.SMTPException, OSError) as error:  # TimeoutError is an OSError
        log.error(
            "mail to %s (%s) not sent: %s via %s:%d",
            to,
            subject,
            type(error).__name__,
            settings.host,
            settings.port,
        )
        raise MailError(str(type(error).__name__)) from None
    log.info("mail to %s (%s) sent via %s:%d", to, subject, settings.host, settings.port)


def outbox() -> Path:
    configured = current_app.config.get("BIOWEB_MAIL_OUTBOX")
    return Path(configured) if configured else Path(current_app.instance_path) / "outbox"


def _to_outbox(message: EmailMessage) -> None:
    folder = outbox()
    name = f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%S.%fZ')}-{uuid.uuid4().hex[:8]}.eml"
    path = folder / name
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # The message holds a link that is a credential: readable by its owner only.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(message.as_bytes())
    except OSError as error:
        log.error("mail to %s (%s) not written to %s: %s", message["To"], message["Subject"], folder, error)
        raise MailError(type(error).__name__) from None
    log.info(
        "mail to %s (%s) written to %s (BIOWEB_SMTP_URL is not set)", message["To"], message["Subject"], path
    )
