"""LabeledFewShot: seeded sampling identical to DSPy's, per predictor, student untouched."""

from __future__ import annotations

import random

from teleprompt_helpers import examples

from dspex_actors.predict import ChainOfThought, Predict
from dspex_actors.primitives import Module
from dspex_actors.teleprompt import LabeledFewShot


class TwoStep(Module):
    def __init__(self) -> None:
        super().__init__()
        self.draft = Predict("question -> answer")
        self.check = ChainOfThought("question, draft -> answer")

    def forward(self, question: str) -> object:
        draft = self.draft(question=question).answer
        return self.check(question=question, draft=draft)


def test_each_predictor_gets_k_demos_from_one_seeded_rng() -> None:
    trainset = examples(20)
    student = TwoStep()
    compiled = LabeledFewShot(k=5).compile(student, trainset=trainset)
    rng = random.Random(0)
    expected_first = rng.sample(trainset, 5)
    expected_second = rng.sample(trainset, 5)
    assert compiled.draft.demos == expected_first
    assert compiled.check.predict.demos == expected_second
    assert student.draft.demos == [] and student.check.predict.demos == []
    assert compiled is not student


def test_k_larger_than_trainset_takes_everything_in_sampled_order() -> None:
    trainset = examples(3)
    compiled = LabeledFewShot(k=16).compile(Predict("question -> answer"), trainset=trainset)
    assert compiled.demos == random.Random(0).sample(trainset, 3)


def test_sample_false_takes_the_first_k() -> None:
    trainset = examples(10)
    compiled = LabeledFewShot(k=4).compile(
        Predict("question -> answer"), trainset=trainset, sample=False
    )
    assert compiled.demos == trainset[:4]


def test_empty_trainset_gives_an_uncompiled_copy_like_dspy() -> None:
    student = Predict("question -> answer")
    student.demos = examples(2)
    compiled = LabeledFewShot(k=4).compile(student, trainset=[])
    assert compiled.demos == []
    assert len(student.demos) == 2
