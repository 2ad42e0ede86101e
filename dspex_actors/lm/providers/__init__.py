"""Wire protocols the Client actor can speak, by ``LM("<provider>/<model>")`` prefix."""

from __future__ import annotations

from dspex_actors._errors import ConfigurationError
from dspex_actors.lm.providers._anthropic import AnthropicProvider
from dspex_actors.lm.providers._azure import AzureOpenAIProvider
from dspex_actors.lm.providers._base import Provider, StreamDecoder, is_loopback_url
from dspex_actors.lm.providers._gemini import GeminiProvider
from dspex_actors.lm.providers._openai import OpenAIProvider

__all__ = [
    "AnthropicProvider",
    "AzureOpenAIProvider",
    "GeminiProvider",
    "OpenAIProvider",
    "Provider",
    "StreamDecoder",
    "get_provider",
    "is_loopback_url",
    "provider_names",
]

_PROVIDERS: dict[str, Provider] = {
    provider.name: provider
    for provider in (
        OpenAIProvider(),
        AnthropicProvider(),
        GeminiProvider(),
        AzureOpenAIProvider(),
    )
}


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
