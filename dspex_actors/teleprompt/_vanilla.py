"""LabeledFewShot: give every predictor up to ``k`` labeled training examples as demos."""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from typing import Any

from dspex_actors._errors import OptimizerError
from dspex_actors.primitives import Example, Module
from dspex_actors.teleprompt._teleprompter import Teleprompter, check_program, check_trainset

__all__ = ["LabeledFewShot"]

logger = logging.getLogger(__name__)


class LabeledFewShot(Teleprompter):
    """Set each predictor's demos to ``k`` examples sampled from the trainset (DSPy's sampler).

    One ``random.Random(0)`` is shared across the predictors in ``named_predictors()``
    order, so the demos picked are the ones DSPy picks for the same trainset. With
    ``sample=False`` the first ``k`` examples are used. An empty trainset gives an
    uncompiled copy, as in DSPy.
    """

    def __init__(self, k: int = 16) -> None:
        if isinstance(k, bool) or not isinstance(k, int) or k < 0:
            raise OptimizerError(f"LabeledFewShot: k must be an int >= 0, got {k!r}")
        self.k = k

    def compile(
        self,
        student: Module,
        *,
        trainset: Sequence[Example],
        sample: bool = True,
        **kwargs: Any,
    ) -> Module:
        """A reset copy of ``student`` whose predictors hold up to ``k`` labeled demos."""
        if kwargs:
            raise TypeError(f"LabeledFewShot.compile got unexpected arguments: {sorted(kwargs)}")
        check_program(student, "student", "LabeledFewShot")
        examples = check_trainset(trainset, "LabeledFewShot", allow_empty=True)
        compiled = student.reset_copy()
        if not examples:
            return compiled
        rng = random.Random(0)
        size = min(self.k, len(examples))
        for _name, predictor in compiled.named_predictors():
            predictor.demos = rng.sample(examples, size) if sample else examples[:size]
        logger.debug(
            "LabeledFewShot: %d demos for each of %d predictors",
            size,
            len(compiled.named_predictors()),
        )
        return compiled
