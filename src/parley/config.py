"""Settings, read once from the environment (prefix PARLEY_) into one typed object."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from parley.kit.keyfile import KeyFileError, read_or_create


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PARLEY_", extra="ignore")

    env: str = "development"  # anything else needs PARLEY_SECRET_KEY
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path("./data")
    database_url: str = ""
    redis_url: str | None = None
    redis_namespace: str = "parley"
    # Connections for commands (counters, limits); a request waits this long for a free one.
    redis_max_connections: int = 64
    redis_pool_timeout_s: float = 2.0
    secret_key: SecretStr | None = None
    public_url: str = ""
    log_level: str = "INFO"
    log_json: bool = True

    # Request limits
    max_body_bytes: int = 1_048_576

    # On SIGTERM, open requests (SSE streams, WebSockets) get this long to finish before they
    # are cut (and metered); the usage flush follows. Orchestrators wait 30 s by default.
    shutdown_grace_s: int = 20

    # Hosts that tenant-given URLs may reach although they resolve to private, loopback or
    # link-local addresses: exact names or `*.domain`, comma-separated in the environment.
    allowed_fetch_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # Conversation WebSockets: one-time tickets, and what one socket may send
    ws_ticket_ttl_s: int = 30
    ws_max_message_bytes: int = 262_144
    ws_messages_per_window: int = 30
    ws_message_window_s: float = 10.0

    # Tokens and sessions
    access_token_ttl_s: int = 900
    refresh_token_ttl_s: int = 30 * 24 * 3600
    invitation_ttl_s: int = 7 * 24 * 3600
    jwt_issuer: str = "parley"

    # Password hashing (Argon2id); tests lower the cost
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65_536
    argon2_parallelism: int = 4

    # Failed-login throttling: per (account, client address) and per address across accounts.
    # No cap per account across all addresses: anyone could use it to lock a user out.
    login_max_failures_per_account_ip: int = 5
    login_max_failures_per_ip: int = 20
    login_failure_window_s: int = 900
    # Progressive delay: after this many failures of an (account, address), each attempt
    # waits base * 2^(failures - free) seconds, at most the max, before it is answered.
    login_delay_free_failures: int = 2
    login_delay_base_s: float = 1.0
    login_delay_max_s: float = 8.0

    # Abuse limits on accounts and organisations (per client address, IPv6 per /64)
    signup_limit_per_ip: int = 10
    signup_limit_window_s: int = 3600
    org_creation_limit_per_ip: int = 10
    org_creation_limit_window_s: int = 3600
    # Organisations on the free plan a user may have created or own (their personal one
    # included); operators and `parley admin bootstrap` are not limited.
    max_free_orgs_per_user: int = 1

    # API key principal cache
    key_cache_ttl_s: float = 30.0
    # SQLite: how often a server reads the announcements of other processes (a plan
    # changed by `parley admin set-plan`, a key revoked on another worker)
    broadcast_poll_s: float = 1.0
    key_last_used_flush_s: float = 5.0

    # Background jobs
    run_worker: bool = True
    worker_poll_s: float = 1.0
    worker_concurrency: int = 4
    job_lease_s: int = 300

    # Email
    smtp_url: SecretStr | None = None
    smtp_timeout_s: float = 10.0
    mail_from: str = "Parley <no-reply@parley.local>"

    auto_migrate: bool = True

    # Gateway: providers and models file (the bundled default when unset)
    config: Path | None = None
    usage_flush_s: float = 1.0

    sqlite_pragmas: dict[str, str] = Field(
        default_factory=lambda: {
            "journal_mode": "WAL",
            "synchronous": "NORMAL",
            "foreign_keys": "ON",
            "busy_timeout": "10000",
        }
    )

    @field_validator("allowed_fetch_hosts", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [host.strip() for host in value.split(",") if host.strip()]
        return value

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'parley.db').as_posix()}"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    @property
    def outbox_dir(self) -> Path:
        return self.data_dir / "outbox"

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def serves_https(self) -> bool:
        """Browsers reach Parley over https (PARLEY_PUBLIC_URL says so), whatever the
        scheme of the hop from a TLS-terminating proxy."""
        return urlsplit(self.base_url).scheme.lower() == "https"

    def signing_key(self) -> str:
        """The JWT signing key: from the environment; in development, else one generated
        once into data_dir and shared by every process that uses that directory."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        if self.env != "development":
            raise MissingSecretKey(
                f"PARLEY_SECRET_KEY is not set, and outside development (PARLEY_ENV={self.env}) "
                "Parley does not make one up. Set PARLEY_SECRET_KEY to a long random value, "
                "the same for every Parley process, for example the output of: "
                "python -c 'import secrets; print(secrets.token_urlsafe(48))'"
            )
        try:
            return read_or_create(self.data_dir / "secret.key", lambda: secrets.token_urlsafe(48))
        except KeyFileError as exc:
            raise MissingSecretKey(str(exc)) from exc


class MissingSecretKey(RuntimeError):
    """No signing key: Parley cannot issue or check access tokens without one."""
