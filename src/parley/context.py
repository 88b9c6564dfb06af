"""Everything a running Parley holds: settings, engines, backends and the services over them.

Built once by `create_app` (or the worker) and passed down; nothing lives in module globals.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog

from parley.accounts.directory import AccountDirectory
from parley.accounts.service import AccountService
from parley.backends.factory import Backends, build_backends
from parley.billing.service import BillingService
from parley.config import Settings
from parley.conversations.context import ContextBuilder
from parley.conversations.live import ConversationHub
from parley.conversations.replies import ReplyRunner
from parley.conversations.service import ConversationService
from parley.conversations.tickets import SocketTickets
from parley.db.engine import Database
from parley.gateway.config import load_config
from parley.gateway.service import GatewayService
from parley.jobs.worker import Handler, Worker
from parley.keys.cache import KeyCache, KeyUsageTracker
from parley.keys.service import KeyService
from parley.kit.clock import Clock, Sleep, utcnow
from parley.kit.jwt import AccessTokenSigner, TicketSigner
from parley.kit.netguard import FetchGuard
from parley.kit.passwords import PasswordHasherService
from parley.mail import tasks as mail_tasks
from parley.mail.transport import MailTransport, OutboxTransport, SmtpTransport
from parley.orgs.service import OrgService
from parley.signup import SignUp
from parley.usage.quotas import QuotaService
from parley.usage.recorder import UsageRecorder
from parley.usage.service import UsageReports

log = structlog.get_logger("parley")


@dataclass
class AppContext:
    settings: Settings
    db: Database
    backends: Backends
    mail: MailTransport
    accounts: AccountService
    orgs: OrgService
    signup: SignUp
    keys: KeyService
    key_cache: KeyCache
    key_usage: KeyUsageTracker
    usage_recorder: UsageRecorder
    billing: BillingService
    quotas: QuotaService
    usage_reports: UsageReports
    gateway: GatewayService
    conversations: ConversationService
    conversation_hub: ConversationHub
    replies: ReplyRunner
    socket_tickets: SocketTickets
    clock: Clock = utcnow
    worker: Worker | None = field(default=None)

    @classmethod
    def build(
        cls, settings: Settings, *, clock: Clock = utcnow, sleep: Sleep = asyncio.sleep
    ) -> AppContext:
        db = Database(settings.resolved_database_url, sqlite_pragmas=settings.sqlite_pragmas)
        backends = build_backends(settings, db)
        mail: MailTransport
        if settings.smtp_url is not None:
            mail = SmtpTransport(
                settings.smtp_url.get_secret_value(), timeout_s=settings.smtp_timeout_s
            )
        else:
            mail = OutboxTransport(settings.outbox_dir)
        hasher = PasswordHasherService(
            time_cost=settings.argon2_time_cost,
            memory_kib=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
        )
        signing_key = settings.signing_key()
        signer = AccessTokenSigner(
            signing_key, issuer=settings.jwt_issuer, ttl_s=settings.access_token_ttl_s
        )
        gateway_config = load_config(settings.config)
        billing = BillingService(db, backends.control, overrides=gateway_config.plans, clock=clock)
        orgs = OrgService(
            settings,
            billing=billing,
            users=AccountDirectory(),
            limiter=backends.limiter,
            clock=clock,
        )
        accounts = AccountService(
            settings,
            hasher=hasher,
            signer=signer,
            counters=backends.counters,
            limiter=backends.limiter,
            memberships=orgs,
            clock=clock,
            sleep=sleep,
        )
        key_cache = KeyCache(backends.control, ttl_s=settings.key_cache_ttl_s)
        key_usage = KeyUsageTracker(db, flush_s=settings.key_last_used_flush_s, clock=clock)
        keys = KeyService(key_cache, key_usage, clock=clock)
        usage = UsageRecorder(db, flush_s=settings.usage_flush_s, data_dir=settings.data_dir)
        quotas = QuotaService(backends.limiter, billing, db, usage, clock=clock)
        usage_reports = UsageReports(billing, orgs, usage, clock=clock)
        gateway = GatewayService(
            gateway_config,
            usage,
            quotas,
            clock=clock,
            fetch_guard=FetchGuard(settings.allowed_fetch_hosts),
        )
        conversations = ConversationService(
            db, gateway, ContextBuilder(gateway, gateway_config.conversations), clock=clock
        )
        conversation_hub = ConversationHub(backends.pubsub)
        socket_tickets = SocketTickets(
            db,
            conversations,
            TicketSigner(signing_key, issuer=settings.jwt_issuer),
            signer,
            backends.counters,
            ttl_s=settings.ws_ticket_ttl_s,
            clock=clock,
        )
        return cls(
            settings=settings,
            db=db,
            backends=backends,
            mail=mail,
            accounts=accounts,
            orgs=orgs,
            signup=SignUp(settings, accounts=accounts, orgs=orgs, limiter=backends.limiter),
            keys=keys,
            key_cache=key_cache,
            key_usage=key_usage,
            usage_recorder=usage,
            billing=billing,
            quotas=quotas,
            usage_reports=usage_reports,
            gateway=gateway,
            conversations=conversations,
            conversation_hub=conversation_hub,
            replies=ReplyRunner(conversations, conversation_hub),
            socket_tickets=socket_tickets,
            clock=clock,
        )

    def job_handlers(self) -> dict[str, Handler]:
        return {**mail_tasks.handlers(self.mail, sender=self.settings.mail_from)}

    def make_worker(self) -> Worker:
        return Worker(
            self.db,
            self.job_handlers(),
            concurrency=self.settings.worker_concurrency,
            poll_s=self.settings.worker_poll_s,
            lease_s=self.settings.job_lease_s,
            clock=self.clock,
        )

    async def start(self, *, with_worker: bool, with_gateway: bool = True) -> None:
        await self.key_cache.start()
        self.key_usage.start()
        # Before any quota counter is rebuilt from the ledger.
        await self.usage_recorder.replay_spilled()
        self.usage_recorder.start()
        await self.billing.start()
        if with_gateway:
            await self.gateway.start()
            await self.conversation_hub.start()
            await self.replies.start_sweeping()
        if with_worker:
            self.worker = self.make_worker()
            self.db.jobs_committed = self.worker.wake
            self.worker.start()

    async def stop(self) -> None:
        """Each step runs even when an earlier one failed: the replies still running end
        and are metered before the usage buffer is flushed (or spilled), whatever else broke."""
        steps: list[Callable[[], Awaitable[None]]] = [
            self._stop_worker,
            self.replies.stop_sweeping,
            self.conversation_hub.stop,
            self.gateway.stop,
            self.quotas.drain,
            self.billing.stop,
            self.usage_recorder.stop,
            self.key_usage.stop,
            self.key_cache.stop,
            self.backends.close,
            self.db.dispose,
        ]
        for step in steps:
            try:
                await step()
            except Exception:
                log.exception("parley.stop_step_failed", step=step.__qualname__)

    async def _stop_worker(self) -> None:
        if self.worker is not None:
            await self.worker.stop()
            self.db.jobs_committed = None
