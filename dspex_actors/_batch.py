"""Whether the code running here is part of a batch (Evaluate, an optimizer, Parallel).

Batches keep going through a short outage: while an endpoint's circuit is open, their
calls wait once for the half-open trial instead of failing (``LM(on_circuit_open=None)``).
A context variable, so worker actors (which run in a copy of the caller's context) and
asyncio tasks inherit it.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

__all__ = ["batch_calls", "in_batch", "mark_batch"]

_in_batch: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "dspex_actors_in_batch", default=False
)


@contextlib.contextmanager
def batch_calls() -> Iterator[None]:
    """Mark the calls made inside the block (and in workers started from it) as a batch's."""
    token = _in_batch.set(True)
    try:
        yield
    finally:
        _in_batch.reset(token)


def in_batch() -> bool:
    """Whether calls made here belong to a batch."""
    return _in_batch.get()


def mark_batch(context: contextvars.Context) -> None:
    """Mark a copied context (a worker's) as a batch's."""
    context.run(_in_batch.set, True)
