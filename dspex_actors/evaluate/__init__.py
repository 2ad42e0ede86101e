"""Parallel evaluation on a bounded pool of worker actors.

:class:`Evaluate` scores a program on a dev set; :class:`ParallelExecutor` is the generic
engine under it (also used by the optimizers): ``run(fn, items)`` over any iterable, with
per-item timeouts, ``max_errors`` and Ctrl-C handling that keep every finished result.
"""

from dspex_actors.evaluate._async_executor import AsyncExecutor
from dspex_actors.evaluate._backend import RayBackend
from dspex_actors.evaluate._evaluate import Evaluate
from dspex_actors.evaluate._executor import Outcome, ParallelExecutor, Progress, ProgressCallback
from dspex_actors.evaluate._metrics import (
    answer_exact_match,
    answer_passage_match,
    f1_score,
    normalize_text,
)
from dspex_actors.evaluate._progress import TqdmProgress
from dspex_actors.evaluate._result import EvaluationResult
from dspex_actors.evaluate._worker import ExampleFailure

__all__ = [
    "AsyncExecutor",
    "Evaluate",
    "EvaluationResult",
    "ExampleFailure",
    "Outcome",
    "ParallelExecutor",
    "Progress",
    "ProgressCallback",
    "RayBackend",
    "TqdmProgress",
    "answer_exact_match",
    "answer_passage_match",
    "f1_score",
    "normalize_text",
]
