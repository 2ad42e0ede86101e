"""The Ray worker: one ActorSystem per worker process, running the items the driver feeds.

Each run of :class:`~dspex_actors.evaluate._ray.RayExecutor` gives every worker its
function once (``begin``), then batches of ``(index, item)`` as the driver has room
(``feed``); a :class:`~dspex_actors.evaluate.ParallelExecutor` in the worker runs them on
its own pool of worker actors, with the per-item timeout and failure capture of a local
run, inside the worker's system, so the LM calls leave from this process. Finished
outcomes wait in the run's outbox until the driver's next ``take``.

The executor pulls items from a :class:`LiveFeed`, which never blocks its coordinator:
when no item is waiting it hands out a tick, an item that just waits (on an executor
worker, not on the coordinator) until work arrives or a second passes. So a slow driver
never delays the results or timeouts of items already running.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, Final, NamedTuple

from dspex_actors.adapters import ChatAdapter
from dspex_actors.evaluate._executor import Outcome, ParallelExecutor
from dspex_actors.evaluate._ray_ship import dumps, loads
from dspex_actors.evaluate._worker import ExampleFailure
from dspex_actors.system import ActorSystem, context

__all__ = ["EvalWorker", "LiveFeed", "RunSettings"]

_IDLE_WAIT: Final = 1.0
_LINGER: Final = 0.01
"""How long a ``take`` holding some rows waits for more before it answers."""


class _Tick:
    """The item a :class:`LiveFeed` hands out while it has none."""

    def __repr__(self) -> str:
        return "<tick>"


TICK: Final = _Tick()


class LiveFeed:
    """Items that keep arriving while an executor consumes them; iteration never blocks."""

    def __init__(self, idle_wait: float = _IDLE_WAIT) -> None:
        self._items: deque[tuple[int, Any]] = deque()
        self._changed = threading.Condition()
        self._closed = False
        self._idle_wait = idle_wait

    def put(self, items: list[tuple[int, Any]]) -> None:
        with self._changed:
            self._items.extend(items)
            self._changed.notify_all()

    def close(self) -> None:
        """No more items: iteration ends once the waiting ones are handed out."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def __iter__(self) -> Iterator[tuple[int, Any] | _Tick]:
        while True:
            with self._changed:
                if self._items:
                    item: tuple[int, Any] | _Tick = self._items.popleft()
                elif self._closed:
                    return
                else:
                    item = TICK
            yield item

    def wait_for_work(self) -> None:
        """What a tick does: return once an item is waiting, the feed closed, or time passed."""
        with self._changed:
            self._changed.wait_for(lambda: bool(self._items) or self._closed, self._idle_wait)


class RunSettings(NamedTuple):
    """How one worker runs its share of a run."""

    threads: int
    timeout: float | None
    provide_traceback: bool
    ship_api_keys: bool


Row = tuple[int, Any, ExampleFailure | None]
"""What a worker sends back per item: its index, its value, its failure."""


