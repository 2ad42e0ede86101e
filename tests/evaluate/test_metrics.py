"""answer_exact_match / answer_passage_match, normalised like DSPy."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from dspex_actors.evaluate import answer_exact_match, answer_passage_match, normalize_text


def ns(**fields: object) -> SimpleNamespace:
    return SimpleNamespace(**fields)


def test_normalize_text_like_dspy() -> None:
    assert normalize_text("The,  Eiffel  Tower!") == "eiffel tower"
    assert normalize_text("An apple a day") == "apple day"
    assert normalize_text("Café") == normalize_text("CAFÉ")


@pytest.mark.parametrize(
    ("answer", "predicted", "expected"),
    [
        ("Paris", "paris", True),
        ("Eiffel Tower", "The Eiffel Tower.", True),
        ("Eiffel Tower", "Eiffel", False),
        (["Louvre", "Eiffel Tower"], "the eiffel tower", True),
        ("27", 27, True),
    ],
)
def test_answer_exact_match(answer: object, predicted: object, expected: bool) -> None:
    assert answer_exact_match(ns(answer=answer), ns(answer=predicted)) is expected


def test_answer_exact_match_with_an_f1_fraction() -> None:
    example = ns(answer="Eiffel Tower")
    assert answer_exact_match(example, ns(answer="Eiffel Tower in Paris"), frac=0.5)
    assert not answer_exact_match(example, ns(answer="Louvre museum"), frac=0.5)
    assert not answer_exact_match(example, ns(answer="Eiffel Tower in Paris"))


def test_answer_exact_match_rejects_a_bad_label() -> None:
    with pytest.raises(ValueError, match=r"example\.answer"):
        answer_exact_match(ns(answer=3), ns(answer="3"))


def test_answer_passage_match() -> None:
    pred = ns(context=["The Eiffel Tower is in Paris.", "Something else"])
    assert answer_passage_match(ns(answer="eiffel tower"), pred)
    assert answer_passage_match(ns(answer=["Louvre", "Paris"]), pred)
    assert not answer_passage_match(ns(answer="Tower Eiffel"), pred)
    assert not answer_passage_match(ns(answer="Pari"), pred)
