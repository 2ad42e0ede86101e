"""The values that travel between Predict, the Cache actor and the Client actor."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["LMRequest", "LMResponse", "Message"]

Message = dict[str, str]
"""One chat message: ``{"role": "system"|"user"|"assistant", "content": "..."}``."""


@dataclass(frozen=True)
class LMRequest:
    """One chat-completions call, before credentials and endpoint are added.

    ``params`` are request parameters (temperature, max_tokens, n, response_format,
    ...) already merged from the LM's defaults and the per-call overrides.
    ``cache`` False skips the cache for this call. ``rollout_id`` is folded into the
    cache key only, so a caller can ask for a fresh answer (BootstrapFewShot rounds).
    """

    messages: tuple[Message, ...]
    params: dict[str, Any] = field(default_factory=dict)
    cache: bool = True
    rollout_id: int | None = None


@dataclass(frozen=True)
class LMResponse:
    """A completed call: one text per choice, token usage, and where it came from."""

    texts: tuple[str, ...]
    usage: dict[str, int] = field(default_factory=dict)
    model: str = ""
    finish_reasons: tuple[str | None, ...] = ()
    cached: bool = False
