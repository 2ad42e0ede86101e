"""Evaluate against the local LM server: scores, order, failures, timeouts, aborts, progress."""

from __future__ import annotations

import _thread
import csv
import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import dspex_actors as dx
from dspex_actors.evaluate import Evaluate, EvaluationResult, answer_exact_match
from dspex_actors.predict import Predict
from dspex_actors.primitives import Example, Prediction
from dspex_actors.testing import ChatRequest, DefaultResponder, LocalLMServer, arithmetic_dataset
from dspex_actors.testing import parse_dspy_prompt as parse_prompt

WAIT = 20.0
MakeServer = Callable[..., LocalLMServer]


def make_devset(n: int, *, wrong_label_every: int = 0) -> list[Example]:
    """Arithmetic examples; every ``wrong_label_every``-th one has a wrong label."""
    devset = []
    for i, row in enumerate(arithmetic_dataset(n, seed=7)):
        answer = row["answer"]
        if wrong_label_every and i % wrong_label_every == 0:
            answer = f"{answer}0"
        devset.append(Example(question=row["question"], answer=answer).with_inputs("question"))
    return devset


def question_of(request: ChatRequest) -> str:
    prompt = parse_prompt(request)
    return prompt.question if prompt is not None else ""


def lm_for(server: LocalLMServer, **kwargs: Any) -> dx.LM:
    return dx.LM("openai/local-model", api_base=server.url, api_key="test", **kwargs)


def test_scores_and_devset_order_with_shuffled_completion(make_lm_server: MakeServer) -> None:
    server = make_lm_server(latency=0.0, jitter=0.05, seed=3)
    devset = make_devset(40, wrong_label_every=4)
    with dx.ActorSystem(lm=lm_for(server)):
        result = Evaluate(devset=devset, metric=answer_exact_match, num_threads=10)(
            Predict("question -> answer")
        )

    assert isinstance(result, EvaluationResult)
    assert result.score == 75.0
    assert [example for example, _, _ in result.results] == devset
    for i, (example, prediction, score) in enumerate(result.results):
        assert isinstance(prediction, Prediction)
        assert score is (i % 4 != 0)
        if i % 4:
            assert prediction.answer == example.answer
    assert result.failures == []
    assert result.complete and result.total == 40
    assert server.stats().requests_total == 40


def test_failures_are_recorded_per_example_with_type(make_lm_server: MakeServer) -> None:
    devset = make_devset(12)
    broken_question = devset[5].question
    default = DefaultResponder()

    def responder(request: ChatRequest) -> str:
        if question_of(request) == broken_question:
            raise RuntimeError("model exploded")
        return default(request)

    def metric(example: Example, prediction: Prediction, trace: object = None) -> bool:
        if example.question == devset[8].question:
            raise ValueError("metric cannot judge this one")
        return answer_exact_match(example, prediction)

    server = make_lm_server(responder)
    with dx.ActorSystem(lm=lm_for(server, num_retries=0)):
        result = Evaluate(devset=devset, metric=metric, num_threads=4, failure_score=0.25)(
            Predict("question -> answer"), provide_traceback=True
        )

    assert result.failed_indices == [5, 8]
    by_index = {f.index: f for f in result.failures}
    assert by_index[5].error_type == "LMHTTPStatusError"
    assert by_index[8].error_type == "MetricError"  # names the metric and what it raised
    assert by_index[8].message == "metric metric raised ValueError: metric cannot judge this one"
    assert by_index[8].traceback is not None and "metric cannot judge" in by_index[8].traceback
    assert result.results[5][1] is None and result.results[5][2] == 0.25
    assert result.results[8][1] is None and result.results[8][2] == 0.25
    assert result.score == round(100 * (10 + 0.5) / 12, 2)
    summary = result.summary()
    assert "#5 LMHTTPStatusError" in summary and "#8 MetricError" in summary
    assert "failed indices: [5, 8]" in summary


