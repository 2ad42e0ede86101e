"""RayExecutor: :class:`ParallelExecutor`'s contract, with the items run by Ray workers.

The driver (the thread calling :meth:`RayExecutor.run`) pickles the function once
(program and metric inside it; LMs without their keys, see ``_ray_ship``), hands it to
every worker of the backend's pool, then feeds each worker batches of ``(index, item)``
while it has fewer than ``2 x`` its share of ``num_threads`` in flight, and collects
finished rows with one outstanding ``take`` per worker. Both go in batches (a feed
refills at least half a share, a take lingers briefly for a quarter of one): each Ray
call costs the driver about half a millisecond of CPU. The LM calls are made by the
workers' own ActorSystems; nothing of them passes through the driver.

Same guarantees as a local run: one :class:`Outcome` per item in input order (the
driver's own item objects), per-item ``timeout`` (applied in the worker) recorded as
:class:`ExampleTimeoutError`, ``max_errors`` raises :class:`EvaluationAborted` and Ctrl-C
:class:`EvaluationInterrupted` (a ``KeyboardInterrupt``), with the finished outcomes;
progress is called on the driver's thread. A worker process that dies fails the items it
held (recorded, never dropped); the others carry on. Items still running when a run stops
early are abandoned by killing their worker (a new one starts with the next run), so no
LM call outlives an aborted run.

The items are pulled from the iterable by a feeder thread, so an iterable that waits for
results (BootstrapFewShot's look-ahead) never blocks the collection of those results.
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sized
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, Final, Generic, TypeVar

import ray
from ray.exceptions import GetTimeoutError, RayError

from dspex_actors._errors import (
    ConfigurationError,
    EvaluationAborted,
    EvaluationError,
    EvaluationInterrupted,
)
from dspex_actors.evaluate._backend import RayBackend
from dspex_actors.evaluate._executor import Outcome, ParallelExecutor, Progress, check_call
from dspex_actors.evaluate._ray_ship import dumps, fingerprint, loads, system_spec
from dspex_actors.evaluate._ray_worker import EvalWorker, RunSettings
from dspex_actors.evaluate._worker import ExampleFailure

__all__ = ["RayExecutor"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

_RemoteWorker: Any = ray.remote(EvalWorker)

_START_TIMEOUT: Final = 180.0
"""How long the workers get to start (a cold worker imports the library, then starts)."""
_TAKE_WAIT: Final = 0.2
"""How long a worker holds a ``take`` open waiting for a finished item."""
_WAKE: Final = 0.1
"""Longest the driver waits without checking for Ctrl-C and deadlines."""
_SILENCE: Final = 60.0
"""A worker that leaves a ``take`` unanswered this long (past the run's timeout) is dead."""
_CALL_TIMEOUT: Final = 30.0
_END = object()
_run_ids = itertools.count(1)


@dataclass
class _Pool:
    """A backend's worker processes, for one system configuration in one Ray session.

    ``members``: (actor, pid) of the live ones; a worker lost in a run is dropped, and
    the next run starts a replacement, back to ``size``.
    """

    key: tuple[str, str]
    size: int
    members: list[tuple[Any, int]]

    @property
    def pids(self) -> list[int]:
        return [pid for _, pid in self.members]

    def drop(self, actor: Any) -> None:
        self.members = [(a, pid) for a, pid in self.members if a is not actor]

    def close(self) -> None:
        for actor, _ in self.members:
            with contextlib.suppress(RayError, ValueError):
                ray.get(actor.stop.remote(), timeout=_CALL_TIMEOUT)
            with contextlib.suppress(RayError, ValueError):
                ray.kill(actor)
        self.members = []


def _ensure_ray(backend: RayBackend) -> None:
    if not ray.is_initialized():
        options: dict[str, Any] = {"include_dashboard": False, **backend.init_options}
        logger.info("starting a local Ray instance for backend='ray'")
        ray.init(**options)


def _start_workers(backend: RayBackend, spec_blob: bytes, count: int) -> list[tuple[Any, int]]:
    """``count`` new workers, each with its ActorSystem started; (actor, pid) each."""
    actors = [
        _RemoteWorker.options(num_cpus=backend.num_cpus, max_concurrency=8).remote(spec_blob)
        for _ in range(count)
    ]
    try:
        answers = ray.get([actor.ready.remote() for actor in actors], timeout=_START_TIMEOUT)
    except (GetTimeoutError, RayError) as exc:
        for actor in actors:
            ray.kill(actor)
        raise EvaluationError(
            f"{count} Ray workers did not start within {_START_TIMEOUT:g} s "
            f"(cluster resources: {ray.cluster_resources()}): {exc}"
        ) from None
    errors = [error for _, error in answers if error is not None]
    if errors:
        for actor in actors:
            ray.kill(actor)
        raise ConfigurationError(f"a Ray worker could not build its ActorSystem: {errors[0]}")
    members = [(actor, pid) for actor, (pid, _) in zip(actors, answers, strict=True)]
    logger.info("started %d Ray workers (pids %s)", count, [pid for _, pid in members])
    return members


def _pool(backend: RayBackend, spec_blob: bytes) -> _Pool:
    """The backend's workers for this configuration: started, or topped up, as needed."""
    key = (fingerprint(spec_blob), ray.get_runtime_context().get_job_id())
    with backend.lock:
        pool: _Pool | None = backend.pool
        if pool is not None and pool.key != key:
            backend.pool = None
    if pool is not None and pool.key != key:
        pool.close()
        pool = None
    if pool is None:
        count = backend.num_workers
        if count is None:
            count = max(1, int(ray.cluster_resources().get("CPU", 1)))
        pool = _Pool(key, count, _start_workers(backend, spec_blob, count))
        with backend.lock:
            backend.pool = pool
    elif len(pool.members) < pool.size:
        pool.members += _start_workers(backend, spec_blob, pool.size - len(pool.members))
    return pool


def _ship(fn: Any, parts: Mapping[str, object], ship_api_keys: bool) -> bytes:
    """Pickle the run's function; a clear error naming the part that cannot be pickled."""
    try:
        return dumps(fn, ship_api_keys=ship_api_keys)
    except ConfigurationError:
        raise
    except Exception as exc:
        culprit = "the function"
        for name, part in parts.items():
            try:
                dumps(part, ship_api_keys=ship_api_keys)
            except Exception:
                culprit = f"the {name} {part!r}"
                break
        raise ConfigurationError(
            f"backend='ray' sends the work to Ray workers by pickling it (cloudpickle), and "
            f"{culprit} cannot be pickled: {type(exc).__name__}: {exc}. Keep locks, open "
            "files, sockets and running systems out of the program and metric"
        ) from exc


class RayExecutor:
    """Run ``fn(item)`` for every item on a :class:`RayBackend`'s workers (see the module),
    with a :class:`ParallelExecutor`'s settings (``num_threads``, ``timeout``, ...)."""

    def __init__(self, settings: ParallelExecutor, backend: RayBackend) -> None:
        self.settings = settings
        self.backend = backend

    def __repr__(self) -> str:
        return f"RayExecutor({self.settings!r}, backend={self.backend!r})"

    def run(
        self,
        fn: Callable[[T], R],
        items: Iterable[T],
        *,
        parts: Mapping[str, object] | None = None,
    ) -> list[Outcome[T, R]]:
        """One :class:`Outcome` per item, in input order; :class:`EvaluationAborted` (with
        the finished outcomes) on ``max_errors``, Ctrl-C or a failing iterable.

        ``parts`` names what ``fn`` carries (``{"program": ..., "metric": ...}``), only to
        say which of them cannot be pickled.
        """
        check_call(fn, items)
        ship = self.backend.ship_api_keys
        fn_blob = _ship(fn, parts or {}, ship)
        spec_blob = dumps(system_spec(self.backend.redis_url), ship_api_keys=ship)
        _ensure_ray(self.backend)
        pool = _pool(self.backend, spec_blob)
        run: _Run[T, R] = _Run(self, pool, fn_blob, items)
        try:
            run.start()
            run.loop()
        except KeyboardInterrupt as exc:
            msg = f"interrupted after {len(run.collected)} finished items"
            raise EvaluationInterrupted(msg, result=run.ordered()) from exc
        except EvaluationAborted as exc:
            exc.result = run.ordered()
            raise
        finally:
            run.close()
        return run.ordered()


@dataclass(eq=False)
class _Lane:
    """One worker in one run: what it holds and its outstanding ``take``."""

    actor: Any
    pid: int
    threads: int
    held: dict[int, Any] = field(default_factory=dict)
    take: Any = None
    asked_at: float = 0.0


class _Run(Generic[T, R]):
    """The state of one Ray run; lives on the driver's thread (the feeder aside)."""

    def __init__(
        self, ray_executor: RayExecutor, pool: _Pool, fn_blob: bytes, items: Iterable[T]
    ) -> None:
        self.backend = ray_executor.backend
        self.ex = ex = ray_executor.settings
        self.pool = pool
        self.fn_blob = fn_blob
        self.items = items
        self.total = len(items) if isinstance(items, Sized) else None
        self.run_id = f"{os.getpid()}-{next(_run_ids)}"
        count = min(len(pool.members), ex.num_threads)
        share, extra = divmod(ex.num_threads, count)
        self.lanes = [
            _Lane(actor, pid, share + (1 if n < extra else 0))
            for n, (actor, pid) in enumerate(pool.members[:count])
        ]
        self.collected: list[Outcome[Any, Any]] = []
        self.failures = 0
        self.stopping: str | None = None
        self.stop_deadline: float | None = None
        capacity = sum(2 * lane.threads for lane in self.lanes)
        self.inbox: queue.Queue[Any] = queue.Queue(maxsize=capacity)
        self.exhausted = False
        self.source_error: BaseException | None = None
        self.halt = threading.Event()
        self.feeder: threading.Thread | None = None

    def ordered(self) -> list[Outcome[Any, Any]]:
        return sorted(self.collected, key=attrgetter("index"))

    # -- start and stop ---------------------------------------------------------------

    def start(self) -> None:
        fn_ref = ray.put(self.fn_blob)
        ex = self.ex
        calls = [
            lane.actor.begin.remote(
                self.run_id,
                fn_ref,
                RunSettings(
                    lane.threads, ex.timeout, ex.provide_traceback, self.backend.ship_api_keys
                ),
            )
            for lane in self.lanes
        ]
        errors = []
        for lane, call in zip(list(self.lanes), calls, strict=True):
            try:
                error = ray.get(call, timeout=_START_TIMEOUT)
            except (GetTimeoutError, RayError) as exc:  # gone since the last run: replaced next
                self._lost(lane, f"could not start the run ({type(exc).__name__})")
                ray.kill(lane.actor)
                continue
            if error is not None:
                errors.append(error)
        if not self.lanes:
            raise EvaluationError("no Ray worker could start the run (see the log)")
        if errors:
            raise ConfigurationError(
                f"the Ray workers could not load the program and metric: {errors[0]} "
                "(every module they use must be importable in the workers)"
            )
        context = contextvars.copy_context()
        self.feeder = threading.Thread(
            target=context.run, args=(self._feed,), name=f"dspex-ray-feeder-{self.run_id}"
        )
        self.feeder.daemon = True
        self.feeder.start()
        for lane in self.lanes:
            self._ask(lane)

    def close(self) -> None:
        """Stop the feeder; end the run in idle workers, kill the ones still holding items."""
        self.halt.set()
        with_items = [lane for lane in self.lanes if lane.held]
        for lane in self.lanes:
            if not lane.held:
                lane.actor.end.remote(self.run_id)
        if with_items:
            logger.info(
                "Ray run %s stopped with %d items in flight: killing %d workers",
                self.run_id,
                sum(len(lane.held) for lane in with_items),
                len(with_items),
            )
            for lane in with_items:
                ray.kill(lane.actor)
                self.pool.drop(lane.actor)
        if self.feeder is not None:
            self.feeder.join(_CALL_TIMEOUT)

    # -- the feeder thread ------------------------------------------------------------

    def _feed(self) -> None:
        try:
            for entry in enumerate(self.items):
                if not self._offer(entry):
                    return
        except Exception as exc:  # the caller's iterable failed: stop, keep what finished
            self.source_error = exc
        self._offer(_END)

    def _offer(self, entry: Any) -> bool:
        while not self.halt.is_set():
            try:
                self.inbox.put(entry, timeout=_WAKE)
            except queue.Full:
                continue
            return True
        return False

    # -- the driver loop --------------------------------------------------------------

    def loop(self) -> None:
        while True:
            self._dispatch()
            busy = any(lane.held for lane in self.lanes)
            if not busy and (self.exhausted or self.stopping is not None):
                break
            if not self.lanes:
                self._begin_stop("every Ray worker died")
                break
            self._collect()
            if self.stop_deadline is not None and time.monotonic() >= self.stop_deadline:
                break
        if self.stopping is not None:
            msg = f"{self.stopping}; {len(self.collected)} items finished, {self.failures} failed"
            raise EvaluationAborted(msg) from self.source_error

    def _dispatch(self) -> None:
        """Send waiting items to the workers with room, a batch per worker."""
        batches: dict[int, list[tuple[int, Any]]] = {}
        while self.stopping is None and not self.exhausted and self.lanes:
            lane = max(self.lanes, key=lambda w: 2 * w.threads - len(w.held))
            room = 2 * lane.threads - len(lane.held)
            if room <= 0 or (id(lane) not in batches and room < (lane.threads + 1) // 2):
                break  # refill in batches of at least half a share: fewer, larger calls
            try:
                entry = self.inbox.get_nowait()
            except queue.Empty:
                break
            if entry is _END:
                self.exhausted = True
                if self.source_error is not None:
                    error = self.source_error
                    self._begin_stop(f"the items iterable raised {type(error).__name__}: {error}")
                break
            index, item = entry
            lane.held[index] = item
            batches.setdefault(id(lane), []).append((index, item))
        for lane in self.lanes:
            batch = batches.get(id(lane))
            if batch:
                blob = dumps(batch, ship_api_keys=self.backend.ship_api_keys)
                lane.actor.feed.remote(self.run_id, blob)

    def _ask(self, lane: _Lane) -> None:
        lane.take = lane.actor.take.remote(self.run_id, _TAKE_WAIT, max(1, lane.threads // 4))
        lane.asked_at = time.monotonic()

    def _collect(self) -> None:
        """Wait (bounded) for finished rows; record them; notice dead workers."""
        refs = [lane.take for lane in self.lanes]
        ready, waiting = ray.wait(refs, num_returns=1, timeout=_WAKE)
        if ready and waiting:
            more, _ = ray.wait(waiting, num_returns=len(waiting), timeout=0)
            ready += more
        done = set(ready)
        for lane in list(self.lanes):
            if lane.take in done:
                self._answered(lane)
            elif time.monotonic() - lane.asked_at > _SILENCE + (self.ex.timeout or 0.0):
                self._lost(lane, f"did not answer for {_SILENCE:g} s")
                ray.kill(lane.actor)

    def _answered(self, lane: _Lane) -> None:
        try:
            rows, error = loads(ray.get(lane.take))
        except RayError as exc:
            self._lost(lane, f"died ({type(exc).__name__})")
            return
        for index, value, failure in rows:
            item = lane.held.pop(index)
            self._report(Outcome(index, item, value, failure))
        if error is not None:
            self._lost(lane, f"stopped running items ({error})")
            ray.kill(lane.actor)
            return
        self._ask(lane)

    def _lost(self, lane: _Lane, how: str) -> None:
        """A worker is gone: each item it held is a failure (started or not, it is unknown)."""
        self.lanes.remove(lane)
        self.pool.drop(lane.actor)
        logger.warning("Ray worker pid %d %s; %d items failed", lane.pid, how, len(lane.held))
        for index, item in sorted(lane.held.items()):
            error = EvaluationError(f"the Ray worker (pid {lane.pid}) running item {index} {how}")
            self._report(Outcome(index, item, None, ExampleFailure.from_exception(index, error)))
        lane.held.clear()

    def _report(self, outcome: Outcome[Any, Any]) -> None:
        self.collected.append(outcome)
        if outcome.failure is not None:
            self.failures += 1
            max_errors = self.ex.max_errors
            if max_errors is not None and self.failures > max_errors and self.stopping is None:
                self._begin_stop(f"more than max_errors={max_errors} items failed")
        if self.ex.progress is not None:
            self.ex.progress(Progress(len(self.collected), self.total, self.failures, outcome))

    def _begin_stop(self, reason: str) -> None:
        if self.stopping is None:
            self.stopping = reason
            self.stop_deadline = time.monotonic() + self.ex.abort_grace
        self.halt.set()
