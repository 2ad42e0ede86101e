"""Bad inputs fail fast with clear OptimizerErrors; max_errors keeps the partial work."""

from __future__ import annotations

from typing import Any

import pytest
from teleprompt_helpers import Garbage, SystemFactory, exact, examples

from dspex_actors._errors import OptimizerError
from dspex_actors.predict import ChainOfThought, Predict
from dspex_actors.primitives import Example, Module, Prediction
from dspex_actors.teleprompt import (
    BootstrapFewShot,
    BootstrapFewShotWithRandomSearch,
    LabeledFewShot,
)


class Pipeline(Module):
    def __init__(self, second: str = "question, draft -> answer") -> None:
        super().__init__()
        self.draft = Predict("question -> answer")
        self.final = Predict(second)

    def forward(self, question: str) -> Prediction:
        draft = self.draft(question=question).answer
        result: Prediction = self.final(question=question, draft=draft)
        return result


def compile_bootstrap(student: Any, **kwargs: Any) -> Module:
    return BootstrapFewShot(metric=exact).compile(student, **kwargs)


@pytest.mark.parametrize(
    ("trainset", "message"),
    [
        ([], "trainset is empty"),
        (None, "must be a list of Examples"),
        ("What is 1 + 1?", "must be a list of Examples"),
        ([{"question": "q", "answer": "a"}], r"trainset\[0\] is a dict, not an Example"),
        ([Example(question="q", answer="a")], r"trainset\[0\] has no input fields marked"),
    ],
)
def test_bad_trainsets_are_named(trainset: Any, message: str) -> None:
    with pytest.raises(OptimizerError, match=message):
        compile_bootstrap(Predict("question -> answer"), trainset=trainset)
    with pytest.raises(OptimizerError, match=message):
        BootstrapFewShotWithRandomSearch(metric=exact).compile(
            Predict("question -> answer"), trainset=trainset
        )


def test_labeled_fewshot_rejects_rows_that_are_not_examples() -> None:
    with pytest.raises(OptimizerError, match=r"trainset\[1\] is a str"):
        LabeledFewShot(k=2).compile(Predict("question -> answer"), trainset=[*examples(1), "oops"])


def test_teacher_with_another_structure() -> None:
    with pytest.raises(OptimizerError, match="same program structure") as info:
        compile_bootstrap(Pipeline(), teacher=Predict("question -> answer"), trainset=examples(3))
    assert "['draft', 'final']" in str(info.value)
    with pytest.raises(OptimizerError, match="same program structure"):
        compile_bootstrap(
            Predict("question -> answer"),
            teacher=ChainOfThought("question -> answer"),
            trainset=examples(3),
        )


def test_teacher_with_another_signature() -> None:
    with pytest.raises(OptimizerError, match="same signatures; predictor 'final'") as info:
        compile_bootstrap(
            Pipeline(),
            teacher=Pipeline("question, draft -> answer, confidence"),
            trainset=examples(3),
        )
    assert "confidence" in str(info.value)


def test_student_must_be_an_uncompiled_module() -> None:
    with pytest.raises(OptimizerError, match="must be a dspex_actors Module"):
        compile_bootstrap(lambda question: question, trainset=examples(3))
    compiled = LabeledFewShot(k=1).compile(Predict("question -> answer"), trainset=examples(2))
    compiled._compiled = True
    with pytest.raises(OptimizerError, match="already compiled"):
        compile_bootstrap(compiled, trainset=examples(3))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_rounds": 0}, "max_rounds must be an int >= 1"),
        ({"max_bootstrapped_demos": -1}, "max_bootstrapped_demos must be an int >= 0"),
        ({"max_labeled_demos": 2.5}, "max_labeled_demos must be an int"),
        ({"num_threads": 0}, "num_threads must be an int >= 1"),
        ({"max_errors": 0}, "max_errors must be an int >= 1"),
        ({"metric": "exact"}, "metric must be callable"),
        ({"teacher_settings": ["lm"]}, "teacher_settings must be a dict"),
    ],
)
def test_bad_settings(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(OptimizerError, match=message):
        BootstrapFewShot(**kwargs)


def test_max_errors_raises_with_what_was_bootstrapped_in_trainset_order(
    system_for: SystemFactory,
) -> None:
    trainset = examples(12, seed=11)
    bad = {trainset[i].question for i in (1, 3, 5)}
    for threads in (1, 4):
        system_for(Garbage(bad))
        optimizer = BootstrapFewShot(
            metric=exact, max_bootstrapped_demos=12, max_errors=2, num_threads=threads
        )
        with pytest.raises(OptimizerError, match=r"reached max_errors=2.*trainset\[3\]") as info:
            optimizer.compile(Predict("question -> answer"), trainset=trainset)
        partial = info.value.partial
        assert [d.question for d in partial["self"]] == [trainset[0].question, trainset[2].question]
        assert all(d.augmented for d in partial["self"])


def test_errors_below_max_errors_are_skipped(system_for: SystemFactory) -> None:
    trainset = examples(8, seed=12)
    bad = {trainset[i].question for i in (0, 4)}
    system_for(Garbage(bad))
    compiled = BootstrapFewShot(
        metric=exact, max_bootstrapped_demos=8, max_labeled_demos=8, max_errors=3, num_threads=4
    ).compile(Predict("question -> answer"), trainset=trainset)
    augmented = [d.question for d in compiled.demos if d.get("augmented")]
    assert augmented == [x.question for x in trainset if x.question not in bad]
    labeled = [d.question for d in compiled.demos if not d.get("augmented")]
    assert sorted(labeled) == sorted(bad)


def test_progress_bar_is_off_by_default_and_on_when_asked(
    system_for: SystemFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    system_for()
    trainset = examples(4, seed=13)
    BootstrapFewShot(metric=exact).compile(Predict("question -> answer"), trainset=trainset)
    assert "Bootstrapping" not in capsys.readouterr().err
    BootstrapFewShot(metric=exact, display_progress=True, max_bootstrapped_demos=1).compile(
        Predict("question -> answer"), trainset=trainset
    )
    assert "Bootstrapping" in capsys.readouterr().err
