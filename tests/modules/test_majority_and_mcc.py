"""dx.majority (self-consistency) and dx.MultiChainComparison."""

from __future__ import annotations

import asyncio

import pytest

import dspex_actors as dx
from dspex_actors.primitives import Prediction
from dspex_actors.signatures import ensure_signature
from tests.modules.conftest import SystemFor


def test_majority_picks_the_most_common_normalised_answer() -> None:
    sig = ensure_signature("question -> reasoning, answer")
    pred = Prediction.from_completions(
        [
            {"reasoning": "r1", "answer": "Paris"},
            {"reasoning": "r2", "answer": "the paris!"},
            {"reasoning": "r3", "answer": "Lyon"},
        ],
        signature=sig,
    )
    winner = dx.majority(pred)
    assert (winner.reasoning, winner.answer) == ("r1", "Paris")  # earliest of the winning value
    assert winner.completions is not None
    assert len(winner.completions) == 1
    assert dx.majority(pred, field="reasoning").reasoning == "r1"  # a tie: the earliest


def test_majority_of_a_list_uses_the_last_key_and_ignores_empty_values() -> None:
    rows = [{"answer": "?"}, {"answer": "..."}, {"answer": "Lyon"}]
    assert dx.majority(rows).answer == "Lyon"  # "?" and "..." normalise to nothing
    assert dx.majority([{"answer": "!"}, {"answer": "?"}]).answer == "!"  # all empty: counted
    assert dx.majority([{"n": 2}, {"n": 3}, {"n": 3}]).n == 3
    assert dx.majority(rows, normalize=None).answer == "?"


def test_majority_refuses_what_it_cannot_count() -> None:
    with pytest.raises(dx.PredictInputError, match="at least one"):
        dx.majority([])
    with pytest.raises(dx.PredictInputError, match="no field 'answer'"):
        dx.majority([{"answer": "a"}, {"other": "b"}], field="answer")
    with pytest.raises(dx.PredictInputError, match="takes a Prediction"):
        dx.majority("Paris")  # type: ignore[arg-type]


def test_multi_chain_comparison_end_to_end(system_for: SystemFor) -> None:
    _, server = system_for()
    attempts = [
        dx.Prediction(reasoning="6 times 7.\nmore", answer="42"),
        {"rationale": "six sevens", "answer": "42"},
        {"reasoning": "guess", "answer": "41"},
    ]
    mcc = dx.MultiChainComparison("question -> answer: int", M=3)
    pred = mcc(completions=attempts, question="What is 6 * 7?")
    assert pred.answer == 42
    assert pred.rationale.startswith("The question asks for")
    request = server.stats().requests[0]
    assert request["temperature"] == 0.7
    user = request["messages"][-1]["content"]
    assert "«I'm trying to 6 times 7. I'm not sure but my prediction is 42»" in user
    again = asyncio.run(mcc.acall(completions=attempts, question="What is 6 * 7?"))
    assert again.answer == 42


def test_multi_chain_comparison_refuses_the_wrong_number_of_attempts() -> None:
    mcc = dx.MultiChainComparison("question -> answer", M=2)
    with pytest.raises(dx.PredictInputError, match=r"\(1\) doesn't match the expected number M"):
        mcc(completions=[{"reasoning": "r", "answer": "a"}], question="q")
    with pytest.raises(dx.PredictInputError, match="completion #0 needs 'rationale'"):
        mcc(completions=[{"answer": "a"}, {"answer": "b"}], question="q")
    with pytest.raises(dx.ConfigurationError, match="M must be a positive int"):
        dx.MultiChainComparison("question -> answer", M=0)
