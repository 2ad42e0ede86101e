"""``await predict.acall(...)``, ``await lm.acall(...)``: the same prompts, cache and limits."""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Callable

import pytest

import dspex_actors as dx
from dspex_actors import LMHTTPStatusError, PredictInputError
from dspex_actors.testing import Fault, LocalLMServer

MakeServer = Callable[..., LocalLMServer]
WAIT = 20.0


def test_acall_sends_the_same_prompt_as_a_call(lm_server: LocalLMServer) -> None:
    qa = dx.Predict("question -> answer")
    with dx.ActorSystem(lm=dx.LM("openai/local-model", api_base=lm_server.url, cache=False)):
        sync = qa(question="What is 2 + 3?")
        result = asyncio.run(qa.acall(question="What is 2 + 3?"))
    assert result.answer == sync.answer == "5"
    first, second = lm_server.stats().requests
    assert first["messages"] == second["messages"]


def test_500_calls_in_flight_from_one_loop(make_lm_server: MakeServer) -> None:
    server = make_lm_server(latency=1.5)  # long enough for all 500 to be sent first
    lm = dx.LM("openai/local-model", api_base=server.url, max_concurrency=512)
    qa = dx.Predict("question -> answer")

    async def main() -> list[dx.Prediction]:
        return await asyncio.gather(*(qa.acall(question=f"What is {i} + 1?") for i in range(500)))

    baseline = threading.active_count()
    with dx.ActorSystem(lm=lm):
        predictions = asyncio.run(asyncio.wait_for(main(), WAIT))
        assert threading.active_count() - baseline <= 6
    assert [p.answer for p in predictions] == [str(i + 1) for i in range(500)]
    assert server.stats().max_in_flight == 500


def test_identical_concurrent_acalls_send_one_request(make_lm_server: MakeServer) -> None:
    server = make_lm_server(latency=0.2)
    qa = dx.Predict("question -> answer")

    async def main() -> list[dx.Prediction]:
        return await asyncio.gather(*(qa.acall(question="What is 7 + 1?") for _ in range(50)))

    with dx.ActorSystem(lm=dx.LM("openai/local-model", api_base=server.url)) as system:
        predictions = asyncio.run(main())
        assert system.stats()["cache"]["coalesced"] == 49
    assert {p.answer for p in predictions} == {"8"}
    assert server.stats().requests_total == 1


def test_sync_and_async_callers_share_one_system(lm_server: LocalLMServer) -> None:
    qa = dx.Predict("question -> answer")
    with dx.ActorSystem(lm=dx.LM("openai/local-model", api_base=lm_server.url)) as system:
        qa(question="What is 1 + 1?")
        cached = asyncio.run(qa.acall(question="What is 1 + 1?"))
        assert cached.answer == "2"
        assert system.stats()["cache"]["hits"] == 1
    assert lm_server.stats().requests_total == 1


def test_lm_acall_and_errors(lm_server: LocalLMServer) -> None:
    lm = dx.LM("openai/local-model", api_base=lm_server.url, num_retries=0)
    lm_server.push_faults(Fault.http(400))
    with dx.ActorSystem(lm=lm):
        with pytest.raises(LMHTTPStatusError):
            asyncio.run(lm.acall("hello", cache=False))
        texts = asyncio.run(lm.acall(messages=[{"role": "user", "content": "hello"}]))
    assert len(texts) == 1 and texts[0]


def test_chain_of_thought_acall(lm_server: LocalLMServer) -> None:
    cot = dx.ChainOfThought("question -> answer: int")
    with dx.ActorSystem(lm=dx.LM("openai/local-model", api_base=lm_server.url)):
        result = asyncio.run(cot.acall(question="What is 4 + 4?"))
    assert result.answer == 8
    assert "reasoning" in result


def test_acall_checks_inputs_like_a_call(lm_server: LocalLMServer) -> None:
    qa = dx.Predict("question -> answer")
    with dx.ActorSystem(lm=dx.LM("openai/local-model", api_base=lm_server.url)):
        with pytest.raises(PredictInputError, match="keyword arguments only"):
            asyncio.run(qa.acall("positional"))
        with pytest.raises(PredictInputError, match="missing input field"):
            asyncio.run(qa.acall(query="wrong name"))
    assert lm_server.stats().requests_total == 0


