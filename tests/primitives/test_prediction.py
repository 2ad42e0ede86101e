"""Prediction and Completions."""

from __future__ import annotations

import pytest

from dspex_actors.primitives import Example, Prediction


def test_from_completions_keeps_every_choice() -> None:
    pred = Prediction.from_completions(
        [{"answer": "5", "note": "a"}, {"answer": "6", "note": "b"}],
        usage={"prompt_tokens": 10, "completion_tokens": 4},
        raw_texts=["t1", "t2"],
    )
    assert isinstance(pred, Example)
    assert pred.answer == "5"
    completions = pred.completions
    assert completions is not None
    assert len(completions) == 2
    assert completions.answer == ["5", "6"]
    assert completions["note"] == ["a", "b"]
    assert completions[1].answer == "6"
    assert completions[-1].note == "b"
    assert isinstance(completions[0], Prediction)
    assert [c.answer for c in completions] == ["5", "6"]
    assert "answer" in completions
    with pytest.raises(IndexError):
        _ = completions[2]
    assert pred.usage == {"prompt_tokens": 10, "completion_tokens": 4}
    assert pred.get_lm_usage() == {"prompt_tokens": 10, "completion_tokens": 4}
    assert pred.raw_texts == ("t1", "t2")
    assert "1 completions omitted" in repr(pred)


def test_from_column_dict_and_unequal_columns() -> None:
    pred = Prediction.from_completions({"a": [1, 2], "b": [3, 4]})
    assert pred.toDict() == {"a": 1, "b": 3}
    with pytest.raises(ValueError, match="same length"):
        Prediction.from_completions({"a": [1], "b": [3, 4]})


def test_hand_built_prediction() -> None:
    pred = Prediction(answer="x")
    assert pred.completions is None
    assert pred.usage == {}
    assert pred == Prediction(answer="x")
    assert repr(pred) == "Prediction(\n    answer='x'\n)"


def test_score_arithmetic() -> None:
    a, b = Prediction(score=0.5), Prediction(score=1.0)
    assert float(a) == 0.5
    assert a + b == 1.5
    assert 1 + a == 1.5
    assert sum([a, b]) == 1.5
    assert b / 2 == 0.5
    assert a < b
    assert b >= 1
    with pytest.raises(ValueError, match="score"):
        float(Prediction(answer="x"))
    with pytest.raises(TypeError, match="str"):
        _ = a + "x"


def test_output_fields_named_usage_or_raw_texts_win() -> None:
    pred = Prediction.from_completions([{"usage": "daily", "raw_texts": "x"}], usage={"t": 1})
    assert pred.usage == "daily"
    assert pred.raw_texts == "x"
    assert pred.get_lm_usage() == {"t": 1}
