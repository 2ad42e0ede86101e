"""dx.Parallel and Module.batch on the parallel executor, against the local server."""

from __future__ import annotations

import threading
from typing import Any

import pytest

import dspex_actors as dx
from dspex_actors.testing import ChatRequest, DefaultResponder
from tests.modules.conftest import SystemFor

BARRIER_WAIT = 20.0


class Gate:
    """The default model, answering only once ``parties`` requests are in flight together.

    With exactly that many calls allowed at once every group of requests meets at the
    barrier; more would show in the server's max in flight, fewer would break the barrier.
    """

    def __init__(self, parties: int) -> None:
        self.barrier = threading.Barrier(parties, timeout=BARRIER_WAIT)
        self.model = DefaultResponder()

    def __call__(self, request: ChatRequest) -> str:
        self.barrier.wait()
        return self.model(request)


def test_parallel_with_16_threads_runs_64_calls_at_most_16_in_flight(
    system_for: SystemFor,
) -> None:
    _, server = system_for(Gate(16))
    predict = dx.Predict("question -> answer: int")
    pairs = [(predict, {"question": f"What is {i} + 1?"}) for i in range(64)]
    results = dx.Parallel(num_threads=16, disable_progress_bar=True)(pairs)
    assert [r.answer for r in results] == [i + 1 for i in range(64)]
    stats = server.stats(include_requests=False)
    assert stats.requests_total == 64
    assert stats.max_in_flight == 16


def test_module_batch_keeps_the_order_of_the_examples(system_for: SystemFor) -> None:
    _, server = system_for()
    examples = [dx.Example(question=f"What is {i} * 2?").with_inputs("question") for i in range(10)]
    results = dx.Predict("question -> answer").batch(
        examples, num_threads=4, disable_progress_bar=True
    )
    assert [r.answer for r in results] == [str(i * 2) for i in range(10)]
    assert server.stats(include_requests=False).max_in_flight <= 4


def half_fail(number: int) -> int:
    if number % 2:
        raise ValueError(f"odd {number}")
    return number * 10


def test_failed_calls_are_none_and_can_be_returned_with_their_errors() -> None:
    pairs: list[tuple[Any, Any]] = [(half_fail, (i,)) for i in range(6)]
    parallel = dx.Parallel(num_threads=3, disable_progress_bar=True)
    assert parallel(pairs) == [0, None, 20, None, 40, None]
    keep = dx.Parallel(num_threads=3, return_failed_examples=True, disable_progress_bar=True)
    results, failed, errors = keep(pairs)
    assert results == [0, None, 20, None, 40, None]
    assert failed == [(1,), (3,), (5,)]
    assert [str(e) for e in errors] == ["odd 1", "odd 3", "odd 5"]
    assert all(isinstance(e, ValueError) for e in errors)


def test_more_than_max_errors_stops_the_run_keeping_what_finished() -> None:
    pairs: list[tuple[Any, Any]] = [(half_fail, (i,)) for i in range(20)]
    with pytest.raises(dx.EvaluationAborted, match="max_errors=2") as info:
        dx.Parallel(num_threads=1, max_errors=2, disable_progress_bar=True)(pairs)
    finished = info.value.result
    assert [o.value for o in finished if o.ok] == [0, 20, 40]
    assert sum(1 for o in finished if not o.ok) == 3


def test_examples_dicts_tuples_and_nested_parallels() -> None:
    def both(a: int, b: int = 0) -> int:
        return a + b

    inner = dx.Parallel(num_threads=2, disable_progress_bar=True)
    example = dx.Example(a=1, b=2, label="x").with_inputs("a", "b")
    pairs: list[tuple[Any, Any]] = [
        (both, example),
        (both, {"a": 5}),
        (both, (3, 4)),
        (inner, [(both, (1, 1)), (both, (2, 2))]),
    ]
    assert dx.Parallel(num_threads=4, disable_progress_bar=True)(pairs) == [3, 5, 7, [2, 4]]


def test_bad_pairs_are_refused_before_anything_runs() -> None:
    ran: list[int] = []

    def record(x: int) -> int:
        ran.append(x)
        return x

    parallel = dx.Parallel(num_threads=2, disable_progress_bar=True)
    with pytest.raises(dx.PredictInputError, match=r"item 1: invalid example type str"):
        parallel([(record, (1,)), (record, "oops")])
    with pytest.raises(dx.PredictInputError, match="item 0 must be a"):
        parallel([record])  # type: ignore[list-item]
    with pytest.raises(dx.PredictInputError, match="with_inputs"):
        parallel([(record, dx.Example(x=1))])
    with pytest.raises(dx.PredictInputError, match="example 0 must be an Example or a dict"):
        dx.Predict("question -> answer").batch([("q",)])
    assert ran == []
    with pytest.raises(ValueError, match="num_threads"):
        dx.Parallel(num_threads=-3)
