"""Trace recording: per context, never mixed across threads or nested recordings."""

from __future__ import annotations

import contextvars
import threading
from typing import Any

from dspex_actors.predict import ChainOfThought, Predict, current_trace, record_trace
from dspex_actors.primitives import Module
from dspex_actors.system import ActorSystem

WAIT = 30.0


class TwoStep(Module):
    def __init__(self) -> None:
        super().__init__()
        self.first = Predict("question -> answer: int")
        self.second = ChainOfThought("question -> answer: int")

    def forward(self, question: str) -> Any:
        self.first(question=question)
        return self.second(question=question)


def test_record_trace_collects_each_predictor_call(system: ActorSystem) -> None:
    program = TwoStep()
    assert current_trace() is None
    with record_trace() as trace:
        pred = program(question="What is 3 * 3?")
        assert current_trace() is trace
    assert current_trace() is None
    assert [entry[0] for entry in trace] == [program.first, program.second.predict]
    assert trace[0][1] == {"question": "What is 3 * 3?"}
    assert trace[1][2] is pred
    assert pred.answer == 9


def test_calls_outside_a_recording_are_not_traced(system: ActorSystem) -> None:
    predict = Predict("question -> answer")
    with record_trace() as trace:
        pass
    predict(question="What is 1 + 1?")
    assert trace == []


def test_nested_recordings_do_not_mix(system: ActorSystem) -> None:
    predict = Predict("question -> answer")
    with record_trace() as outer:
        predict(question="What is 1 + 2?")
        with record_trace() as inner:
            predict(question="What is 2 + 2?")
        predict(question="What is 3 + 2?")
    assert [e[1]["question"] for e in outer] == ["What is 1 + 2?", "What is 3 + 2?"]
    assert [e[1]["question"] for e in inner] == ["What is 2 + 2?"]


def test_concurrent_recordings_on_threads_never_mix(system: ActorSystem) -> None:
    predict = Predict("question -> answer: int")
    workers = 6
    calls = 4
    barrier = threading.Barrier(workers, timeout=WAIT)
    traces: dict[int, list[Any]] = {}
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            with record_trace() as trace:
                barrier.wait()
                for call in range(calls):
                    predict(question=f"What is {worker} + {call}?")
            traces[worker] = trace
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=contextvars.copy_context().run, args=(work, worker))
        for worker in range(workers)
    ]
    with record_trace() as main_trace:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert main_trace == []
    for worker, trace in traces.items():
        assert [e[1]["question"] for e in trace] == [
            f"What is {worker} + {call}?" for call in range(calls)
        ]
        assert [e[2].answer for e in trace] == [worker + call for call in range(calls)]
