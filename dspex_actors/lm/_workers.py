"""A small thread pool for HTTP attempts whose threads may be daemon threads.

``concurrent.futures.ThreadPoolExecutor`` threads are non-daemon and refuse work once
interpreter shutdown has begun; an ActorSystem's threads are daemon threads so a script
never hangs at exit (its atexit hook stops the system cleanly instead). Threads start
lazily, only when no idle one is available, up to ``max_workers``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["WorkerPool"]

logger = logging.getLogger(__name__)

_Job = tuple[Callable[..., None], tuple[Any, ...]] | None


class WorkerPool:
    """Run ``fn(*args)`` jobs on up to ``max_workers`` threads."""

    def __init__(self, name: str, max_workers: int, *, daemon: bool) -> None:
        self._name = name
        self._max_workers = max_workers
        self._daemon = daemon
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._closed = False

    def submit(self, fn: Callable[..., None], *args: Any) -> None:
        """Queue a job; RuntimeError once the pool is shut down."""
        with self._lock:
            if self._closed:
                raise RuntimeError(f"worker pool {self._name} is shut down")
            self._jobs.put((fn, args))
            if self._idle.acquire(blocking=False):
                return
            if len(self._threads) < self._max_workers:
                thread = threading.Thread(
                    target=self._work,
                    name=f"{self._name}-{len(self._threads) + 1}",
                    daemon=self._daemon,
                )
                self._threads.append(thread)
                thread.start()

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            fn, args = job
            try:
                fn(*args)
            except Exception:
                logger.exception("job failed in worker pool %s", self._name)
            self._idle.release()

    def shutdown(self, timeout: float = 0.0) -> None:
        """Drop queued jobs, let running ones finish, stop the threads.

        Waits up to ``timeout`` seconds in total for the threads to end.
        """
        with self._lock:
            self._closed = True
            threads = list(self._threads)
        while True:
            try:
                self._jobs.get_nowait()
            except queue.Empty:
                break
        for _ in threads:
            self._jobs.put(None)
        deadline = time.monotonic() + timeout
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))
