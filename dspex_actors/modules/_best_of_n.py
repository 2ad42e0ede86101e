"""``BestOfN``: run a module up to N times (temperature 1.0, a rollout id each), keep the best."""

from __future__ import annotations

from dspex_actors.modules._attempts import RolloutModule

__all__ = ["BestOfN"]


class BestOfN(RolloutModule):
    """``BestOfN(module, N, reward_fn, threshold, fail_count=None)`` as in DSPy 3.4.1.

    Each attempt runs at ``temperature=1.0`` with its own ``rollout_id``; the first attempt
    whose ``reward_fn(inputs, prediction)`` reaches ``threshold`` is returned, else the best.
    """
