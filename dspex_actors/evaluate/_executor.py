"""ParallelExecutor: run a function over any iterable on a bounded pool of worker actors.

Per run: a :class:`supervision.Supervisor` with ``num_threads`` worker actors (temporary
children), fed by a coordinator -- the thread that called :meth:`ParallelExecutor.run`.
The coordinator pulls the next item from the iterable only when a worker is idle (so a
generator of 100k items is never materialised: at most ``num_threads`` items are in
flight), ``tell``\\ s it to that worker, and blocks on the run's outbox for results. It
never busy-waits: it sleeps on the outbox until a result arrives, a deadline expires, or
at most :data:`_WAKE_INTERVAL` passes (so a simulated Ctrl-C is noticed promptly).

Guarantees, per item: exactly one :class:`Outcome` with its value or its
:class:`ExampleFailure`, unless the run is stopped early (then the unfinished ones have
none); an item is never started twice.

- ``timeout``: an item running longer is recorded as :class:`ExampleTimeoutError`; its
  worker is abandoned and replaced. A Python thread cannot be killed: the abandoned worker
  is asked to stop, which it does as soon as its call returns; that late result is
  discarded. The thread therefore outlives the run by the length of the stuck call (an LM
  call is bounded by the LM's own timeout, and fails fast once its ActorSystem stops).
- a worker that dies (stopped from outside, or crashed) is replaced; the item it was
  running is recorded as failed (``ActorDeadError`` or the crash's exception), an item
  sent to it that had not started is sent to another worker.
- ``max_errors``: once more than ``max_errors`` items failed, no new item starts, the
  in-flight ones get ``abort_grace`` seconds to finish (the rest are abandoned), and
  :class:`EvaluationAborted` is raised; :meth:`run` attaches the finished outcomes.
- ``stop_when(progress)``: called after each item; a reason it returns stops the run like
  ``max_errors`` does (Evaluate uses it to give up on a dead endpoint).
- Ctrl-C (``KeyboardInterrupt`` in the coordinator): stops at once, abandons in-flight
  items and raises :class:`EvaluationInterrupted` -- a ``KeyboardInterrupt`` subclass, so
  ``except Exception:`` never swallows it -- carrying the finished outcomes.
"""

from __future__ import annotations

import contextvars
import heapq
import itertools
import logging
import queue
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Sized
from operator import attrgetter
from typing import Any, Generic, NamedTuple, TypeVar

import pykka

from dspex_actors._batch import mark_batch
from dspex_actors._errors import (
    ConfigurationError,
    EvaluationAborted,
    EvaluationInterrupted,
    ExampleTimeoutError,
)
from dspex_actors.evaluate._worker import ExampleFailure, _Done, _Exited, _Slot, _Task, _Worker
from supervision import ChildSpec, Supervisor

