"""Outgoing e-mail: verification links, password resets and relayed contact messages.

``PARTNER_MATCH_SMTP_URL`` (``smtp://user:password@host:port``, ``smtps://`` for TLS, ``?starttls=1``)
selects a real server; without it messages are written to the log, which is what development wants.
"""

from __future__ import annotations

import logging
import smtplib
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlparse

log = logging.getLogger("partner_match.mail")


@dataclass(frozen=True)
class Message:
    to: str
    subject: str
    body: str
    reply_to: str | None = None


class Mailer(Protocol):
    sender: str

    def send(self, message: Message) -> None: ...


@dataclass
class LogMailer:
    """Development: every message goes to the log (and ``sent``, for a look in a shell)."""

    sender: str = "partner-match@localhost"
    sent: list[Message] = field(default_factory=list)

    def send(self, message: Message) -> None:
        self.sent.append(message)
        log.warning("e-mail to %s: %s\n%s", message.to, message.subject, message.body)


@dataclass
class SmtpMailer:
    url: str
    sender: str = "partner-match@localhost"
    timeout: float = 10.0

    def send(self, message: Message) -> None:
        parsed = urlparse(self.url)
        if parsed.scheme not in ("smtp", "smtps"):
            raise ValueError(f"PARTNER_MATCH_SMTP_URL must start with smtp:// or smtps://, not {parsed.scheme}://")
        email = EmailMessage()
        email["From"], email["To"], email["Subject"] = self.sender, message.to, message.subject
        if message.reply_to:
            email["Reply-To"] = message.reply_to
        email.set_content(message.body)
        client_class = smtplib.SMTP_SSL if parsed.scheme == "smtps" else smtplib.SMTP
        with client_class(parsed.hostname or "localhost", parsed.port or 25, timeout=self.timeout) as client:
            if parse_qs(parsed.query).get("starttls") == ["1"]:
                client.starttls()
            if parsed.username:
                client.login(unquote(parsed.username), unquote(parsed.password or ""))
            client.send_message(email)


def mailer_for(url: str | None, sender: str) -> Mailer:
    return SmtpMailer(url, sender) if url else LogMailer(sender)