class _WorkerRun:
    """One run in one worker: the feed, the executor's thread and the outbox."""

    def __init__(self, fn: Callable[[Any], Any], settings: RunSettings) -> None:
        self.fn = fn
        timeout = settings.timeout
        self.executor = ParallelExecutor(
            settings.threads, timeout=timeout, provide_traceback=settings.provide_traceback
        )
        idle = _IDLE_WAIT if timeout is None else min(_IDLE_WAIT, timeout / 4)
        self.feed = LiveFeed(idle)
        self.ship_api_keys = settings.ship_api_keys
        self._outbox: deque[Row] = deque()
        self._changed = threading.Condition()
        self._error: str | None = None
        self._finished = False
        self.thread: threading.Thread | None = None

    def start(self, system: ActorSystem, adapter: ChatAdapter, name: str) -> None:
        self.thread = threading.Thread(
            target=self._engine, args=(system, adapter), name=name, daemon=True
        )
        self.thread.start()

    def _run_item(self, item: tuple[int, Any] | _Tick) -> Any:
        if isinstance(item, _Tick):
            self.feed.wait_for_work()
            return None
        return self.fn(item[1])

    def _engine(self, system: ActorSystem, adapter: ChatAdapter) -> None:
        try:
            with system, context(adapter=adapter):
                outcomes = self.executor.iter_outcomes(self._run_item, self.feed)
                for outcome in outcomes:
                    self._emit(outcome)
        except BaseException as exc:  # reported to the driver, which fails this run's items
            with self._changed:
                self._error = f"{type(exc).__name__}: {exc}"
        finally:
            with self._changed:
                self._finished = True
                self._changed.notify_all()

    def _emit(self, outcome: Outcome[Any, Any]) -> None:
        if isinstance(outcome.item, _Tick):
            return
        index = outcome.item[0]
        failure = None if outcome.failure is None else outcome.failure._replace(index=index)
        with self._changed:
            self._outbox.append((index, outcome.value, failure))
            self._changed.notify_all()

    def take(self, wait: float, batch: int) -> bytes:
        """Every finished row, and the run's error if any: waits up to ``wait`` for one,
        then up to :data:`_LINGER` for ``batch`` of them (fewer, larger replies)."""
        with self._changed:
            self._changed.wait_for(lambda: bool(self._outbox) or self._finished, wait)
            self._changed.wait_for(lambda: len(self._outbox) >= batch or self._finished, _LINGER)
            rows = list(self._outbox)
            self._outbox.clear()
            error = self._error
        return self._pack(rows, error)

    def _pack(self, rows: list[Row], error: str | None) -> bytes:
        try:
            return dumps((rows, error), ship_api_keys=self.ship_api_keys)
        except Exception:
            return dumps(([self._sendable(row) for row in rows], error))

    def _sendable(self, row: Row) -> Row:
        """``row``, or a failure saying why its value or exception cannot be sent."""
        try:
            dumps(row, ship_api_keys=self.ship_api_keys)
        except Exception as exc:
            index, _, failure = row
            what = "failure" if failure is not None else "value"
            error = TypeError(f"the {what} of item {index} cannot be sent back from Ray: {exc}")
            return index, None, ExampleFailure.from_exception(index, error)
        return row


class EvalWorker:
    """The Ray actor (wrapped with ``ray.remote`` by the driver): a system and its runs."""

    def __init__(self, spec_blob: bytes) -> None:
        self._error: str | None = None
        self._system: ActorSystem | None = None
        self._adapter = ChatAdapter()
        self._runs: dict[str, _WorkerRun] = {}
        try:
            spec = loads(spec_blob)
            self._system = spec.build().start()
            self._adapter = spec.adapter
        except Exception as exc:
            self._error = f"{type(exc).__name__}: {exc}"

    def ready(self) -> tuple[int, str | None]:
        """This process's id, and why its system could not be built (None: it was)."""
        return os.getpid(), self._error

    def begin(self, run_id: str, fn_blob: bytes, settings: RunSettings) -> str | None:
        """Load a run's function and start its executor; the error text if it cannot."""
        if self._system is None:
            return self._error
        try:
            fn = loads(fn_blob)
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        run = _WorkerRun(fn, settings)
        self._runs[run_id] = run
        run.start(self._system, self._adapter, f"dspex-ray-run-{run_id}")
        return None

    def feed(self, run_id: str, items_blob: bytes) -> None:
        run = self._runs.get(run_id)
        if run is not None:  # else the run ended (the driver stopped early)
            run.feed.put(loads(items_blob))

    def take(self, run_id: str, wait: float, batch: int) -> bytes:
        """The run's finished rows; none once it ended (its last ``take`` may come late)."""
        run = self._runs.get(run_id)
        return run.take(wait, batch) if run is not None else dumps(([], None))

    def end(self, run_id: str) -> None:
        """Forget a run: its executor ends once its items (normally none) finish."""
        run = self._runs.pop(run_id, None)
        if run is not None:
            run.feed.close()

    def stop(self) -> None:
        """Stop the system (before the actor is killed)."""
        for run_id in list(self._runs):
            self.end(run_id)
        if self._system is not None:
            with contextlib.suppress(Exception):
                self._system.stop()
