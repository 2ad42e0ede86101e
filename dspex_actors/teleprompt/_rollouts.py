"""Many candidates' evaluations on one pool: every (program, example) job of a step at once.

The instruction optimizers score several candidate programs on (mini)batches per step.
Instead of one :class:`Evaluate` per candidate, one after another, a step hands all its
jobs to one :class:`ParallelExecutor` run, so ``num_threads`` calls are in flight across
candidates (as tasks on an event loop when every program is natively async, like
:class:`Evaluate`). Each job runs its program with ``record_trace()`` and scores the prediction;
results come back in job order whatever the thread count, so a seeded optimizer takes
the same decisions with 1 thread or 16.
"""

from __future__ import annotations

import asyncio
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from dspex_actors._errors import EvaluationAborted, OptimizerError
from dspex_actors.evaluate import AsyncExecutor, Outcome, ParallelExecutor
from dspex_actors.predict import record_trace
from dspex_actors.primitives import Example, Module, Prediction

__all__ = ["Job", "Rollout", "check_score", "mean_score", "run_jobs"]

Scorer = Callable[[Example, Any, list[Any]], Any]
"""``scorer(example, prediction, trace)`` → the metric's value (number or Prediction)."""


@dataclass(frozen=True)
class Job:
    """Run ``program`` on ``example``; ``tag`` says which candidate it belongs to."""

    program: Module
    example: Example
    tag: Any = None


@dataclass(frozen=True)
class Rollout:
    """One job's result: prediction, trace, score (``failure_score`` when it failed)."""

    job: Job
    prediction: Any
    score: float
    trace: list[Any] = field(default_factory=list)
    feedback: str | None = None
    error: str | None = None

    @property
    def failed(self) -> bool:
        """True when the program or the metric raised."""
        return self.error is not None


def check_score(value: Any, where: str) -> tuple[float, str | None]:
    """A metric value as ``(score, feedback)``: a number, a bool or ``Prediction(score=...)``."""
    feedback = None
    if isinstance(value, Prediction | Example) or (
        hasattr(value, "score") and not isinstance(value, numbers.Real)
    ):
        feedback_value = getattr(value, "feedback", None)
        feedback = None if feedback_value is None else str(feedback_value)
        value = getattr(value, "score", None)
    if isinstance(value, numbers.Real):
        return float(value), feedback
    raise TypeError(
        f"{where}: the metric returned {type(value).__name__} {value!r}; expected a number, a "
        "bool or dx.Prediction(score=..., feedback=...)"
    )


def run_jobs(
    jobs: Sequence[Job],
    scorer: Scorer,
    *,
    num_threads: int,
    max_errors: int,
    optimizer: str,
    failure_score: float = 0.0,
    partial: Any = None,
) -> list[Rollout]:
    """Run every job on one pool; one :class:`Rollout` per job, in job order.

    A job whose program or metric raises scores ``failure_score``. ``max_errors`` counts
    per candidate (jobs with one ``tag``), as one :class:`Evaluate` per candidate would:
    a candidate with more failed jobs, or Ctrl-C, raises :class:`OptimizerError` with
    ``partial``. The pool itself stops early once the failures could not fit in every
    candidate's allowance (an LM outage does not run every job to its failure).
    """

    def run(job: Job) -> Rollout:
        with record_trace() as trace:
            prediction = job.program(**job.example.inputs())
        score, feedback = check_score(scorer(job.example, prediction, list(trace)), optimizer)
        return Rollout(job, prediction, score, list(trace), feedback)

    async def arun(job: Job) -> Rollout:
        with record_trace() as trace:
            prediction = await job.program.acall(**job.example.inputs())
        score, feedback = check_score(scorer(job.example, prediction, list(trace)), optimizer)
        return Rollout(job, prediction, score, list(trace), feedback)

    if not jobs:
        return []
    threads = min(num_threads, len(jobs))
    tags = len({job.tag for job in jobs})
    allowance = max_errors * tags
    outcomes: list[Outcome[Job, Rollout]]
    try:
        if _natively_async(jobs):
            executor = AsyncExecutor(threads, max_errors=allowance)
            outcomes = asyncio.run(executor.run(arun, list(jobs)))
        else:
            outcomes = ParallelExecutor(threads, max_errors=allowance).run(run, list(jobs))
    except EvaluationAborted as exc:
        raise OptimizerError(
            f"{optimizer}: evaluation stopped early ({exc}); finished steps are kept",
            partial=partial,
        ) from exc
    rollouts: list[Rollout] = []
    for outcome in outcomes:
        if outcome.failure is None and outcome.value is not None:
            rollouts.append(outcome.value)
        else:
            failure = outcome.failure
            message = "no result" if failure is None else f"{failure.error_type}: {failure.message}"
            rollouts.append(Rollout(outcome.item, None, failure_score, error=message))
    failed: dict[Any, list[Rollout]] = {}
    for rollout in rollouts:
        if rollout.failed:
            failed.setdefault(rollout.job.tag, []).append(rollout)
    for rows in failed.values():
        if len(rows) > max_errors:
            raise OptimizerError(
                f"{optimizer}: {len(rows)} runs of one candidate failed, more than "
                f"max_errors={max_errors}; the first: {rows[0].error}",
                partial=partial,
            )
    return rollouts


def _natively_async(jobs: Sequence[Job]) -> bool:
    """Every program has its own ``aforward`` and no event loop runs in this thread: then
    the jobs run as tasks on a loop here (no worker thread per job, no pool to start)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return all(job.program.has_native_aforward for job in jobs)
    return False


def mean_score(rollouts: Sequence[Rollout]) -> float:
    """:class:`Evaluate`'s score: 100 x the mean, two decimals (0.0 for no rollouts)."""
    if not rollouts:
        return 0.0
    return round(100 * sum(r.score for r in rollouts) / len(rollouts), 2)