def test_timeout_records_the_example_and_sends_no_duplicate_request(
    make_lm_server: MakeServer, wait_actors_stopped: Callable[[], None]
) -> None:
    devset = make_devset(10)
    slow_question = devset[3].question
    release = threading.Event()
    default = DefaultResponder()

    def responder(request: ChatRequest) -> str:
        if question_of(request) == slow_question:
            release.wait(WAIT)
        return default(request)

    server = make_lm_server(responder)
    try:
        with dx.ActorSystem(lm=lm_for(server)):
            result = Evaluate(devset=devset, metric=answer_exact_match, num_threads=3, timeout=1.0)(
                Predict("question -> answer")
            )
    finally:
        release.set()
    wait_actors_stopped()

    assert result.failed_indices == [3]
    assert result.failures[0].error_type == "ExampleTimeoutError"
    assert result.score == 90.0
    asked = Counter(
        m["content"] for r in server.stats().requests for m in r["messages"] if m["role"] == "user"
    )
    assert sum(count for text, count in asked.items() if slow_question in text) == 1
    assert server.stats().requests_total == 10


def test_max_errors_raises_with_the_partial_result(make_lm_server: MakeServer) -> None:
    devset = make_devset(60)

    def program(question: str) -> Prediction:
        raise ConnectionError(f"cannot answer {question}")

    server = make_lm_server()
    with dx.ActorSystem(lm=lm_for(server)), pytest.raises(dx.EvaluationAborted) as info:
        Evaluate(devset=devset, metric=answer_exact_match, num_threads=2, max_errors=3)(program)

    partial = info.value.result
    assert isinstance(partial, EvaluationResult)
    assert not partial.complete
    assert 4 <= len(partial.failures) <= 5
    assert partial.failed_indices == partial.indices
    assert {f.error_type for f in partial.failures} == {"ConnectionError"}
    assert partial.total == 60
    assert "partial" in partial.summary()


def test_a_client_actor_killed_mid_run_loses_no_example(make_lm_server: MakeServer) -> None:
    server = make_lm_server(latency=0.02, jitter=0.02)
    devset = make_devset(40)
    lm = lm_for(server, num_retries=0)
    calls = Counter[str]()
    lock = threading.Lock()
    qa = Predict("question -> answer")
    with dx.ActorSystem(lm=lm) as system:

        def program(question: str) -> Prediction:
            with lock:
                calls["n"] += 1
                kill = calls["n"] == 15
            if kill:
                system.client_handle(lm).ref().stop(block=False)
            return qa(question=question)

        result = Evaluate(devset=devset, metric=answer_exact_match, num_threads=8)(program)
        restarts = system.stats()["restarts"]

    assert len(result.results) == 40
    assert [example for example, _, _ in result.results] == devset
    for i, (_, prediction, _) in enumerate(result.results):
        assert prediction is not None or i in result.failed_indices
    assert result.score == round(100 * (40 - len(result.failures)) / 40, 2)
    assert restarts[f"client:{lm.config_id}"] >= 1


def test_keyboard_interrupt_returns_partial_results(
    make_lm_server: MakeServer, wait_actors_stopped: Callable[[], None]
) -> None:
    devset = make_devset(30)
    release = threading.Event()
    seventh_started = threading.Event()
    blocked = {d.question for d in devset[3:]}
    qa = Predict("question -> answer")

    def program(question: str) -> Prediction:
        if question == devset[6].question:
            # 4 workers: item 6 is sent only after the results of items 0-2 were recorded.
            seventh_started.set()
        if question in blocked:
            release.wait(WAIT)
        return qa(question=question)

    def interrupter() -> None:
        if seventh_started.wait(WAIT):
            _thread.interrupt_main()

    server = make_lm_server()
    timer = threading.Thread(target=interrupter)
    timer.start()
    try:
        with dx.ActorSystem(lm=lm_for(server)), pytest.raises(dx.EvaluationInterrupted) as info:
            Evaluate(devset=devset, metric=answer_exact_match, num_threads=4)(program)
    finally:
        release.set()
        timer.join(WAIT)
    wait_actors_stopped()

    assert isinstance(info.value.__cause__, KeyboardInterrupt)
    partial = info.value.result
    assert isinstance(partial, EvaluationResult) and not partial.complete
    assert partial.indices == [0, 1, 2]
    assert [score for _, _, score in partial.results] == [True, True, True]
    assert partial.score == 100.0


def test_generator_devset(make_lm_server: MakeServer) -> None:
    devset = make_devset(15)

    def stream() -> Iterator[Example]:
        yield from devset

    server = make_lm_server(jitter=0.02)
    with dx.ActorSystem(lm=lm_for(server)):
        result = Evaluate(devset=stream(), metric=answer_exact_match, num_threads=4)(
            Predict("question -> answer")
        )

    assert result.score == 100.0
    assert [example for example, _, _ in result.results] == devset
    assert result.total == 15


