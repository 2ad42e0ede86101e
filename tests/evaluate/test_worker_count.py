"""Evaluate starts no more workers (threads or tasks) than there are examples, and refuses
an absurd num_threads."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pykka
import pytest

import dspex_actors as dx
from dspex_actors.evaluate import Evaluate
from dspex_actors.evaluate._worker import _Worker
from dspex_actors.predict import Predict
from dspex_actors.primitives import Example, Prediction
from dspex_actors.testing import LocalLMServer, arithmetic_dataset


def _devset(n: int) -> list[Example]:
    return [
        Example(question=r["question"], answer=r["answer"]).with_inputs("question")
        for r in arithmetic_dataset(n, seed=5)
    ]


def test_worker_threads_are_capped_at_the_number_of_examples(
    make_lm_server: Callable[..., LocalLMServer],
) -> None:
    server = make_lm_server()
    qa = Predict("question -> answer")
    seen: list[int] = []
    lock = threading.Lock()

    def metric(example: Example, prediction: Prediction, trace: Any = None) -> bool:
        with lock:
            seen.append(len(pykka.ActorRegistry.get_by_class(_Worker)))
        return True

    with dx.ActorSystem(lm=dx.LM("openai/local-model", api_base=server.url, api_key="k")):
        result = Evaluate(devset=_devset(3), metric=metric, num_threads=4096)(
            lambda question: qa(question=question)
        )
    assert result.score == 100.0 and max(seen) <= 3


def test_worker_tasks_are_capped_at_the_number_of_examples(
    make_lm_server: Callable[..., LocalLMServer],
) -> None:
    server = make_lm_server()
    seen: list[int] = []

    def metric(example: Example, prediction: Prediction, trace: Any = None) -> bool:
        seen.append(len(asyncio.all_tasks()))
        return True

    with dx.ActorSystem(lm=dx.LM("openai/local-model", api_base=server.url, api_key="k")):
        result = Evaluate(devset=_devset(3), metric=metric, num_threads=4096)(
            Predict("question -> answer")
        )
    # asyncio.run's main task and the run's stop watcher, plus one worker per example.
    assert result.score == 100.0 and max(seen) <= 2 + 3


def test_absurd_num_threads_is_refused() -> None:
    with pytest.raises(dx.ConfigurationError, match="num_threads=4097"):
        Evaluate(devset=_devset(1), metric=lambda e, p: True, num_threads=4097)
