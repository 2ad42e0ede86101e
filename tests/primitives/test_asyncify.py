"""dx.asyncify / dx.syncify: DSPy's bridges, against the local server."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

import dspex_actors as dx
from dspex_actors import ConfigurationError
from dspex_actors.testing import LocalLMServer


class Adds(dx.Module):
    """A program with aforward only."""

    def __init__(self) -> None:
        super().__init__()
        self.qa = dx.Predict("question -> answer")

    async def aforward(self, a: int, b: int) -> dx.Prediction:
        result: dx.Prediction = await self.qa.acall(question=f"What is {a} + {b}?")
        return result


def test_asyncify_awaits_a_module_and_runs_a_plain_callable_off_the_loop(
    lm_server: LocalLMServer,
) -> None:
    threads: list[threading.Thread] = []

    def plain(x: int) -> int:
        threads.append(threading.current_thread())
        return x * 2

    async def main() -> tuple[Any, Any, threading.Thread]:
        pred = await dx.asyncify(dx.Predict("question -> answer"))(question="What is 2 + 5?")
        return pred, await dx.asyncify(plain)(21), threading.current_thread()

    with dx.ActorSystem(lm=dx.LM("openai/local-model", api_base=lm_server.url)):
        pred, doubled, loop_thread = asyncio.run(asyncio.wait_for(main(), 20))
    assert pred.answer == "7" and doubled == 42
    assert threads and threads[0] is not loop_thread
    with pytest.raises(ConfigurationError, match="asyncify needs"):
        dx.asyncify(42)


def test_syncify_in_place_and_wrapped_also_inside_a_running_loop(
    lm_server: LocalLMServer,
) -> None:
    with dx.ActorSystem(lm=dx.LM("openai/local-model", api_base=lm_server.url)):
        in_place = dx.syncify(Adds())
        assert in_place(a=3, b=4).answer == "7"
        wrapped = dx.syncify(Adds(), in_place=False)
        assert wrapped(a=5, b=6).answer == "11"

        async def from_a_loop() -> Any:
            return wrapped(a=1, b=1)  # a sync call made on a loop: run on its own thread

        assert asyncio.run(asyncio.wait_for(from_a_loop(), 20)).answer == "2"
    with pytest.raises(ConfigurationError, match="defines aforward"):
        dx.syncify(dx.Module())
