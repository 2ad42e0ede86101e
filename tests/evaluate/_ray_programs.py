"""Programs the Ray tests send to the workers (importable there: the fixture puts the
repository on the workers' PYTHONPATH)."""

from __future__ import annotations

import os
from typing import Any

import dspex_actors as dx


class PidQA(dx.Module):
    """Answers with a Predict and records which process ran it."""

    def __init__(self) -> None:
        super().__init__()
        self.qa = dx.Predict("question -> answer")

    def forward(self, question: str) -> dx.Prediction:
        prediction = self.qa(question=question)
        return dx.Prediction(answer=prediction.answer, pid=os.getpid())


class PickyQA(PidQA):
    """Fails on questions that mention ``boom`` (before any LM call)."""

    def forward(self, question: str) -> dx.Prediction:
        if "boom" in question:
            raise ValueError(f"boom in {question!r}")
        return super().forward(question=question)


def exact_match(example: Any, prediction: Any, trace: Any = None) -> bool:
    return bool(dx.answer_exact_match(example, prediction))