def test_a_cancelled_acall_leaves_the_system_working(make_lm_server: MakeServer) -> None:
    server = make_lm_server()
    server.push_faults(Fault.hang(WAIT))
    qa = dx.Predict("question -> answer")

    async def main() -> str:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(
                qa.acall(question="What is 1 + 2?", config={"cache": False}), 0.3
            )
        return str((await qa.acall(question="What is 2 + 2?")).answer)

    with dx.ActorSystem(lm=dx.LM("openai/local-model", api_base=server.url)):
        assert asyncio.run(main()) == "4"


def test_cancelling_a_call_frees_its_concurrency_slot(make_lm_server: MakeServer) -> None:
    """max_concurrency=1: a hung call cancelled by wait_for must not block the next one."""
    server = make_lm_server()
    server.push_faults(Fault.hang(WAIT))
    lm = dx.LM("openai/local-model", api_base=server.url, max_concurrency=1, cache=False)

    async def main() -> list[str]:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(lm.acall("hang"), 0.3)
        return await asyncio.wait_for(lm.acall("next"), WAIT / 2)

    with dx.ActorSystem(lm=lm) as system:
        assert asyncio.run(main())
        client = system.stats()["clients"][f"client:{lm.config_id}"]
        assert (client["cancelled"], client["in_flight"], client["successes"]) == (1, 0, 1)
    assert server.stats().requests_total == 2


def test_followers_of_a_cancelled_leader_still_get_the_answer(make_lm_server: MakeServer) -> None:
    server = make_lm_server(latency=0.4)
    lm = dx.LM("openai/local-model", api_base=server.url)

    async def main() -> list[str]:
        leader = asyncio.ensure_future(lm.acall("the same question"))
        await asyncio.to_thread(server.wait_for_stats, lambda s: s.in_flight == 1, WAIT)
        followers = [asyncio.ensure_future(lm.acall("the same question")) for _ in range(3)]
        await asyncio.sleep(0)  # let the followers reach the Cache before the leader gives up
        leader.cancel()
        return [texts[0] for texts in await asyncio.gather(*followers)]

    with dx.ActorSystem(lm=lm) as system:
        answers = asyncio.run(asyncio.wait_for(main(), WAIT))
        assert len(set(answers)) == 1
        assert system.stats()["cache"]["size"] == 1
    assert server.stats().requests_total == 1


def test_a_call_whose_only_waiter_gave_up_is_cancelled_and_not_cached(
    make_lm_server: MakeServer,
) -> None:
    server = make_lm_server()
    server.push_faults(Fault.hang(WAIT))
    lm = dx.LM("openai/local-model", api_base=server.url, max_concurrency=1)

    async def main() -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(lm.acall("alone"), 0.3)

    with dx.ActorSystem(lm=lm) as system:
        asyncio.run(main())
        assert asyncio.run(lm.acall("after")) is not None
        stats = system.stats()
        assert stats["clients"][f"client:{lm.config_id}"]["cancelled"] == 1
        assert (stats["cache"]["in_flight_keys"], stats["cache"]["size"]) == (0, 1)


def test_a_burst_of_acalls_formats_a_few_per_loop_turn(make_lm_server: MakeServer) -> None:
    """Gathering hundreds of acalls never formats them all in one turn of the loop."""
    from dspex_actors._turns import STARTS_PER_TURN

    server = make_lm_server(latency=0.05)
    formats: list[int] = []

    class CountFormats(dx.BaseCallback):
        def on_adapter_format_start(self, call_id: str, instance: object, inputs: object) -> None:
            formats.append(1)

    qa = dx.Predict("question -> answer")
    burst = STARTS_PER_TURN * 8

    async def main() -> tuple[list[dx.Prediction], list[int]]:
        loop = asyncio.get_running_loop()
        seen: list[int] = []
        done = asyncio.Event()

        def tick() -> None:
            seen.append(len(formats))
            if not done.is_set():
                loop.call_soon(tick)

        loop.call_soon(tick)
        try:
            return await asyncio.gather(
                *(qa.acall(question=f"What is {i} + 2?") for i in range(burst))
            ), seen
        finally:
            done.set()

    lm = dx.LM("openai/local-model", api_base=server.url, cache=False, max_concurrency=burst)
    with dx.ActorSystem(lm=lm), dx.context(callbacks=[CountFormats()]):
        predictions, seen = asyncio.run(asyncio.wait_for(main(), WAIT))
    assert [p.answer for p in predictions] == [str(i + 2) for i in range(burst)]
    per_turn = [b - a for a, b in itertools.pairwise(seen)]
    assert len(formats) == burst
    assert max(per_turn) <= STARTS_PER_TURN
