"""What an optimizer run spent, per phase: LM calls, tokens and wall time.

The counts come from the running system's Client actors (requests that reached an LM:
cache hits cost nothing and are not counted), read before and after each phase, so
they cover every call the phase made on any thread -- and any other call made on the
same system meanwhile.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from dspex_actors._errors import DSPexError
from dspex_actors.system import current_system

__all__ = ["Budget", "PhaseCost"]

logger = logging.getLogger(__name__)

_COUNTED = ("requests", "prompt_tokens", "completion_tokens")


@dataclass
class PhaseCost:
    """One phase's spend (summed when a phase runs more than once)."""

    lm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    wall_seconds: float = 0.0

    @property
    def tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            "lm_calls": self.lm_calls,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "tokens": self.tokens,
            "wall_seconds": round(self.wall_seconds, 4),
        }


@dataclass
class Budget:
    """Per-phase spend of one compile; ``phases`` keeps the order phases first ran in."""

    optimizer: str
    phases: dict[str, PhaseCost] = field(default_factory=dict)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Count what the body spends under ``name``."""
        before = _counters()
        started = time.perf_counter()
        try:
            yield
        finally:
            wall = time.perf_counter() - started
            after = _counters()
            cost = self.phases.setdefault(name, PhaseCost())
            cost.lm_calls += after["requests"] - before["requests"]
            cost.prompt_tokens += after["prompt_tokens"] - before["prompt_tokens"]
            cost.completion_tokens += after["completion_tokens"] - before["completion_tokens"]
            cost.wall_seconds += wall

    @property
    def total(self) -> PhaseCost:
        """Every phase together."""
        total = PhaseCost()
        for cost in self.phases.values():
            total.lm_calls += cost.lm_calls
            total.prompt_tokens += cost.prompt_tokens
            total.completion_tokens += cost.completion_tokens
            total.wall_seconds += cost.wall_seconds
        return total

    def to_dict(self) -> dict[str, Any]:
        """``{"optimizer", "phases": {name: cost}, "total": cost}``, JSON-ready."""
        return {
            "optimizer": self.optimizer,
            "phases": {name: cost.to_dict() for name, cost in self.phases.items()},
            "total": self.total.to_dict(),
        }

    def log(self) -> None:
        """One INFO line per phase and one for the total."""
        for name, cost in self.phases.items():
            logger.info("%s %s: %s", self.optimizer, name, cost.to_dict())
        logger.info("%s total: %s", self.optimizer, self.total.to_dict())


def _counters() -> dict[str, int]:
    """The system's Client counters summed over its LMs (zeros when none is running)."""
    totals = dict.fromkeys(_COUNTED, 0)
    try:
        stats = current_system().stats()
    except DSPexError:
        logger.debug("no running system to count LM calls on", exc_info=True)
        return totals
    clients: Mapping[str, Any] = stats.get("clients") or {}
    for client in clients.values():
        for key in _COUNTED:
            value = client.get(key, 0)
            if isinstance(value, int):
                totals[key] += value
    return totals
