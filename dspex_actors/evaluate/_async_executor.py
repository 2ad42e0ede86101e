"""AsyncExecutor: run a coroutine function over any iterable with at most N tasks at once.

The asyncio twin of :class:`~dspex_actors.evaluate.ParallelExecutor`, for programs that
are natively async (``Predict``, ``ChainOfThought``, a Module with ``aforward``): no
thread per item, so a thousand items in flight cost a thousand small tasks on the
caller's event loop. Same contract and the same :class:`Outcome` values:

- ``num_threads`` tasks pull items from the iterable one at a time (a generator is never
  materialised); an item is never started twice; every started item gets exactly one
  outcome, with its value or its :class:`ExampleFailure`.
- ``timeout``: an item running longer is cancelled and recorded as
  :class:`ExampleTimeoutError` (cancelling its LM call too).
- ``max_errors``: once more than that many items failed, no new item starts, the ones in
  flight get ``abort_grace`` seconds, and :class:`EvaluationAborted` carries the
  finished outcomes (input order).
- Cancelling the awaiting task (or Ctrl-C under ``asyncio.run``) stops at once and
  raises :class:`EvaluationAborted` with the finished outcomes; the ``CancelledError``
  is its ``__cause__``.
- Progress is reported from the loop's thread, after each finished item.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sized
from operator import attrgetter
from typing import Any, Generic, TypeVar

from dspex_actors._batch import batch_calls
from dspex_actors._errors import EvaluationAborted, ExampleTimeoutError
from dspex_actors.evaluate._executor import (
    Outcome,
    Progress,
    ProgressCallback,
    check_call,
    check_run_options,
)
from dspex_actors.evaluate._worker import ExampleFailure
from dspex_actors.telemetry._spans import internal_span

__all__ = ["AsyncExecutor"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


class AsyncExecutor:
    """Run ``await fn(item)`` for every item of an iterable, ``num_threads`` at a time."""

    def __init__(
        self,
        num_threads: int,
        *,
        timeout: float | None = None,
        max_errors: int | None = None,
        progress: ProgressCallback | None = None,
        provide_traceback: bool = False,
        abort_grace: float = 1.0,
    ) -> None:
        check_run_options(num_threads, timeout, max_errors, progress, abort_grace)
        self.num_threads = num_threads
        self.timeout = timeout
        self.max_errors = max_errors
        self.progress = progress
        self.provide_traceback = provide_traceback
        self.abort_grace = abort_grace

    async def run(
        self, fn: Callable[[T], Awaitable[R]], items: Iterable[T]
    ) -> list[Outcome[T, R]]:
        """One :class:`Outcome` per item, in input order (see the module docstring)."""
        check_call(fn, items)
        run = _AsyncRun(self, fn, items)
        with batch_calls():  # the workers' tasks copy it: their calls wait out an open circuit
            return await run.run()


class _AsyncRun(Generic[T, R]):
    """The state of one :meth:`AsyncExecutor.run`; lives on the loop's thread."""

    def __init__(
        self, ex: AsyncExecutor, fn: Callable[[T], Awaitable[R]], items: Iterable[T]
    ) -> None:
        self.ex = ex
        self.fn = fn
        self.items: Iterator[tuple[int, T]] = enumerate(items)
        self.total = len(items) if isinstance(items, Sized) else None
        self.outcomes: list[Outcome[T, R]] = []
        self.failures = 0
        self.stopping: str | None = None
        self.source_error: BaseException | None = None
        self._stop = asyncio.Event()

    async def run(self) -> list[Outcome[T, R]]:
        workers: asyncio.Future[list[None]] = asyncio.gather(
            *(self._work() for _ in range(self.ex.num_threads))
        )
        stop: asyncio.Future[Any] = asyncio.ensure_future(self._stop.wait())
        try:
            first: set[asyncio.Future[Any]] = {workers, stop}
            await asyncio.wait(first, return_when=asyncio.FIRST_COMPLETED)
            if not workers.done():  # stopping: the items in flight get abort_grace
                await asyncio.wait({workers}, timeout=self.ex.abort_grace)
            if not workers.done():
                workers.cancel()
                await asyncio.gather(workers, return_exceptions=True)
            elif not workers.cancelled():
                workers.result()  # a bug in a worker (or a progress callback) surfaces here
        except asyncio.CancelledError as exc:
            workers.cancel()
            await asyncio.gather(workers, return_exceptions=True)
            raise self._aborted(f"interrupted after {len(self.outcomes)} finished items") from exc
        finally:
            stop.cancel()
        if self.source_error is not None:
            msg = f"the items iterable raised {type(self.source_error).__name__}: "
            raise self._aborted(msg + str(self.source_error)) from self.source_error
        if self.stopping is not None:
            raise self._aborted(self.stopping)
        return sorted(self.outcomes, key=attrgetter("index"))

    def _aborted(self, message: str) -> EvaluationAborted:
        return EvaluationAborted(message, result=sorted(self.outcomes, key=attrgetter("index")))

    def _next(self) -> tuple[int, T] | None:
        if self.stopping is not None:
            return None
        try:
            return next(self.items)
        except StopIteration:
            return None
        except Exception as exc:  # the devset generator itself failed: stop, keep the work
            self.source_error = exc
            self._begin_stop("the items iterable raised")
            return None

    async def _work(self) -> None:
        while (entry := self._next()) is not None:
            index, item = entry
            deadline = asyncio.timeout(self.ex.timeout)
            try:
                async with deadline:
                    with internal_span("dspex.item", {"dspex.example.index": index}):
                        value = await self.fn(item)
            except TimeoutError as exc:
                if not deadline.expired():  # the program's own TimeoutError
                    self._failed(index, item, exc)
                    continue
                error = ExampleTimeoutError(
                    f"item {index} ran longer than the timeout of {self.ex.timeout} s"
                )
                failure = ExampleFailure.from_exception(index, error)
                self._record(Outcome(index, item, None, failure))
            except Exception as exc:
                self._failed(index, item, exc)
            else:
                self._record(Outcome(index, item, value, None))

    def _failed(self, index: int, item: T, exc: BaseException) -> None:
        failure = ExampleFailure.from_exception(
            index, exc, with_traceback=self.ex.provide_traceback
        )
        self._record(Outcome(index, item, None, failure))

    def _begin_stop(self, reason: str) -> None:
        if self.stopping is None:
            self.stopping = reason
            self._stop.set()

    def _record(self, outcome: Outcome[T, R]) -> None:
        self.outcomes.append(outcome)
        if outcome.failure is not None:
            self.failures += 1
            limit = self.ex.max_errors
            if limit is not None and self.failures > limit:
                self._begin_stop(f"more than max_errors={limit} items failed")
        if self.ex.progress is not None:
            done = len(self.outcomes)
            self.ex.progress(Progress(done, self.total, self.failures, outcome))
