"""Where a built message goes: an SMTP server, or a file in the outbox."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

import aiosmtplib
import anyio
import structlog

log = structlog.get_logger("parley.mail")


class MailTransport(Protocol):
    async def send(self, message: EmailMessage) -> None: ...


class OutboxTransport:
    """Writes each message as an .eml file, for machines without a mail server."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def send(self, message: EmailMessage) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        msg_id = str(message["Message-ID"]).strip("<>").split("@", 1)[0]
        path = self.directory / f"{msg_id}.eml"
        # Written under a temporary name and renamed, so a reader of the folder never
        # sees half a message.
        partial = self.directory / f".{msg_id}.eml.partial"
        await anyio.Path(partial).write_bytes(bytes(message))
        await anyio.Path(partial).rename(path)
        log.info("mail.written", to=message["To"], subject=message["Subject"], path=str(path))


class SmtpTransport:
    """`smtp://[user:pass@]host[:port]` (STARTTLS when offered), `smtps://` for implicit TLS."""

    def __init__(self, url: str, *, timeout_s: float) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps"):
            raise ValueError("PARLEY_SMTP_URL must start with smtp:// or smtps://")
        self.hostname = parts.hostname or "localhost"
        self.use_tls = parts.scheme == "smtps"
        self.port = parts.port or (465 if self.use_tls else 25)
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.timeout_s = timeout_s

    async def send(self, message: EmailMessage) -> None:
        await aiosmtplib.send(
            message,
            hostname=self.hostname,
            port=self.port,
            username=self.username,
            password=self.password,
            use_tls=self.use_tls,
            start_tls=None if not self.use_tls else False,
            timeout=self.timeout_s,
        )
        log.info("mail.sent", to=message["To"], subject=message["Subject"])
