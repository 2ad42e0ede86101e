"""Predict against the local LM server through a real ActorSystem."""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import pytest

from dspex_actors import AdapterParseError, PredictInputError
from dspex_actors.predict import ChainOfThought, Predict
from dspex_actors.primitives import Example, Prediction
from dspex_actors.signatures import InputField, OutputField, Signature
from dspex_actors.system import ActorSystem, configure, shutdown_default
from dspex_actors.testing import ChatRequest, LocalLMServer, fixed_responder
from tests.predict.conftest import make_lm

SystemFor = Callable[..., tuple[ActorSystem, LocalLMServer]]
WAIT = 30.0


class QA(Signature):
    """Answer questions with short factoid answers."""

    question: str = InputField()
    answer: str = OutputField(desc="often between 1 and 5 words")


def reply(**fields: Any) -> str:
    """A chat-adapter reply holding ``fields``."""
    parts = [
        f"[[ ## {name} ## ]]\n{value if isinstance(value, str) else json.dumps(value)}"
        for name, value in fields.items()
    ]
    return "\n\n".join([*parts, "[[ ## completed ## ]]"])


def test_string_and_class_signatures_answer_arithmetic(system: ActorSystem) -> None:
    pred = Predict("question -> answer")(question="What is 2 + 3?")
    assert isinstance(pred, Prediction)
    assert pred.answer == "5"
    assert Predict(QA)(question="What is 7 times 6?").answer == "42"
    assert pred.usage["openai/local-model"]["prompt_tokens"] > 0  # DSPy's per-model shape
    assert "[[ ## answer ## ]]" in pred.raw_texts[0]


def test_typed_outputs_are_coerced_by_the_default_model(system: ActorSystem) -> None:
    pred = Predict("question -> answer: int")(question="What is 12 * 3?")
    assert pred.answer == 36
    assert isinstance(pred.answer, int)
    listed = Predict("question -> answers: list[str]")(question="What is 1 + 1?")
    assert listed.answers == ["2"]


def test_typed_outputs_from_a_custom_responder(system_for: SystemFor) -> None:
    _, server = system_for(
        fixed_responder(reply(tags=["red", "green"], verdict="no", score="3", ok="true"))
    )
    predict = Predict(
        "text -> tags: list[str], verdict: Literal['yes', 'no'], score: int, ok: bool"
    )
    pred = predict(text="anything")
    assert pred.tags == ["red", "green"]
    assert pred.verdict == "no"
    assert pred.score == 3
    assert pred.ok is True
    system_prompt = server.stats().requests[0]["messages"][0]["content"]
    assert "`verdict` (Literal['yes', 'no'])" in system_prompt


def test_parse_failure_retries_in_json_mode_then_raises(system_for: SystemFor) -> None:
    _, server = system_for(fixed_responder("I will not use your format."))
    with pytest.raises(AdapterParseError) as info:
        Predict("question -> answer: int")(question="What is 2 + 2?")
    assert info.value.lm_response
    stats = server.stats()
    assert stats.requests_total == 2
    assert "response_format" not in stats.requests[0]
    assert "response_format" in stats.requests[1]


def test_parse_failure_recovered_by_the_json_retry(system_for: SystemFor) -> None:
    _, server = system_for(fixed_responder("nonsense", json.dumps({"answer": 4})))
    pred = Predict("question -> answer: int")(question="What is 2 + 2?")
    assert pred.answer == 4
    assert server.stats().requests_total == 2


def test_repeat_call_is_a_cache_hit(system: ActorSystem, lm_server: LocalLMServer) -> None:
    predict = Predict("question -> answer")
    first = predict(question="What is 4 + 4?")
    second = predict(question="What is 4 + 4?")
    assert first.answer == second.answer == "8"
    assert lm_server.stats().requests_total == 1
    predict(question="What is 4 + 4?", config={"cache": False})
    assert lm_server.stats().requests_total == 2
    predict(question="What is 4 + 4?", config={"rollout_id": 7})
    assert lm_server.stats().requests_total == 3


def test_per_call_config_and_construction_config(
    system: ActorSystem, lm_server: LocalLMServer
) -> None:
    predict = Predict("question -> answer", max_tokens=123)
    predict(question="What is 1 + 2?", config={"temperature": 0.3})
    body = lm_server.stats().last_request
    assert body is not None
    assert body["temperature"] == 0.3
    assert body["max_tokens"] == 123


