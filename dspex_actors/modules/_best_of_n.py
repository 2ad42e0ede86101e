"""``BestOfN``: run a module up to N times at rising diversity and keep the best attempt."""

from __future__ import annotations

import logging
from typing import Any

from dspex_actors.modules._attempts import AttemptRun, RolloutModule
from dspex_actors.predict import record_trace

__all__ = ["BestOfN"]

logger = logging.getLogger(__name__)


class BestOfN(RolloutModule):
    """``BestOfN(module, N, reward_fn, threshold, fail_count=None)`` as in DSPy 3.4.1.

    Each attempt runs at ``temperature=1.0`` with its own ``rollout_id``; the first attempt
    whose ``reward_fn(inputs, prediction)`` reaches ``threshold`` is returned, else the best.
    """

    def forward(self, **kwargs: Any) -> Any:
        """Up to N attempts; see the class docstring."""
        run = AttemptRun(self, kwargs)
        for idx, rollout_id in run.rollouts():
            mod = run.attempt_module(rollout_id)
            try:
                with record_trace() as trace:
                    outputs = mod(**kwargs)
                _, reward = run.score(outputs)
                if run.keep(outputs, trace, reward):
                    break
            except Exception as exc:
                run.failed(idx, rollout_id, exc)
        return run.finish()

    async def aforward(self, **kwargs: Any) -> Any:
        """:meth:`forward` for ``await best.acall(...)``."""
        run = AttemptRun(self, kwargs)
        for idx, rollout_id in run.rollouts():
            mod = run.attempt_module(rollout_id)
            try:
                with record_trace() as trace:
                    outputs = await mod.acall(**kwargs)
                _, reward = await run.ascore(outputs)
                if run.keep(outputs, trace, reward):
                    break
            except Exception as exc:
                run.failed(idx, rollout_id, exc)
        return run.finish()
