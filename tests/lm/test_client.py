"""The Client actor against the real local server: success, faults, retries, limits."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from dspex_actors import (
    LMConnectionError,
    LMError,
    LMHTTPStatusError,
    LMTimeoutError,
    LMUnavailableError,
    MalformedResponseError,
)
from dspex_actors.lm import LM, LMRequest, LMResponse
from dspex_actors.system import ActorSystem
from dspex_actors.testing import ChatRequest, Fault, LocalLMServer, secret_fingerprint
from tests._support import run_concurrently

SECRET = "sk-test-SECRET-0123456789"

WAIT = 30.0

MakeSystem = Callable[..., ActorSystem]
Req = Callable[..., LMRequest]


def test_counters_include_a_call_as_soon_as_it_returns(
    lm_server: LocalLMServer, make_system: MakeSystem, req: Req
) -> None:
    """A pool thread completes the caller's future itself, after queueing its bookkeeping."""
    lm = LM("openai/local-model", api_base=lm_server.url, cache=False)
    system = make_system(lm)
    for done in range(1, 21):
        system.request(req(f"call {done}"))
        client = next(iter(system.stats()["clients"].values()))
        assert (client["successes"], client["in_flight"]) == (done, 0)


def test_success_round_trip(lm_server: LocalLMServer, make_system: MakeSystem, req: Req) -> None:
    lm = LM("openai/local-model", api_base=lm_server.url, api_key=SECRET, top_p=0.5)
    system = make_system(lm)
    response = system.request(lm.make_request("What is 2 + 3?"))
    assert isinstance(response, LMResponse)
    assert len(response.texts) == 1 and response.texts[0]
    assert not response.cached
    assert response.usage["total_tokens"] > 0
    stats = lm_server.stats()
    assert stats.requests_total == 1
    body = stats.requests[0]
    assert body["model"] == "local-model"
    assert body["messages"] == [{"role": "user", "content": "What is 2 + 3?"}]
    assert (body["temperature"], body["max_tokens"], body["top_p"]) == (0.0, 1000, 0.5)
    headers = {k.lower(): v for k, v in stats.headers[0].items()}
    assert headers["authorization"] == secret_fingerprint(f"Bearer {SECRET}")
    client = next(iter(system.stats()["clients"].values()))
    assert (client["requests"], client["successes"], client["failures"]) == (1, 1, 0)
    assert client["total_tokens"] == response.usage["total_tokens"]


def test_n_choices(lm_server: LocalLMServer, make_system: MakeSystem) -> None:
    lm = LM("openai/local-model", api_base=lm_server.url)
    system = make_system(lm)
    assert len(system.request(lm.make_request("hello", n=3)).texts) == 3