def test_progress_bar_is_drawn_once_per_run_on_stderr(
    make_lm_server: MakeServer, capsys: pytest.CaptureFixture[str]
) -> None:
    devset = make_devset(6, wrong_label_every=3)
    server = make_lm_server()
    with dx.ActorSystem(lm=lm_for(server)):
        evaluate = Evaluate(devset=devset, metric=answer_exact_match, num_threads=2)
        evaluate(Predict("question -> answer"))
        quiet = capsys.readouterr()
        evaluate(Predict("question -> answer"), display_progress=True)
        shown = capsys.readouterr()

    assert quiet.err == "" and quiet.out == ""
    assert shown.out == ""
    final = shown.err.rstrip().split("\r")[-1]
    assert "6/6" in final
    assert "Average Metric: 4.00 / 6 (66.7%)" in final


def test_metrics_returning_bool_int_float_and_threshold_style(make_lm_server: MakeServer) -> None:
    devset = make_devset(8)
    program = Predict("question -> answer")

    def as_int(example: Example, prediction: Prediction, trace: object = None) -> int:
        return int(answer_exact_match(example, prediction))

    def half(example: Example, prediction: Prediction, trace: object = None) -> float:
        return 0.5

    def threshold_style(example: Example, prediction: Prediction, trace: object = None) -> Any:
        score = 0.8 if answer_exact_match(example, prediction) else 0.1
        return score if trace is None else score >= 0.5

    def not_a_number(example: Example, prediction: Prediction, trace: object = None) -> Any:
        return "yes"

    server = make_lm_server()
    with dx.ActorSystem(lm=lm_for(server)):
        evaluate = Evaluate(devset=devset, num_threads=4)
        assert evaluate(program, metric=answer_exact_match).score == 100.0
        assert evaluate(program, metric=as_int).score == 100.0
        assert evaluate(program, metric=half).score == 50.0
        assert evaluate(program, metric=threshold_style).score == 80.0
        bad = evaluate(program, metric=not_a_number)

    assert bad.score == 0.0
    assert {f.error_type for f in bad.failures} == {"MetricError"}
    assert "not_a_number returned str" in bad.failures[0].message


def test_exports_json_jsonl_and_csv(make_lm_server: MakeServer, tmp_path: Path) -> None:
    devset = make_devset(4, wrong_label_every=2)
    server = make_lm_server()
    with dx.ActorSystem(lm=lm_for(server)):
        result = Evaluate(
            devset=devset,
            metric=answer_exact_match,
            num_threads=2,
            save_as_csv=tmp_path / "r.csv",
        )(Predict("question -> answer"), save_as_json=tmp_path / "r.json")
    result.save_as_jsonl(tmp_path / "r.jsonl")

    rows = json.loads((tmp_path / "r.json").read_text())
    lines = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    with open(tmp_path / "r.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert rows == lines
    assert [r["index"] for r in rows] == [0, 1, 2, 3]
    assert [r["answer_exact_match"] for r in rows] == [False, True, False, True]
    assert rows[1]["question"] == devset[1].question
    assert rows[1]["example_answer"] == rows[1]["pred_answer"] == devset[1].answer
    assert [r["answer_exact_match"] for r in table] == ["False", "True", "False", "True"]
    assert table[3]["pred_answer"] == devset[3].answer


def test_bad_configuration_is_reported_clearly() -> None:
    program = Predict("question -> answer")
    with pytest.raises(dx.ConfigurationError, match="metric"):
        Evaluate(devset=make_devset(2))(program)
    with pytest.raises(dx.ConfigurationError, match="devset"):
        Evaluate(metric=answer_exact_match)(program)
    with pytest.raises(TypeError, match="metric must be callable"):
        Evaluate(devset=[], metric="exact")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_threads"):
        Evaluate(devset=[], metric=answer_exact_match, num_threads=0)


def test_devset_items_that_are_not_examples_fail_clearly() -> None:
    result = Evaluate(devset=[{"question": "q"}], metric=answer_exact_match, num_threads=1)(
        Predict("question -> answer")
    )
    assert result.failures[0].error_type == "TypeError"
    assert "dx.Example" in result.failures[0].message


def test_public_names_are_exported() -> None:
    assert dx.Evaluate is Evaluate
    assert dx.EvaluationResult is EvaluationResult
    assert dx.answer_exact_match is answer_exact_match
    assert {"Evaluate", "EvaluationResult", "ParallelExecutor"} <= set(dx.__all__)
