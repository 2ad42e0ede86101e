"""A finished event loop is not kept alive by the library (its per-loop inboxes, watchdogs
and start gates): a service that runs a loop per request must not grow without bound."""

from __future__ import annotations

import asyncio
import gc
import weakref

import dspex_actors as dx
from dspex_actors.testing import LocalLMServer


def test_loops_used_for_calls_streams_and_evaluations_are_freed(
    lm_server: LocalLMServer,
) -> None:
    qa = dx.Predict("question -> answer")
    devset = [dx.Example(question="What is 1 + 2?", answer="3").with_inputs("question")]
    evaluate = dx.Evaluate(devset=devset, metric=dx.answer_exact_match, num_threads=2)
    stream = dx.streamify(qa, stream_listeners=[dx.StreamListener("answer")])
    loops: list[weakref.ref[asyncio.AbstractEventLoop]] = []
    with dx.ActorSystem(lm=dx.LM("openai/local-model", api_base=lm_server.url, cache=False)):
        for i in range(5):
            with asyncio.Runner() as runner:
                loops.append(weakref.ref(runner.get_loop()))
                assert runner.run(qa.acall(question=f"What is {i} + 1?")).answer == str(i + 1)
                assert runner.run(evaluate.acall(qa)).score == 100.0
            items = list(dx.streamify(qa, async_streaming=False)(question="What is 2 + 2?"))
            assert items[-1].answer == "4"

            async def consume() -> list[object]:
                loops.append(weakref.ref(asyncio.get_running_loop()))
                return [item async for item in stream(question="What is 3 + 3?")]

            assert asyncio.run(consume())[-1].answer == "6"  # type: ignore[attr-defined]
        gc.collect()
        alive = [ref for ref in loops if ref() is not None]
    assert not alive, f"{len(alive)} of {len(loops)} finished loops are still referenced"
