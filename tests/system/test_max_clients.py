"""max_clients: an LM per tenant runs a bounded number of Client actors (threads); a Client
a call is using is never stopped, and a stopped one's breaker stays with the system."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest

import dspex_actors as dx
from dspex_actors import CircuitOpenError, ConfigurationError, LMHTTPStatusError
from dspex_actors.testing import ChatRequest, DefaultResponder, ErrorReply, LocalLMServer

MakeServer = Callable[..., LocalLMServer]
WAIT = 20.0


def _tenant(server: LocalLMServer, i: int, **kwargs: object) -> dx.LM:
    return dx.LM("openai/local-model", api_base=server.url, api_key=f"tenant-key-{i}", **kwargs)  # type: ignore[arg-type]


def _client_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name.startswith("ClientActor"))


def test_tenants_beyond_the_cap_reuse_a_bounded_set_of_clients(lm_server: LocalLMServer) -> None:
    qa = dx.Predict("question -> answer")
    with dx.ActorSystem(max_clients=3) as system:
        for i in range(12):
            with dx.context(lm=_tenant(lm_server, i)):
                assert qa(question=f"What is {i} + 1?").answer == str(i + 1)
            assert _client_threads() <= 3
        assert len(system.stats()["clients"]) == 3

        async def tenants_again() -> list[str]:
            answers = []
            for i in range(6):
                with dx.context(lm=_tenant(lm_server, 100 + i)):
                    answers.append((await qa.acall(question=f"What is {i} + 2?")).answer)
            return answers

        assert asyncio.run(asyncio.wait_for(tenants_again(), WAIT)) == [
            str(i + 2) for i in range(6)
        ]
        assert _client_threads() <= 3
    assert lm_server.stats().requests_total == 18


def test_a_client_in_use_is_never_stopped(make_lm_server: MakeServer) -> None:
    server = make_lm_server(latency=0.5)
    qa = dx.Predict("question -> answer")
    results: dict[int, str] = {}

    def call(i: int) -> None:
        with dx.context(lm=_tenant(server, i, cache=False)):
            results[i] = qa(question=f"What is {i} + 3?").answer

    with dx.ActorSystem(max_clients=2) as system:
        threads = [threading.Thread(target=call, args=(i,)) for i in range(5)]
        for thread in threads:
            thread.start()
        server.wait_for_stats(lambda s: s.in_flight == 5, WAIT)  # five clients in use at once
        assert _client_threads() == 5  # over the cap while every one is in use
        for thread in threads:
            thread.join(WAIT)
        assert results == {i: str(i + 3) for i in range(5)}
        call(5)  # the next new tenant makes room: down to the cap
        assert len(system.stats()["clients"]) == 2
        assert _client_threads() == 2


class _TenantZeroDown(DefaultResponder):
    def __call__(self, request: ChatRequest) -> str:
        if request.headers.get("authorization") == "Bearer tenant-key-0":
            raise ErrorReply(500, "down for tenant 0")
        return super().__call__(request)


def test_a_stopped_clients_breaker_stays_open(make_lm_server: MakeServer) -> None:
    server = make_lm_server(_TenantZeroDown())
    qa = dx.Predict("question -> answer")
    bad = _tenant(server, 0, num_retries=0, cache=False)
    with dx.ActorSystem(max_clients=1, breaker_fail_max=2):
        for _ in range(2):
            with dx.context(lm=bad), pytest.raises(LMHTTPStatusError):
                qa(question="What is 1 + 1?")
        with dx.context(lm=_tenant(server, 1)):  # tenant 0's Client is stopped for it
            assert qa(question="What is 2 + 2?").answer == "4"
        sent = server.stats().requests_total
        with dx.context(lm=bad), pytest.raises(CircuitOpenError):
            qa(question="What is 1 + 1?")
        assert server.stats().requests_total == sent  # refused without a request


def test_max_clients_must_be_a_positive_int() -> None:
    for bad in (0, -1, 1.5, "4"):
        with pytest.raises(ConfigurationError, match="max_clients"):
            dx.ActorSystem(max_clients=bad)  # type: ignore[arg-type]
