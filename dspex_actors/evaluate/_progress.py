"""A tqdm progress bar driven by :class:`ParallelExecutor` progress updates.

tqdm's ``update()`` is not documented as thread-safe; the executor calls progress
callbacks only from its coordinating thread, so the bar is touched by one thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import TracebackType
from typing import IO, Any

import tqdm

from dspex_actors.evaluate._executor import Progress

__all__ = ["TqdmProgress"]

logger = logging.getLogger(__name__)


class _Bar(tqdm.tqdm):  # type: ignore[type-arg]
    """tqdm without its monitor thread (a process-lifetime thread we do not need)."""

    monitor_interval = 0


class TqdmProgress:
    """Progress callback showing done/total and failures, plus an optional description.

    ``describe(progress)`` returns the bar's description (e.g. a running score); it is
    refreshed at tqdm's own rate, not on every item. Use as a context manager (or call
    :meth:`close`) so the bar is finished on every exit path.
    """

    def __init__(
        self,
        *,
        total: int | None = None,
        desc: str = "",
        describe: Callable[[Progress], str] | None = None,
        file: IO[str] | None = None,
        disable: bool = False,
        **tqdm_kwargs: Any,
    ) -> None:
        self._describe = describe
        self._failures = 0
        self._bar: tqdm.tqdm[Any] = _Bar(
            total=total, desc=desc, file=file, disable=disable, dynamic_ncols=True, **tqdm_kwargs
        )

    def __call__(self, progress: Progress) -> None:
        bar = self._bar
        if self._describe is not None:
            bar.set_description_str(self._describe(progress), refresh=False)
        if progress.failures != self._failures:
            self._failures = progress.failures
            bar.set_postfix_str(f"failures={progress.failures}", refresh=False)
        bar.update(1)

    def close(self) -> None:
        """Draw the final state and release the bar."""
        self._bar.close()

    def __enter__(self) -> TqdmProgress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
