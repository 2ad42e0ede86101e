"""BootstrapFewShotWithRandomSearch: bootstrap several candidate programs, keep the best.

Candidates follow DSPy's seeds: -3 zero-shot, -2 labeled demos only, -1 an unshuffled
bootstrap, then seeds 0.. each bootstrapping from a ``random.Random(seed)``-shuffled
trainset with ``random.Random(seed).randint(1, max_bootstrapped_demos)`` demos. Each is
scored on the valset like :class:`Evaluate` does (mean metric x 100, two decimals,
failures score 0). Unlike DSPy, every candidate's validation examples run on one
shared pool of ``num_threads`` workers, so candidates are scored concurrently (the LM's
Client actor still enforces its own concurrency cap and rate limit).
"""

from __future__ import annotations

import logging
import numbers
import random
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dspex_actors._errors import (
    CompileInterrupted,
    EvaluationAborted,
    EvaluationInterrupted,
    OptimizerError,
)
from dspex_actors.evaluate import (
    EvaluationResult,
    ExampleFailure,
    ParallelExecutor,
    TqdmProgress,
)
from dspex_actors.evaluate._backend import Backend, check_backend, run_batch
from dspex_actors.primitives import Example, Module
from dspex_actors.teleprompt._bootstrap import (
    DEFAULT_MAX_ERRORS,
    DEFAULT_NUM_THREADS,
    BootstrapFewShot,
    Metric,
)
from dspex_actors.teleprompt._teleprompter import Teleprompter, check_program, check_trainset
from dspex_actors.teleprompt._vanilla import LabeledFewShot

