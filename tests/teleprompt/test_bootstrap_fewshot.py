"""BootstrapFewShot against the local server: DSPy's selection, parallel == sequential."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from teleprompt_helpers import (
    API_KEY,
    SystemFactory,
    WrongFirstTime,
    demo_dicts,
    demo_questions,
    exact,
    examples,
    final_question,
    stubborn,
    stubborn_wrong,
)

from dspex_actors.evaluate import Evaluate
from dspex_actors.lm import LM
from dspex_actors.predict import ChainOfThought, Predict
from dspex_actors.primitives import Example, Module, Prediction
from dspex_actors.teleprompt import BootstrapFewShot
from dspex_actors.testing import LocalLMServer


class TwoStep(Module):
    """Two predictors: a draft answer, then a checked answer that sees the draft."""

    def __init__(self) -> None:
        super().__init__()
        self.draft = Predict("question -> answer")
        self.check = ChainOfThought("question, draft -> answer")

    def forward(self, question: str) -> Prediction:
        draft = self.draft(question=question).answer
        result: Prediction = self.check(question=question, draft=draft)
        return result


def dspy_expected_demos(
    trainset: list[Example], ok: list[bool], max_bootstrapped: int, max_labeled: int
) -> tuple[list[dict[str, Any]], int]:
    """DSPy's algorithm for one predictor, given which examples the teacher gets right.

    Returns the demos as dicts and how many examples the sequential loop ran.
    """
    bootstrapped: list[int] = []
    ran = 0
    for index in range(len(trainset)):
        if len(bootstrapped) >= max_bootstrapped:
            break
        ran += 1
        if ok[index]:
            bootstrapped.append(index)
    augmented = [
        {"augmented": True, "question": trainset[i].question, "answer": trainset[i].answer}
        for i in bootstrapped
    ]
    validation = [x for i, x in enumerate(trainset) if i not in bootstrapped]
    random.Random(0).shuffle(validation)
    size = max(0, min(max_labeled - len(augmented), len(validation)))
    raw = random.Random(0).sample(validation, size)
    return augmented + [x.toDict() for x in raw], ran


def test_compiled_program_beats_the_uncompiled_one(system_for: SystemFactory) -> None:
    system_for("weak")
    trainset, heldout = examples(10, seed=1), examples(30, seed=2)
    student = Predict("question -> answer")
    compiled = BootstrapFewShot(metric=exact, num_threads=4).compile(student, trainset=trainset)
    evaluate = Evaluate(devset=heldout, metric=exact, num_threads=4)
    before, after = evaluate(student).score, evaluate(compiled).score
    assert after == 100.0
    assert before < 80.0
    assert student.demos == []
    assert getattr(compiled, "_compiled", False) is True


def test_demos_match_dspy_and_parallel_equals_sequential(system_for: SystemFactory) -> None:
    trainset = examples(40, seed=3)
    ok = [not stubborn_wrong(x) for x in trainset]
    assert 4 <= sum(ok) < len(trainset), "the data must mix right and wrong answers"
    expected, ran = dspy_expected_demos(trainset, ok, max_bootstrapped=4, max_labeled=16)
    labeled = {x.question for x in random.Random(0).sample(trainset, 16)}

    runs = {}
    for threads in (1, 4):
        _, server = system_for(stubborn())
        optimizer = BootstrapFewShot(metric=exact, num_threads=threads)
        compiled = optimizer.compile(Predict("question -> answer"), trainset=trainset)
        runs[threads] = (demo_dicts(compiled)["self"], server.stats().requests)

    assert runs[1][0] == expected
    assert runs[4][0] == expected
    sequential_requests, parallel_requests = runs[1][1], runs[4][1]
    assert [final_question(r) for r in sequential_requests] == [x.question for x in trainset[:ran]]
    # The parallel run may start examples past the stopping point, at most 2 x num_threads.
    assert ran <= len(parallel_requests) < ran + 2 * 4
    for request in sequential_requests + parallel_requests:
        seen = demo_questions(request)
        assert final_question(request) not in seen, "the teacher saw its own example"
        assert len(seen) == 16 - (final_question(request) in labeled)


def test_later_rounds_use_temperature_one_and_a_fresh_cache_key(
    system_for: SystemFactory,
) -> None:
    trainset = examples(6, seed=4)
    for settings in (None, {"temperature": 1.0}):
        _, server = system_for(WrongFirstTime())
        optimizer = BootstrapFewShot(
            metric=exact,
            max_bootstrapped_demos=3,
            max_labeled_demos=0,
            max_rounds=2,
            num_threads=1,
            teacher_settings=settings,
        )
        compiled = optimizer.compile(Predict("question -> answer"), trainset=trainset)
        assert [d["question"] for d in demo_dicts(compiled)["self"]] == [
            x.question for x in trainset[:3]
        ]
        requests = server.stats().requests
        # Each example: a wrong first answer, then a second round that reached the server
        # (with teacher_settings temperature=1.0 only the rollout_id can tell them apart).
        assert [final_question(r) for r in requests] == [
            q for x in trainset[:3] for q in (x.question, x.question)
        ]
        first_temperature = 1.0 if settings else 0.0
        assert [r["temperature"] for r in requests] == [first_temperature, 1.0] * 3


def test_metric_threshold_filters_numeric_scores(system_for: SystemFactory) -> None:
    system_for()
    trainset = examples(12, seed=5)

    def graded(example: Example, prediction: Prediction, trace: Any = None) -> float:
        if not exact(example, prediction):
            return 0.0
        return 1.0 if int(example.answer) % 2 == 0 else 0.5

    even = [x.question for x in trainset if int(x.answer) % 2 == 0]
    assert 3 <= len(even) < len(trainset)
    strict = BootstrapFewShot(
        metric=graded, metric_threshold=0.9, max_bootstrapped_demos=3, max_labeled_demos=3
    ).compile(Predict("question -> answer"), trainset=trainset)
    assert [d["question"] for d in demo_dicts(strict)["self"]] == even[:3]

    lenient = BootstrapFewShot(
        metric=graded, max_bootstrapped_demos=3, max_labeled_demos=3
    ).compile(Predict("question -> answer"), trainset=trainset)
    assert [d["question"] for d in demo_dicts(lenient)["self"]] == [
        x.question for x in trainset[:3]
    ]


def test_demo_count_limits(system_for: SystemFactory) -> None:
    _, server = system_for()
    trainset = examples(12, seed=6)
    compiled = BootstrapFewShot(
        metric=exact, max_bootstrapped_demos=2, max_labeled_demos=5
    ).compile(Predict("question -> answer"), trainset=trainset)
    demos = demo_dicts(compiled)["self"]
    assert len(demos) == 5
    assert [d.get("augmented") for d in demos] == [True, True, None, None, None]

    server.reset_stats()
    labeled_only = BootstrapFewShot(
        metric=exact, max_bootstrapped_demos=0, max_labeled_demos=3
    ).compile(Predict("question -> answer"), trainset=trainset)
    assert len(labeled_only.demos) == 3
    assert not any(d.get("augmented") for d in demo_dicts(labeled_only)["self"])
    assert server.stats().requests_total == 0


def test_multi_predictor_module(system_for: SystemFactory) -> None:
    trainset = examples(10, seed=7)
    results = []
    for threads in (1, 6):
        system_for()
        compiled = BootstrapFewShot(
            metric=exact, max_bootstrapped_demos=3, max_labeled_demos=4, num_threads=threads
        ).compile(TwoStep(), trainset=trainset)
        results.append(demo_dicts(compiled))
    assert results[0] == results[1]
    demos = results[0]
    assert set(demos) == {"draft", "check.predict"}
    draft, check = demos["draft"], demos["check.predict"]
    assert len(draft) == len(check) == 4
    assert set(draft[0]) == {"augmented", "question", "answer"}
    assert set(check[0]) == {"augmented", "question", "draft", "reasoning", "answer"}
    assert [d["question"] for d in draft[:3]] == [x.question for x in trainset[:3]]
    assert [d["question"] for d in check[:3]] == [x.question for x in trainset[:3]]


class TwiceCalled(Module):
    """Calls one predictor twice per example (DSPy keeps one of the two steps)."""

    def __init__(self) -> None:
        super().__init__()
        self.step = Predict("question -> answer")

    def forward(self, question: str) -> Prediction:
        self.step(question=f"{question} Think first.")
        result: Prediction = self.step(question=question)
        return result


def test_a_predictor_called_twice_keeps_one_demo_per_example(system_for: SystemFactory) -> None:
    trainset = examples(8, seed=8)
    runs = []
    for threads in (1, 4):
        system_for()
        compiled = BootstrapFewShot(
            metric=exact, max_bootstrapped_demos=4, max_labeled_demos=4, num_threads=threads
        ).compile(TwiceCalled(), trainset=trainset)
        runs.append(demo_dicts(compiled)["step"])
    assert runs[0] == runs[1]
    assert len(runs[0]) == 4
    for demo, example in zip(runs[0], trainset, strict=False):
        assert demo["question"] in {example.question, f"{example.question} Think first."}


def test_saved_compiled_program_reproduces_the_same_prompts(
    system_for: SystemFactory, tmp_path: Path
) -> None:
    _, server = system_for(cache=False)
    trainset, heldout = examples(8, seed=9), examples(3, seed=10)
    compiled = BootstrapFewShot(
        metric=exact, max_bootstrapped_demos=2, max_labeled_demos=4
    ).compile(TwoStep(), trainset=trainset)
    path = tmp_path / "two_step.json"
    compiled.save(path)
    fresh = TwoStep().load(path)
    assert demo_dicts(fresh) == demo_dicts(compiled)

    prompts = []
    for program in (compiled, fresh):
        server.reset_stats()
        for example in heldout:
            program(question=example.question)
        prompts.append([r["messages"] for r in server.stats().requests])
    assert len(prompts[0]) == 2 * len(heldout)
    assert prompts[0] == prompts[1]


def test_teacher_settings_lm_runs_the_teacher_on_another_model(
    system_for: SystemFactory, make_lm_server: Callable[..., LocalLMServer]
) -> None:
    _, student_server = system_for("weak")
    teacher_server = make_lm_server()
    teacher_lm = LM("openai/local-model", api_base=teacher_server.url, api_key=API_KEY)
    trainset = examples(6, seed=14)
    compiled = BootstrapFewShot(
        metric=exact, max_labeled_demos=0, num_threads=1, teacher_settings={"lm": teacher_lm}
    ).compile(Predict("question -> answer"), trainset=trainset)
    assert student_server.stats().requests_total == 0
    assert teacher_server.stats().requests_total == 4
    assert [d.question for d in compiled.demos] == [x.question for x in trainset[:4]]
    assert compiled.lm is None
