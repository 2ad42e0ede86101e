"""One process's shared state against a real redis-server: what lands in Redis, tpm,
configuration errors, and Redis dying, stalling and coming back."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import dspex_actors as dx
from dspex_actors import ConfigurationError
from dspex_actors.lm import LM
from dspex_actors.shared import stable_credential_id
from dspex_actors.system import ActorSystem, shutdown_default
from dspex_actors.testing import LocalLMServer
from tests._redis import RedisServer
from tests._support import user

API_KEY = "sk-secret-credential-1234"


def _lm(server: LocalLMServer, **settings: Any) -> LM:
    return LM("openai/local-model", api_base=server.url, api_key=API_KEY, **settings)


def test_a_completed_call_is_in_redis_when_stop_returns(
    redis_server: RedisServer, lm_server: LocalLMServer
) -> None:
    with ActorSystem(lm=_lm(lm_server), redis_url=redis_server.url, cache_ttl=60) as system:
        assert system.request(user("What is 2 + 3?")).texts == ("5",)
    client = redis_server.client()
    keys = client.keys("dspex:cache:*")
    assert len(keys) == 1
    stored = json.loads(client.get(keys[0]))
    assert stored["texts"] == ["5"]
    assert 0 < client.ttl(keys[0]) <= 60
    assert client.keys("dspex:lock:*") == []  # the leader released its lock
    everything = b"".join(k + (client.dump(k) or b"") for k in client.keys("*"))
    assert API_KEY.encode() not in everything
    assert len(client.client_list()) == 1  # only this one: the system closed its connections
    client.close()


def test_the_credential_hash_is_the_same_in_every_process() -> None:
    lm = LM("openai/m", api_base="http://127.0.0.1:1/v1", api_key=API_KEY)
    code = (
        "from dspex_actors.lm import LM; from dspex_actors.shared import stable_credential_id; "
        f"print(stable_credential_id(LM('openai/m', api_base='http://127.0.0.1:1/v1', "
        f"api_key={API_KEY!r})))"
    )
    other = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout.strip()
    assert other == stable_credential_id(lm)
    assert lm.credential_id != stable_credential_id(lm)[: len(lm.credential_id)]
    assert API_KEY not in other
    assert stable_credential_id(lm.copy(api_key="other")) != other
    assert stable_credential_id(lm.copy(api_key=None)) == "none"


def test_configure_takes_a_redis_url(redis_server: RedisServer, lm_server: LocalLMServer) -> None:
    dx.configure(lm=_lm(lm_server), redis_url=redis_server.url, redis_prefix="app1:")
    assert _lm(lm_server)("What is 1 + 1?") == ["2"]
    shutdown_default()
    client = redis_server.client()
    assert len(client.keys("app1:cache:*")) == 1
    client.close()


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:6379", "127.0.0.1:6379", 6379], ids=["http", "no-scheme", "int"]
)
def test_a_bad_redis_url_is_a_configuration_error(url: Any) -> None:
    with pytest.raises(ConfigurationError, match="redis_url"):
        ActorSystem(redis_url=url)


def test_tpm_is_shared_by_systems_on_one_redis(
    redis_server: RedisServer, lm_server: LocalLMServer
) -> None:
    lm = _lm(lm_server, tpm=3600, cache=False)  # 60 a second, a burst of 60
    long_prompt = " ".join(["word"] * 120)  # about 120 prompt tokens: one second's worth twice
    with ActorSystem(lm=lm, redis_url=redis_server.url) as first:
        first.request(user(long_prompt, cache=False))
    with ActorSystem(lm=lm, redis_url=redis_server.url) as second:
        started = time.monotonic()
        second.request(user("What is 1 + 1?", cache=False))
        waited = time.monotonic() - started
    assert waited >= 0.7, waited  # the first system's usage is charged to the shared bucket


def test_tpm_without_redis_limits_one_process(
    make_system: Callable[..., ActorSystem], lm_server: LocalLMServer
) -> None:
    system = make_system(lm=_lm(lm_server, tpm=3600, cache=False))
    system.request(user(" ".join(["word"] * 120), cache=False))
    started = time.monotonic()
    system.request(user("What is 1 + 1?", cache=False))
    assert time.monotonic() - started >= 0.7
    assert system.stats()["redis"] is None


def test_calls_succeed_while_redis_is_killed_and_after_it_is_back(
    tmp_path_factory: pytest.TempPathFactory,
    lm_server: LocalLMServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    redis_server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    try:
        lm = _lm(lm_server, rpm=6000)
        with ActorSystem(lm=lm, redis_url=redis_server.url, redis_timeout=0.5) as system:
            results: list[Any] = []
            killed = threading.Event()

            def caller(index: int) -> None:
                for n in range(20):
                    if index == 0 and n == 5:
                        redis_server.kill()
                        killed.set()
                    try:
                        results.append(system.request(user(f"What is {index} + {n}?")).texts)
                    except Exception as exc:  # any failure fails the test below
                        results.append(exc)

            with caplog.at_level(logging.WARNING, logger="dspex_actors.shared"):
                threads = [threading.Thread(target=caller, args=(i,)) for i in range(4)]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join(60)
            assert killed.is_set()
            failures = [r for r in results if isinstance(r, BaseException)]
            assert not failures, failures[:3]
            assert len(results) == 80
            assert any("is unavailable" in r.message for r in caplog.records)
            assert system.stats()["redis"]["up"] is False

            redis_server.start()  # same port: the link reconnects by itself
            deadline = time.monotonic() + 20
            n = 0
            while not redis_server.client().keys("dspex:cache:*"):
                assert time.monotonic() < deadline, "never reconnected"
                assert system.request(user(f"After the restart {n}?")).texts
                n += 1
            assert system.stats()["redis"]["up"] is True
            assert system.stats()["redis"]["outages"] == 1
    finally:
        redis_server.stop()


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A TCP port that accepts connections and never says a word (a stalled Redis)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    try:
        yield f"redis://127.0.0.1:{sock.getsockname()[1]}/0"
    finally:
        sock.close()


def test_a_stalled_redis_costs_a_timeout_never_a_call(
    silent_server: str, lm_server: LocalLMServer
) -> None:
    lm = _lm(lm_server, rpm=6000)
    with ActorSystem(lm=lm, redis_url=silent_server, redis_timeout=0.2) as system:
        started = time.monotonic()
        answers = [system.request(user(f"What is {n} + 1?")).texts for n in range(5)]
        elapsed = time.monotonic() - started
        stats = system.stats()
    assert answers == [(str(n + 1),) for n in range(5)]
    assert elapsed < 10, elapsed
    assert stats["redis"]["up"] is False
    assert stats["cache"]["misses"] == 5


def _wait_for_state(system: ActorSystem, state: str) -> None:
    deadline = time.monotonic() + 10
    while state not in [b["state"] for b in system.stats()["breakers"].values()]:
        assert time.monotonic() < deadline, f"the breaker never became {state}"
        time.sleep(0.01)


def test_an_opening_shared_through_redis_is_waited_out_per_on_circuit_open(
    redis_server: RedisServer, lm_server: LocalLMServer
) -> None:
    from dspex_actors.testing import Fault

    options = {"redis_url": redis_server.url, "breaker_fail_max": 2, "breaker_reset_timeout": 0.5}
    failing = _lm(lm_server, num_retries=0)
    waiting = _lm(lm_server, on_circuit_open="wait", num_retries=1)
    other_key = _lm(lm_server, on_circuit_open="fail").copy(api_key="sk-another-tenant")
    with ActorSystem(lm=failing, **options) as a, ActorSystem(lm=waiting, **options) as b:
        b.client_handle(waiting)
        b.client_handle(other_key)
        lm_server.push_faults(Fault.http(500), Fault.http(500))
        for n in range(2):
            with pytest.raises(dx.LMHTTPStatusError):
                a.request(user(f"fail {n}", cache=False))
        _wait_for_state(b, "open")
        before = lm_server.stats().requests_total
        # another credential on the same endpoint is not cut off
        assert b.request(user("What is 5 + 5?"), lm=other_key).texts == ("10",)
        # this credential's call waits for the half-open trial, then is that trial
        assert b.request(user("What is 6 + 6?")).texts == ("12",)
        stats = b.stats()["clients"]
    assert lm_server.stats().requests_total == before + 2
    waits = [c["circuit_waits"] for c in stats.values() if c["model"] == "openai/local-model"]
    assert sum(waits) == 1


def test_a_successful_trial_closes_the_circuit_in_every_replica(
    redis_server: RedisServer, lm_server: LocalLMServer
) -> None:
    from dspex_actors.testing import Fault

    options = {"redis_url": redis_server.url, "breaker_fail_max": 2, "breaker_reset_timeout": 0.3}
    lm = _lm(lm_server, num_retries=0, on_circuit_open="wait")
    with ActorSystem(lm=lm, **options) as a, ActorSystem(lm=lm, **options) as b:
        b.client_handle(lm)
        lm_server.push_faults(Fault.http(500), Fault.http(500))
        for n in range(2):
            with pytest.raises(dx.LMHTTPStatusError):
                a.request(user(f"fail {n}", cache=False))
        _wait_for_state(b, "open")
        assert a.request(user("What is 7 + 7?"), lm=lm.copy(num_retries=1)).texts == ("14",)
        _wait_for_state(b, "closed")  # A's trial closed it here too
        requests = lm_server.stats().requests_total
        assert b.request(user("What is 8 + 8?")).texts == ("16",)
        assert b.stats()["clients"][f"client:{lm.config_id}"]["circuit_waits"] == 0
    assert requests == 3
    assert redis_server.client().keys("dspex:breaker:*") == []


def _lead_in_background(system: ActorSystem, server: LocalLMServer, question: str) -> Any:
    """Ask ``question`` on a thread; return it once the server holds the request."""
    leading = threading.Thread(target=lambda: system.request(user(question)))
    leading.start()
    deadline = time.monotonic() + 10
    while server.stats(include_requests=False).in_flight == 0:
        assert time.monotonic() < deadline, "the leader's request never arrived"
        time.sleep(0.01)
    return leading


def test_a_live_leader_keeps_its_lock_past_the_lock_ttl(
    redis_server: RedisServer, lm_server: LocalLMServer
) -> None:
    from dspex_actors.testing import Fault

    options = {"redis_url": redis_server.url, "redis_lock_ttl": 0.3}
    lm = _lm(lm_server)
    lm_server.push_faults(Fault.hang(1.5))  # five lock lifetimes
    with ActorSystem(lm=lm, **options) as a, ActorSystem(lm=lm, **options) as b:
        b.client_handle(lm)
        leading = _lead_in_background(a, lm_server, "What is 9 + 9?")
        response = b.request(user("What is 9 + 9?"))
        leading.join(10)
        shared = b.stats()["redis"]["cache"]
    assert response.texts == ("18",) and response.cached
    assert lm_server.stats().requests_total == 1
    assert shared["followed"] == 1 and shared["took_over"] == 0


def test_a_follower_that_gives_up_leaves_nothing_behind(
    redis_server: RedisServer, lm_server: LocalLMServer
) -> None:
    import asyncio

    from dspex_actors.testing import Fault

    lm = _lm(lm_server)
    lm_server.push_faults(Fault.hang(1.0))
    with (
        ActorSystem(lm=lm, redis_url=redis_server.url) as a,
        ActorSystem(lm=lm, redis_url=redis_server.url) as b,
    ):
        b.client_handle(lm)
        leading = _lead_in_background(a, lm_server, "What is 4 + 4?")
        deadline = time.monotonic() + 10

        async def follow_then_give_up() -> None:
            task = asyncio.ensure_future(b.arequest(user("What is 4 + 4?")))
            while b.stats()["redis"]["cache"]["followed"] == 0:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(follow_then_give_up())
        assert b.stats()["cache"]["in_flight_keys"] == 0
        leading.join(10)
        again = b.request(user("What is 4 + 4?"))
    assert again.texts == ("8",) and again.cached
    assert lm_server.stats().requests_total == 1