__all__ = ["BootstrapFewShotWithRandomSearch"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Score:
    """One validation example of one candidate, scored (or failed)."""

    prediction: Any
    score: Any


class BootstrapFewShotWithRandomSearch(Teleprompter):
    """Try zero-shot, labeled-only and ``num_candidate_programs`` bootstrapped programs.

    ``compile(student, teacher=None, trainset=..., valset=None, restrict=None,
    labeled_sample=True)`` returns the candidate with the highest valset score (the
    earliest seed wins a tie) with ``.candidate_programs`` attached: dicts with
    ``score``, ``subscores``, ``seed``, ``program`` (and ``result``, the
    :class:`EvaluationResult`), best first. ``stop_at_score`` stops at the first
    candidate (in seed order) reaching it. ``max_errors`` (None: 10, DSPy's default)
    applies to each bootstrap and to each candidate's evaluation; exceeding it raises
    :class:`OptimizerError` whose ``partial`` is the list of candidates scored so far.
    ``backend="ray"`` bootstraps and scores on Ray worker processes (as ``Evaluate``).
    """

    def __init__(
        self,
        metric: Metric,
        *,
        teacher_settings: Mapping[str, Any] | None = None,
        max_bootstrapped_demos: int = 4,
        max_labeled_demos: int = 16,
        max_rounds: int = 1,
        num_candidate_programs: int = 16,
        num_threads: int | None = None,
        max_errors: int | None = None,
        stop_at_score: float | None = None,
        metric_threshold: float | None = None,
        display_progress: bool = False,
        backend: Backend = "local",
    ) -> None:
        if not callable(metric):
            raise OptimizerError(
                "BootstrapFewShotWithRandomSearch: metric must be callable, "
                f"got {type(metric).__name__}"
            )
        if (
            isinstance(num_candidate_programs, bool)
            or not isinstance(num_candidate_programs, int)
            or num_candidate_programs < 0
        ):
            raise OptimizerError(
                "BootstrapFewShotWithRandomSearch: num_candidate_programs must be an int >= 0, "
                f"got {num_candidate_programs!r}"
            )
        if isinstance(max_bootstrapped_demos, bool) or not isinstance(max_bootstrapped_demos, int):
            raise OptimizerError(
                "BootstrapFewShotWithRandomSearch: max_bootstrapped_demos must be an int, "
                f"got {max_bootstrapped_demos!r}"
            )
        if num_candidate_programs > 0 and max_bootstrapped_demos < 1:
            raise OptimizerError(
                "BootstrapFewShotWithRandomSearch: max_bootstrapped_demos must be >= 1 when "
                f"shuffled candidates are asked for, got {max_bootstrapped_demos!r}"
            )
        self.metric = metric
        self.teacher_settings: dict[str, Any] = dict(teacher_settings or {})
        self.max_rounds = max_rounds
        self.num_threads = num_threads
        self.stop_at_score = stop_at_score
        self.metric_threshold = metric_threshold
        self.min_num_samples = 1
        self.max_num_samples = max_bootstrapped_demos
        self.max_errors = max_errors
        self.num_candidate_sets = num_candidate_programs
        self.max_labeled_demos = max_labeled_demos
        self.display_progress = display_progress
        self.backend = backend
        self._where = check_backend(backend, "BootstrapFewShotWithRandomSearch")
        # Built once so bad settings fail here, not after the first candidates ran.
        self._bootstrapper(max_bootstrapped_demos)
        logger.info(
            "Going to sample between %d and %d traces per predictor; "
            "will attempt to bootstrap %d candidate sets.",
            self.min_num_samples,
            self.max_num_samples,
            self.num_candidate_sets,
        )

    def _effective_max_errors(self) -> int:
        return self.max_errors if self.max_errors is not None else DEFAULT_MAX_ERRORS

    def _bootstrapper(self, max_bootstrapped_demos: int) -> BootstrapFewShot:
        return BootstrapFewShot(
            metric=self.metric,
            metric_threshold=self.metric_threshold,
            teacher_settings=self.teacher_settings,
            max_bootstrapped_demos=max_bootstrapped_demos,
            max_labeled_demos=self.max_labeled_demos,
            max_rounds=self.max_rounds,
            max_errors=self._effective_max_errors(),
            num_threads=self.num_threads,
            display_progress=self.display_progress,
            backend=self.backend,
        )

    # -- compile -----------------------------------------------------------------------

    def compile(
        self,
        student: Module,
        *,
        teacher: Module | None = None,
        trainset: Sequence[Example],
        valset: Sequence[Example] | None = None,
        restrict: Collection[int] | None = None,
        labeled_sample: bool = True,
        **kwargs: Any,
    ) -> Module:
        """Build the candidates, score them on ``valset`` (default: the trainset), keep the best."""
        name = "BootstrapFewShotWithRandomSearch"
        if kwargs:
            raise TypeError(f"{name}.compile got unexpected arguments: {sorted(kwargs)}")
        check_program(student, "student", name)
        train = check_trainset(trainset, name)
        val = check_trainset(valset, name, name="valset") if valset else train
        seeds = [s for s in range(-3, self.num_candidate_sets) if restrict is None or s in restrict]
        if not seeds:
            raise OptimizerError(f"{name}: restrict={restrict!r} leaves no candidate seed to try")

        scored: list[dict[str, Any]] = []
        pending: list[tuple[int, Module]] = []
        for seed in seeds:
            try:
                program = self._candidate(seed, student, teacher, train, labeled_sample)
            except OptimizerError as exc:
                raise OptimizerError(
                    f"{name}: building the candidate for seed {seed} failed: {exc}",
                    partial=list(scored),
                ) from exc
            pending.append((seed, program))
            if self.stop_at_score is not None:
                # Score as we go, so no candidate is built past the one that is good enough.
                scored.extend(self._score(pending, val, scored))
                pending.clear()
                last = scored[-1]["score"]
                if last >= self.stop_at_score:
                    logger.info("Stopping early: score %s >= %s", last, self.stop_at_score)
                    break
        if pending:
            scored.extend(self._score(pending, val, scored))

        best: dict[str, Any] | None = None
        for entry in scored:
            if best is None or entry["score"] > best["score"]:
                best = entry
            logger.info("candidate seed %d scored %s", entry["seed"], entry["score"])
        assert best is not None
        best_program: Module = best["program"]
        best_program.candidate_programs = sorted(  # type: ignore[attr-defined]
            scored, key=lambda entry: entry["score"], reverse=True
        )
        logger.info(
            "%d candidate programs found; best score %s (seed %d)",
            len(scored),
            best["score"],
            best["seed"],
        )
        return best_program

    def _candidate(
        self,
        seed: int,
        student: Module,
        teacher: Module | None,
        trainset: list[Example],
        labeled_sample: bool,
    ) -> Module:
        """The candidate program for ``seed``, exactly as DSPy builds it."""
        trainset_copy = list(trainset)
        if seed == -3:
            return student.reset_copy()
        if seed == -2:
            labeled = LabeledFewShot(k=self.max_labeled_demos)
            return labeled.compile(student, trainset=trainset_copy, sample=labeled_sample)
        if seed == -1:
            optimizer = self._bootstrapper(self.max_num_samples)
            return optimizer.compile(student, teacher=teacher, trainset=trainset_copy)
        random.Random(seed).shuffle(trainset_copy)
        size = random.Random(seed).randint(self.min_num_samples, self.max_num_samples)
        optimizer = self._bootstrapper(size)
        return optimizer.compile(student, teacher=teacher, trainset=trainset_copy)

    # -- scoring -----------------------------------------------------------------------

    def _score(
        self,
        candidates: list[tuple[int, Module]],
        valset: list[Example],
        scored_before: list[dict[str, Any]],
    ) -> list[dict[str, Any]]:
        """Score every candidate on ``valset`` on one shared pool; in candidate order."""
        metric = self.metric
        programs = [program for _, program in candidates]

        def run(item: tuple[int, Example]) -> _Score:
            candidate, example = item
            prediction = programs[candidate](**example.inputs())
            value = metric(example, prediction)
            if not isinstance(value, numbers.Real):
                raise TypeError(
                    f"metric returned {type(value).__name__} {value!r}; "
                    "expected a bool, int or float"
                )
            return _Score(prediction, value)

        def items() -> Iterator[tuple[int, Example]]:
            for candidate in range(len(candidates)):
                for example in valset:
                    yield candidate, example

        num_threads = self.num_threads if self.num_threads is not None else DEFAULT_NUM_THREADS
        show = self.display_progress
        total = len(candidates) * len(valset)
        with TqdmProgress(total=total, desc="Scoring candidates", disable=not show) as bar:
            executor = ParallelExecutor(num_threads, progress=bar if show else None)
            try:
                parts = {"candidate programs": programs, "metric": metric}
                outcomes = run_batch(self._where, executor, run, items(), parts=parts)
            except EvaluationAborted as exc:
                raise OptimizerError(
                    f"BootstrapFewShotWithRandomSearch: scoring candidates stopped early ({exc})",
                    partial=list(scored_before),
                ) from exc
            except EvaluationInterrupted as exc:
                raise CompileInterrupted(
                    "BootstrapFewShotWithRandomSearch interrupted while scoring candidates "
                    "(the ones scored before are in .result)",
                    result=list(scored_before),
                ) from exc

        entries: list[dict[str, Any]] = []
        size = len(valset)
        max_errors = self._effective_max_errors()
        for position, (seed, program) in enumerate(candidates):
            rows = outcomes[position * size : (position + 1) * size]
            result = _result(rows, valset, getattr(metric, "__name__", "score"))
            if len(result.failures) > max_errors:
                first = result.failures[0]
                raise OptimizerError(
                    f"BootstrapFewShotWithRandomSearch: {len(result.failures)} of {size} valset "
                    f"examples failed for the candidate of seed {seed}, more than "
                    f"max_errors={max_errors}; the first, valset[{first.index}]: "
                    f"{first.error_type}: {first.message}",
                    partial=[*scored_before, *entries],
                ) from first.exception
            entries.append(
                {
                    "score": result.score,
                    "subscores": result.scores,
                    "seed": seed,
                    "program": program,
                    "result": result,
                }
            )
        return entries


def _result(rows: list[Any], valset: list[Example], metric_name: str) -> EvaluationResult:
    """An EvaluationResult for one candidate's rows, scored as :class:`Evaluate` scores."""
    results: list[tuple[Any, Any, Any]] = []
    failures: list[ExampleFailure] = []
    for position, outcome in enumerate(rows):
        if outcome.failure is None:
            results.append((outcome.item[1], outcome.value.prediction, outcome.value.score))
        else:
            failures.append(outcome.failure._replace(index=position))
            results.append((outcome.item[1], None, 0.0))
    count = len(results)
    score = round(100 * sum(float(s) for _, _, s in results) / count, 2) if count else 0.0
    return EvaluationResult(
        score, results, failures=failures, total=len(valset), metric_name=metric_name
    )
