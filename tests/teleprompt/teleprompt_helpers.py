"""Helpers shared by the optimizer tests: data, metric, responders, prompt inspection."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

from dspex_actors.primitives import Example
from dspex_actors.system import ActorSystem
from dspex_actors.testing import (
    ChatRequest,
    DefaultResponder,
    LocalLMServer,
    WeakResponder,
    arithmetic_dataset,
    parse_dspy_prompt,
    weak_model_is_wrong,
)

API_KEY = "sk-test-teleprompt-0123456789"

SystemFactory = Callable[..., tuple[ActorSystem, LocalLMServer]]

RATE = 0.45
"""Wrong-answer rate of the "stubborn" weak model, with or without demos."""


def examples(n: int, seed: int = 0) -> list[Example]:
    """``n`` arithmetic questions as Examples with ``question`` as input."""
    return [Example(**row).with_inputs("question") for row in arithmetic_dataset(n, seed=seed)]


def exact(example: Example, prediction: Any, trace: Any = None) -> bool:
    """The answer equals the label (the metric the tests use)."""
    return bool(str(prediction.answer).strip() == str(example.answer).strip())


def stubborn() -> WeakResponder:
    """A weak model that gets the same questions wrong whether or not it sees demos."""
    return WeakResponder(wrong_rate=RATE, wrong_rate_with_demos=RATE)


def stubborn_wrong(example: Example) -> bool:
    """Whether :func:`stubborn` answers ``example`` wrongly."""
    return weak_model_is_wrong(
        example.question, demos=1, wrong_rate=RATE, wrong_rate_with_demos=RATE
    )


class Garbage:
    """The default model, except it replies with unparseable text for some questions."""

    def __init__(self, bad_questions: set[str]) -> None:
        self.bad = bad_questions
        self.inner = DefaultResponder()

    def __call__(self, request: ChatRequest) -> str:
        prompt = parse_dspy_prompt(request)
        if prompt is not None and prompt.question in self.bad:
            return "I would rather not say."
        return self.inner(request)


class WrongFirstTime:
    """Wrong (answer + 1 via the weak rule) the first time it sees a question, right later."""

    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.weak = WeakResponder(wrong_rate=1.0, wrong_rate_with_demos=1.0)
        self.right = DefaultResponder()

    def __call__(self, request: ChatRequest) -> str:
        prompt = parse_dspy_prompt(request)
        question = prompt.question if prompt is not None else ""
        with self.lock:
            self.seen[question] += 1
            first = self.seen[question] == 1
        return self.weak(request) if first else self.right(request)


def final_question(request: dict[str, Any]) -> str:
    """The question of the final user turn of a logged request body."""
    parsed = parse_dspy_prompt(ChatRequest(model="", messages=request["messages"]))
    assert parsed is not None
    return parsed.question


def demo_questions(request: dict[str, Any]) -> list[str]:
    """The questions of the demo (user) turns before the final one."""
    messages = request["messages"]
    users = [i for i, m in enumerate(messages) if m["role"] == "user"]
    questions = []
    for index in users[:-1]:
        parsed = parse_dspy_prompt(ChatRequest(model="", messages=[*messages[:1], messages[index]]))
        assert parsed is not None
        questions.append(parsed.question)
    return questions


def demo_dicts(program: Any) -> dict[str, list[dict[str, Any]]]:
    """Predictor name → its demos as plain dicts (comparable across runs)."""
    return {name: [d.toDict() for d in p.demos] for name, p in program.named_predictors()}


def instructed_data() -> tuple[list[Example], list[Example], list[Example]]:
    """Train, val and test sets for the instruction-sensitive model."""
    return examples(20, seed=1), examples(30, seed=2), examples(100, seed=3)


def instructed_baseline(test: list[Example]) -> tuple[Any, float]:
    """An Evaluate over ``test`` and the uncompiled program's score on it (about 40)."""
    from dspex_actors.evaluate import Evaluate
    from dspex_actors.predict import Predict

    evaluate = Evaluate(devset=test, metric=exact, num_threads=8)
    baseline = evaluate(Predict("question -> answer")).score
    assert 30 <= baseline <= 50
    return evaluate, baseline
