"""``ActorSystem.stop(grace=...)``: calls in flight finish, new ones are refused at once."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

import dspex_actors as dx
from dspex_actors.testing import LocalLMServer

WAIT = 30.0
MakeServer = Callable[..., LocalLMServer]


def lm_for(server: LocalLMServer) -> dx.LM:
    return dx.LM("openai/local-model", api_base=server.url, api_key="k", cache=False)


def wait_until(condition: Callable[[], bool], timeout: float = WAIT) -> None:
    """Bounded wait for a condition another thread makes true."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        threading.Event().wait(0.005)


def test_calls_in_flight_finish_and_new_ones_are_refused(make_lm_server: MakeServer) -> None:
    server = make_lm_server(latency=1.0)
    lm = lm_for(server)
    system = dx.ActorSystem(lm=lm).start()
    with ThreadPoolExecutor(4) as pool, system:
        calls = [pool.submit(lm, f"question {i}") for i in range(3)]
        server.wait_for_stats(lambda s: s.in_flight == 3, WAIT)
        stopper: Future[None] = pool.submit(system.stop, grace=WAIT)
        wait_until(lambda: system.stopping)
        with pytest.raises(dx.SystemStoppingError, match="is stopping"):
            lm("a new call")
        with pytest.raises(dx.SystemStoppingError):
            asyncio.run(lm.acall("a new async call"))
        answers = [call.result(WAIT) for call in calls]
        stopper.result(WAIT)

    assert all(isinstance(a, list) and len(a) == 1 for a in answers)
    assert not system.running and not system.stopping
    assert server.stats().requests_total == 3  # the refused calls sent nothing


def test_calls_still_running_after_the_grace_fail(make_lm_server: MakeServer) -> None:
    server = make_lm_server(latency=WAIT)
    lm = lm_for(server)
    system = dx.ActorSystem(lm=lm).start()
    with ThreadPoolExecutor(2) as pool, system:
        call = pool.submit(lm, "a slow question")
        server.wait_for_stats(lambda s: s.in_flight == 1, WAIT)
        started = time.monotonic()
        system.stop(grace=0.2)
        stopped_in = time.monotonic() - started
        with pytest.raises(dx.LMUnavailableError):
            call.result(WAIT)
    assert stopped_in < WAIT / 2
    assert not system.running


def test_grace_must_be_a_number() -> None:
    system = dx.ActorSystem().start()
    try:
        with pytest.raises(dx.ConfigurationError, match="grace"):
            system.stop(grace=-1)
    finally:
        system.stop()