__all__ = [
    "ExampleFailure",
    "Outcome",
    "ParallelExecutor",
    "Progress",
    "ProgressCallback",
    "StopCheck",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

_WAKE_INTERVAL = 0.1
"""Longest the coordinator sleeps without checking for a pending KeyboardInterrupt.

A real SIGINT interrupts the wait at once; ``_thread.interrupt_main()`` only sets a flag
that Python checks when the blocked call returns.
"""

MAX_NUM_THREADS = 4096
"""More workers than this is a mistake (a typo, a devset size passed as num_threads)."""

_START_TIMEOUT = 30.0
_STOP_TIMEOUT = 30.0
_WORKER_SHUTDOWN = 10.0
"""How long the per-run supervisor waits for one worker to stop (a busy one stops only
when its call returns)."""
_run_ids = itertools.count(1)


class Outcome(NamedTuple, Generic[T, R]):
    """What happened to one input item: its ``value`` or its ``failure``."""

    index: int  # type: ignore[assignment]  # shadows tuple.index on purpose: the item's position
    item: T
    value: R | None
    failure: ExampleFailure | None

    @property
    def ok(self) -> bool:
        """True when the function returned (``value`` is its return value)."""
        return self.failure is None


class Progress(NamedTuple):
    """Passed to the progress callback after each finished item (on the coordinator)."""

    done: int
    total: int | None
    failures: int
    outcome: Outcome[Any, Any]


ProgressCallback = Callable[[Progress], None]
StopCheck = Callable[[Progress], "str | None"]
"""Given each item's progress: a reason to stop the run, or None to go on."""


class ParallelExecutor:
    """Run ``fn(item)`` for every item of an iterable on a bounded pool of worker actors.

    ``num_threads`` workers (capped at the number of items when it is known). ``timeout``:
    seconds per item (``None``: no limit). ``max_errors``: how many failed items are
    tolerated (``None``: all); one more aborts the run. ``progress``: a callable given a
    :class:`Progress` after each item, always from the coordinating thread (safe for
    tqdm). ``provide_traceback``: keep formatted tracebacks in failures. ``abort_grace``:
    seconds in-flight items get to finish once ``max_errors`` is exceeded. ``stop_when``:
    see the module docstring.

    Each worker runs the items inside a copy of the caller's :mod:`contextvars` context
    (the current ActorSystem, trace settings), a fresh copy per item. An executor holds
    only configuration: it can be reused and shared; each :meth:`run` has its own pool.
    """

    def __init__(
        self,
        num_threads: int = 8,
        *,
        timeout: float | None = None,
        max_errors: int | None = None,
        progress: ProgressCallback | None = None,
        provide_traceback: bool = False,
        abort_grace: float = 5.0,
        stop_when: StopCheck | None = None,
    ) -> None:
        check_run_options(num_threads, timeout, max_errors, progress, abort_grace)
        self.num_threads = num_threads
        self.timeout = None if timeout is None else float(timeout)
        self.max_errors = max_errors
        self.progress = progress
        self.provide_traceback = provide_traceback
        self.abort_grace = float(abort_grace)
        self.stop_when = stop_when

    def __repr__(self) -> str:
        return (
            f"ParallelExecutor(num_threads={self.num_threads}, timeout={self.timeout}, "
            f"max_errors={self.max_errors})"
        )

    def run(self, fn: Callable[[T], R], items: Iterable[T]) -> list[Outcome[T, R]]:
        """Run ``fn`` over ``items``; return one :class:`Outcome` per item, in input order.

        Raises :class:`EvaluationAborted` (``max_errors`` exceeded, ``stop_when``, or the
        iterable itself raised) or :class:`EvaluationInterrupted` (Ctrl-C), with ``result``
        = the finished outcomes in input order.
        """
        check_call(fn, items)
        collected: list[Outcome[T, R]] = []
        stream = _Run(self, fn, items, sink=collected).outcomes()
        try:
            for _ in stream:
                pass
        except (EvaluationAborted, EvaluationInterrupted) as exc:
            collected.sort(key=attrgetter("index"))
            exc.result = collected
            raise
        except KeyboardInterrupt as exc:
            stream.close()
            collected.sort(key=attrgetter("index"))
            msg = f"interrupted after {len(collected)} finished items"
            raise EvaluationInterrupted(msg, result=collected) from exc
        collected.sort(key=attrgetter("index"))
        return collected

    def iter_outcomes(
        self, fn: Callable[[T], R], items: Iterable[T]
    ) -> Generator[Outcome[T, R], None, None]:
        """Stream outcomes in completion order (each carries its input ``index``).

        Same semantics as :meth:`run`, but an abort raises :class:`EvaluationAborted` with
        ``result=None`` after every finished outcome has been yielded, and nothing is kept
        in memory. Closing the iterator early stops the run (in-flight items are abandoned).
        """
        check_call(fn, items)
        return _Run(self, fn, items).outcomes()


def check_run_options(
    num_threads: object, timeout: object, max_errors: object, progress: object, abort_grace: object
) -> None:
    """The option checks shared by the thread and the task executors."""
    if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1:
        msg = f"num_threads must be a positive int, got {num_threads!r}"
        raise ValueError(msg)
    if num_threads > MAX_NUM_THREADS:
        msg = (
            f"num_threads={num_threads} is more than {MAX_NUM_THREADS}: each is a worker "
            "(a thread, or a task for an async program); the LM's max_concurrency is the "
            "real limit on calls in flight"
        )
        raise ConfigurationError(msg)
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0
    ):
        msg = f"timeout must be a positive number of seconds or None, got {timeout!r}"
        raise ValueError(msg)
    if max_errors is not None and (
        isinstance(max_errors, bool) or not isinstance(max_errors, int) or max_errors < 0
    ):
        msg = f"max_errors must be a non-negative int or None, got {max_errors!r}"
        raise ValueError(msg)
    if progress is not None and not callable(progress):
        msg = f"progress must be a callable or None, got {progress!r}"
        raise TypeError(msg)
    if not isinstance(abort_grace, (int, float)) or not abort_grace >= 0:
        msg = f"abort_grace must be >= 0 seconds, got {abort_grace!r}"
        raise ValueError(msg)


