"""Sending email is a job: queued with the write that causes it, retried until delivered."""

from __future__ import annotations

from datetime import datetime
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from parley.jobs.queue import enqueue

SEND_EMAIL = "mail.send"


def send_email(
    session: AsyncSession,
    *,
    to: str,
    subject: str,
    text: str,
    html: str | None = None,
    now: datetime | None = None,
) -> str:
    """Queue a message; returns its Message-ID (fixed now, so a retried send is recognisable).

    `now` is the caller's clock: the worker claims due jobs by the same (injectable) clock.
    """
    message_id = make_msgid(domain="parley.local")
    payload: dict[str, Any] = {
        "to": to,
        "subject": subject,
        "text": text,
        "html": html,
        "message_id": message_id,
    }
    enqueue(session, SEND_EMAIL, payload, run_at=now, max_attempts=12)
    return message_id


def build_message(payload: dict[str, Any], *, sender: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = payload["to"]
    # A subject is one line; one built from user text (an organisation's name) may hold line
    # breaks, which email headers refuse: the job would fail on every retry.
    message["Subject"] = " ".join(str(payload["subject"]).split())
    message["Message-ID"] = payload["message_id"]
    message.set_content(payload["text"])
    if payload.get("html"):
        message.add_alternative(payload["html"], subtype="html")
    return message
