from __future__ import annotations

from typing import Any

from parley.jobs.worker import Handler
from parley.mail.service import SEND_EMAIL, build_message
from parley.mail.transport import MailTransport


def handlers(transport: MailTransport, *, sender: str) -> dict[str, Handler]:
    async def send(payload: dict[str, Any]) -> None:
        await transport.send(build_message(payload, sender=sender))

    return {SEND_EMAIL: send}
