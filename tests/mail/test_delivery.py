"""Invitation email end to end: the outbox folder without SMTP, a real SMTP server with it,
and a broken SMTP server whose mail waits in the jobs table instead of being lost."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from fastapi import FastAPI
from sqlalchemy import select

from parley.app import create_app
from parley.config import Settings
from parley.jobs.models import Job, JobStatus
from parley.mail.service import SEND_EMAIL, send_email
from tests.support import Account, FakeClock, register, unique_email

POLL_S = 3.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Collector:
    """An aiosmtpd handler that keeps what it receives."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def messages(self) -> list[EmailMessage]:
        out = []
        for envelope in self.envelopes:
            raw = envelope.original_content or envelope.content
            assert isinstance(raw, bytes)
            parsed = message_from_bytes(raw, policy=policy.default)
            assert isinstance(parsed, EmailMessage)
            out.append(parsed)
        return out


@contextmanager
def smtp_server(port: int, **smtp_options: Any) -> Iterator[Collector]:
    collector = Collector()
    controller = Controller(collector, hostname="127.0.0.1", port=port, **smtp_options)
    controller.start()
    try:
        yield collector
    finally:
        controller.stop()


@asynccontextmanager
async def running_app(
    settings: Settings, clock: FakeClock
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """An app of our own (like the `app` fixture), for settings the fixture does not use."""
    application = create_app(settings, clock=clock, configure_logs=False)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application, client=("203.0.113.7", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://parley.test") as c:
            yield application, c


async def _eventually(check: Callable[[], Any], timeout_s: float = POLL_S) -> Any:
    """Poll until `check()` returns something truthy (the in-process worker runs jobs just
    after the commit that queued them, not during the request)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"gave up after {timeout_s} s waiting for {check}")
        await asyncio.sleep(0.02)


async def _mail_jobs(app: FastAPI) -> list[Job]:
    async with app.state.ctx.db.session() as session:
        rows = await session.scalars(select(Job).where(Job.kind == SEND_EMAIL).order_by(Job.id))
        return list(rows.all())


async def _invite(
    client: httpx.AsyncClient, owner: Account, email: str, role: str = "member"
) -> dict[str, Any]:
    response = await client.post(
        f"/v1/orgs/{owner.org_id}/invitations",
        json={"email": email, "role": role},
        headers=owner.headers,
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def _read_eml(path: Path) -> EmailMessage:
    parsed = message_from_bytes(path.read_bytes(), policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def _assert_invitation_email(
    message: EmailMessage, *, to: str, org_name: str, invitation: dict[str, Any], sender: str
) -> None:
    assert message["To"] == to
    assert message["From"] == sender
    assert message["Subject"] == f"You are invited to join {org_name} on Parley"
    assert message["Message-ID"]
    body = message.get_content()
    assert invitation["url"] in body
    assert invitation["role"] in body
    assert org_name in body


# --- without SMTP: the outbox folder ---------------------------------------------------------


async def test_invitation_email_lands_in_the_outbox(
    client: httpx.AsyncClient,
    app: FastAPI,
    settings: Settings,
    outbox: Callable[[], list[Path]],
) -> None:
    owner = await register(client)
    renamed = await client.patch(
        f"/v1/orgs/{owner.org_id}", json={"name": "Café Ünïcode"}, headers=owner.headers
    )
    assert renamed.status_code == 200, renamed.text
    assert outbox() == []
    email = unique_email("invitee")
    invitation = await _invite(client, owner, email, "admin")

    [path] = await _eventually(outbox)
    message = _read_eml(path)
    _assert_invitation_email(
        message, to=email, org_name="Café Ünïcode", invitation=invitation, sender=settings.mail_from
    )
    assert path.name == message["Message-ID"].strip("<>").split("@")[0] + ".eml"
    # The link in the email is the one the API returned, and it works.
    invitee = await register(client, email=email)
    token = invitation["url"].split("token=", 1)[1]
    accepted = await client.post(
        "/v1/invitations/accept", json={"token": token}, headers=invitee.headers
    )
    assert accepted.status_code == 200, accepted.text

    [job] = await _eventually(lambda: _jobs_in(app, JobStatus.SUCCEEDED))
    assert job.attempts == 1
    assert job.last_error is None
    assert job.payload["to"] == email


async def test_an_org_name_with_line_breaks_does_not_poison_its_invitation_email(
    client: httpx.AsyncClient, app: FastAPI, outbox: Callable[[], list[Path]]
) -> None:
    owner = await register(client)
    renamed = await client.patch(
        f"/v1/orgs/{owner.org_id}",
        json={"name": "Evil\r\nBcc: victim@example.com"},
        headers=owner.headers,
    )
    assert renamed.status_code == 200, renamed.text
    email = unique_email("plain")
    invitation = await _invite(client, owner, email)
    [path] = await _eventually(outbox)
    message = _read_eml(path)
    assert message["To"] == email
    assert message["Bcc"] is None
    assert message["Subject"] == "You are invited to join Evil Bcc: victim@example.com on Parley"
    assert invitation["url"] in message.get_content()
    [job] = await _eventually(lambda: _jobs_in(app, JobStatus.SUCCEEDED))
    assert job.attempts == 1


async def _jobs_in(app: FastAPI, status: str) -> list[Job]:
    return [j for j in await _mail_jobs(app) if j.status == status]


async def test_one_email_per_invitation_and_none_for_a_refused_one(
    client: httpx.AsyncClient, app: FastAPI, outbox: Callable[[], list[Path]]
) -> None:
    owner = await register(client)
    first, second = unique_email("a"), unique_email("b")
    await _invite(client, owner, first)
    await _invite(client, owner, second, "viewer")
    duplicate = await client.post(
        f"/v1/orgs/{owner.org_id}/invitations", json={"email": first}, headers=owner.headers
    )
    assert duplicate.status_code == 409
    files = await _eventually(lambda: len(outbox()) == 2 and outbox())
    recipients = sorted(str(_read_eml(f)["To"]) for f in files)
    assert recipients == sorted([first, second])
    await asyncio.sleep(0.2)  # nothing else turns up
    assert len(outbox()) == 2
    assert len(await _mail_jobs(app)) == 2


async def test_a_rolled_back_unit_of_work_sends_nothing(
    client: httpx.AsyncClient, app: FastAPI, outbox: Callable[[], list[Path]]
) -> None:
    db = app.state.ctx.db
    now = app.state.ctx.clock()  # jobs are due by the app's clock, which the test holds still

    class Boom(Exception):
        pass

    async def queue_then_fail() -> None:
        async with db.session() as session:
            send_email(session, to="lost@example.com", subject="never", text="never", now=now)
            raise Boom

    with pytest.raises(Boom):
        await queue_then_fail()
    async with db.session() as session:
        message_id = send_email(
            session, to="kept@example.com", subject="kept", text="kept body", now=now
        )
    [path] = await _eventually(outbox)
    message = _read_eml(path)
    assert message["To"] == "kept@example.com"
    assert message["Message-ID"] == message_id
    assert message.get_content() == "kept body\n"
    assert [j.payload["to"] for j in await _mail_jobs(app)] == ["kept@example.com"]


# --- with SMTP --------------------------------------------------------------------------------


async def test_invitation_email_is_sent_over_smtp(
    make_settings: Callable[..., Settings],
    clock: FakeClock,
    redis_cleanup: None,
    outbox: Callable[[], list[Path]],
) -> None:
    port = _free_port()
    settings = make_settings(smtp_url=f"smtp://127.0.0.1:{port}", mail_from="Team <team@acme.test>")
    with smtp_server(port) as server:
        async with running_app(settings, clock) as (app, client):
            owner = await register(client)
            email = unique_email("smtp")
            invitation = await _invite(client, owner, email, "viewer")
            await _eventually(lambda: server.envelopes)
            [envelope] = server.envelopes
            assert envelope.mail_from == "team@acme.test"
            assert envelope.rcpt_tos == [email]
            [message] = server.messages()
            org = await client.get(f"/v1/orgs/{owner.org_id}", headers=owner.headers)
            _assert_invitation_email(
                message,
                to=email,
                org_name=org.json()["name"],
                invitation=invitation,
                sender="Team <team@acme.test>",
            )
            [job] = await _eventually(lambda: _jobs_in(app, JobStatus.SUCCEEDED))
            assert job.attempts == 1
    assert outbox() == []  # with SMTP configured, nothing is written to disk


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
async def test_smtp_credentials_from_the_url_are_used(
    make_settings: Callable[..., Settings], clock: FakeClock, redis_cleanup: None
) -> None:
    logins: list[tuple[bytes, bytes]] = []

    def authenticator(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        logins.append((data.login, data.password))
        ok = data.login == b"mailer@acme.test" and data.password == b"p:ss/w@rd"
        return AuthResult(success=ok)

    port = _free_port()
    settings = make_settings(smtp_url=f"smtp://mailer%40acme.test:p%3Ass%2Fw%40rd@127.0.0.1:{port}")
    with smtp_server(
        port, authenticator=authenticator, auth_required=True, auth_require_tls=False
    ) as server:
        async with running_app(settings, clock) as (_, client):
            owner = await register(client)
            email = unique_email("auth")
            await _invite(client, owner, email)
            await _eventually(lambda: server.envelopes)
            assert server.envelopes[0].rcpt_tos == [email]
    assert logins[0] == (b"mailer@acme.test", b"p:ss/w@rd")


async def test_failed_smtp_delivery_is_retried_not_lost(
    make_settings: Callable[..., Settings], clock: FakeClock, redis_cleanup: None
) -> None:
    port = _free_port()  # nothing listens here yet
    settings = make_settings(smtp_url=f"smtp://127.0.0.1:{port}", smtp_timeout_s=2.0)
    async with running_app(settings, clock) as (app, client):
        owner = await register(client)
        email = unique_email("retry")
        invitation = await _invite(client, owner, email)

        async def failed_once() -> list[Job]:
            return [j for j in await _mail_jobs(app) if j.attempts >= 1 and j.last_error]

        [job] = await _eventually(failed_once)
        assert job.status == JobStatus.QUEUED
        assert job.attempts == 1
        assert job.last_error
        assert job.run_at >= clock.now  # backed off, by the app's clock
        assert job.run_at <= clock.now + timedelta(seconds=2)
        assert job.max_attempts > 1
        assert job.finished_at is None

        # The server comes up; once the backoff has passed, the same job delivers it.
        with smtp_server(port) as server:
            clock.advance(seconds=3)
            await _eventually(lambda: server.envelopes)
            [message] = server.messages()
            assert message["To"] == email
            assert invitation["url"] in message.get_content()
            [done] = await _eventually(lambda: _jobs_in(app, JobStatus.SUCCEEDED))
            assert done.id == job.id
            assert done.attempts == 2
            assert done.last_error is None
            assert message["Message-ID"] == job.payload["message_id"]


async def test_undeliverable_email_ends_dead_with_its_error_kept(
    make_settings: Callable[..., Settings], clock: FakeClock, redis_cleanup: None
) -> None:
    port = _free_port()
    settings = make_settings(smtp_url=f"smtp://127.0.0.1:{port}", smtp_timeout_s=2.0)
    async with running_app(settings, clock) as (app, client):
        owner = await register(client)
        await _invite(client, owner, unique_email("dead"))
        [job] = await _eventually(lambda: _mail_jobs(app))
        for attempt in range(1, job.max_attempts + 1):

            async def attempted(n: int = attempt) -> list[Job]:
                return [j for j in await _mail_jobs(app) if j.attempts >= n and j.locked_by is None]

            [job] = await _eventually(attempted)
            clock.advance(hours=2)  # past any backoff (capped at an hour)
        assert job.status == JobStatus.DEAD
        assert job.attempts == job.max_attempts
        assert job.last_error
        assert isinstance(job.finished_at, datetime)
        clock.advance(days=1)
        await asyncio.sleep(0.2)
        [still] = await _mail_jobs(app)
        assert still.status == JobStatus.DEAD
        assert still.attempts == job.max_attempts
