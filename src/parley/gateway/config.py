"""The providers and models file (YAML, `${ENV}` substitution for secrets)."""

from __future__ import annotations

import os
import re
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ByteSize,
    ConfigDict,
    Field,
    FilePath,
    field_validator,
    model_validator,
)

from parley.gateway.providers._http1 import Limits, Tls

DEFAULT_CONFIG = Path(__file__).with_name("default.yaml")
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


_LIMITS = Limits()


class LimitsConfig(_Strict):
    """Sizes take units: 64MiB, 512KiB, or a number of bytes."""

    max_body: ByteSize = Field(default=ByteSize(_LIMITS.max_body_bytes), gt=0)
    max_line: ByteSize = Field(default=ByteSize(_LIMITS.max_line_bytes), gt=0)
    max_header_size: ByteSize = Field(default=ByteSize(_LIMITS.max_header_bytes), gt=0)
    max_headers: int = Field(default=_LIMITS.max_headers, gt=0)
    max_connections: int = Field(default=_LIMITS.max_connections, gt=0)

    def limits(self, connect_timeout_s: float) -> Limits:
        return Limits(
            max_body_bytes=int(self.max_body),
            max_line_bytes=int(self.max_line),
            max_header_bytes=int(self.max_header_size),
            max_headers=self.max_headers,
            max_connections=self.max_connections,
            connect_timeout_s=connect_timeout_s,
        )


class TlsConfig(_Strict):
    verify: bool = True
    ca_bundle: FilePath | None = None
    client_cert: FilePath | None = None
    client_key: FilePath | None = None
    client_key_password: str | None = Field(default=None, repr=False)

    @model_validator(mode="after")
    def _key_needs_cert(self) -> TlsConfig:
        if (self.client_key or self.client_key_password) and not self.client_cert:
            raise ValueError("client_key and client_key_password need client_cert")
        return self

    def tls(self) -> Tls:
        return Tls(
            verify=self.verify,
            ca_bundle=str(self.ca_bundle) if self.ca_bundle else None,
            client_cert=str(self.client_cert) if self.client_cert else None,
            client_key=str(self.client_key) if self.client_key else None,
            client_key_password=self.client_key_password,
        )


