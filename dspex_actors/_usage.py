"""Token usage in DSPy's per-model shape, and the trackers that collect it.

``{"anthropic/claude-sonnet-4-5": {"prompt_tokens": .., "completion_tokens": ..,
"total_tokens": ..}}`` (plus ``cost`` in USD when the LM has prices, and ``cache_hits``
when answers came from the cache, which add no tokens). A tracker is current for a
context (thread or asyncio task): every LM call made in it adds its usage; a tracker
opened inside another rolls its entries up into the outer one when it closes, as DSPy's
does. A leaf module: the LM side records, the module side reads.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Mapping
from typing import Any

__all__ = ["UsageTracker", "current_tracker", "merge_usage", "track_usage", "tracking"]

Usage = dict[str, Any]


def merge_usage(into: Usage, entry: Mapping[str, Any]) -> Usage:
    """Add ``entry``'s numbers to ``into`` (nested dicts merged, flags and text kept)."""
    for key, value in entry.items():
        current = into.get(key)
        if isinstance(value, Mapping):
            into[key] = merge_usage(dict(current) if isinstance(current, Mapping) else {}, value)
        elif current is None:
            into[key] = value
        elif _summable(current) and _summable(value):
            into[key] = current + value
    return into


def _summable(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class UsageTracker:
    """The usage of the LM calls made while it is current, per model (DSPy's tracker)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.usage_data: dict[str, list[Usage]] = {}

    def add_usage(self, lm: str, usage_entry: Mapping[str, Any]) -> None:
        """Record one call's usage for the model ``lm`` (an empty entry is skipped)."""
        if usage_entry:
            with self._lock:
                self.usage_data.setdefault(lm, []).append(dict(usage_entry))

    def get_total_tokens(self) -> dict[str, Usage]:
        """The summed usage per model: ``{model: {prompt_tokens, completion_tokens, ...}}``."""
        if not self.usage_data:
            return {}
        with self._lock:
            data = {lm: list(entries) for lm, entries in self.usage_data.items()}
        totals: dict[str, Usage] = {}
        for lm, entries in data.items():
            total: Usage = {}
            for entry in entries:
                merge_usage(total, entry)
            totals[lm] = total
        return totals

    def _roll_up_into(self, parent: UsageTracker) -> None:
        with self._lock:
            data = {lm: list(entries) for lm, entries in self.usage_data.items()}
        with parent._lock:
            for lm, entries in data.items():
                parent.usage_data.setdefault(lm, []).extend(entries)


_CURRENT: contextvars.ContextVar[UsageTracker | None] = contextvars.ContextVar(
    "dspex_usage_tracker", default=None
)


def current_tracker() -> UsageTracker | None:
    """The tracker LM calls of this context add to, or None."""
    return _CURRENT.get()


class _Tracking:
    """The block of :func:`tracking` (a class: every Module call opens one)."""

    __slots__ = ("_parent", "_token", "_tracker")

    def __enter__(self) -> UsageTracker:
        self._tracker = UsageTracker()
        self._parent = _CURRENT.get()
        self._token = _CURRENT.set(self._tracker)
        return self._tracker

    def __exit__(self, *exc_info: object) -> None:
        _CURRENT.reset(self._token)
        if self._parent is not None:
            self._tracker._roll_up_into(self._parent)


def tracking() -> _Tracking:
    """A new tracker current inside the block; rolled up into the outer one at the end."""
    return _Tracking()


def track_usage() -> contextlib.AbstractContextManager[UsageTracker]:
    """``with dx.track_usage() as usage: ...`` then ``usage.get_total_tokens()``.

    Counts every LM request made in the block by this thread or task (a JSON-fallback
    request included); cached answers add no tokens, only a ``cache_hits`` count.
    """
    return tracking()
