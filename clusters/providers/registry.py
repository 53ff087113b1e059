"""Providers by name."""

from __future__ import annotations

from django.core.exceptions import ValidationError

from clusters.providers.base import Provider
from clusters.providers.capi import CapiProvider
from clusters.providers.local import LocalProvider

_PROVIDERS: dict[str, Provider] = {"local": LocalProvider(), "capi": CapiProvider()}


def register_provider(provider: Provider) -> None:
    _PROVIDERS[provider.name] = provider


def get_provider(name: str) -> Provider:
    provider = _PROVIDERS.get(name)
    if provider is None:
        raise ValidationError(
            {"provider": f"Unknown provider {name!r} (known: {', '.join(sorted(_PROVIDERS))})."}
        )
    return provider


def provider_names() -> list[str]:
    return sorted(_PROVIDERS)