class ProviderConfig(_Strict):
    type: Literal["openai", "anthropic", "gemini", "local", "mock"]
    base_url: str = ""
    api_key: str | None = None
    timeout_s: float = Field(default=60.0, gt=0)
    connect_timeout_s: float = Field(default=_LIMITS.connect_timeout_s, gt=0)
    tls: TlsConfig = Field(default_factory=TlsConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    headers: dict[str, str] = Field(default_factory=dict)
    options: dict[str, Any] = Field(default_factory=dict)
    # Set when api_key named an environment variable that is not set.
    missing_env: list[str] = Field(default_factory=list, exclude=True)


class DeploymentConfig(_Strict):
    provider: str
    model: str
    weight: float = Field(default=1.0, gt=0)
    timeout_s: float | None = Field(default=None, gt=0)
    max_retries: int = Field(default=2, ge=0, le=10)


class PriceConfig(_Strict):
    input_per_mtok_usd: Decimal = Decimal(0)
    output_per_mtok_usd: Decimal = Decimal(0)

    @property
    def input_micros_per_mtok(self) -> int:
        return int(self.input_per_mtok_usd * 1_000_000)

    @property
    def output_micros_per_mtok(self) -> int:
        return int(self.output_per_mtok_usd * 1_000_000)


class ModelConfig(_Strict):
    kind: Literal["chat", "embedding"] = "chat"
    tier: Literal["basic", "standard", "premium", "custom"] = "basic"
    context_window: int = Field(default=8192, gt=0)
    max_output_tokens: int = Field(default=4096, gt=0)
    reply_reserve: int | None = Field(
        default=None,
        gt=0,
        description="Tokens a conversation keeps free for the reply when it builds the "
        "context; default: max_output_tokens, at most a quarter of the window.",
    )
    price: PriceConfig = Field(default_factory=PriceConfig)
    strategy: Literal["priority", "weighted", "least_busy"] = "priority"
    aliases: list[str] = Field(default_factory=list)
    owned_by: str = "parley"
    deployments: list[DeploymentConfig] = Field(min_length=1)


class BreakerConfig(_Strict):
    failure_threshold: int = Field(default=5, ge=1)
    cooldown_s: float = Field(default=30.0, gt=0)
    window: int = Field(default=50, ge=1, description="Outcomes kept for error-rate reporting.")


class RetryConfig(_Strict):
    base_delay_s: float = Field(default=0.25, ge=0)
    max_delay_s: float = Field(default=8.0, ge=0)


class GatewaySection(_Strict):
    deadline_s: float = Field(default=120.0, gt=0)
    breaker: BreakerConfig = Field(default_factory=BreakerConfig)
    retry: RetryConfig = Field(default_factory=RetryConfig)


class ConversationsSection(_Strict):
    summary_model: str | None = Field(
        default=None,
        description="A cheap model that writes the rolling summaries of long conversations; "
        "default: the conversation's own model.",
    )
    summary_max_tokens: int = Field(default=512, gt=0)


class GatewayConfig(_Strict):
    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    models: dict[str, ModelConfig] = Field(default_factory=dict)
    gateway: GatewaySection = Field(default_factory=GatewaySection)
    conversations: ConversationsSection = Field(default_factory=ConversationsSection)
    # Overrides of the seeded plans, by plan id: {starter: {messages: 20000, rpm: 120}}.
    plans: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @field_validator("models")
    @classmethod
    def _aliases_unique(cls, models: dict[str, ModelConfig]) -> dict[str, ModelConfig]:
        seen: dict[str, str] = {}
        for name, model in models.items():
            for alias in [name, *model.aliases]:
                if alias in seen and seen[alias] != name:
                    raise ValueError(f"model name or alias {alias!r} is used twice")
                seen[alias] = name
        return models

    @model_validator(mode="after")
    def _deployments_name_providers(self) -> GatewayConfig:
        for name, model in self.models.items():
            for d in model.deployments:
                if d.provider not in self.providers:
                    raise ValueError(f"model {name!r}: unknown provider {d.provider!r}")
        return self

    def skipped(self) -> dict[str, str]:
        """Providers left out because a secret they name is not set, and why."""
        return {
            name: f"environment variable {', '.join(p.missing_env)} is not set"
            for name, p in self.providers.items()
            if p.missing_env
        }

    def usable(self) -> GatewayConfig:
        """Without providers whose secrets are missing, and models left with no deployment."""
        providers = {name: p for name, p in self.providers.items() if not p.missing_env}
        models = {}
        for name, m in self.models.items():
            deployments = [d for d in m.deployments if d.provider in providers]
            if deployments:
                models[name] = m.model_copy(update={"deployments": deployments})
        return self.model_copy(update={"providers": providers, "models": models})


def _substitute(value: Any, environ: dict[str, str], missing: list[str]) -> Any:
    if isinstance(value, str):

        def repl(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            found = environ.get(name)
            if found:
                return found
            if default is not None:
                return default
            missing.append(name)
            return ""

        return _ENV.sub(repl, value)
    if isinstance(value, dict):
        return {k: _substitute(v, environ, missing) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, environ, missing) for v in value]
    return value


def parse_config(text: str, environ: dict[str, str] | None = None) -> GatewayConfig:
    environ = dict(os.environ) if environ is None else environ
    raw = yaml.safe_load(text) or {}
    if not isinstance(raw, dict):
        raise ValueError("the config file must be a mapping with providers: and models:")
    providers = {}
    for name, body in (raw.get("providers") or {}).items():
        missing: list[str] = []
        resolved = _substitute(body, environ, missing)
        providers[name] = {**resolved, "missing_env": missing}
    raw["providers"] = providers
    raw["models"] = _substitute(raw.get("models") or {}, environ, [])
    return GatewayConfig.model_validate(raw)


def load_config(path: Path | None, environ: dict[str, str] | None = None) -> GatewayConfig:
    source = path or DEFAULT_CONFIG
    return parse_config(source.read_text(), environ)
