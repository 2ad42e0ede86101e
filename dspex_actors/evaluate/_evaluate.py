"""Evaluate: score a program on a dev set, on a bounded pool of worker actors or, for a
natively async program, as a bounded number of tasks on an event loop."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import numbers
import os
import sys
import types
from collections.abc import Callable, Iterable, Sized
from typing import Any, Final, Literal

from dspex_actors._errors import (
    ConfigurationError,
    EvaluationAborted,
    EvaluationCancelled,
    EvaluationInterrupted,
    MetricError,
)
from dspex_actors.evaluate._async_executor import AsyncExecutor
from dspex_actors.evaluate._backend import Backend, RayBackend, check_backend, run_batch
from dspex_actors.evaluate._executor import Outcome, ParallelExecutor, Progress, StopCheck
from dspex_actors.evaluate._failures import FailureWatch
from dspex_actors.evaluate._progress import TqdmProgress
from dspex_actors.evaluate._result import EvaluationResult
from dspex_actors.evaluate._worker import ExampleFailure
from dspex_actors.primitives import Module
from dspex_actors.telemetry._spans import ObservedRun, observed_run

__all__ = ["Evaluate"]

logger = logging.getLogger(__name__)

DEFAULT_NUM_THREADS: Final = 8


class _Unset:
    def __repr__(self) -> str:
        return "<unset>"


_UNSET: Final = _Unset()

Metric = Callable[..., Any]


def _metric_name(metric: Metric) -> str:
    if isinstance(metric, types.FunctionType):
        return metric.__name__
    return getattr(metric, "__name__", type(metric).__name__)


_EXACT_FLOAT_INT: Final = 2**53
"""The largest integer a float holds exactly: a bigger score is a metric's bug."""


def _score(metric: Metric, example: Any, prediction: Any) -> Any:
    """``metric(example, prediction)``, or MetricError naming the metric when it raises or
    returns anything but a finite number (NaN, inf, None, a huge int would poison the sum)."""
    try:
        score = metric(example, prediction)
    except Exception as exc:
        name = _metric_name(metric)
        raise MetricError(f"metric {name} raised {type(exc).__name__}: {exc}") from exc
    kind = type(score)
    if kind is bool or (kind is float and math.isfinite(score)):  # the usual scores
        return score
    if isinstance(score, numbers.Real):
        if isinstance(score, numbers.Integral) and abs(int(score)) > _EXACT_FLOAT_INT:
            bits = int(score).bit_length()
            raise MetricError(
                f"metric {_metric_name(metric)} returned a huge int ({bits} bits); "
                "expected a score"
            )
        if math.isfinite(float(score)):
            return score
    msg = (
        f"metric {_metric_name(metric)} returned {type(score).__name__} {score!r:.80}; "
        "expected a finite bool, int or float"
    )
    raise MetricError(msg)


