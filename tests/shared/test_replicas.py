"""Several processes sharing one Redis: rate limits, cache, single flight, breaker state.

Each replica is a real process (``replica_main.py``) with its own ActorSystem; they talk
HTTP to one local LM server and to a real redis-server on loopback.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import pytest

from dspex_actors.testing import Fault, LocalLMServer
from tests._redis import RedisServer
from tests.shared._replicas import Replica

pytestmark = pytest.mark.slow


def _lm(server: LocalLMServer, **settings: Any) -> dict[str, Any]:
    lm = {"model": "openai/local-model", "api_base": server.url, "api_key": "sk-shared"}
    return {**lm, **settings}


@contextlib.contextmanager
def _replicas(count: int, lm: dict[str, Any], **system: Any) -> Iterator[list[Replica]]:
    with contextlib.ExitStack() as stack:
        replicas = [stack.enter_context(Replica(lm, **system)) for _ in range(count)]
        for replica in replicas:
            replica.wait_ready()
        yield replicas
        for replica in replicas:
            replica.close()


def _flood(groups: list[tuple[list[Replica], LocalLMServer]], seconds: float) -> list[int]:
    """Requests each group's server received while all the replicas called as fast as they
    were let, for the same ``seconds``."""
    before = [server.stats(include_requests=False).requests_total for _, server in groups]
    until = time.time() + seconds
    for replicas, _ in groups:
        for replica in replicas:
            replica.send("flood", until=until, threads=4)
    for replicas, _ in groups:
        # each answers at ``until`` (one may have got none of a shared budget)
        assert sum(replica.receive()["done"] for replica in replicas) > 0
    after = [server.stats(include_requests=False).requests_total for _, server in groups]
    return [a - b for a, b in zip(after, before, strict=True)]


def test_three_replicas_share_one_rpm_budget(
    redis_server: RedisServer, make_lm_server: Any
) -> None:
    shared_server, separate_server = make_lm_server(), make_lm_server()
    window = 2.0
    one_process = 2 + 2 * window  # rpm=120: 2 a second, a burst of 2
    with (
        _replicas(3, _lm(shared_server, rpm=120), redis_url=redis_server.url) as shared,
        _replicas(3, _lm(separate_server, rpm=120)) as separate,
    ):
        shared_count, separate_count = _flood(
            [(shared, shared_server), (separate, separate_server)], window
        )
    # one process alone: its burst of 2, then 2 a second (the last may fall just outside)
    assert shared_count <= one_process + 2, (shared_count, separate_count)
    assert separate_count >= 2 * one_process, (shared_count, separate_count)
    assert separate_count >= 2 * shared_count, (shared_count, separate_count)


def test_a_second_replica_is_served_from_the_first_ones_cache(
    redis_server: RedisServer, lm_server: LocalLMServer
) -> None:
    questions = [f"What is {n} + 1?" for n in range(5)]
    with _replicas(1, _lm(lm_server), redis_url=redis_server.url) as (first,):
        answers = first.command("ask", questions=questions)["results"]
    assert [a["text"] for a in answers] == [str(n + 1) for n in range(5)]
    assert lm_server.stats().requests_total == 5
    with _replicas(1, _lm(lm_server), redis_url=redis_server.url) as (second,):
        again = second.command("ask", questions=questions)["results"]
        stats = second.command("stats")
    assert [a["text"] for a in again] == [a["text"] for a in answers]
    assert all(a["cached"] for a in again)
    assert lm_server.stats().requests_total == 5  # none from the second replica
    assert stats["cache"]["shared_hits"] == 5


def test_two_replicas_with_sixteen_threads_each_send_one_request(
    redis_server: RedisServer, make_lm_server: Any
) -> None:
    server = make_lm_server(latency=0.3)
    lm = _lm(server)
    with _replicas(2, lm, redis_url=redis_server.url) as replicas:
        for replica in replicas:
            replica.send("ask", questions=["What is 20 + 22?"], threads=16)
        results = [r for replica in replicas for r in replica.receive()["results"]]
    assert [r.get("text") for r in results] == ["42"] * 32
    assert server.stats().requests_total == 1


def test_a_circuit_opened_in_one_replica_fails_fast_in_another(
    redis_server: RedisServer, lm_server: LocalLMServer
) -> None:
    lm = _lm(lm_server, num_retries=0, on_circuit_open="fail")
    system = {"redis_url": redis_server.url, "breaker_fail_max": 2, "breaker_reset_timeout": 30}
    with _replicas(2, lm, **system) as (a, running):
        lm_server.push_faults(Fault.http(500), Fault.http(500))
        for n in range(2):
            assert a.command("call_once", question=f"fail {n}")["error"] == "LMHTTPStatusError"
        assert lm_server.stats().requests_total == 2
        # already running: told through the channel
        assert running.command("wait_breaker_open", timeout=10)["state"] == "open"
        refused = running.command("call_once", question="What is 1 + 1?")
        # started after the circuit opened: reads the marker when its breaker is made
        with _replicas(1, lm, **system) as (late,):
            refused_late = late.command("call_once", question="What is 2 + 2?")
    assert refused["error"] == "CircuitOpenError", refused
    assert refused_late["error"] == "CircuitOpenError", refused_late
    assert lm_server.stats().requests_total == 2  # no request from the others


def test_a_follower_takes_over_when_the_leader_crashes(
    redis_server: RedisServer, lm_server: LocalLMServer
) -> None:
    lm = _lm(lm_server, timeout=60)
    system = {"redis_url": redis_server.url, "redis_lock_ttl": 0.5}
    lm_server.push_faults(Fault.hang(60))
    with _replicas(2, lm, **system) as (leader, follower):
        leader.send("ask", questions=["What is 3 + 4?"])
        deadline = time.monotonic() + 30
        while lm_server.stats(include_requests=False).in_flight == 0:
            assert time.monotonic() < deadline, "the leader's request never arrived"
            time.sleep(0.01)
        follower.send("ask", questions=["What is 3 + 4?"])
        leader.kill()  # holds the lock; its renewals stop with it
        answer = follower.receive()["results"]
        stats = follower.command("stats")
    assert answer == [{"text": "7", "cached": False}]
    assert stats["redis"]["cache"]["took_over"] + stats["redis"]["cache"]["led"] == 1
    assert lm_server.stats().requests_total == 2
