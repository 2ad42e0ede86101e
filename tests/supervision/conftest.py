"""Fixtures for the supervision tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pykka
import pytest
from supervision_helpers import WAIT, Recorder

from supervision import Supervisor


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def supervisors() -> Iterator[Callable[..., pykka.ActorRef[Supervisor]]]:
    """``start(...)`` like ``Supervisor.start``; every supervisor is stopped at teardown."""
    started: list[pykka.ActorRef[Supervisor]] = []

    def start(*args: Any, **kwargs: Any) -> pykka.ActorRef[Supervisor]:
        ref = Supervisor.start(*args, **kwargs)
        started.append(ref)
        return ref

    yield start
    for ref in reversed(started):
        ref.stop(block=True, timeout=WAIT)