class Evaluate:
    """Evaluate a program on a dev set: ``Evaluate(devset=..., metric=...)(program)``.

    Each example runs ``program(**example.inputs())`` then ``metric(example, prediction)``
    on a worker actor; the workers share the caller's ActorSystem (context copied). A
    failure of either -- program, metric, or the per-example ``timeout`` -- is that
    example's failure: it scores ``failure_score`` with prediction ``None`` and is listed
    in ``result.failures``; a metric that raises or returns no finite number is a
    :class:`MetricError` naming it. Failures are logged as they happen (a WARNING per
    kind, rate-limited) and counted on the progress bar. ``max_errors`` (``None``: no
    limit; DSPy's default is 10): once more examples than that failed, the run stops and
    :class:`EvaluationAborted` carries the partial :class:`EvaluationResult`; so it does
    when the first 20 examples all failed with the same LM error (a dead endpoint, a bad
    key). Ctrl-C raises :class:`EvaluationInterrupted` (a ``KeyboardInterrupt``) with the
    partial result; cancelling ``await evaluate.acall(...)`` raises
    :class:`EvaluationCancelled` (an ``asyncio.CancelledError``) with it. The devset can
    be any iterable, consumed lazily. ``backend="ray"`` (or a :class:`RayBackend`) runs
    the examples in Ray worker processes, each making its own LM calls, with the same
    results, failures and partial results. ``display_table`` (True, or a number of rows) prints
    the results as a plain-text table at the end. Every argument except ``devset``
    placement can be overridden per call.
    """

    def __init__(
        self,
        *,
        devset: Iterable[Any] | None = None,
        metric: Metric | None = None,
        num_threads: int | None = None,
        display_progress: bool = False,
        display_table: bool | int = False,
        max_errors: int | None = None,
        failure_score: float = 0.0,
        timeout: float | None = None,
        provide_traceback: bool = False,
        save_as_csv: str | os.PathLike[str] | None = None,
        save_as_json: str | os.PathLike[str] | None = None,
        backend: Backend = "local",
    ) -> None:
        self.devset = devset
        self.metric = metric
        self.num_threads = num_threads
        self.display_progress = display_progress
        self.display_table = _checked_table(display_table)
        self.max_errors = max_errors
        self.failure_score = failure_score
        self.timeout = timeout
        self.provide_traceback = provide_traceback
        self.save_as_csv = save_as_csv
        self.save_as_json = save_as_json
        self.backend = backend
        check_backend(backend, "Evaluate")
        metric_value: object = metric
        if metric_value is not None and not callable(metric_value):
            msg = f"metric must be callable, got {metric!r}"
            raise TypeError(msg)
        self._executor(num_threads, max_errors, timeout, provide_traceback)

    def __repr__(self) -> str:
        size = len(self.devset) if isinstance(self.devset, Sized) else "?"
        return (
            f"Evaluate(devset=<{size} examples>, metric={self.metric!r}, "
            f"num_threads={self.num_threads})"
        )

    @staticmethod
    def _executor(
        num_threads: int | None,
        max_errors: int | None,
        timeout: float | None,
        provide_traceback: bool,
        *,
        progress: Callable[[Progress], None] | None = None,
        stop_when: StopCheck | None = None,
    ) -> ParallelExecutor:
        return ParallelExecutor(
            DEFAULT_NUM_THREADS if num_threads is None else num_threads,
            timeout=timeout,
            max_errors=max_errors,
            progress=progress,
            provide_traceback=provide_traceback,
            stop_when=stop_when,
        )

    def __call__(
        self,
        program: Callable[..., Any],
        metric: Metric | None = None,
        devset: Iterable[Any] | None = None,
        num_threads: int | None = None,
        display_progress: bool | None = None,
        *,
        display_table: bool | int | None = None,
        max_errors: int | _Unset | None = _UNSET,
        failure_score: float | None = None,
        timeout: float | _Unset | None = _UNSET,
        provide_traceback: bool | None = None,
        save_as_csv: str | os.PathLike[str] | None = None,
        save_as_json: str | os.PathLike[str] | None = None,
        backend: Backend | None = None,
    ) -> EvaluationResult:
        """Run ``program`` over the dev set; see the class docstring for the semantics.

        A natively async program (Predict, ChainOfThought, a Module with ``aforward``)
        runs as tasks on an event loop in this thread, called from synchronous code: no
        thread per example. Anything else runs on the pool of worker actors.
        """
        plan = self._plan(
            program,
            metric=metric,
            devset=devset,
            num_threads=num_threads,
            display_progress=display_progress,
            display_table=display_table,
            max_errors=max_errors,
            failure_score=failure_score,
            timeout=timeout,
            provide_traceback=provide_traceback,
            save_as_csv=save_as_csv,
            save_as_json=save_as_json,
            backend=backend,
        )
        with self._observed(plan, program) as run:
            if plan.backend == "local" and _natively_async(program) and not _loop_running():
                cancelled: list[EvaluationCancelled] = []
                try:
                    return run.returns(asyncio.run(self._run_tasks(plan, cancelled)))
                except KeyboardInterrupt as exc:  # asyncio.run's Ctrl-C cancelled the run
                    if not cancelled or isinstance(exc, EvaluationInterrupted):
                        raise
                    message, result = str(cancelled[0]), cancelled[0].result
                    raise EvaluationInterrupted(message, result=result) from exc
            return run.returns(self._run_workers(plan))

    async def acall(
        self,
        program: Callable[..., Any],
        metric: Metric | None = None,
        devset: Iterable[Any] | None = None,
        num_threads: int | None = None,
        display_progress: bool | None = None,
        *,
        display_table: bool | int | None = None,
        max_errors: int | _Unset | None = _UNSET,
        failure_score: float | None = None,
        timeout: float | _Unset | None = _UNSET,
        provide_traceback: bool | None = None,
        save_as_csv: str | os.PathLike[str] | None = None,
        save_as_json: str | os.PathLike[str] | None = None,
        backend: Backend | None = None,
    ) -> EvaluationResult:
        """``await evaluate.acall(program)``: up to ``num_threads`` programs at once as tasks
        on the caller's loop (a program that is not natively async runs on the pool of
        worker actors, waited for off the loop). Same results and errors as a call."""
        plan = self._plan(
            program,
            metric=metric,
            devset=devset,
            num_threads=num_threads,
            display_progress=display_progress,
            display_table=display_table,
            max_errors=max_errors,
            failure_score=failure_score,
            timeout=timeout,
            provide_traceback=provide_traceback,
            save_as_csv=save_as_csv,
            save_as_json=save_as_json,
            backend=backend,
        )
        with self._observed(plan, program) as run:
            if plan.backend == "local" and _natively_async(program):
                return run.returns(await self._run_tasks(plan))
            return run.returns(await asyncio.to_thread(self._run_workers, plan))

    def _observed(self, plan: _Plan, program: Callable[..., Any]) -> ObservedRun:
        """The run between the callbacks' ``on_evaluate_*`` hooks, in a ``dspex.evaluate`` span."""
        inputs = {"program": program, "metric": plan.metric, "devset": plan.devset}
        attributes: dict[str, Any] = {"dspex.evaluate.metric": plan.metric_name}
        if plan.total is not None:
            attributes["dspex.evaluate.examples"] = plan.total
        return observed_run("evaluate", self, inputs, "dspex.evaluate", attributes)

    def _plan(
        self,
        program: Callable[..., Any],
        *,
        metric: Metric | None,
        devset: Iterable[Any] | None,
        num_threads: int | None,
        display_progress: bool | None,
        display_table: bool | int | None,
        max_errors: int | _Unset | None,
        failure_score: float | None,
        timeout: float | _Unset | None,
        provide_traceback: bool | None,
        save_as_csv: str | os.PathLike[str] | None,
        save_as_json: str | os.PathLike[str] | None,
        backend: Backend | None,
    ) -> _Plan:
        """Check one call's arguments against the defaults given to the constructor."""
        metric = self.metric if metric is None else metric
        devset = self.devset if devset is None else devset
        if metric is None:
            msg = "Evaluate needs a metric: pass metric= to Evaluate(...) or to the call"
            raise ConfigurationError(msg)
        metric_value: object = metric
        if not callable(metric_value):
            msg = f"metric must be callable, got {metric!r}"
            raise TypeError(msg)
        if devset is None:
            msg = "Evaluate needs a devset: pass devset= to Evaluate(...) or to the call"
            raise ConfigurationError(msg)
        program_value: object = program
        if not callable(program_value):
            msg = f"program must be callable (a Module or Predict), got {program!r}"
            raise TypeError(msg)
        executor_args = (
            self.num_threads if num_threads is None else num_threads,
            self.max_errors if isinstance(max_errors, _Unset) else max_errors,
            self.timeout if isinstance(timeout, _Unset) else timeout,
            self.provide_traceback if provide_traceback is None else provide_traceback,
        )
        self._executor(*executor_args)  # checks them
        return _Plan(
            program=program,
            metric=metric,
            devset=devset,
            executor_args=executor_args,
            failure_score=self.failure_score if failure_score is None else failure_score,
            show=self.display_progress if display_progress is None else display_progress,
            table=self.display_table if display_table is None else _checked_table(display_table),
            total=len(devset) if isinstance(devset, Sized) else None,
            csv_path=self.save_as_csv if save_as_csv is None else save_as_csv,
            json_path=self.save_as_json if save_as_json is None else save_as_json,
            backend=check_backend(self.backend if backend is None else backend, "Evaluate"),
        )

    def _run_workers(self, plan: _Plan) -> EvaluationResult:
        program, metric = plan.program, plan.metric

        def process(example: Any) -> tuple[Any, Any]:
            prediction = program(**_inputs_of(example))
            return prediction, _score(metric, example, prediction)

        bar = plan.progress_bar()
        watch = FailureWatch()
        executor = self._executor(*plan.executor_args, progress=bar, stop_when=watch)
        try:
            parts = {"program": program, "metric": metric}
            outcomes = run_batch(plan.backend, executor, process, plan.devset, parts=parts)
        except EvaluationAborted as exc:
            raise plan.aborted(exc) from exc.__cause__
        except EvaluationInterrupted as exc:
            raise plan.interrupted(exc) from exc.__cause__
        finally:
            if bar is not None:
                bar.close()
            watch.log_totals()
        return plan.finish(outcomes)

    async def _run_tasks(
        self, plan: _Plan, cancelled: list[EvaluationCancelled] | None = None
    ) -> EvaluationResult:
        """Run on the caller's loop; a cancelled run raises EvaluationCancelled with the
        partial result (also put in ``cancelled``, for the Ctrl-C of a sync call)."""
        program, metric = plan.program, plan.metric

        async def process(example: Any) -> tuple[Any, Any]:
            prediction = await program.acall(**_inputs_of(example))
            return prediction, _score(metric, example, prediction)

        bar = plan.progress_bar()
        watch = FailureWatch()
        num_threads, max_errors, timeout, provide_traceback = plan.executor_args
        executor = AsyncExecutor(
            DEFAULT_NUM_THREADS if num_threads is None else num_threads,
            timeout=timeout,
            max_errors=max_errors,
            progress=bar,
            provide_traceback=provide_traceback,
            stop_when=watch,
        )
        try:
            outcomes = await executor.run(process, plan.devset)
        except EvaluationAborted as exc:
            raise plan.aborted(exc) from exc.__cause__
        except EvaluationCancelled as exc:
            error = EvaluationCancelled(str(exc), result=plan.partial(exc.result))
            if cancelled is not None:
                cancelled.append(error)
            raise error from exc.__cause__
        finally:
            if bar is not None:
                bar.close()
            watch.log_totals()
        return plan.finish(outcomes)


