"""Shared fixtures: every test ends with no actor and no extra thread left running."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pykka
import pytest

LEAK_WAIT_SECONDS = 10.0


def _wait_for_threads_to_end(baseline: set[threading.Thread], timeout: float) -> list[threading.Thread]:
    """Join every thread not in ``baseline`` within ``timeout``; return those still alive."""
    deadline = time.monotonic() + timeout
    for thread in threading.enumerate():
        if thread in baseline or thread is threading.current_thread():
            continue
        thread.join(max(0.0, deadline - time.monotonic()))
    return [t for t in threading.enumerate() if t not in baseline and t.is_alive()]


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Fail the test if it leaves an actor or a thread behind after its fixtures stop."""
    baseline = set(threading.enumerate())
    yield
    leftover_actors = pykka.ActorRegistry.get_all()
    pykka.ActorRegistry.stop_all(timeout=LEAK_WAIT_SECONDS)
    leaked = _wait_for_threads_to_end(baseline, LEAK_WAIT_SECONDS)
    assert not leftover_actors, f"actors left running after the test: {leftover_actors}"
    assert not leaked, f"threads left running after the test: {[t.name for t in leaked]}"
