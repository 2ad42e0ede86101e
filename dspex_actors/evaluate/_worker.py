"""The worker actor of :class:`ParallelExecutor` and the messages it exchanges.

A worker runs one item at a time: the coordinator ``tell``\\ s it a :class:`_Task` only when
it is idle, and the worker posts a :class:`_Done` to the run's outbox (a ``SimpleQueue``
that the coordinator blocks on). No ``ask`` futures on the hot path: one inbox put and one
outbox put per item.

Each worker incarnation shares a :class:`_Slot` with the coordinator. The slot is how the
coordinator tells the worker's results apart from those of an abandoned incarnation
(``abandoned``), and how it learns whether an item sent to a worker that then died had
started (``started``): an item that never started is sent again, one that started is
recorded as failed, so nothing is lost and nothing runs twice.
"""

from __future__ import annotations

import contextvars
import logging
import queue
import traceback as traceback_module
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, NamedTuple

import pykka

from dspex_actors.telemetry._spans import run_item
from supervision import SimpleQueueInbox, Supervised

__all__ = ["ExampleFailure"]

logger = logging.getLogger(__name__)


class ExampleFailure(NamedTuple):
    """Why one item failed: its index in the input, the exception type name and message.

    ``traceback`` is the formatted traceback when the executor was asked for tracebacks,
    else ``None``. ``exception`` is the exception object itself (its ``__traceback__``
    cleared, so failed frames are not kept alive), for ``isinstance`` checks.
    """

    index: int  # type: ignore[assignment]  # shadows tuple.index on purpose
    error_type: str
    message: str
    traceback: str | None = None
    exception: BaseException | None = None

    @classmethod
    def from_exception(
        cls, index: int, exc: BaseException, *, with_traceback: bool = False
    ) -> ExampleFailure:
        """Record ``exc`` as the failure of item ``index``."""
        text = (
            "".join(traceback_module.format_exception(type(exc), exc, exc.__traceback__))
            if with_traceback
            else None
        )
        return cls(index, type(exc).__name__, str(exc), text, exc.with_traceback(None))


@dataclass(eq=False, slots=True)
class _Slot:
    """State shared by the coordinator and one worker incarnation.

    ``started`` is written by the worker before it runs an item; ``abandoned`` by the
    coordinator when it gives up on the worker (timeout, abort, interrupt). Plain
    attribute writes are atomic under the GIL and the outbox queue orders them.
    """

    number: int
    child_id: str
    ref: pykka.ActorRef[Any] | None = None
    current: int | None = None
    current_item: Any = None
    started: int = -1
    abandoned: bool = False
    exited: bool = False
    deadline: float | None = field(default=None)


class _Task(NamedTuple):
    """Run the executor's function on ``item`` (the ``index``-th input)."""

    index: int  # type: ignore[assignment]
    item: Any


class _Done(NamedTuple):
    """A worker finished ``index``: ``value`` or ``failure`` (exactly one is meaningful)."""

    slot: _Slot
    index: int  # type: ignore[assignment]
    value: Any
    failure: ExampleFailure | None


class _Exited(NamedTuple):
    """A worker incarnation stopped (or crashed, then ``error`` is set)."""

    slot: _Slot
    error: BaseException | None


class _Worker(SimpleQueueInbox, Supervised, pykka.ThreadingActor):
    """Runs ``fn(item)`` for each :class:`_Task` in a fresh copy of the caller's context."""

    def __init__(
        self,
        slot: _Slot,
        fn: Callable[[Any], Any],
        context: contextvars.Context,
        outbox: queue.SimpleQueue[_Done | _Exited],
        with_traceback: bool,
    ) -> None:
        super().__init__()
        self._slot = slot
        self._fn = fn
        self._context = context
        self._outbox = outbox
        self._with_traceback = with_traceback

    def on_receive(self, message: Any) -> None:
        if not isinstance(message, _Task):
            super().on_receive(message)
            return
        slot = self._slot
        index = message.index
        slot.started = index
        try:
            # A copy per item: context changes made by one item never leak into the next.
            value = self._context.copy().run(run_item, self._fn, message.item, index)
        except BaseException as exc:  # any escape would make pykka stop every actor
            failure = ExampleFailure.from_exception(index, exc, with_traceback=self._with_traceback)
            self._outbox.put(_Done(slot, index, None, failure))
        else:
            self._outbox.put(_Done(slot, index, value, None))

    def on_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._slot.exited = True
        self._outbox.put(_Exited(self._slot, exception_value))
        super().on_failure(exception_type, exception_value, traceback)

    def on_stop(self) -> None:
        if not self._slot.exited:
            self._slot.exited = True
            self._outbox.put(_Exited(self._slot, None))
        super().on_stop()