@dataclasses.dataclass(frozen=True)
class _Plan:
    """One Evaluate call's settled arguments, and how its outcomes become a result."""

    program: Any
    metric: Metric
    devset: Iterable[Any]
    executor_args: tuple[int | None, int | None, float | None, bool]
    failure_score: float
    show: bool
    table: bool | int
    total: int | None
    csv_path: str | os.PathLike[str] | None
    json_path: str | os.PathLike[str] | None
    backend: Literal["local"] | RayBackend = "local"

    @property
    def metric_name(self) -> str:
        return _metric_name(self.metric)

    def progress_bar(self) -> TqdmProgress | None:
        """A tqdm bar showing the running average, when asked for."""
        if not self.show:
            return None
        running = [0.0]
        fail_score = self.failure_score

        def describe(progress: Progress) -> str:
            outcome = progress.outcome
            running[0] += float(outcome.value[1]) if outcome.value is not None else fail_score
            done = progress.done
            return (
                f"Average Metric: {running[0]:.2f} / {done} ({round(100 * running[0] / done, 1)}%)"
            )

        return TqdmProgress(total=self.total, describe=describe)

    def partial(self, outcomes: list[Outcome[Any, Any]] | None) -> EvaluationResult:
        """The partial result of a run that stopped early."""
        return _build_result(
            outcomes or [], self.failure_score, self.total, self.metric_name, complete=False
        )

    def aborted(self, exc: EvaluationAborted) -> EvaluationAborted:
        """The error to raise for an aborted run, carrying the partial result."""
        logger.warning("evaluation aborted: %s", exc)
        return EvaluationAborted(str(exc), result=self.partial(exc.result))

    def interrupted(self, exc: EvaluationInterrupted) -> EvaluationInterrupted:
        """The interrupt to raise for a run stopped by Ctrl-C, carrying the partial result."""
        partial = self.partial(exc.result)
        logger.warning(
            "evaluation interrupted: %d of %s examples finished", len(partial), self.total or "?"
        )
        return EvaluationInterrupted(str(exc), result=partial)

    def finish(self, outcomes: list[Outcome[Any, Any]]) -> EvaluationResult:
        """The result of a completed run, logged and saved where asked."""
        result = _build_result(
            outcomes, self.failure_score, self.total, self.metric_name, complete=True
        )
        logger.info(
            "Average Metric: %s / %d (%s%%), %d failed",
            round(sum(float(s) for s in result.scores), 2),
            len(result.results),
            result.score,
            len(result.failures),
        )
        if self.table is not False and self.table != 0:
            limit = None if self.table is True else int(self.table)
            sys.stdout.write(result.table(limit) + "\n")
        if self.csv_path is not None:
            result.save_as_csv(self.csv_path)
        if self.json_path is not None:
            result.save_as_json(self.json_path)
        return result


