"""Trace recording: which predictor saw which inputs and produced which prediction.

The current trace lives in a :class:`contextvars.ContextVar`, so two evaluations
running on different threads (each in its own copied context) never mix their
traces, and a nested ``record_trace()`` collects only its own calls.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

__all__ = ["TraceEntry", "current_trace", "record_trace"]

logger = logging.getLogger(__name__)

TraceEntry = tuple[Any, dict[str, Any], Any]
"""``(predictor, inputs, prediction)`` as DSPy's ``settings.trace`` holds it."""

_TRACE: ContextVar[list[TraceEntry] | None] = ContextVar("dspex_actors_trace", default=None)


@contextmanager
def record_trace() -> Iterator[list[TraceEntry]]:
    """Record every predictor call made in this context into the yielded list.

    ``with record_trace() as trace: program(**inputs)`` leaves ``trace`` holding
    ``(predictor, inputs, prediction)`` tuples in call order.
    """
    trace: list[TraceEntry] = []
    token = _TRACE.set(trace)
    try:
        yield trace
    finally:
        _TRACE.reset(token)


def current_trace() -> list[TraceEntry] | None:
    """The list being recorded in this context, or None when nothing is recording."""
    return _TRACE.get()
