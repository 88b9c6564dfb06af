"""The models clients may ask for, resolved by name or alias to their deployments."""

from __future__ import annotations

from dataclasses import dataclass

from parley.gateway.config import GatewayConfig, ModelConfig
from parley.gateway.providers.base import Deployment


@dataclass(frozen=True, slots=True)
class ModelSpec:
    name: str
    kind: str
    tier: str
    context_window: int
    max_output_tokens: int
    reply_reserve: int
    input_micros_per_mtok: int
    output_micros_per_mtok: int
    strategy: str
    owned_by: str
    deployments: tuple[Deployment, ...]

    def cost_micros(self, prompt_tokens: int, completion_tokens: int) -> int:
        """Cost in micro-USD, rounded half up to the micro-unit (integers only)."""
        numerator = (
            prompt_tokens * self.input_micros_per_mtok
            + completion_tokens * self.output_micros_per_mtok
        )
        return (numerator + 500_000) // 1_000_000


def _spec(name: str, model: ModelConfig) -> ModelSpec:
    return ModelSpec(
        name=name,
        kind=model.kind,
        tier=model.tier,
        context_window=model.context_window,
        max_output_tokens=model.max_output_tokens,
        reply_reserve=model.reply_reserve
        or min(model.max_output_tokens, model.context_window // 4),
        input_micros_per_mtok=model.price.input_micros_per_mtok,
        output_micros_per_mtok=model.price.output_micros_per_mtok,
        strategy=model.strategy,
        owned_by=model.owned_by,
        deployments=tuple(
            Deployment(
                provider=d.provider,
                model=d.model,
                weight=d.weight,
                timeout_s=d.timeout_s,
                max_retries=d.max_retries,
            )
            for d in model.deployments
        ),
    )


class ModelCatalog:
    def __init__(self, config: GatewayConfig) -> None:
        self.models = {name: _spec(name, m) for name, m in config.models.items()}
        self._by_alias = {name: name for name in self.models}
        for name, model in config.models.items():
            for alias in model.aliases:
                self._by_alias[alias] = name

    def resolve(self, name: str) -> ModelSpec | None:
        canonical = self._by_alias.get(name)
        return self.models[canonical] if canonical else None

    def all(self) -> list[ModelSpec]:
        return list(self.models.values())
