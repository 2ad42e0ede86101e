"""What every finished LM call leaves behind: a history entry and its usage (and cost).

Called by the ActorSystem once per answered request, on the caller's thread or task, so
the caller's current usage tracker sees it.
"""

from __future__ import annotations

import random
import time
from typing import Any

from dspex_actors._types import LMRequest, LMResponse
from dspex_actors._usage import current_tracker
from dspex_actors.lm._history import GLOBAL_HISTORY, CallEntry
from dspex_actors.lm._lm import LM

__all__ = ["call_cost", "call_usage", "record_call"]


def call_cost(lm: LM, usage: dict[str, Any]) -> float | None:
    """USD for ``usage`` at the LM's prices per million tokens (None without prices)."""
    prices = lm.prices
    if prices is None:
        return None
    prompt = float(usage.get("prompt_tokens", 0))
    completion = float(usage.get("completion_tokens", 0))
    return (prompt * prices[0] + completion * prices[1]) / 1e6


def call_usage(lm: LM, response: LMResponse) -> dict[str, Any]:
    """The call's usage entry: its tokens (and cost); a cached answer only counts a hit."""
    if response.cached:
        return {"cache_hits": 1}
    usage: dict[str, Any] = dict(response.usage)
    cost = call_cost(lm, usage)
    if cost is not None:
        usage["cost"] = cost
    return usage


def record_call(lm: LM, request: LMRequest, response: LMResponse) -> LMResponse:
    """Add the call to the current usage tracker and to the history rings; returns
    ``response`` (so a caller can return through it)."""
    usage = call_usage(lm, response)
    tracker = current_tracker()
    if tracker is not None:
        tracker.add_usage(lm.model, usage)
    if lm.history_size:
        entry = CallEntry(
            request, response, lm.model, usage.get("cost"), time.time(), random.getrandbits(128)
        )
        lm.history.append(entry)
        GLOBAL_HISTORY.append(entry)
    return response
