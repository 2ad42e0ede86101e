"""Failures an evaluation makes visible: logged by kind, on the progress bar, in the
summary; a dead endpoint stops the run early; a bad metric value is a named failure."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import pytest

import dspex_actors as dx
from dspex_actors.evaluate import Evaluate, EvaluationResult, answer_exact_match
from dspex_actors.predict import Predict
from dspex_actors.primitives import Example, Prediction
from dspex_actors.testing import ChatRequest, DefaultResponder, LocalLMServer, arithmetic_dataset
from dspex_actors.testing import parse_dspy_prompt as parse_prompt

MakeServer = Callable[..., LocalLMServer]
DEAD_URL = "http://127.0.0.1:9/v1"  # the discard port: nothing listens on loopback


def make_devset(n: int) -> list[Example]:
    return [
        Example(question=row["question"], answer=row["answer"]).with_inputs("question")
        for row in arithmetic_dataset(n, seed=11)
    ]


def failing_server(make_lm_server: MakeServer, broken: set[str]) -> LocalLMServer:
    """A server that answers HTTP 500 for the questions in ``broken``."""
    default = DefaultResponder()

    def responder(request: ChatRequest) -> str:
        prompt = parse_prompt(request)
        if prompt is not None and prompt.question in broken:
            raise RuntimeError("model exploded")
        return default(request)

    return make_lm_server(responder)


def lm_for(url: str, **kwargs: Any) -> dx.LM:
    return dx.LM("openai/local-model", api_base=url, api_key="test", num_retries=0, **kwargs)


def warnings_about(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING
        and r.name == "dspex_actors.evaluate"
        and text in r.getMessage()
    ]


def test_failures_are_logged_once_per_kind_with_count_and_first_message(
    make_lm_server: MakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    devset = make_devset(30)
    broken = {example.question for example in devset[::3]}  # 10 of 30
    server = failing_server(make_lm_server, broken)
    caplog.set_level(logging.WARNING)
    with dx.ActorSystem(lm=lm_for(server.url, cache=False), breaker_fail_max=1000):
        result = Evaluate(devset=devset, metric=answer_exact_match, num_threads=4)(
            Predict("question -> answer")
        )

    assert len(result.failures) == 10 and len(result.results) == 30
    logged = warnings_about(caplog, "LMHTTPStatusError 500")
    # One line when the kind is first seen, one with the total at the end: not ten.
    assert len(logged) == 2, logged
    assert logged[0].startswith("example #") and "answered HTTP 500" in logged[0]
    assert logged[1].startswith("10 examples failed with LMHTTPStatusError 500")


def test_progress_bar_counts_failures(
    make_lm_server: MakeServer, capsys: pytest.CaptureFixture[str]
) -> None:
    devset = make_devset(9)
    server = failing_server(make_lm_server, {devset[1].question, devset[4].question})
    with dx.ActorSystem(lm=lm_for(server.url), breaker_fail_max=1000):
        Evaluate(devset=devset, metric=answer_exact_match, num_threads=1, display_progress=True)(
            Predict("question -> answer")
        )
    bar = capsys.readouterr().err
    assert "failures=2" in bar and "9/9" in bar


def test_summary_lists_failures_by_kind(make_lm_server: MakeServer) -> None:
    devset = make_devset(8)
    server = failing_server(make_lm_server, {devset[2].question, devset[5].question})

    def metric(example: Example, prediction: Prediction, trace: Any = None) -> Any:
        return None if example is devset[7] else answer_exact_match(example, prediction)

    with dx.ActorSystem(lm=lm_for(server.url), breaker_fail_max=1000):
        result = Evaluate(devset=devset, metric=metric, num_threads=2)(
            Predict("question -> answer")
        )

    summary = result.summary()
    by_kind = summary.split("failures by kind:\n")[1].split("\nfailures:")[0].splitlines()
    assert by_kind[0].startswith("  LMHTTPStatusError 500: 2 (first #2: ")
    assert by_kind[1].startswith("  MetricError: 1 (first #7: metric metric returned NoneType")


@pytest.mark.parametrize("path", ["tasks", "workers"])
def test_a_dead_endpoint_stops_after_20_examples_with_the_partial_result(path: str) -> None:
    devset = make_devset(200)
    qa = Predict("question -> answer")
    program: Any = qa if path == "tasks" else (lambda question: qa(question=question))
    with (
        dx.ActorSystem(lm=lm_for(DEAD_URL)),
        pytest.raises(dx.EvaluationAborted, match="first 20 examples all failed") as caught,
    ):
        Evaluate(devset=devset, metric=answer_exact_match, num_threads=4)(program)

    message = str(caught.value)
    assert "LMConnectionError" in message and "127.0.0.1:9" in message
    partial = caught.value.result
    assert isinstance(partial, EvaluationResult) and not partial.complete
    assert 20 <= len(partial.results) <= 20 + 4  # the ones in flight may still finish
    assert len(partial.failures) == len(partial.results)


def test_a_few_early_lm_failures_do_not_stop_the_run(make_lm_server: MakeServer) -> None:
    devset = make_devset(30)
    server = failing_server(make_lm_server, {e.question for e in devset[:19]})
    with dx.ActorSystem(lm=lm_for(server.url), breaker_fail_max=1000):
        result = Evaluate(devset=devset, metric=answer_exact_match, num_threads=1)(
            Predict("question -> answer")
        )
    assert (
        result.complete and len(result.failures) == 19 and result.score == round(100 * 11 / 30, 2)
    )


def test_bad_metric_values_are_failures_naming_the_metric(make_lm_server: MakeServer) -> None:
    devset = make_devset(7)
    bad: list[Any] = [math.nan, math.inf, None, 10**400, "yes"]

    def judge(example: Example, prediction: Prediction, trace: Any = None) -> Any:
        index = devset.index(example)
        if index < len(bad):
            return bad[index]
        if index == 5:
            raise ZeroDivisionError("judge divided by zero")
        return True

    server = make_lm_server()
    with dx.ActorSystem(lm=lm_for(server.url)):
        result = Evaluate(devset=devset, metric=judge, num_threads=3)(Predict("question -> answer"))

    assert result.complete and result.failed_indices == [0, 1, 2, 3, 4, 5]
    assert result.score == round(100 / 7, 2)
    for failure in result.failures:
        assert failure.error_type == "MetricError"
        assert isinstance(failure.exception, dx.MetricError)
        assert failure.message.startswith("metric judge ")
    messages = {f.index: f.message for f in result.failures}
    assert "returned float nan" in messages[0] and "returned float inf" in messages[1]
    assert "returned NoneType None" in messages[2] and "huge int" in messages[3]
    assert "raised ZeroDivisionError: judge divided by zero" in messages[5]
    assert "huge" in result.summary()
