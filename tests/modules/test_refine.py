"""Refine and BestOfN against the local server: attempts, rollout ids, advice, failures."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest

import dspex_actors as dx
from dspex_actors import record_trace
from dspex_actors.testing import ChatRequest, DefaultResponder
from tests.modules.conftest import SystemFor

ADVICE = (
    "[[ ## discussion ## ]]\nThe module erred.\n\n"
    '[[ ## advice ## ]]\n{"self": "Answer with digits only."}\n\n[[ ## completed ## ]]'
)


def advising(request: ChatRequest) -> str:
    """The default model, except that Refine's feedback step advises the predictor ``self``."""
    if "assign blame" in request.system_text:
        return ADVICE
    return DefaultResponder()(request)


def rewards(*values: float | Exception) -> tuple[Callable[[dict[str, Any], Any], float], list[Any]]:
    """A reward function giving ``values`` in turn (raising the exceptions), and its calls."""
    calls: list[Any] = []

    def reward(args: dict[str, Any], pred: Any) -> float:
        value = values[len(calls)]
        calls.append((dict(args), pred))
        if isinstance(value, Exception):
            raise value
        return value

    return reward, calls


def test_refine_stops_at_the_first_attempt_that_meets_the_threshold(
    system_for: SystemFor,
) -> None:
    _, server = system_for(advising)
    reward, calls = rewards(0.0, 1.0, 1.0)
    refine = dx.Refine(dx.Predict("question -> answer"), N=5, reward_fn=reward, threshold=1.0)
    with record_trace() as trace:
        pred = refine(question="What is 2 + 3?")
    assert len(calls) == 2
    assert pred is calls[1][1]
    assert pred.answer == "5"
    first, feedback, second = server.stats().requests
    assert [r["temperature"] for r in (first, second)] == [1.0, 1.0]
    assert "assign blame" in feedback["messages"][0]["content"]
    assert "[[ ## hint_ ## ]]" not in first["messages"][-1]["content"]
    hinted = second["messages"][-1]["content"]
    assert "[[ ## hint_ ## ]]\nAnswer with digits only." in hinted
    assert (
        "`hint_` (str): A hint to the module from an earlier run"
        in (second["messages"][0]["content"])
    )
    assert len(trace) == 1  # the winning attempt's calls only, without the hint
    assert trace[0][1] == {"question": "What is 2 + 3?"}
    assert trace[0][2] is pred


def test_refine_keeps_the_best_attempt_when_none_meets_the_threshold(
    system_for: SystemFor,
) -> None:
    _, server = system_for()
    reward, calls = rewards(0.2, 0.7, 0.5)
    refine = dx.Refine(
        dx.ChainOfThought("question -> answer"), N=3, reward_fn=reward, threshold=1.0
    )
    pred = refine(question="What is 4 + 4?")
    assert pred is calls[1][1]
    requests = server.stats().requests
    assert len(requests) == 5  # 3 attempts, advice after the first two
    # The default model's advice names no predictor of this program: each hint is "N/A".
    assert "[[ ## hint_ ## ]]\nN/A" in requests[2]["messages"][-1]["content"]


def test_a_reward_that_raises_records_the_failure_and_tries_the_next_attempt(
    system_for: SystemFor, caplog: pytest.LogCaptureFixture
) -> None:
    system_for()
    reward, calls = rewards(ValueError("reward crashed"), 1.0)
    refine = dx.Refine(dx.Predict("question -> answer"), N=3, reward_fn=reward, threshold=1.0)
    with caplog.at_level(logging.WARNING, logger="dspex_actors.modules._attempts"):
        pred = refine(question="What is 1 + 1?")
    assert pred is calls[1][1]
    assert "Refine: attempt 1 failed with rollout id 0: ValueError: reward crashed" in caplog.text


def test_every_attempt_failing_raises_the_last_error(system_for: SystemFor) -> None:
    system_for()
    reward, calls = rewards(ValueError("one"), ValueError("two"))
    best = dx.BestOfN(dx.Predict("question -> answer"), N=2, reward_fn=reward, threshold=1.0)
    with pytest.raises(ValueError, match="two"):
        best(question="What is 1 + 2?")
    assert len(calls) == 2
    strict, strict_calls = rewards(ValueError("first"), 1.0)
    once = dx.BestOfN(
        dx.Predict("question -> answer"), N=3, reward_fn=strict, threshold=1.0, fail_count=0
    )
    with pytest.raises(ValueError, match="first"):
        once(question="What is 5 + 5?")
    assert len(strict_calls) == 1


