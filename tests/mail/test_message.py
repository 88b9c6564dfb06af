"""Unit edges of mail: building a message, parsing the SMTP URL, writing the outbox."""

from __future__ import annotations

from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from parley.mail.service import build_message
from parley.mail.transport import OutboxTransport, SmtpTransport

SENDER = "Parley <no-reply@parley.local>"


def _payload(**overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "to": "ann@example.com",
        "subject": "Hello",
        "text": "Plain body\nhttp://parley.test/invitations/accept?token=inv_abc\n",
        "html": None,
        "message_id": "<abc123@parley.local>",
    }
    payload.update(overrides)
    return payload


def _reparse(message: EmailMessage) -> EmailMessage:
    """What a receiver reads: the bytes on the wire parsed back."""
    parsed = message_from_bytes(bytes(message), policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def test_build_message_plain_text() -> None:
    message = _reparse(build_message(_payload(), sender=SENDER))
    assert message["From"] == SENDER
    assert message["To"] == "ann@example.com"
    assert message["Subject"] == "Hello"
    assert message["Message-ID"] == "<abc123@parley.local>"
    assert message.get_content_type() == "text/plain"
    assert not message.is_multipart()
    assert message.get_content() == _payload()["text"]


def test_build_message_with_html_is_multipart_alternative() -> None:
    html = "<p>Hello <b>Ann</b></p>"
    message = _reparse(build_message(_payload(html=html), sender=SENDER))
    assert message.get_content_type() == "multipart/alternative"
    parts = list(message.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert isinstance(parts[0], EmailMessage)
    assert isinstance(parts[1], EmailMessage)
    assert parts[0].get_content() == _payload()["text"]
    assert parts[1].get_content().strip() == html


def test_build_message_non_ascii_survives_the_wire() -> None:
    payload = _payload(
        to="zoë@example.com",
        subject="Vous êtes invité à rejoindre Café Ünïcode",
        text="Bonjour Zoë — cliquez ici : http://parley.test/x?token=inv_é\n",
    )
    message = _reparse(build_message(payload, sender=SENDER))
    assert message["Subject"] == payload["subject"]
    assert message.get_content() == payload["text"]


def test_build_message_folds_a_multi_line_subject() -> None:
    """Line breaks in a subject (from user text) neither inject headers nor make the message
    unbuildable, which would fail its job on every retry."""
    payload = _payload(subject="Hi\r\nBcc: victim@example.com\n\tthere")
    message = _reparse(build_message(payload, sender=SENDER))
    assert message["Subject"] == "Hi Bcc: victim@example.com there"
    assert message["Bcc"] is None


@pytest.mark.parametrize(
    ("url", "host", "port", "tls", "user", "password"),
    [
        ("smtp://mail.example.com", "mail.example.com", 25, False, None, None),
        ("smtp://mail.example.com:2525", "mail.example.com", 2525, False, None, None),
        ("smtps://mail.example.com", "mail.example.com", 465, True, None, None),
        ("smtps://mail.example.com:1465", "mail.example.com", 1465, True, None, None),
        ("smtp://u:p@127.0.0.1:587", "127.0.0.1", 587, False, "u", "p"),
        # Percent-encoded credentials are decoded: '@', ':' and '/' may appear in them.
        ("smtp://me%40corp.com:p%3Aa%2Fss%40@smtp.corp.com", "smtp.corp.com", 25, False,
         "me@corp.com", "p:a/ss@"),
        ("smtp://", "localhost", 25, False, None, None),
    ],
)  # fmt: skip
def test_smtp_url_parsing(
    url: str, host: str, port: int, tls: bool, user: str | None, password: str | None
) -> None:
    transport = SmtpTransport(url, timeout_s=3.5)
    assert transport.hostname == host
    assert transport.port == port
    assert transport.use_tls is tls
    assert transport.username == user
    assert transport.password == password
    assert transport.timeout_s == 3.5


@pytest.mark.parametrize("url", ["http://mail.example.com", "mail.example.com", "smtp+tls://x"])
def test_smtp_url_must_be_smtp(url: str) -> None:
    with pytest.raises(ValueError, match="smtp://"):
        SmtpTransport(url, timeout_s=1)


async def test_outbox_transport_writes_one_file_per_message(tmp_path: Path) -> None:
    outbox = tmp_path / "not-yet" / "outbox"
    transport = OutboxTransport(outbox)
    await transport.send(build_message(_payload(), sender=SENDER))
    await transport.send(
        build_message(
            _payload(message_id="<def456@parley.local>", to="bo@example.com"), sender=SENDER
        )
    )
    files = sorted(outbox.glob("*.eml"))
    assert [f.name for f in files] == ["abc123.eml", "def456.eml"]
    second = message_from_bytes(files[1].read_bytes(), policy=policy.default)
    assert second["To"] == "bo@example.com"
    # Sending the same message again (a retried job) overwrites rather than duplicates.
    await transport.send(build_message(_payload(), sender=SENDER))
    assert len(list(outbox.glob("*.eml"))) == 2
