"""A model whose instructions trade skills off, and a program routing questions by operator.

Merges only pay when two candidates got better at different things. With the
"instructed" model an instruction never makes an answer worse, so every child dominates
its parent and the Pareto front is a single line of descent. Here an instruction that
names operators ("Focus on sums.") makes questions with those operators right and
every other question wrong; an instruction naming none leaves a stable 40% right. The
:class:`Routed` program sends ``+``/``-`` questions to one predictor and ``*`` to the
other, so a child specialising one predictor and a sibling specialising the other are
both on the front, and their merge is better than either.
"""

from __future__ import annotations

import re

from dspex_actors.predict import Predict
from dspex_actors.primitives import Module, Prediction
from dspex_actors.testing import (
    ChatRequest,
    DefaultResponder,
    WeakResponder,
    parse_dspy_prompt,
    stable_fraction,
)
from dspex_actors.testing._responders import render_reply

SKILLS = {"+": "sums", "-": "differences", "*": "products"}
"""The word an instruction must hold for questions with each operator to come out right."""

BASE_RATE = 0.4
"""Share of questions right under an instruction that names no operator."""


def operator_of(question: str) -> str:
    """The operator of an arithmetic question ("What is 5 + 19?" → "+")."""
    for operator in SKILLS:
        if f" {operator} " in question:
            return operator
    raise ValueError(f"no operator in {question!r}")


def specialist_is_right(question: str, instructions: str) -> bool:
    """Whether :class:`SpecialistResponder` answers ``question`` right under ``instructions``."""
    named = {word for word in SKILLS.values() if word in instructions.lower()}
    if named:
        return SKILLS[operator_of(question)] in named
    return stable_fraction("specialist:" + question.strip()) < BASE_RATE


def reflect(prompt: str) -> str:
    """A reflection's answer: focus on the operators of the questions the prompt shows."""
    operators = {m.group(1) for m in re.finditer(r"What is \d+ ([-+*]) \d+\?", prompt)}
    words = [SKILLS[o] for o in SKILLS if o in operators]
    return f"Focus on {' and '.join(words)}." if words else "Give the number only."


class SpecialistResponder:
    """Answers task prompts per :func:`specialist_is_right`; reflections per :func:`reflect`."""

    def __init__(self) -> None:
        self.right = DefaultResponder()
        self.wrong = WeakResponder(wrong_rate=1.0, wrong_rate_with_demos=1.0)

    def __call__(self, request: ChatRequest) -> str:
        prompt = parse_dspy_prompt(request)
        if prompt is None:
            return f"```\n{reflect(request.last_user_text)}\n```"
        names = [name for name, _ in prompt.output_fields]
        if any("instruction" in name for name in names):  # DSPy's own reflection signature
            text = reflect(request.last_user_text)
            return render_reply(prompt, dict.fromkeys(names, text))
        right = specialist_is_right(prompt.question, request.system_text)
        return (self.right if right else self.wrong)(request)


class Routed(Module):
    """``+`` and ``-`` questions go to ``add``, ``*`` questions to ``mul``."""

    def __init__(self) -> None:
        super().__init__()
        self.add = Predict("question -> answer")
        self.mul = Predict("question -> answer")

    def forward(self, question: str) -> Prediction:
        predictor = self.mul if operator_of(question) == "*" else self.add
        result: Prediction = predictor(question=question)
        return result
