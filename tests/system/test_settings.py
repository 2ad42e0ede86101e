"""dx.context() per thread and per task, and configure() swapping settings in place."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

import dspex_actors as dx
from dspex_actors.system import current_system
from dspex_actors.testing import LocalLMServer

WAIT = 20.0


def _lm(server: LocalLMServer, model: str) -> dx.LM:
    return dx.LM(f"openai/{model}", api_base=server.url)


def _models(server: LocalLMServer) -> list[str]:
    return [body["model"] for body in server.stats().requests]


def _in_thread(fn: Callable[[], object]) -> object:
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(fn).result(timeout=WAIT)


def test_context_lm_per_thread_on_one_cache_actor(lm_server: LocalLMServer) -> None:
    qa = dx.Predict("question -> answer")
    model_b = _lm(lm_server, "model-b")
    with dx.ActorSystem(lm=_lm(lm_server, "model-a")) as system:
        cache = system.cache_handle().ref()
        barrier = threading.Barrier(2, timeout=WAIT)

        def with_b() -> str:
            with dx.context(lm=model_b):
                barrier.wait()
                return qa(question="b?").answer

        def without() -> str:
            barrier.wait()
            return qa(question="a?").answer

        with ThreadPoolExecutor(2) as pool:
            futures = [pool.submit(with_b), pool.submit(without)]
            assert all(f.result(timeout=WAIT) for f in futures)
        by_question = {
            body["messages"][-1]["content"].split("\n")[1]: body["model"]
            for body in lm_server.stats().requests
        }
        assert by_question == {"b?": "model-b", "a?": "model-a"}
        assert system.cache_handle().ref() is cache  # the same Cache actor throughout
        assert current_system() is system


def test_context_per_task_and_nesting(lm_server: LocalLMServer) -> None:
    qa = dx.Predict("question -> answer")
    lms = {name: _lm(lm_server, name) for name in ("m1", "m2", "m3")}

    async def ask(name: str) -> None:
        with dx.context(lm=lms[name]):
            await asyncio.sleep(0)  # the other tasks enter their blocks meanwhile
            await qa.acall(question=f"from {name}")

    async def main() -> None:
        await asyncio.gather(*(ask(name) for name in lms))
        with dx.context(lm=lms["m1"]), dx.context(lm=lms["m2"]):
            await qa.acall(question="nested")
        with dx.context(lm=lms["m1"]), dx.context(lm=None):  # None: left as it is
            await qa.acall(question="none")

    with dx.ActorSystem(lm=_lm(lm_server, "default")):
        asyncio.run(main())
    sent = {
        body["messages"][-1]["content"].split("\n")[1]: body["model"]
        for body in lm_server.stats().requests
    }
    assert sent == {"from m1": "m1", "from m2": "m2", "from m3": "m3", "nested": "m2", "none": "m1"}


def test_context_reaches_evaluate_workers_not_plain_threads(lm_server: LocalLMServer) -> None:
    qa = dx.Predict("question -> answer")
    devset = [dx.Example(question=f"q{i}", answer="x").with_inputs("question") for i in range(8)]
    with dx.ActorSystem(lm=_lm(lm_server, "model-a")), dx.context(lm=_lm(lm_server, "model-b")):
        result = dx.Evaluate(devset=devset, metric=lambda g, p, t=None: 1.0, num_threads=4)(qa)
        assert len(result.results) == 8
        assert set(_models(lm_server)) == {"model-b"}
        plain: list[str] = []
        thread = threading.Thread(target=lambda: plain.append(qa(question="t").answer))
        thread.start()
        thread.join(WAIT)
        assert plain and _models(lm_server)[-1] == "model-a"  # outside any context


def test_context_adapter_and_direct_requests(lm_server: LocalLMServer) -> None:
    qa = dx.Predict("question -> answer")
    with dx.ActorSystem(lm=_lm(lm_server, "model-a")) as system:
        with dx.context(adapter=dx.JSONAdapter()):
            assert qa(question="json?").answer
        assert lm_server.stats().last_request["response_format"] == {"type": "json_object"}
        qa(question="chat?")
        assert "response_format" not in lm_server.stats().last_request
        with dx.context(lm=_lm(lm_server, "model-b")):
            system.request(dx.LMRequest(messages=({"role": "user", "content": "hi"},)))
        assert _models(lm_server)[-1] == "model-b"


def test_configure_swaps_settings_without_restarting(make_lm_server) -> None:  # type: ignore[no-untyped-def]
    server = make_lm_server(latency=0.4)
    qa = dx.Predict("question -> answer")
    dx.configure(lm=_lm(server, "model-a"))
    system = current_system()
    first = qa(question="cached?").answer
    cache_ref, client_count = system.cache_handle().ref(), len(system.stats()["clients"])
    with ThreadPoolExecutor(4) as pool:
        in_flight = [pool.submit(qa, question=f"slow {i}") for i in range(4)]
        server.wait_for_stats(lambda s: s.in_flight == 4, timeout=WAIT)
        dx.configure(lm=_lm(server, "model-b"))  # while 4 calls are in flight
        dx.configure(adapter=dx.JSONAdapter())  # keeps model-b
        assert all(f.result(timeout=WAIT).answer for f in in_flight)
    assert current_system() is system and system.running
    assert system.cache_handle().ref() is cache_ref
    assert len(system.stats()["clients"]) == client_count  # model-a's Client still serves
    requests_before = server.stats().requests_total
    _in_thread(lambda: qa(question="swapped"))
    last = server.stats().last_request
    assert last["model"] == "model-b" and last["response_format"] == {"type": "json_object"}
    dx.configure(lm=_lm(server, "model-a"), adapter=None)
    assert qa(question="cached?").answer == first  # the cache survived every swap
    assert server.stats().requests_total == requests_before + 1


def test_settings_bad_input() -> None:
    with pytest.raises(dx.ConfigurationError, match=r"unknown setting 'temprature'"):
        dx.context(temprature=0.5)
    with pytest.raises(dx.ConfigurationError, match=r"lm must be a dspex_actors\.LM"):
        dx.context(lm="openai/gpt-4o-mini")
    with pytest.raises(dx.ConfigurationError, match="adapter must be an adapter"):
        dx.configure(adapter="json")