def test_best_of_n_attempts_differ_by_rollout_id_so_the_cache_does_not_repeat_one(
    system_for: SystemFor,
) -> None:
    _, server = system_for()  # the LM caches
    reward, calls = rewards(0.0, 0.0, 1.0, 0.0, 0.0, 1.0)
    best = dx.BestOfN(dx.Predict("question -> answer"), N=4, reward_fn=reward, threshold=1.0)
    pred = best(question="What is 3 + 3?")
    assert len(calls) == 3
    assert pred is calls[2][1]
    stats = server.stats()
    assert stats.requests_total == 3  # three attempts, none answered from the cache
    assert {r["temperature"] for r in stats.requests} == {1.0}
    best(question="What is 3 + 3?")  # the same rollout ids again: all from the cache
    assert server.stats().requests_total == 3


def test_async_refine_and_best_of_n(system_for: SystemFor) -> None:
    _, server = system_for()
    reward, calls = rewards(0.0, 1.0, 0.0, 1.0)
    refine = dx.Refine(dx.Predict("question -> answer"), N=3, reward_fn=reward, threshold=1.0)
    best = dx.BestOfN(dx.Predict("question -> answer"), N=3, reward_fn=reward, threshold=1.0)

    async def main() -> tuple[Any, Any]:
        return await refine.acall(question="What is 9 + 1?"), await best.acall(
            question="What is 9 + 2?"
        )

    refined, best_pred = asyncio.run(main())
    assert refined is calls[1][1]
    assert best_pred is calls[3][1]
    assert (refined.answer, best_pred.answer) == ("10", "11")
    assert server.stats().requests_total == 5  # refine: 2 attempts + advice; best: 2


def test_bad_arguments_are_refused() -> None:
    predict = dx.Predict("question -> answer")
    with pytest.raises(dx.ConfigurationError, match="N must be a positive int"):
        dx.Refine(predict, N=0, reward_fn=lambda a, p: 1.0, threshold=1.0)
    with pytest.raises(dx.ConfigurationError, match=r"module must be a dx\.Module"):
        dx.BestOfN(len, N=2, reward_fn=lambda a, p: 1.0, threshold=1.0)  # type: ignore[arg-type]
    with pytest.raises(dx.ConfigurationError, match="reward_fn"):
        dx.BestOfN(predict, N=2, reward_fn=None, threshold=1.0)  # type: ignore[arg-type]
    refine = dx.Refine(predict, N=2, reward_fn=lambda a, p: 1.0, threshold=1.0)
    assert [name for name, _ in refine.named_predictors()] == ["module"]


def test_advice_reaches_a_nested_predictor_by_its_name(system_for: SystemFor) -> None:
    def advise_predict(request: ChatRequest) -> str:
        if "assign blame" in request.system_text:
            return ADVICE.replace('"self"', '"predict"')
        return DefaultResponder()(request)

    _, server = system_for(advise_predict)
    reward, _ = rewards(0.0, 1.0)
    refine = dx.Refine(dx.ChainOfThought("question -> answer"), N=2, reward_fn=reward, threshold=1)
    assert refine(question="What is 7 + 1?").answer == "8"
    second = server.stats().requests[-1]["messages"][-1]["content"]
    assert "[[ ## hint_ ## ]]\nAnswer with digits only." in second
    assert "`module_names`" in server.stats().requests[1]["messages"][0]["content"]
    assert '[\n  "predict"\n]' in server.stats().requests[1]["messages"][-1]["content"]


def test_one_best_of_n_serves_many_threads_at_once(system_for: SystemFor) -> None:
    system_for()

    def exact(args: dict[str, Any], pred: Any) -> float:
        return 1.0 if pred.answer.isdigit() else 0.0

    best = dx.BestOfN(dx.Predict("question -> answer"), N=2, reward_fn=exact, threshold=1.0)
    pairs = [(best, {"question": f"What is {i} + 10?"}) for i in range(12)]
    results = dx.Parallel(num_threads=6, disable_progress_bar=True)(pairs)
    assert [r.answer for r in results] == [str(i + 10) for i in range(12)]