def _checked_table(value: Any) -> bool | int:
    """``display_table``: True (every row), False, or a row count."""
    if isinstance(value, bool) or (isinstance(value, int) and value >= 0):
        return value
    msg = f"display_table takes True, False or a number of rows >= 0, got {value!r}"
    raise ConfigurationError(msg)


def _inputs_of(example: Any) -> dict[str, Any]:
    inputs = getattr(example, "inputs", None)
    if not callable(inputs):
        msg = (
            f"devset items must be dx.Example objects (with .with_inputs(...)), "
            f"got {type(example).__name__}"
        )
        raise TypeError(msg)
    return dict(inputs())


def _natively_async(program: object) -> bool:
    """Whether ``program`` is a Module whose class defines its own ``aforward``."""
    return isinstance(program, Module) and program.has_native_aforward


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _build_result(
    outcomes: list[Outcome[Any, Any]],
    failure_score: float,
    total: int | None,
    metric_name: str,
    *,
    complete: bool,
) -> EvaluationResult:
    results: list[tuple[Any, Any, Any]] = []
    failures: list[ExampleFailure] = []
    for outcome in outcomes:
        if outcome.failure is None and outcome.value is not None:
            prediction, score = outcome.value
            results.append((outcome.item, prediction, score))
        else:
            if outcome.failure is not None:
                failures.append(outcome.failure)
            results.append((outcome.item, None, failure_score))
    count = len(results)
    score = round(100 * sum(float(s) for _, _, s in results) / count, 2) if count else 0.0
    return EvaluationResult(
        score,
        results,
        failures=failures,
        indices=[o.index for o in outcomes],
        total=total if total is not None else (count if complete else None),
        complete=complete,
        metric_name=metric_name,
    )
