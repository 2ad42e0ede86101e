"""An open circuit never wipes out a batch, and one tenant's failures never block another's."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

import dspex_actors as dx
from dspex_actors.system import ActorSystem
from dspex_actors.testing import ChatRequest, DefaultResponder, ErrorReply, Fault, LocalLMServer

WAIT = 30.0
RESET = 1.0

MakeSystem = Callable[..., ActorSystem]


def _devset(n: int) -> list[dx.Example]:
    return [dx.Example(question=f"q{i}", answer="x").with_inputs("question") for i in range(n)]


def _answered(gold: Any, pred: Any, trace: Any = None) -> float:
    return 1.0 if pred.answer else 0.0


def _open(system: ActorSystem, lm: dx.LM, server: LocalLMServer, failures: int = 5) -> None:
    """Open the circuit with ``failures`` 503s (interactive calls: they fail fast)."""
    server.push_faults(*[Fault.http(503)] * failures)
    one_shot = lm.copy(num_retries=0)
    for i in range(failures):
        with pytest.raises(dx.LMHTTPStatusError):
            system.request(dx.LMRequest(messages=({"role": "user", "content": f"o{i}"},)), one_shot)
    (breaker,) = system.stats()["breakers"].values()
    assert breaker["state"] == "open"


def test_blip_at_the_start_of_an_evaluate_costs_almost_nothing(
    make_lm_server: Callable[..., LocalLMServer], make_system: MakeSystem
) -> None:
    server = make_lm_server(latency=0.01)
    lm = dx.LM("openai/local-model", api_base=server.url, cache=False)
    system = make_system(lm, breaker_reset_timeout=RESET)
    server.push_faults(*[Fault.http(503)] * 5)  # 5 x 503, then healthy
    started = time.monotonic()
    with system:
        result = dx.Evaluate(devset=_devset(300), metric=_answered, num_threads=16)(
            dx.Predict("question -> answer")
        )
    elapsed = time.monotonic() - started
    assert len(result.results) == 300
    assert result.score >= 95, [f.message for f in result.failures][:3]
    assert elapsed < 30
    (client,) = system.stats()["clients"].values()
    assert client["circuit_waits"] > 0  # the breaker did open; the batch waited it out


def test_dead_endpoint_fails_a_batch_in_about_one_reset_timeout(
    make_lm_server: Callable[..., LocalLMServer], make_system: MakeSystem
) -> None:
    server = make_lm_server()
    server.set_fault_rates({Fault.http(503): 1.0})
    lm = dx.LM("openai/local-model", api_base=server.url, cache=False)
    system = make_system(lm, breaker_reset_timeout=RESET)
    started = time.monotonic()
    with system, pytest.raises(dx.EvaluationAborted, match="first 20 examples") as aborted:
        dx.Evaluate(devset=_devset(60), metric=_answered, num_threads=8)(
            dx.Predict("question -> answer")
        )
    elapsed = time.monotonic() - started
    result = aborted.value.result  # the partial result: every finished example, failed
    assert 20 <= len(result.results) < 60 and result.score == 0
    assert {f.error_type for f in result.failures} <= {"CircuitOpenError", "LMHTTPStatusError"}
    assert elapsed < 4 * RESET + 5  # one wait for the failed trial, never an endless one
    assert server.stats().requests_total < 60  # the open circuit sent no request for most


def test_interactive_calls_fail_fast_and_lm_setting_wins(
    lm_server: LocalLMServer, make_system: MakeSystem
) -> None:
    lm = dx.LM("openai/local-model", api_base=lm_server.url, cache=False)
    system = make_system(lm, breaker_reset_timeout=RESET)
    _open(system, lm, lm_server)
    qa = dx.Predict("question -> answer")
    with system:
        started = time.monotonic()
        with pytest.raises(dx.CircuitOpenError):
            qa(question="interactive")
        with pytest.raises(dx.CircuitOpenError):  # a batch with num_retries=0 fails fast too
            _evaluate_raising(qa, lm.copy(num_retries=0))
        failing = lm.copy(on_circuit_open="fail")
        result = _evaluate(qa, failing, 4)
        assert {f.error_type for f in result.failures} == {"CircuitOpenError"}
        assert time.monotonic() - started < RESET  # none of it waited
        waiting = lm.copy(on_circuit_open="wait")
        assert qa(question="waits for the trial", lm=waiting).answer  # interactive, but told to
        assert time.monotonic() - started >= RESET * 0.5


def _evaluate(qa: dx.Predict, lm: dx.LM, n: int) -> dx.EvaluationResult:
    program = _WithLM(qa, lm)
    return dx.Evaluate(devset=_devset(n), metric=_answered, num_threads=4)(program)


def _evaluate_raising(qa: dx.Predict, lm: dx.LM) -> None:
    result = _evaluate(qa, lm, 1)
    (failure,) = result.failures
    assert failure.exception is not None
    raise failure.exception


class _WithLM(dx.Module):
    def __init__(self, qa: dx.Predict, lm: dx.LM) -> None:
        super().__init__()
        self.qa, self.lm_for_calls = qa, lm

    def forward(self, **kwargs: Any) -> dx.Prediction:
        return self.qa(lm=self.lm_for_calls, **kwargs)


class _KeyAFails(DefaultResponder):
    """Tenant A's key gets 500s (its responder raises), tenant B's are answered."""

    def __call__(self, request: ChatRequest) -> str:
        if request.headers.get("authorization") == "Bearer key-a":
            raise RuntimeError("tenant A's backend is broken")
        return super().__call__(request)


def test_one_tenants_failures_never_block_another(
    make_lm_server: Callable[..., LocalLMServer], make_system: MakeSystem
) -> None:
    server = make_lm_server(_KeyAFails())
    lm_a = dx.LM("openai/local-model", api_base=server.url, api_key="key-a", cache=False)
    lm_b = lm_a.copy(api_key="key-b")
    system = make_system(lm_a, breaker_fail_max=3, breaker_reset_timeout=30.0)
    for i in range(5):
        with pytest.raises((dx.LMHTTPStatusError, dx.CircuitOpenError)):
            system.request(dx.LMRequest(messages=({"role": "user", "content": f"a{i}"},)))
    breakers = system.stats()["breakers"]
    assert sorted(b["state"] for b in breakers.values()) == ["open"]
    before = server.stats().requests_total
    answers = [
        system.request(dx.LMRequest(messages=({"role": "user", "content": f"b{i}"},)), lm_b)
        for i in range(20)
    ]
    assert len(answers) == 20 and all(a.texts[0] for a in answers)
    assert server.stats().requests_total == before + 20  # every one reached the server
    assert sorted(b["state"] for b in system.stats()["breakers"].values()) == ["closed", "open"]
    assert "key-a" not in repr(system.stats()) and "key-b" not in repr(system.stats())


class _KeyAOverQuota(DefaultResponder):
    """Tenant A's key is always over its quota (429), tenant B's calls are answered."""

    def __call__(self, request: ChatRequest) -> str:
        if request.headers.get("authorization") == "Bearer key-a":
            raise ErrorReply(429, "insufficient_quota", retry_after=0.01)
        return super().__call__(request)


def test_one_tenants_429s_never_block_another(
    make_lm_server: Callable[..., LocalLMServer], make_system: MakeSystem
) -> None:
    server = make_lm_server(_KeyAOverQuota())
    lm_a = dx.LM(
        "openai/local-model", api_base=server.url, api_key="key-a", cache=False, num_retries=2
    )
    lm_b = lm_a.copy(api_key="key-b")
    system = make_system(lm_a, breaker_fail_max=3)
    for i in range(5):
        with pytest.raises(dx.LMHTTPStatusError) as info:
            system.request(dx.LMRequest(messages=({"role": "user", "content": f"a{i}"},)))
        assert info.value.status_code == 429
    assert server.stats().status(429) == 15  # each retried twice: backpressure, never an outage
    before = server.stats().requests_total
    answers = [
        system.request(dx.LMRequest(messages=({"role": "user", "content": f"b{i}"},)), lm_b)
        for i in range(20)
    ]
    assert all(a.texts[0] for a in answers)
    assert server.stats().requests_total == before + 20  # 20 of 20 reached the server
    assert {b["state"] for b in system.stats()["breakers"].values()} == {"closed"}