def test_n_greater_than_one_returns_every_completion(system_for: SystemFor) -> None:
    def three(request: ChatRequest) -> list[str]:
        return [reply(answer=str(i)) for i in range(request.n)]

    _, server = system_for(three)
    pred = Predict("question -> answer")(question="pick", config={"n": 3})
    assert pred.answer == "0"
    assert pred.completions is not None
    assert pred.completions.answer == ["0", "1", "2"]
    assert [c.answer for c in pred.completions] == ["0", "1", "2"]
    body = server.stats().last_request
    assert body is not None
    assert body["n"] == 3
    assert body["temperature"] == 0.7, "DSPy raises a zero temperature when n > 1"


def test_demos_reach_the_prompt(system: ActorSystem, lm_server: LocalLMServer) -> None:
    predict = Predict("question -> answer")
    predict.demos = [Example(question="What is 1 + 1?", answer="2")]
    predict(question="What is 3 + 3?")
    messages = lm_server.stats().requests[-1]["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert "What is 1 + 1?" in messages[1]["content"]
    per_call = [Example(question="What is 5 + 5?", answer="10")]
    predict(question="What is 3 + 3?", demos=per_call)
    messages = lm_server.stats().requests[-1]["messages"]
    assert "What is 5 + 5?" in messages[1]["content"]


def test_lm_overrides_route_to_another_server(
    system: ActorSystem, lm_server: LocalLMServer, make_lm_server: Callable[..., LocalLMServer]
) -> None:
    other = make_lm_server()
    predict = Predict("question -> answer")
    predict(question="What is 1 + 5?", lm=make_lm(other))
    assert other.stats().requests_total == 1
    predict.lm = make_lm(other, temperature=0.1)
    predict(question="What is 1 + 6?")
    assert other.stats().requests_total == 2
    assert lm_server.stats().requests_total == 0


def test_works_from_another_thread(system: ActorSystem) -> None:
    predict = Predict("question -> answer: int")
    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(lambda i: predict(question=f"What is {i} + 1?").answer, range(8)))
    assert answers == [i + 1 for i in range(8)]


def test_positional_arguments_are_refused() -> None:
    predict = Predict("question, context -> answer")
    with pytest.raises(PredictInputError, match=r"keyword arguments only.*question=\.\.\."):
        predict("What is 2 + 2?")


def test_missing_input_names_the_field_and_signature() -> None:
    predict = Predict("question, context -> answer")
    with pytest.raises(PredictInputError, match=r"\['context'\]") as info:
        predict(question="q")
    assert "question, context -> answer" in str(info.value)
    assert isinstance(info.value, TypeError)


def test_bad_config_and_n_are_refused() -> None:
    predict = Predict("question -> answer")
    with pytest.raises(PredictInputError, match="config= must be a dict"):
        predict(question="q", config=[("n", 2)])
    with pytest.raises(PredictInputError, match="n must be a positive int"):
        predict(question="q", config={"n": 0})


def test_repr_and_reset() -> None:
    predict = Predict("question -> answer: int", temperature=0.2)
    assert repr(predict) == "Predict(question -> answer: int)"
    assert predict.get_config() == {"temperature": 0.2}
    predict.demos = [Example(question="a", answer=1)]
    predict.reset()
    assert predict.demos == []
    assert predict.lm is None


def test_literal_annotation_kept_in_signature() -> None:
    predict = Predict("q -> a: Literal['x', 'y']")
    assert predict.signature.output_fields["a"].annotation == Literal["x", "y"]


def test_works_with_the_configured_default_system(lm_server: LocalLMServer) -> None:
    configure(lm=make_lm(lm_server))
    try:
        predict = Predict("question -> answer: int")
        assert predict(question="What is 2 + 2?").answer == 4
        with ThreadPoolExecutor(max_workers=1) as pool:
            future = pool.submit(lambda: predict(question="What is 3 + 3?").answer)
            assert future.result(timeout=WAIT) == 6
        assert lm_server.stats().requests_total == 2
    finally:
        shutdown_default()
        configure(lm=None)


def test_copies_share_the_lm_and_signature_but_not_demos(lm_server: LocalLMServer) -> None:
    cot = ChainOfThought("question -> answer")
    cot.predict.lm = make_lm(lm_server)
    cot.predict.demos = [Example(question="q", answer="a")]
    clone = cot.deepcopy()
    assert clone.predict is not cot.predict
    assert clone.predict.lm is cot.predict.lm
    assert clone.predict.signature is cot.predict.signature
    clone.predict.demos.append(Example(question="q2", answer="b"))
    assert len(cot.predict.demos) == 1
    fresh = cot.reset_copy()
    assert fresh.predict.demos == []
    assert len(cot.predict.demos) == 1
