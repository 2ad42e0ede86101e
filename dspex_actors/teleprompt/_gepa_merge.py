"""GEPA's merge step: one candidate from two Pareto-front descendants of a common ancestor.

The rules are those of the ``gepa`` package DSPy 3.4.1 runs (``MergeProposer``). After a
reflective child joins the pool, a merge is due (while fewer than
``max_merge_invocations`` merges were accepted); the next iteration then tries one:

- two distinct non-dominated candidates, neither an ancestor of the other, with a
  common ancestor that scores no better than either and from which exactly one of them
  changed some predictor (ancestor drawn weighted by its valset average); a triplet
  tried before is skipped, as is a combination already built from the same pair;
- the merged candidate starts from the ancestor; per predictor it takes the parent that
  changed it, the better-scoring parent when both did (a coin on a tie), else either;
- it is scored on 5 valset instances (drawn from where the first parent wins, where the
  second wins, and where they tie) and joins the pool, after a full valset evaluation,
  only if its sum there is at least the better parent's.

A merge that finds no pair lets the same iteration go on with reflection; a merge that
was evaluated takes the whole iteration, accepted or not. Every draw comes from the
run's one RNG, in ``gepa``'s order, so a seed gives the same merges at any thread count.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["MergePlan", "MergeState", "Pool", "plan_merge"]

SUBSAMPLE_SIZE = 5
"""Valset instances a merged candidate is first scored on."""

OVERLAP_FLOOR = 5
"""Valset instances two parents must share (``gepa``'s ``val_overlap_floor``)."""

ATTEMPTS = 10
"""Pair draws per search, and searches per merge (``gepa``'s ``max_attempts``)."""


@dataclass
class MergeState:
    """What the merge schedule carries between iterations (checkpointed with the run)."""

    due: int = 0
    accepted: int = 0
    last_found_new: bool = False
    tried: list[tuple[int, int, int]] = field(default_factory=list)
    built: list[tuple[int, int, tuple[int, ...]]] = field(default_factory=list)

    def schedule(self, limit: int) -> None:
        """A reflective child joined the pool: the next iteration may merge."""
        self.last_found_new = True
        if self.accepted < limit:
            self.due += 1

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            "due": self.due,
            "accepted": self.accepted,
            "last_found_new": self.last_found_new,
            "tried": [list(t) for t in self.tried],
            "built": [[i, j, list(d)] for i, j, d in self.built],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MergeState:
        """The state :meth:`to_json` saved."""
        return cls(
            due=int(data["due"]),
            accepted=int(data["accepted"]),
            last_found_new=bool(data["last_found_new"]),
            tried=[(int(i), int(j), int(a)) for i, j, a in data["tried"]],
            built=[(int(i), int(j), tuple(int(x) for x in d)) for i, j, d in data["built"]],
        )


@dataclass(frozen=True)
class MergePlan:
    """A merge to evaluate: parents ``first`` < ``second``, their ``ancestor``, the result."""

    first: int
    second: int
    ancestor: int
    candidate: dict[str, str]
    subsample: list[int]


@dataclass(frozen=True)
class Pool:
    """The run's candidates as a merge sees them.

    ``parents[k]`` lists candidate ``k``'s parents (empty for the seed); ``front`` holds
    the non-dominated candidates, ascending.
    """

    candidates: Sequence[Mapping[str, str]]
    parents: Sequence[Sequence[int]]
    averages: Sequence[float]
    front: Sequence[int]
    val_scores: Sequence[Sequence[float]]


def plan_merge(rng: random.Random, state: MergeState, pool: Pool) -> MergePlan | None:
    """The next merge to evaluate (recorded in ``state`` as tried), or None if none fits."""
    if len(pool.front) < 2 or len(pool.candidates) < 3:
        return None
    for _ in range(ATTEMPTS):
        pair = _find_pair(rng, state, pool)
        if pair is None:
            continue
        first, second, ancestor = pair
        merged, built_from = _combine(rng, pool, first, second, ancestor)
        if (first, second, built_from) in state.built:
            continue
        scores = pool.val_scores
        if min(len(scores[first]), len(scores[second])) < OVERLAP_FLOOR:
            continue
        state.built.append((first, second, built_from))
        state.tried.append((first, second, ancestor))
        subsample = _subsample(rng, scores[first], scores[second])
        return MergePlan(first, second, ancestor, merged, subsample)
    return None


def _ancestors(node: int, parents: Sequence[Sequence[int]]) -> set[int]:
    found: set[int] = set()
    stack = list(parents[node])
    while stack:
        parent = stack.pop()
        if parent not in found:
            found.add(parent)
            stack.extend(parents[parent])
    return found


def _differs_from_one(
    candidates: Sequence[Mapping[str, str]], ancestor: int, first: int, second: int
) -> bool:
    """Some predictor was changed by exactly one of the two (the merge gains from it)."""
    old, a, b = candidates[ancestor], candidates[first], candidates[second]
    return any((old[n] == a[n] or old[n] == b[n]) and a[n] != b[n] for n in old)


def _find_pair(rng: random.Random, state: MergeState, pool: Pool) -> tuple[int, int, int] | None:
    averages = pool.averages
    for _ in range(ATTEMPTS):
        first, second = sorted(rng.sample(list(pool.front), 2))
        above_first = _ancestors(first, pool.parents)
        above_second = _ancestors(second, pool.parents)
        if second in above_first or first in above_second:
            continue
        common = [
            a
            for a in sorted(above_first & above_second)
            if (first, second, a) not in state.tried
            and averages[a] <= averages[first]
            and averages[a] <= averages[second]
            and _differs_from_one(pool.candidates, a, first, second)
        ]
        if common:
            weights = [averages[a] for a in common]
            if sum(weights) > 0:
                return first, second, rng.choices(common, weights=weights)[0]
            return first, second, rng.choice(common)
    return None


def _combine(
    rng: random.Random, pool: Pool, first: int, second: int, ancestor: int
) -> tuple[dict[str, str], tuple[int, ...]]:
    """The merged instructions and, per predictor, which parent each came from."""
    candidates, averages = pool.candidates, pool.averages
    old, a, b = candidates[ancestor], candidates[first], candidates[second]
    merged = dict(old)
    built_from: list[int] = []
    for name in old:
        if (old[name] == a[name] or old[name] == b[name]) and a[name] != b[name]:
            source = second if old[name] == a[name] else first
        elif old[name] != a[name] and old[name] != b[name]:
            if averages[first] != averages[second]:
                source = first if averages[first] > averages[second] else second
            else:
                source = rng.choice([first, second])
        else:
            source = first
        merged[name] = candidates[source][name]
        built_from.append(source)
    return merged, tuple(built_from)


def _subsample(rng: random.Random, first: Sequence[float], second: Sequence[float]) -> list[int]:
    """Instances where the first parent wins, where the second does, and ties, in turn."""
    common = list(range(min(len(first), len(second))))
    buckets = (
        [k for k in common if first[k] > second[k]],
        [k for k in common if second[k] > first[k]],
        [k for k in common if first[k] == second[k]],
    )
    per_bucket = max(1, math.ceil(SUBSAMPLE_SIZE / 3))
    chosen: list[int] = []
    for bucket in buckets:
        if len(chosen) >= SUBSAMPLE_SIZE:
            break
        available = [k for k in bucket if k not in chosen]
        take = min(len(available), per_bucket, SUBSAMPLE_SIZE - len(chosen))
        if take > 0:
            chosen += rng.sample(available, k=take)
    remaining = SUBSAMPLE_SIZE - len(chosen)
    if remaining > 0:
        unused = [k for k in common if k not in chosen]
        if len(unused) >= remaining:
            chosen += rng.sample(unused, k=remaining)
        elif common:
            chosen += rng.choices(common, k=remaining)
    return chosen[:SUBSAMPLE_SIZE]
