"""Fixtures: ActorSystems that are stopped after the test, and a request builder."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from dspex_actors.lm import LMRequest
from dspex_actors.system import ActorSystem


@pytest.fixture
def make_system() -> Iterator[Callable[..., ActorSystem]]:
    """``make_system(lm=..., **options)`` → a started ActorSystem, stopped at teardown.

    Retries wait 10 ms by default so retry tests stay fast.
    """
    systems: list[ActorSystem] = []

    def factory(*args: Any, **options: Any) -> ActorSystem:
        options.setdefault("retry_base_delay", 0.01)
        options.setdefault("retry_max_delay", 0.05)
        system = ActorSystem(*args, **options).start()
        systems.append(system)
        return system

    yield factory
    for system in reversed(systems):
        system.stop()


def user(text: str, **params: Any) -> LMRequest:
    """A one-message request."""
    cache = params.pop("cache", True)
    rollout_id = params.pop("rollout_id", None)
    return LMRequest(
        messages=({"role": "user", "content": text},),
        params=params,
        cache=cache,
        rollout_id=rollout_id,
    )


@pytest.fixture
def req() -> Callable[..., LMRequest]:
    """``req("text", **params)`` → a one-message LMRequest."""
    return user
