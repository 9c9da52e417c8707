"""A small name → builder registry, so configs choose architectures by name (``spadekit list``)."""

from __future__ import annotations

from typing import Callable

from torch import nn

from spadekit.config import Config, ModelConfig
from spadekit.errors import ConfigError

Builder = Callable[[Config], nn.Module]
_REGISTRY: dict[str, dict[str, tuple[Builder, str]]] = {"generator": {}, "discriminator": {}, "encoder": {}}


def register(kind: str, name: str, description: str) -> Callable[[Builder], Builder]:
    """Decorator: make ``builder(config)`` available as ``kind`` named ``name``."""

    def decorate(builder: Builder) -> Builder:
        _REGISTRY[kind][name] = (builder, description)
        return builder

    return decorate


def available(kind: str | None = None) -> dict[str, dict[str, str]]:
    """``{kind: {name: description}}`` of everything registered."""
    kinds = [kind] if kind else list(_REGISTRY)
    return {k: {name: desc for name, (_, desc) in _REGISTRY[k].items()} for k in kinds}


def as_config(config: Config | ModelConfig) -> Config:
    """Builders take a whole :class:`Config` (methods read their own section); a bare model section
    is wrapped with defaults for the rest."""
    return config if isinstance(config, Config) else Config(model=config)


def create(kind: str, name: str, config: Config | ModelConfig) -> nn.Module:
    try:
        builder, _ = _REGISTRY[kind][name]
    except KeyError:
        choices = ", ".join(_REGISTRY.get(kind, {})) or "none"
        raise ConfigError(f"unknown {kind} {name!r}; registered: {choices}") from None
    return builder(as_config(config))
