"""save → load round trips: demos come back as Examples and prompts are identical."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dspex_actors import ProgramLoadError
from dspex_actors.predict import ChainOfThought, Predict, load_program
from dspex_actors.primitives import Example, Module
from dspex_actors.system import ActorSystem
from dspex_actors.testing import LocalLMServer
from tests.predict.conftest import API_KEY

DEMOS = [
    Example(question="What is 1 + 1?", answer=2, augmented=True),
    Example(question="What is 2 + 5?", reasoning="2 + 5 is 7.", answer=7),
]


def _last_messages(server: LocalLMServer) -> list[dict[str, Any]]:
    body = server.stats().last_request
    assert body is not None
    messages: list[dict[str, Any]] = body["messages"]
    return messages


def _trained_cot() -> ChainOfThought:
    cot = ChainOfThought("question -> answer: int", cache=False)
    cot.predict.demos = list(DEMOS)
    cot.predict.signature = cot.predict.signature.with_instructions("Solve the sum.")
    return cot


def test_saved_file_has_dspy_layout_and_no_secrets(system: ActorSystem, tmp_path: Path) -> None:
    path = tmp_path / "cot.json"
    _trained_cot().save(path)
    text = path.read_text()
    assert API_KEY not in text
    assert "127.0.0.1" not in text
    assert "api_base" not in text
    state = json.loads(text)
    assert list(state) == ["predict", "metadata"]
    predictor = state["predict"]
    assert list(predictor) == ["traces", "train", "demos", "signature", "lm"]
    assert predictor["lm"] is None
    assert predictor["demos"][0] == {"question": "What is 1 + 1?", "answer": 2, "augmented": True}
    signature = predictor["signature"]
    assert signature["instructions"] == "Solve the sum."
    assert signature["string"] == "question -> reasoning, answer: int"
    assert signature["fields"][1] == {
        "name": "reasoning",
        "prefix": "Reasoning: Let's think step by step in order to",
        "description": "${reasoning}",
    }
    assert [f["prefix"] for f in signature["fields"]][::2] == ["Question:", "Answer:"]


def test_round_trip_restores_demos_and_identical_prompts(
    system: ActorSystem, lm_server: LocalLMServer, tmp_path: Path
) -> None:
    path = tmp_path / "cot.json"
    original = _trained_cot()
    original.save(path)
    fresh = ChainOfThought("question -> answer: int", cache=False).load(path)
    assert fresh.predict.demos == DEMOS
    assert all(type(d) is Example for d in fresh.predict.demos)
    assert fresh.predict.signature.equals(original.predict.signature)

    original(question="What is 8 + 8?")
    sent_by_original = _last_messages(lm_server)
    fresh(question="What is 8 + 8?")
    sent_by_fresh = _last_messages(lm_server)
    assert sent_by_fresh == sent_by_original
    assert lm_server.stats().requests_total == 2
    assert "Solve the sum." in sent_by_fresh[0]["content"]

    rebuilt = load_program(path)
    assert isinstance(rebuilt, ChainOfThought)
    rebuilt.predict.update_config(cache=False)
    rebuilt(question="What is 8 + 8?")
    assert _last_messages(lm_server) == sent_by_original


def test_bare_predict_round_trip_and_rebuild(system: ActorSystem, tmp_path: Path) -> None:
    predict = Predict("context: list[str], question -> answer: int")
    predict.demos = [Example(context=["a"], question="q", answer=1), {"question": "raw dict"}]
    path = tmp_path / "predict.json"
    predict.save(path)
    saved = json.loads(path.read_text())
    assert list(saved) == ["traces", "train", "demos", "signature", "lm", "metadata"]
    fresh = Predict("context: list[str], question -> answer: int").load(path)
    expected = [Example(context=["a"], question="q", answer=1), Example(question="raw dict")]
    assert fresh.demos == expected
    rebuilt = load_program(path)
    assert isinstance(rebuilt, Predict)
    assert rebuilt.signature.equals(predict.signature)
    assert rebuilt.demos == fresh.demos


def test_field_mismatch_names_predictor_and_field(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    Predict("question -> answer").save(path)
    with pytest.raises(ProgramLoadError, match=r"'self'.*'answer'.*'response'"):
        Predict("question -> response").load(path)
    with pytest.raises(ProgramLoadError, match=r"'self'.*fields \['question', 'answer', 'extra'\]"):
        Predict("question -> answer, extra").load(path)
    with pytest.raises(ProgramLoadError, match=r"bare predictor.*\['predict'\]"):
        ChainOfThought("question -> answer").load(path)


def test_dspy_files_without_names_or_string_still_load(tmp_path: Path) -> None:
    state = {
        "predict": {
            "traces": [],
            "train": [],
            "demos": [{"question": "q", "answer": "a", "augmented": True}],
            "signature": {
                "instructions": "Be brief.",
                "fields": [
                    {"prefix": "Question:", "description": "${question}"},
                    {"prefix": "Reasoning:", "description": "${reasoning}"},
                    {"prefix": "Answer:", "description": "the answer"},
                ],
            },
            "lm": None,
        },
        "metadata": {"dependency_versions": {"python": "3.11", "dspy": "3.0.3"}},
    }
    path = tmp_path / "dspy.json"
    path.write_text(json.dumps(state))
    cot = ChainOfThought("question -> answer").load(path)
    assert cot.predict.signature.instructions == "Be brief."
    assert cot.predict.signature.output_fields["answer"].desc == "the answer"
    assert cot.predict.demos == [Example(question="q", answer="a", augmented=True)]
    with pytest.raises(ProgramLoadError, match="no signature string"):
        load_program(path)


class TwoPredictors(Module):
    def __init__(self) -> None:
        super().__init__()
        self.steps = [Predict("question -> answer"), Predict("answer -> check")]


def test_multi_predictor_files(tmp_path: Path) -> None:
    path = tmp_path / "two.json"
    program = TwoPredictors()
    program.steps[1].demos = [Example(answer="x", check="y")]
    program.save(path)
    fresh = TwoPredictors().load(path)
    assert fresh.steps[1].demos == [Example(answer="x", check="y")]
    with pytest.raises(ProgramLoadError, match=r"2 predictor\(s\).*program.load"):
        load_program(path)


def test_corrupt_predictor_state_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    Predict("question -> answer").save(path)
    state = json.loads(path.read_text())
    state["demos"] = "not a list"
    path.write_text(json.dumps(state))
    with pytest.raises(ProgramLoadError, match="'demos' must be a list"):
        Predict("question -> answer").load(path)