@pytest.mark.parametrize(
    "case",
    [
        (Fault.http(500), LMHTTPStatusError, 500),
        (Fault.http(503), LMHTTPStatusError, 503),
        (Fault.http(429, retry_after=7), LMHTTPStatusError, 429),
        (Fault.http(400), LMHTTPStatusError, 400),
        (Fault.hang(5.0), LMTimeoutError, None),
        (Fault.malformed_json(), MalformedResponseError, None),
        (Fault.no_choices(), MalformedResponseError, None),
        (Fault.drop(), LMConnectionError, None),
    ],
    ids=["500", "503", "429", "400", "hang", "malformed_json", "no_choices", "drop"],
)
def test_each_fault_is_a_typed_error(
    lm_server: LocalLMServer,
    make_system: MakeSystem,
    req: Req,
    case: tuple[Fault, type[LMError], int | None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    fault, error_type, status = case
    caplog.set_level(logging.DEBUG)
    lm = LM(
        "openai/local-model", api_base=lm_server.url, api_key=SECRET, num_retries=0, timeout=0.3
    )
    system = make_system(lm)
    lm_server.push_faults(fault)
    with pytest.raises(error_type) as info:
        system.request(req("hi", cache=False))
    error = info.value
    assert error.model == "openai/local-model"
    assert error.endpoint == lm.endpoint
    assert lm.endpoint in str(error) and "openai/local-model" in str(error)
    if status is not None:
        assert isinstance(error, LMHTTPStatusError)
        assert error.status_code == status
        assert "injected fault" in error.body_excerpt
        if status == 429:
            assert error.retry_after == 7.0
    for text in (str(error), repr(error), repr(error.args), caplog.text, repr(system.stats())):
        assert SECRET not in text
    assert lm_server.stats().requests_total == 1


def test_retries_then_success(lm_server: LocalLMServer, make_system: MakeSystem, req: Req) -> None:
    lm = LM("openai/local-model", api_base=lm_server.url, num_retries=3, timeout=0.3)
    system = make_system(lm)
    lm_server.push_faults(Fault.http(503), Fault.drop(), Fault.hang(5.0))
    response = system.request(req("hi", cache=False))
    assert response.texts
    assert lm_server.stats().requests_total == 4
    client = next(iter(system.stats()["clients"].values()))
    assert (client["attempts"], client["retries"], client["successes"]) == (4, 3, 1)


def test_retries_exhausted_gives_the_last_error(
    lm_server: LocalLMServer, make_system: MakeSystem, req: Req
) -> None:
    lm = LM("openai/local-model", api_base=lm_server.url, num_retries=2)
    system = make_system(lm)
    lm_server.push_faults(Fault.http(500), Fault.http(502), Fault.http(503))
    with pytest.raises(LMHTTPStatusError) as info:
        system.request(req("hi", cache=False))
    assert info.value.status_code == 503
    assert lm_server.stats().requests_total == 3


def test_client_errors_other_than_429_are_not_retried(
    lm_server: LocalLMServer, make_system: MakeSystem, req: Req
) -> None:
    lm = LM("openai/local-model", api_base=lm_server.url, num_retries=3)
    system = make_system(lm)
    lm_server.push_faults(Fault.http(401), Fault.http(400))
    with pytest.raises(LMHTTPStatusError) as info:
        system.request(req("hi", cache=False))
    assert info.value.status_code == 401
    assert lm_server.stats().requests_total == 1


def test_retry_after_is_honoured(
    lm_server: LocalLMServer, make_system: MakeSystem, req: Req
) -> None:
    arrivals: list[float] = []

    def responder(request: ChatRequest) -> str:
        arrivals.append(time.monotonic())
        return "ok"

    lm_server.set_responder(responder)
    lm = LM("openai/local-model", api_base=lm_server.url, num_retries=2)
    system = make_system(lm)
    lm_server.push_faults(Fault.http(429, retry_after=0.4))
    started = time.monotonic()
    assert system.request(req("hi", cache=False)).texts == ("ok",)
    assert lm_server.stats().status(429) == 1
    assert arrivals[0] - started >= 0.4


def test_retry_wait_does_not_block_other_calls(
    lm_server: LocalLMServer, make_system: MakeSystem, req: Req
) -> None:
    lm = LM("openai/local-model", api_base=lm_server.url, num_retries=1, max_concurrency=1)
    system = make_system(lm)
    lm_server.push_faults(Fault.http(503, retry_after=1.0))
    slow_done = threading.Event()

    def slow() -> None:
        system.request(req("slow", cache=False))
        slow_done.set()

    thread = threading.Thread(target=slow)
    thread.start()
    lm_server.wait_for_stats(lambda s: s.status(503) == 1, WAIT)
    # The retry waits 1 s and holds no slot: another call (cap 1) goes through meanwhile.
    assert system.request(req("fast", cache=False)).texts
    assert not slow_done.is_set()
    thread.join(WAIT)
    assert slow_done.is_set()


def test_concurrency_cap_at_the_server(
    make_lm_server: Callable[..., LocalLMServer], make_system: MakeSystem, req: Req
) -> None:
    server = make_lm_server(latency=0.1)
    lm = LM("openai/local-model", api_base=server.url, max_concurrency=3)
    system = make_system(lm)
    results = run_concurrently(lambda i: system.request(req(f"q{i}", cache=False)), 12)
    assert all(isinstance(r, LMResponse) for r in results)
    stats = server.stats()
    assert stats.requests_total == 12
    assert 1 <= stats.max_in_flight <= 3
    assert next(iter(system.stats()["clients"].values()))["max_in_flight"] <= 3


def test_many_calls_in_flight_at_once(
    make_lm_server: Callable[..., LocalLMServer], make_system: MakeSystem, req: Req
) -> None:
    server = make_lm_server(latency=0.5)
    lm = LM("openai/local-model", api_base=server.url)
    system = make_system(lm)
    results = run_concurrently(lambda i: system.request(req(f"q{i}", cache=False)), 8)
    assert all(isinstance(r, LMResponse) for r in results)
    # Serialised calls would never overlap; the deferred replies let them all overlap.
    assert server.stats().max_in_flight >= 2
    assert next(iter(system.stats()["clients"].values()))["max_in_flight"] >= 2


def test_rpm_limit_at_the_server(
    lm_server: LocalLMServer, make_system: MakeSystem, req: Req
) -> None:
    arrivals: list[float] = []
    lock = threading.Lock()

    def responder(request: ChatRequest) -> str:
        with lock:
            arrivals.append(time.monotonic())
        return "ok"

    lm_server.set_responder(responder)
    rpm = 300.0  # 5 per second, bursts of at most 5
    lm = LM("openai/local-model", api_base=lm_server.url, rpm=rpm)
    system = make_system(lm)
    results = run_concurrently(lambda i: system.request(req(f"q{i}", cache=False)), 10)
    assert all(isinstance(r, LMResponse) for r in results)
    arrivals.sort()
    rate, burst, slack = rpm / 60.0, 5, 0.05
    for first in range(len(arrivals)):
        for last in range(first + burst, len(arrivals)):
            window = arrivals[last] - arrivals[first]
            assert window >= (last - first + 1 - burst) / rate - slack


def test_no_thread_left_after_stop(lm_server: LocalLMServer, req: Req) -> None:
    before = set(threading.enumerate())
    lm = LM("openai/local-model", api_base=lm_server.url, rpm=6000)
    system = ActorSystem(lm, retry_base_delay=0.01).start()
    lm_server.push_faults(Fault.http(500))
    run_concurrently(lambda i: system.request(req(f"q{i}", cache=False)), 4)
    system.stop()
    extra = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    for thread in extra:
        thread.join(5.0)
    assert [t.name for t in extra if t.is_alive()] == []


def test_stop_fails_in_flight_calls_promptly(lm_server: LocalLMServer, req: Req) -> None:
    lm = LM("openai/local-model", api_base=lm_server.url, timeout=30.0)
    system = ActorSystem(lm).start()
    lm_server.push_faults(*[Fault.hang(20.0)] * 3)
    results: list[Any] = []
    thread = threading.Thread(
        target=lambda: results.extend(
            run_concurrently(lambda i: system.request(req(f"q{i}", cache=False)), 3)
        )
    )
    thread.start()
    lm_server.wait_for_stats(lambda s: s.in_flight == 3, WAIT)
    started = time.monotonic()
    system.stop()
    thread.join(WAIT)
    assert not thread.is_alive()
    assert len(results) == 3
    assert all(isinstance(r, LMUnavailableError) for r in results), results
    assert time.monotonic() - started < 15.0
