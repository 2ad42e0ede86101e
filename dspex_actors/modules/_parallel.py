"""``Parallel`` and ``Module.batch``: many (module, example) calls on the parallel executor.

DSPy 3.4.1's API on :class:`~dspex_actors.ParallelExecutor` (a bounded pool of worker
actors): at most ``num_threads`` calls run at once, results come back in input order with
``None`` for a failed call, ``return_failed_examples=True`` also returns the failed examples
and their exceptions. ``max_errors`` as in :class:`~dspex_actors.Evaluate`: ``None`` tolerates
every failure; more than ``max_errors`` failures stop the run with
:class:`~dspex_actors.EvaluationAborted` carrying the finished outcomes. ``timeout`` is a
per-call limit (a call past it fails with ``ExampleTimeoutError``); a call never runs twice,
so DSPy's straggler resubmission (``straggler_limit``) does not apply.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from dspex_actors._errors import PredictInputError
from dspex_actors.evaluate import Outcome, ParallelExecutor, TqdmProgress
from dspex_actors.primitives import Example, Module
from dspex_actors.primitives._module import install_batch

__all__ = ["Parallel", "run_batch"]

DEFAULT_NUM_THREADS = 8
"""DSPy's ``settings.num_threads``."""

Pair = tuple[Any, Any]


class Parallel:
    """``Parallel(num_threads=16)([(module, example), ...])`` -> the results, in order.

    An example is an :class:`Example` (called with its ``inputs()``, or whole when
    ``access_examples=False``), a dict (keyword arguments), a tuple (positional arguments) or,
    for a nested ``Parallel``, a list of pairs.
    """

    def __init__(
        self,
        num_threads: int | None = None,
        *,
        max_errors: int | None = None,
        access_examples: bool = True,
        return_failed_examples: bool = False,
        provide_traceback: bool | None = None,
        disable_progress_bar: bool = False,
        timeout: float | None = None,
        straggler_limit: int = 3,
    ) -> None:
        self.num_threads = num_threads or DEFAULT_NUM_THREADS
        self.max_errors = max_errors
        self.access_examples = access_examples
        self.return_failed_examples = return_failed_examples
        self.provide_traceback = bool(provide_traceback)
        self.disable_progress_bar = disable_progress_bar
        self.timeout = timeout
        self.straggler_limit = straggler_limit
        # Checks num_threads, max_errors and timeout at construction (a clear error early).
        self._executor(self.num_threads, None)

    def __repr__(self) -> str:
        return f"Parallel(num_threads={self.num_threads}, max_errors={self.max_errors})"

    def _executor(self, num_threads: int, progress: Any) -> ParallelExecutor:
        return ParallelExecutor(
            num_threads,
            timeout=self.timeout,
            max_errors=self.max_errors,
            progress=progress,
            provide_traceback=self.provide_traceback,
        )

    def forward(self, exec_pairs: Iterable[Pair], num_threads: int | None = None) -> Any:
        """Run every ``(module, example)`` pair; see the class docstring."""
        pairs = list(exec_pairs) if not isinstance(exec_pairs, Sequence) else exec_pairs
        for index, pair in enumerate(pairs):
            _check_pair(index, pair, self.access_examples)
        threads = num_threads if num_threads is not None else self.num_threads
        with TqdmProgress(total=len(pairs), disable=self.disable_progress_bar) as progress:
            outcomes = self._executor(threads, progress).run(self._process, pairs)
        return self._results(pairs, outcomes)

    def __call__(self, exec_pairs: Iterable[Pair], num_threads: int | None = None) -> Any:
        return self.forward(exec_pairs, num_threads=num_threads)

    def _process(self, pair: Pair) -> Any:
        module, example = pair
        if isinstance(example, Example):
            return module(**example.inputs()) if self.access_examples else module(example)
        if isinstance(example, Mapping):
            return module(**example)
        if isinstance(example, list):
            return module(example)
        return module(*example)

    def _results(self, pairs: Sequence[Pair], outcomes: list[Outcome[Pair, Any]]) -> Any:
        results = [outcome.value if outcome.ok else None for outcome in outcomes]
        if not self.return_failed_examples:
            return results
        failed = [pairs[o.index][1] for o in outcomes if o.failure is not None]
        exceptions = [o.failure.exception for o in outcomes if o.failure is not None]
        return results, failed, exceptions


def _check_pair(index: int, pair: Any, access_examples: bool) -> None:
    if not isinstance(pair, tuple) or len(pair) != 2:
        raise PredictInputError(
            f"Parallel: item {index} must be a (module, example) pair, got {type(pair).__name__}"
        )
    module, example = pair
    if not callable(module):
        raise PredictInputError(
            f"Parallel: item {index}: {type(module).__name__} is not a module or callable"
        )
    if isinstance(example, list) and not isinstance(module, Parallel):
        raise PredictInputError(
            f"Parallel: item {index}: a list example is only for a nested Parallel; "
            "use a dict of keyword arguments or an Example"
        )
    if not isinstance(example, (Example, Mapping, tuple, list)):
        raise PredictInputError(
            f"Parallel: item {index}: invalid example type {type(example).__name__}; "
            "only Example, dict, list and tuple are supported"
        )
    if isinstance(example, Example) and access_examples and example.input_keys is None:
        raise PredictInputError(
            f"Parallel: item {index}: the Example has no input fields; "
            "mark them with example.with_inputs(...)"
        )


def run_batch(module: Module, examples: Iterable[Any], **options: Any) -> Any:
    """``module.batch(examples, **options)``: each Example's inputs (or each dict) through
    ``module`` on a ``Parallel(**options)``."""
    pairs: list[Pair] = []
    for index, example in enumerate(examples):
        if isinstance(example, Example):
            if example.input_keys is None:
                raise PredictInputError(
                    f"batch: example {index} has no input fields; mark them with "
                    "example.with_inputs(...)"
                )
            pairs.append((module, example.inputs()))
        elif isinstance(example, Mapping):
            pairs.append((module, dict(example)))
        else:
            raise PredictInputError(
                f"batch: example {index} must be an Example or a dict, got {type(example).__name__}"
            )
    parallel = Parallel(**options)
    return parallel.forward(pairs)


install_batch(run_batch)
