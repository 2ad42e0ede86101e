"""What ``BestOfN`` and ``Refine`` share: run a module up to N times, keep the best attempt.

Each attempt runs a deep copy of the module whose predictors call the LM at
``temperature=1.0`` (unless a predictor's own config sets one) with ``rollout_id`` = start +
attempt number, so the cache gives each attempt its own answer. The first attempt whose reward
reaches ``threshold`` wins at once; else the best reward wins (the earliest on a tie). An
attempt that raises -- the module, the reward function or Refine's feedback step -- is logged
and the next attempt runs; past ``fail_count`` failures (default N) the last error is raised,
and so it is when every attempt failed. The winning attempt's trace joins the caller's.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import numbers
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from dspex_actors._errors import ConfigurationError
from dspex_actors.predict import current_trace, record_trace
from dspex_actors.predict._trace import TraceEntry
from dspex_actors.primitives import Module

__all__ = ["AttemptRun", "RewardFn", "RolloutModule", "as_dict"]

logger = logging.getLogger(__name__)

RewardFn = Callable[[dict[str, Any], Any], Any]
"""``reward_fn(inputs, prediction) -> float``."""

ATTEMPT_TEMPERATURE = 1.0


class AttemptRun:
    """The state of one call: the best attempt so far and the failures (one caller only)."""

    def __init__(self, owner: RolloutModule, kwargs: dict[str, Any]) -> None:
        self.owner = owner
        self.kwargs = kwargs
        self.best: Any = None
        self.best_trace: list[TraceEntry] = []
        self.best_reward = -float("inf")
        self.succeeded = False
        self.failures = 0
        self.last_error: Exception | None = None
        self.advice: dict[str, Any] | None = None

    def rollouts(self) -> Iterator[tuple[int, int]]:
        """``(attempt index, rollout id)`` for every attempt."""
        start = _start_rollout(self.owner.module)
        for idx in range(self.owner.N):
            yield idx, start + idx

    def attempt_module(self, rollout_id: int) -> Module:
        """A deep copy of the module, its predictors set for this attempt."""
        mod = self.owner.module.deepcopy()
        for predictor in mod.predictors():
            predictor.config = {
                "temperature": ATTEMPT_TEMPERATURE,
                **predictor.config,
                "rollout_id": rollout_id,
            }
        return mod

    def score(self, outputs: Any) -> tuple[Any, float]:
        """The reward of an attempt (its LM calls kept out of every trace), raw and as float."""
        with record_trace():
            reward = self.owner.reward_fn(self.kwargs, outputs)
        return reward, _as_float(reward)

    async def ascore(self, outputs: Any) -> tuple[Any, float]:
        """:meth:`score` without blocking the loop: a plain reward runs on a worker thread."""
        with record_trace():
            if inspect.iscoroutinefunction(self.owner.reward_fn):
                reward = await self.owner.reward_fn(self.kwargs, outputs)
            else:
                reward = await asyncio.to_thread(self.owner.reward_fn, self.kwargs, outputs)
        return reward, _as_float(reward)

    def keep(self, outputs: Any, trace: list[TraceEntry], reward: float) -> bool:
        """Record an attempt; True when it meets the threshold (stop)."""
        if not self.succeeded or reward > self.best_reward:
            self.best, self.best_trace, self.best_reward = outputs, list(trace), reward
        self.succeeded = True
        threshold = self.owner.threshold
        return threshold is not None and reward >= threshold

    def failed(self, idx: int, rollout_id: int, error: Exception) -> None:
        """Record a failed attempt; raise ``error`` once more than ``fail_count`` failed."""
        self.failures += 1
        self.last_error = error
        logger.warning(
            "%s: attempt %d failed with rollout id %d: %s: %s",
            type(self.owner).__name__,
            idx + 1,
            rollout_id,
            type(error).__name__,
            error,
        )
        if self.failures > self.owner.fail_count:
            raise error

    def finish(self) -> Any:
        """The best attempt's outputs (its trace added to the caller's)."""
        if not self.succeeded:
            assert self.last_error is not None
            raise self.last_error
        trace = current_trace()
        if trace is not None:
            trace.extend(self.best_trace)
        return self.best


class RolloutModule(Module):
    """``BestOfN`` and ``Refine``: DSPy's arguments, their checks and the attempt loop.

    A subclass may change each attempt's module (:meth:`_attempt_module`) and act after an
    attempt below the threshold that is not the last one (:meth:`_advise`, :meth:`_aadvise`).
    """

    module: Module
    N: int
    threshold: Any
    fail_count: int

    def __init__(
        self,
        module: Module,
        N: int,
        reward_fn: RewardFn,
        threshold: Any,
        fail_count: int | None = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        if not isinstance(module, Module):
            raise ConfigurationError(
                f"{name}: module must be a dx.Module (Predict, ChainOfThought, ...), "
                f"got {type(module).__name__}"
            )
        if isinstance(N, bool) or not isinstance(N, int) or N < 1:
            raise ConfigurationError(f"{name}: N must be a positive int, got {N!r}")
        if not callable(reward_fn):
            raise ConfigurationError(
                f"{name}: reward_fn must be a function (inputs, prediction) -> float"
            )
        if threshold is not None and (
            isinstance(threshold, bool) or not isinstance(threshold, numbers.Real)
        ):
            raise ConfigurationError(f"{name}: threshold must be a number, got {threshold!r}")
        if fail_count is not None and (
            isinstance(fail_count, bool) or not isinstance(fail_count, int) or fail_count < 0
        ):
            raise ConfigurationError(
                f"{name}: fail_count must be an int >= 0 or None (N), got {fail_count!r}"
            )
        self.module = module
        self._reward = _Hidden(reward_fn)
        self.threshold = threshold
        self.N = N
        self.fail_count = N if fail_count is None else fail_count

    def forward(self, **kwargs: Any) -> Any:
        """Up to N attempts; see the module docstring."""
        run = AttemptRun(self, kwargs)
        for idx, rollout_id in run.rollouts():
            mod = self._attempt_module(run, rollout_id)
            try:
                with record_trace() as trace:
                    outputs = mod(**kwargs)
                raw, reward = run.score(outputs)
                if run.keep(outputs, trace, reward) or idx == self.N - 1:
                    break
                self._advise(run, mod, trace, outputs, raw)
            except Exception as exc:
                run.failed(idx, rollout_id, exc)
        return run.finish()

    async def aforward(self, **kwargs: Any) -> Any:
        """:meth:`forward` for ``await module.acall(...)``."""
        run = AttemptRun(self, kwargs)
        for idx, rollout_id in run.rollouts():
            mod = self._attempt_module(run, rollout_id)
            try:
                with record_trace() as trace:
                    outputs = await mod.acall(**kwargs)
                raw, reward = await run.ascore(outputs)
                if run.keep(outputs, trace, reward) or idx == self.N - 1:
                    break
                await self._aadvise(run, mod, trace, outputs, raw)
            except Exception as exc:
                run.failed(idx, rollout_id, exc)
        return run.finish()

    def _attempt_module(self, run: AttemptRun, rollout_id: int) -> Module:
        """The module an attempt runs."""
        return run.attempt_module(rollout_id)

    def _advise(
        self, run: AttemptRun, mod: Module, trace: list[TraceEntry], outputs: Any, reward: Any
    ) -> None:
        """After an attempt below the threshold (not the last): nothing here."""

    async def _aadvise(
        self, run: AttemptRun, mod: Module, trace: list[TraceEntry], outputs: Any, reward: Any
    ) -> None:
        """:meth:`_advise` for :meth:`aforward`."""

    @property
    def reward_fn(self) -> RewardFn:
        """The reward function (held where a program walk never finds its predictors)."""
        return self._reward.fn


class _Hidden:
    """Holds the reward function: a Module used as one is not a part of this program."""

    def __init__(self, fn: RewardFn) -> None:
        self.fn = fn


def _start_rollout(module: Module) -> int:
    """The first attempt's rollout id: a predictor's configured one, else 0 (DSPy's start)."""
    for predictor in module.predictors():
        rollout_id = predictor.config.get("rollout_id")
        if isinstance(rollout_id, int) and not isinstance(rollout_id, bool):
            return rollout_id
    return 0


def _as_float(reward: Any) -> float:
    try:
        return float(reward)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"reward_fn must return a number, got {reward!r}") from exc


def as_dict(value: Any) -> dict[str, Any]:
    """A prediction's fields as a plain dict (a non-mapping is kept under ``output``)."""
    if isinstance(value, Mapping):
        return dict(value)
    items = getattr(value, "items", None)
    if callable(items):
        return dict(items())
    return {"output": value}
