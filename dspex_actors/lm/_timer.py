"""One thread that runs short callbacks at deadlines (retry backoffs, rate-limit refills).

The Client actor never sleeps: it asks the timer to wake it and carries on serving its
mailbox. The thread starts on first use and is joined by :meth:`Timer.stop`.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

__all__ = ["Timer"]

logger = logging.getLogger(__name__)


class Timer:
    """Run callbacks at monotonic deadlines on one worker thread."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopped = False

    def call_at(self, deadline: float, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the timer thread at ``deadline`` (``time.monotonic``)."""
        with self._cond:
            if self._stopped:
                return
            heapq.heappush(self._heap, (deadline, next(self._seq), callback))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped:
                    if self._heap:
                        delay = self._heap[0][0] - time.monotonic()
                        if delay <= 0:
                            break
                        self._cond.wait(delay)
                    else:
                        self._cond.wait()
                if self._stopped:
                    return
                _, _, callback = heapq.heappop(self._heap)
            try:
                callback()
            except Exception:
                logger.exception("timer callback failed in %s", self._name)

    def stop(self, timeout: float = 5.0) -> None:
        """Drop pending callbacks and join the thread."""
        with self._cond:
            self._stopped = True
            self._heap.clear()
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
