"""Bounded call history: each LM's ring (``lm.history``), the process-wide ring behind
``inspect_history``, and DSPy's way of printing it.

DSPy's global history grows without bound in a long-running service; here both rings
drop their oldest entry once full. A call is kept as a small record of what it already
holds (the request and response values, no copies) and becomes a plain dict (messages,
outputs, usage, cost, model, timestamp, cache flag, uuid) only when read, so recording
costs an LM call next to nothing. Entries hold prompts and replies, never credentials.
"""

from __future__ import annotations

import datetime
import sys
import uuid
from collections import deque
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple, TextIO, overload

from dspex_actors._types import LMRequest, LMResponse

__all__ = ["DEFAULT_HISTORY_SIZE", "GLOBAL_HISTORY", "CallEntry", "History", "inspect_history"]

DEFAULT_HISTORY_SIZE = 1000


class CallEntry(NamedTuple):
    """One recorded call, as recorded (immutable values); :meth:`as_dict` is its entry."""

    request: LMRequest
    response: LMResponse
    model: str
    cost: float | None
    time: float
    """``time.time()`` when it was recorded."""
    id_bits: int
    """128 random bits: the entry's uuid."""

    def as_dict(self) -> dict[str, Any]:
        """The entry as DSPy's history holds it (a fresh dict each time)."""
        response = self.response
        return {
            "messages": [dict(message) for message in self.request.messages],
            "outputs": list(response.texts),
            "kwargs": dict(self.request.params),
            "usage": {} if response.cached else dict(response.usage),
            "cost": self.cost,
            "model": self.model,
            "response_model": response.model,
            "finish_reasons": list(response.finish_reasons),
            "cached": response.cached,
            "timestamp": datetime.datetime.fromtimestamp(self.time).isoformat(),
            "uuid": str(uuid.UUID(int=self.id_bits, version=4)),
        }


class History(Sequence[dict[str, Any]]):
    """A thread-safe ring of the last ``maxlen`` call entries, oldest first.

    Reads like a list (``history[-1]``, ``history[-3:]``, ``len``); ``maxlen`` 0 keeps
    nothing. No lock: ``deque.append``/``copy``/``clear`` are single C calls under the
    GIL, so a process forked while another thread appends cannot inherit a held lock.
    """

    def __init__(self, maxlen: int = DEFAULT_HISTORY_SIZE) -> None:
        self._entries: deque[CallEntry | dict[str, Any]] = deque(maxlen=maxlen)

    @property
    def maxlen(self) -> int:
        """How many entries the ring keeps."""
        return self._entries.maxlen or 0

    def append(self, entry: CallEntry | dict[str, Any]) -> None:
        """Add an entry (a recorded call, or an entry dict as is), dropping the oldest when
        full."""
        if self._entries.maxlen:
            self._entries.append(entry)

    def clear(self) -> None:
        """Forget every entry."""
        self._entries.clear()

    def snapshot(self) -> list[dict[str, Any]]:
        """The entries now, as a list."""
        return [
            entry.as_dict() if isinstance(entry, CallEntry) else entry
            for entry in self._entries.copy()
        ]

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...

    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...

    def __getitem__(self, index: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        return self.snapshot()[index]

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.snapshot())

    def __repr__(self) -> str:
        return f"History({len(self)} of {self.maxlen} entries)"


GLOBAL_HISTORY = History(DEFAULT_HISTORY_SIZE)
"""Every LM call of the process (LMs with ``history_size=0`` excepted), for inspect_history."""


def _color(code: str, text: str, use_colors: bool) -> str:
    return f"\x1b[{code}m{text}\x1b[0m" if use_colors else text


def inspect_history(n: int = 1, file: TextIO | None = None) -> None:
    """Print the last ``n`` LM calls of the process as DSPy's ``inspect_history`` does.

    Messages by role, then the reply; colours unless ``file`` is given.
    """
    out = file or sys.stdout
    use_colors = file is None
    entries = GLOBAL_HISTORY.snapshot()[-n:] if n > 0 else []
    for entry in entries:
        print("\n\n\n", file=out)
        stamp = f"[{entry.get('timestamp', 'Unknown time')}]"
        print(_color("34", stamp, use_colors) + "\n", file=out)
        for message in entry["messages"]:
            role = str(message.get("role", "user")).capitalize()
            print(_color("31", f"{role} message:", use_colors) + "\n", file=out)
            print(str(message.get("content", "")).strip(), file=out)
            print("\n", file=out)
        outputs = entry["outputs"]
        print(_color("31", "Response:", use_colors) + "\n", file=out)
        print(_color("32", outputs[0].strip() if outputs else "", use_colors) + "\n", file=out)
        if len(outputs) > 1:
            others = f" \t (and {len(outputs) - 1} other completions)"
            print(_color("31", others, use_colors), file=out)
    print("\n\n\n", file=out)
