"""ChainOfThought and multi-predictor user modules."""

from __future__ import annotations

from typing import Any

import pytest

from dspex_actors import PredictInputError
from dspex_actors.predict import ChainOfThought, Predict
from dspex_actors.primitives import Module, Prediction
from dspex_actors.signatures import OutputField
from dspex_actors.system import ActorSystem
from dspex_actors.testing import LocalLMServer


def test_chain_of_thought_reasons_then_answers(
    system: ActorSystem, lm_server: LocalLMServer
) -> None:
    cot = ChainOfThought("question -> answer: int")
    pred = cot(question="What is 6 * 7?")
    assert isinstance(pred, Prediction)
    assert pred.answer == 42
    assert "42" in pred.reasoning
    assert list(pred.keys()) == ["reasoning", "answer"]
    system_prompt = lm_server.stats().requests[0]["messages"][0]["content"]
    assert "1. `reasoning` (str)" in system_prompt
    assert "2. `answer` (int)" in system_prompt


def test_chain_of_thought_structure_matches_dspy() -> None:
    cot = ChainOfThought("question -> answer")
    assert [name for name, _ in cot.named_predictors()] == ["predict"]
    outputs = cot.predict.signature.output_fields
    assert list(outputs) == ["reasoning", "answer"]
    assert outputs["reasoning"].desc == "${reasoning}"
    assert outputs["reasoning"].prefix == "Reasoning: Let's think step by step in order to"


def test_custom_rationale_field() -> None:
    field = OutputField(desc="think briefly", prefix="Thoughts:")
    cot = ChainOfThought("question -> answer", rationale_field=field)
    assert cot.predict.signature.output_fields["reasoning"].desc == "think briefly"


def test_chain_of_thought_refuses_positional_and_missing_inputs() -> None:
    cot = ChainOfThought("question -> answer")
    with pytest.raises(PredictInputError, match="keyword arguments only"):
        cot("What?")
    with pytest.raises(PredictInputError, match="question"):
        cot(query="What?")


class Pipeline(Module):
    """A user program: rewrite, then answer with reasoning, with helpers in a list/dict."""

    def __init__(self) -> None:
        super().__init__()
        self.rewrite = Predict("question -> clean_question")
        self.answer = ChainOfThought("question -> answer: int")
        self.checks = [Predict("answer -> ok: bool")]
        self.extra = {"summary": Predict("answer -> summary")}

    def forward(self, question: str) -> Any:
        self.rewrite(question=question)
        result = self.answer(question=question)
        self.checks[0](answer=str(result.answer))
        return result


def test_user_module_with_several_predictors(system: ActorSystem) -> None:
    program = Pipeline()
    names = [name for name, _ in program.named_predictors()]
    assert names == ["rewrite", "answer.predict", "checks[0]", "extra['summary']"]
    assert program.predictors()[1] is program.answer.predict
    assert program(question="What is 9 - 4?").answer == 5
