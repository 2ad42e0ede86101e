"""Wire protocols the Client actor can speak, by ``LM("<provider>/<model>")`` prefix."""

from __future__ import annotations

from dspex_actors._errors import ConfigurationError
from dspex_actors.lm.providers._base import Provider
from dspex_actors.lm.providers._openai import OpenAIProvider

__all__ = ["OpenAIProvider", "Provider", "get_provider", "provider_names"]

_PROVIDERS: dict[str, Provider] = {"openai": OpenAIProvider()}


def provider_names() -> list[str]:
    """The known provider prefixes, sorted."""
    return sorted(_PROVIDERS)


def get_provider(name: str) -> Provider:
    """The provider for ``name``; a ConfigurationError listing the known ones otherwise."""
    try:
        return _PROVIDERS[name]
    except KeyError:
        known = ", ".join(provider_names())
        raise ConfigurationError(
            f"unknown LM provider {name!r}; known providers: {known}"
        ) from None
