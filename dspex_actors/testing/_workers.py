"""Threads for responders that may block, so they never stall the server's I/O thread.

The pool grows on demand: a job goes to an idle thread, or to a new one when none is
idle, so any number of responders may wait at once (tests park 64 of them on a barrier).
Threads stay for reuse until :meth:`WorkerPool.stop`.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable

__all__ = ["WorkerPool"]

logger = logging.getLogger(__name__)


class WorkerPool:
    """Runs jobs on daemon threads named ``<name>-<n>``; unbounded, reusing idle threads."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0
        self._threads: list[threading.Thread] = []
        self._ids = itertools.count(1)
        self._closed = False

    def submit(self, job: Callable[[], None]) -> bool:
        """Run ``job`` on a worker thread; False (not run) once stopped."""
        with self._lock:
            if self._closed:
                return False
            if self._idle:
                self._idle -= 1
                self._jobs.put(job)
                return True
            thread = threading.Thread(
                target=self._work, args=(job,), name=f"{self._name}-{next(self._ids)}", daemon=True
            )
            self._threads.append(thread)
            thread.start()  # under the lock: stop() never joins a thread not yet started
        return True

    def stop(self, timeout: float) -> list[threading.Thread]:
        """Let idle threads end, join all within ``timeout``; return those still running."""
        with self._lock:
            self._closed = True
            threads = list(self._threads)
            for _ in threads:
                self._jobs.put(None)
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return [thread for thread in threads if thread.is_alive()]

    def _work(self, job: Callable[[], None] | None) -> None:
        while job is not None:
            try:
                job()
            except Exception:
                logger.exception("a local LM server job failed")
            with self._lock:
                if self._closed:
                    return
                self._idle += 1
            job = self._jobs.get()