def check_call(fn: object, items: object) -> None:
    """The argument checks of a run, shared by the thread and the task executors."""
    if not callable(fn):
        msg = f"fn must be callable, got {fn!r}"
        raise TypeError(msg)
    if isinstance(items, (str, bytes)) or not isinstance(items, Iterable):
        msg = f"items must be an iterable of items, got {type(items).__name__}"
        raise TypeError(msg)


class _Run(Generic[T, R]):
    """The state of one run; lives on the coordinating thread only."""

    def __init__(
        self,
        executor: ParallelExecutor,
        fn: Callable[[T], R],
        items: Iterable[T],
        sink: list[Outcome[T, R]] | None = None,
    ) -> None:
        self.ex = executor
        self.sink = sink
        self.fn = fn
        self.total = len(items) if isinstance(items, Sized) else None
        self.items = iter(items)
        self.run_id = next(_run_ids)
        self.outbox: queue.SimpleQueue[_Done | _Exited] = queue.SimpleQueue()
        self.pending: deque[tuple[int, T]] = deque()
        self.next_index = 0
        self.exhausted = False
        self.idle: list[_Slot] = []
        self.busy: dict[int, _Slot] = {}
        self.live: set[_Slot] = set()
        self.deadlines: list[tuple[float, int, int]] = []
        self.slot_numbers = itertools.count()
        self.replacements = 0
        self.done = 0
        self.failures = 0
        self.stopping: str | None = None
        self.stop_deadline: float | None = None
        self.source_error: BaseException | None = None
        self.supervisor: pykka.ActorRef[Any] | None = None
        self.abandoned: list[_Slot] = []

    # -- the coordinator loop -------------------------------------------------------------

    def outcomes(self) -> Generator[Outcome[T, R], None, None]:
        try:
            size = self.ex.num_threads
            if self.total is not None:
                size = min(size, self.total)
            if size == 0:
                return
            self._start_pool(size)
            while True:
                self._fill()
                if not self.busy:
                    break
                yield from self._wait()
            if self.stopping is not None:
                msg = f"{self.stopping}; {self.done} items finished, {self.failures} failed"
                raise EvaluationAborted(msg) from self.source_error
        except EvaluationInterrupted:
            raise
        except KeyboardInterrupt as exc:
            msg = f"interrupted after {self.done} finished items"
            raise EvaluationInterrupted(msg) from exc
        finally:
            try:
                self._shutdown()
            except KeyboardInterrupt:
                self._shutdown()  # a second Ctrl-C during clean-up: finish it, then raise
                raise

    def _fill(self) -> None:
        """Give every idle worker an item, pulling from the iterable only as needed."""
        while self.idle and self.stopping is None:
            if self.pending:
                index, item = self.pending.popleft()
            elif self.exhausted:
                return
            else:
                try:
                    item = next(self.items)
                except StopIteration:
                    self.exhausted = True
                    return
                except Exception as exc:  # the user's iterable failed: stop, keep what finished
                    self.exhausted = True
                    self.source_error = exc
                    self._begin_stop(f"the items iterable raised {type(exc).__name__}: {exc}")
                    return
                index = self.next_index
                self.next_index += 1
            self._dispatch(self.idle.pop(), index, item)

    def _dispatch(self, slot: _Slot, index: int, item: T) -> None:
        slot.current = index
        slot.current_item = item
        self.busy[index] = slot
        if self.ex.timeout is not None:
            heapq.heappush(self.deadlines, (time.monotonic() + self.ex.timeout, index, slot.number))
        assert slot.ref is not None
        try:
            slot.ref.tell(_Task(index, item))
        except pykka.ActorDeadError:
            self._on_exit(slot, None)

    def _wait(self) -> Iterator[Outcome[T, R]]:
        """Block until results arrive or a deadline passes; yield what finished."""
        now = time.monotonic()
        wake = now + _WAKE_INTERVAL
        if self.deadlines:
            wake = min(wake, self.deadlines[0][0])
        if self.stop_deadline is not None:
            wake = min(wake, self.stop_deadline)
        try:
            message = self.outbox.get(timeout=max(0.0, wake - now))
        except queue.Empty:
            pass
        else:
            while True:
                outcome = self._handle(message)
                if outcome is not None:
                    yield self._report(outcome)
                try:
                    message = self.outbox.get_nowait()
                except queue.Empty:
                    break
        if self.deadlines or self.stop_deadline is not None:
            now = time.monotonic()
            for outcome in self._expire(now):
                yield self._report(outcome)
            if self.stop_deadline is not None and now >= self.stop_deadline:
                for slot in list(self.busy.values()):
                    self._abandon(slot)

    def _handle(self, message: _Done | _Exited) -> Outcome[T, R] | None:
        if isinstance(message, _Exited):
            return self._on_exit(message.slot, message.error)
        slot = message.slot
        if slot.abandoned or slot.current != message.index:
            return None
        item: T = slot.current_item
        del self.busy[message.index]
        slot.current = None
        slot.current_item = None
        if self.stopping is None:
            self.idle.append(slot)
        return Outcome(message.index, item, message.value, message.failure)

    def _report(self, outcome: Outcome[T, R]) -> Outcome[T, R]:
        """Count ``outcome`` (kept in the sink first), check ``max_errors``, tell progress."""
        if self.sink is not None:
            self.sink.append(outcome)
        self.done += 1
        if outcome.failure is not None:
            self.failures += 1
            max_errors = self.ex.max_errors
            if max_errors is not None and self.failures > max_errors and self.stopping is None:
                self._begin_stop(f"more than max_errors={max_errors} items failed")
        progress = Progress(self.done, self.total, self.failures, outcome)
        if self.ex.stop_when is not None and self.stopping is None:
            reason = self.ex.stop_when(progress)
            if reason is not None:
                self._begin_stop(reason)
        if self.ex.progress is not None:
            self.ex.progress(progress)
        return outcome

    def _expire(self, now: float) -> Iterator[Outcome[T, R]]:
        """Record every in-flight item past its deadline as timed out."""
        while self.deadlines and self.deadlines[0][0] <= now:
            _, index, number = heapq.heappop(self.deadlines)
            slot = self.busy.get(index)
            if slot is None or slot.number != number:
                continue
            item: T = slot.current_item
            self._abandon(slot)
            error = ExampleTimeoutError(
                f"item {index} ran longer than the timeout of {self.ex.timeout} s"
            )
            failure = ExampleFailure.from_exception(index, error)
            if self.stopping is None:
                self._add_worker()
            yield Outcome(index, item, None, failure)

    # -- workers ----------------------------------------------------------------------------

    def _new_slot(self) -> tuple[_Slot, ChildSpec]:
        number = next(self.slot_numbers)
        slot = _Slot(number=number, child_id=f"worker-{number}")
        # Taken here, on the caller's thread: the worker's copy of the caller's context.
        context = contextvars.copy_context()
        mark_batch(context)  # its calls wait out an open circuit once (see _batch)
        fn, outbox, with_tb = self.fn, self.outbox, self.ex.provide_traceback

        def start() -> pykka.ActorRef[Any]:
            ref = _Worker.start(slot, fn, context, outbox, with_tb)
            slot.ref = ref
            return ref

        spec = ChildSpec(
            id=slot.child_id, start=start, restart="temporary", shutdown_timeout=_WORKER_SHUTDOWN
        )
        return slot, spec

    def _start_pool(self, size: int) -> None:
        made = [self._new_slot() for _ in range(size)]
        self.supervisor = Supervisor.start(
            children=[spec for _, spec in made],
            strategy="one_for_one",
            name=f"dspex-executor-{self.run_id}",
            start_timeout=_START_TIMEOUT,
        )
        for slot, _ in made:
            if slot.ref is None:
                msg = f"executor run {self.run_id}: worker {slot.child_id} did not start"
                raise RuntimeError(msg)
            self.live.add(slot)
            self.idle.append(slot)
        self.idle.reverse()

    def _add_worker(self) -> None:
        """Start a replacement worker (after a timeout or a worker's exit)."""
        assert self.supervisor is not None
        self.replacements += 1
        if self.replacements > 10 + 4 * self.ex.num_threads:
            self._begin_stop("workers keep dying; giving up on this run")
            return
        slot, spec = self._new_slot()
        self.supervisor.proxy().start_child(spec).get(timeout=_START_TIMEOUT)
        self.live.add(slot)
        self.idle.append(slot)

    def _on_exit(self, slot: _Slot, error: BaseException | None) -> Outcome[T, R] | None:
        """A worker stopped: re-send its unstarted item, or record its started one as failed."""
        if slot not in self.live:
            return None
        self.live.discard(slot)
        slot.exited = True
        if slot in self.idle:
            self.idle.remove(slot)
        outcome: Outcome[T, R] | None = None
        index = slot.current
        if index is not None:
            item: T = slot.current_item
            del self.busy[index]
            slot.current = None
            slot.current_item = None
            if slot.started == index:
                exc = error or pykka.ActorDeadError(
                    f"worker {slot.child_id} stopped while running item {index}"
                )
                failure = ExampleFailure.from_exception(
                    index, exc, with_traceback=self.ex.provide_traceback
                )
                outcome = Outcome(index, item, None, failure)
            else:
                self.pending.appendleft((index, item))
        logger.warning("worker %s exited (%r); replacing it", slot.child_id, error)
        if self.stopping is None:
            self._add_worker()
        return outcome

    def _abandon(self, slot: _Slot) -> None:
        """Give up on a busy worker: it stops once its call returns; its result is dropped."""
        slot.abandoned = True
        self.live.discard(slot)
        if slot.current is not None:
            self.busy.pop(slot.current, None)
        slot.current = None
        slot.current_item = None
        if slot.ref is not None:
            slot.ref.stop(block=False)
        self.abandoned.append(slot)

    def _begin_stop(self, reason: str) -> None:
        self.stopping = reason
        self.stop_deadline = time.monotonic() + self.ex.abort_grace
        self.idle.clear()

    def _shutdown(self) -> None:
        """Abandon busy workers, then stop the per-run supervisor and its workers.

        Idle workers stop at once. When abandoned workers are still inside a call, the
        supervisor is stopped without waiting: it finishes stopping them (each bounded by
        :data:`_WORKER_SHUTDOWN`) in the background as their calls return.
        """
        for slot in list(self.busy.values()):
            self._abandon(slot)
        supervisor = self.supervisor
        if supervisor is None:
            return
        stuck = [s.child_id for s in self.abandoned if s.ref is not None and s.ref.is_alive()]
        if stuck:
            logger.info(
                "executor run %d: %d abandoned workers still busy (%s); they stop when "
                "their calls return",
                self.run_id,
                len(stuck),
                ", ".join(stuck[:5]),
            )
            supervisor.stop(block=False)
            self.supervisor = None
            return
        try:
            supervisor.stop(timeout=_STOP_TIMEOUT)
            self.supervisor = None
        except pykka.Timeout:
            logger.warning(
                "executor run %d: workers did not stop within %s s", self.run_id, _STOP_TIMEOUT
            )
