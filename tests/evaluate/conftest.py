"""Fixtures for the evaluate tests."""

from __future__ import annotations

import time
from collections.abc import Callable

import pykka
import pytest


def _wait_for_actors_to_stop(timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    for ref in pykka.ActorRegistry.get_all():
        assert ref.actor_stopped.wait(max(0.0, deadline - time.monotonic())), ref


@pytest.fixture
def wait_actors_stopped() -> Callable[..., None]:
    """Block (bounded) until every actor stopped: abandoned workers end asynchronously."""
    return _wait_for_actors_to_stop
