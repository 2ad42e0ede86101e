"""The circuit breaker: opens after the threshold, fails fast, half-opens, closes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from dspex_actors import CircuitOpenError, LMHTTPStatusError, LMTimeoutError
from dspex_actors.lm import LM, EndpointBreaker, LMRequest
from dspex_actors.system import ActorSystem
from dspex_actors.testing import Fault, LocalLMServer

WAIT = 30.0
RESET = 0.4

MakeSystem = Callable[..., ActorSystem]
Req = Callable[..., LMRequest]


def breaker_state(system: ActorSystem) -> dict[str, Any]:
    (snapshot,) = system.stats()["breakers"].values()
    return snapshot


def wait_for_half_open_window(system: ActorSystem) -> None:
    """Wait (bounded) until the open circuit's reset timeout has elapsed."""
    (breaker,) = system._breakers.values()
    deadline = time.monotonic() + WAIT
    while breaker.retry_in() > 0:
        assert time.monotonic() < deadline
        time.sleep(min(0.05, breaker.retry_in()))


@pytest.fixture
def tripped(
    lm_server: LocalLMServer, make_system: MakeSystem, req: Req
) -> tuple[ActorSystem, LM]:
    """A system whose breaker (fail_max 3) was just opened by three 500s."""
    lm = LM("openai/local-model", api_base=lm_server.url, num_retries=0, timeout=5.0)
    system = make_system(lm, breaker_fail_max=3, breaker_reset_timeout=RESET)
    lm_server.push_faults(Fault.http(500), Fault.http(500), Fault.http(500))
    for i in range(3):
        with pytest.raises(LMHTTPStatusError):
            system.request(req(f"fail {i}", cache=False))
    assert breaker_state(system)["state"] == "open"
    return system, lm


def test_opens_after_threshold_and_fails_fast_without_sending(
    tripped: tuple[ActorSystem, LM], lm_server: LocalLMServer, req: Req
) -> None:
    system, lm = tripped
    assert lm_server.stats().requests_total == 3
    with pytest.raises(CircuitOpenError) as info:
        system.request(req("blocked", cache=False))
    assert lm.endpoint in str(info.value) and info.value.model == lm.model
    assert lm_server.stats().requests_total == 3
    client = next(iter(system.stats()["clients"].values()))
    assert client["circuit_rejections"] == 1


def test_half_opens_admits_one_trial_then_closes(
    tripped: tuple[ActorSystem, LM], lm_server: LocalLMServer, req: Req
) -> None:
    system, _ = tripped
    wait_for_half_open_window(system)
    lm_server.set_latency(0.3)
    trial: list[Any] = []
    thread = threading.Thread(
        target=lambda: trial.append(system.request(req("trial", cache=False)))
    )
    thread.start()
    deadline = time.monotonic() + WAIT
    while lm_server.stats().in_flight < 1:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    assert breaker_state(system)["state"] == "half-open"
    with pytest.raises(CircuitOpenError):
        system.request(req("while the trial runs", cache=False))
    thread.join(WAIT)
    assert trial and trial[0].texts
    assert breaker_state(system)["state"] == "closed"
    lm_server.set_latency(0.0)
    assert system.request(req("after", cache=False)).texts
    assert lm_server.stats().requests_total == 5


def test_failed_trial_reopens(
    tripped: tuple[ActorSystem, LM], lm_server: LocalLMServer, req: Req
) -> None:
    system, _ = tripped
    wait_for_half_open_window(system)
    lm_server.push_faults(Fault.http(503))
    with pytest.raises(LMHTTPStatusError):
        system.request(req("trial", cache=False))
    assert breaker_state(system)["state"] == "open"
    with pytest.raises(CircuitOpenError):
        system.request(req("again", cache=False))
    assert lm_server.stats().requests_total == 4


def test_retries_stop_when_the_circuit_opens(
    lm_server: LocalLMServer, make_system: MakeSystem, req: Req
) -> None:
    lm = LM("openai/local-model", api_base=lm_server.url, num_retries=10)
    system = make_system(lm, breaker_fail_max=2, breaker_reset_timeout=30.0)
    lm_server.push_faults(*[Fault.http(503)] * 5)
    with pytest.raises(CircuitOpenError) as info:
        system.request(req("q", cache=False))
    assert isinstance(info.value.__cause__, LMHTTPStatusError)
    assert lm_server.stats().requests_total == 2


def test_client_errors_do_not_trip(
    lm_server: LocalLMServer, make_system: MakeSystem, req: Req
) -> None:
    lm = LM("openai/local-model", api_base=lm_server.url, num_retries=0)
    system = make_system(lm, breaker_fail_max=2)
    lm_server.push_faults(Fault.http(400), Fault.http(404), Fault.http(422))
    for i in range(3):
        with pytest.raises(LMHTTPStatusError):
            system.request(req(f"q{i}", cache=False))
    assert breaker_state(system)["state"] == "closed"


def test_concurrent_failures_all_count_without_serialising(
    make_lm_server: Callable[..., LocalLMServer], make_system: MakeSystem, req: Req
) -> None:
    server = make_lm_server(latency=0.2)
    lm = LM("openai/local-model", api_base=server.url, num_retries=0, timeout=0.1)
    system = make_system(lm, breaker_fail_max=4, breaker_reset_timeout=30.0)
    errors: list[BaseException] = []

    def call(i: int) -> None:
        try:
            system.request(req(f"q{i}", cache=False))
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert len(errors) == 4 and all(isinstance(e, LMTimeoutError) for e in errors)
    assert breaker_state(system)["state"] == "open"
    assert server.stats().max_in_flight >= 2


def test_stale_outcomes_do_not_count_twice() -> None:
    breaker = EndpointBreaker("http://e", fail_max=2, reset_timeout=0.05)
    early = [breaker.admit(), breaker.admit(), breaker.admit()]
    assert None not in early
    error = LMTimeoutError("t")
    breaker.record(early[0], error)  # type: ignore[arg-type]
    breaker.record(early[1], error)  # type: ignore[arg-type]
    assert breaker.state == "open"
    deadline = time.monotonic() + WAIT
    while breaker.retry_in() > 0:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    trial = breaker.admit()
    assert trial is not None and breaker.state == "half-open"
    assert breaker.admit() is None
    breaker.record(early[2], None)  # a late success sent before the trip: ignored
    assert breaker.state == "half-open"
    breaker.record(trial, None)
    assert breaker.state == "closed"


def test_429s_are_backpressure_and_never_open_the_circuit(
    lm_server: LocalLMServer, make_system: MakeSystem, req: Req
) -> None:
    """A quota error for one key must not cut off the other callers of the endpoint."""
    quota = LM("openai/local-model", api_base=lm_server.url, api_key="key-a", num_retries=0)
    other = LM("openai/local-model", api_base=lm_server.url, api_key="key-b")
    system = make_system(quota, breaker_fail_max=3)
    lm_server.push_faults(*[Fault.http(429)] * 6)
    for index in range(6):
        with pytest.raises(LMHTTPStatusError):
            system.request(req(f"q{index}", cache=False), lm=quota)
    assert breaker_state(system)["state"] == "closed"
    assert all(system.request(req(f"b{i}", cache=False), lm=other).texts for i in range(5))
    assert lm_server.stats().requests_total == 11
