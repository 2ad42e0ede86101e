"""Evaluate as tasks on an event loop: natively async programs, and ``await evaluate.acall``."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

import dspex_actors as dx
from dspex_actors import EvaluationAborted, EvaluationCancelled, ExampleTimeoutError
from dspex_actors.evaluate import Evaluate, answer_exact_match
from dspex_actors.predict import Predict
from dspex_actors.primitives import Example, Module, Prediction
from dspex_actors.testing import Fault, LocalLMServer, arithmetic_dataset

MakeServer = Callable[..., LocalLMServer]
WAIT = 20.0


def devset(n: int) -> list[Example]:
    return [
        Example(question=row["question"], answer=row["answer"]).with_inputs("question")
        for row in arithmetic_dataset(n, seed=11)
    ]


def lm_for(server: LocalLMServer, **kwargs: Any) -> dx.LM:
    return dx.LM("openai/local-model", api_base=server.url, **kwargs)


class TwoStep(Module):
    """A user's Module with its own aforward: two predictors awaited one after the other."""

    def __init__(self) -> None:
        super().__init__()
        self.first = Predict("question -> answer")
        self.second = Predict("question, draft -> answer")

    def forward(self, question: str) -> Prediction:
        draft = self.first(question=question).answer
        return self.second(question=question, draft=draft)

    async def aforward(self, question: str) -> Prediction:
        draft = (await self.first.acall(question=question)).answer
        return await self.second.acall(question=question, draft=draft)


def test_a_predict_program_runs_as_tasks_without_a_thread_per_example(
    make_lm_server: MakeServer,
) -> None:
    server = make_lm_server(latency=1.0)  # long enough for all 200 to be sent first
    data = devset(200)
    baseline = threading.active_count()
    peak = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.01):
            peak[0] = max(peak[0], threading.active_count())

    sampler = threading.Thread(target=sample)
    with dx.ActorSystem(lm=lm_for(server, max_concurrency=256, cache=False)):
        sampler.start()
        try:
            result = Evaluate(devset=data, metric=answer_exact_match, num_threads=200)(
                Predict("question -> answer")
            )
        finally:
            stop.set()
            sampler.join(WAIT)
    assert result.score == 100.0
    assert [example for example, _, _ in result.results] == data
    assert server.stats().max_in_flight == 200
    assert peak[0] - baseline <= 10  # the system's threads, the sampler; no worker threads


def test_acall_from_a_running_loop_with_a_module_of_ones_own(make_lm_server: MakeServer) -> None:
    server = make_lm_server()
    data = devset(30)

    async def main() -> dx.EvaluationResult:
        return await Evaluate(devset=data, metric=answer_exact_match, num_threads=8).acall(
            TwoStep()
        )

    with dx.ActorSystem(lm=lm_for(server)):
        result = asyncio.run(main())
    assert result.score == 100.0
    assert server.stats().requests_total == 60


def test_acall_runs_a_sync_only_program_on_the_worker_pool(make_lm_server: MakeServer) -> None:
    server = make_lm_server()
    qa = Predict("question -> answer")
    threads: set[str] = set()

    def program(question: str) -> Prediction:
        threads.add(threading.current_thread().name)
        return qa(question=question)

    async def main() -> dx.EvaluationResult:
        return await Evaluate(devset=devset(10), metric=answer_exact_match, num_threads=4).acall(
            program
        )

    with dx.ActorSystem(lm=lm_for(server)):
        result = asyncio.run(main())
    assert result.score == 100.0
    assert threads and all(name.startswith("_Worker") for name in threads)


def test_failures_and_timeouts_are_recorded_per_example(make_lm_server: MakeServer) -> None:
    server = make_lm_server()
    data = devset(12)
    server.push_faults(Fault.http(400), *[None] * 5, Fault.hang(WAIT))
    with dx.ActorSystem(lm=lm_for(server, num_retries=0, cache=False)):
        started = time.monotonic()
        result = Evaluate(devset=data, metric=answer_exact_match, num_threads=1, timeout=0.5)(
            Predict("question -> answer")
        )
    assert time.monotonic() - started < 10
    assert len(result.results) == 12
    by_index = {failure.index: failure for failure in result.failures}
    assert sorted(by_index) == [0, 6]
    assert by_index[0].error_type == "LMHTTPStatusError"
    assert isinstance(by_index[6].exception, ExampleTimeoutError)
    assert result.score == round(100 * 10 / 12, 2)


def test_max_errors_aborts_with_the_partial_result(make_lm_server: MakeServer) -> None:
    server = make_lm_server()
    server.push_faults(*[Fault.http(400)] * 3)
    with (
        dx.ActorSystem(lm=lm_for(server, num_retries=0, cache=False)),
        pytest.raises(EvaluationAborted, match="max_errors=2") as caught,
    ):
        Evaluate(devset=devset(20), metric=answer_exact_match, num_threads=1, max_errors=2)(
            Predict("question -> answer")
        )
    partial = caught.value.result
    assert partial is not None and not partial.complete
    assert len(partial.failures) == 3
    assert len(partial.results) == 3


def test_cancelling_acall_keeps_the_finished_examples(make_lm_server: MakeServer) -> None:
    server = make_lm_server()
    data = devset(20)
    server.push_faults(*[None] * 5, *[Fault.hang(WAIT)] * 15)

    async def main() -> None:
        evaluation = asyncio.ensure_future(
            Evaluate(devset=data, metric=answer_exact_match, num_threads=4).acall(
                Predict("question -> answer")
            )
        )
        answered = await asyncio.to_thread(  # 5 answered, 4 hanging
            server.wait_for_stats, lambda s: s.requests_total >= 9, WAIT
        )
        assert answered.requests_total == 9
        evaluation.cancel()
        await evaluation

    with (
        dx.ActorSystem(lm=lm_for(server, cache=False)),
        pytest.raises(EvaluationCancelled, match="interrupted after 5 finished items") as caught,
    ):
        asyncio.run(asyncio.wait_for(main(), WAIT))
    assert isinstance(caught.value, asyncio.CancelledError)  # a cancellation like any other
    partial = caught.value.result
    assert partial is not None
    assert sorted(example.question for example, _, _ in partial.results) == sorted(
        example.question for example in data[:5]
    )
