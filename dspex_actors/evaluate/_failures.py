"""Failures made visible while an evaluation runs: logged by kind, and a dead endpoint
detected early.

A failed example used to be seen only in ``result.failures``: a dead endpoint or a
buggy metric gave ``score=0.0`` and logged nothing. :class:`FailureWatch` is given every
outcome (on the executor's coordinating thread or loop); it logs one WARNING the first
time a kind of failure is seen (with its message), then at most one per kind every
:data:`LOG_INTERVAL` seconds with the running count, and stops the run when the first
:data:`DEAD_AFTER` examples all failed with the same LM error.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Final

from dspex_actors._errors import CircuitOpenError, LMError, LMHTTPStatusError
from dspex_actors.evaluate._executor import Progress
from dspex_actors.evaluate._worker import ExampleFailure

__all__ = ["DEAD_AFTER", "FailureWatch", "failure_kind", "kinds_of"]

logger = logging.getLogger("dspex_actors.evaluate")

LOG_INTERVAL: Final = 10.0
"""Seconds between two WARNINGs about the same kind of failure."""

DEAD_AFTER: Final = 20
"""When this many first examples all failed with the same LM error, the run stops."""


def failure_kind(failure: ExampleFailure) -> str:
    """The kind of a failure: its error type, with the HTTP status for a status error."""
    exc = failure.exception
    if isinstance(exc, LMHTTPStatusError):
        return f"{failure.error_type} {exc.status_code}"
    return failure.error_type


def kinds_of(failures: Iterable[ExampleFailure]) -> list[tuple[str, int, ExampleFailure]]:
    """``(kind, count, first failure by index)`` per kind, the most frequent first."""
    counts: Counter[str] = Counter()
    first: dict[str, ExampleFailure] = {}
    for failure in sorted(failures, key=lambda f: f.index):
        kind = failure_kind(failure)
        counts[kind] += 1
        first.setdefault(kind, failure)
    return [(kind, count, first[kind]) for kind, count in counts.most_common()]


def _first_line(text: str) -> str:
    return text.splitlines()[0] if text else ""


class FailureWatch:
    """The ``stop_when`` of an Evaluate run: logs failures by kind, spots a dead endpoint.

    Called from one thread at a time (the executor's coordinator, or the event loop).
    """

    def __init__(
        self,
        *,
        interval: float = LOG_INTERVAL,
        dead_after: int = DEAD_AFTER,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._interval = interval
        self._dead_after = dead_after
        self._clock = clock
        self._counts: Counter[str] = Counter()
        self._logged: dict[str, tuple[float, int]] = {}
        self._first: dict[str, ExampleFailure] = {}
        self._all_failed = True
        self._first_lm_kind: str | None = None
        self._same_lm_error = True

    def __call__(self, progress: Progress) -> str | None:
        failure = progress.outcome.failure
        if failure is None:
            self._all_failed = False
            return None
        kind = failure_kind(failure)
        self._counts[kind] += 1
        self._first.setdefault(kind, failure)
        self._log(kind, failure)
        return self._dead_endpoint(progress.done, kind, failure)

    def _log(self, kind: str, failure: ExampleFailure) -> None:
        now = self._clock()
        count = self._counts[kind]
        last = self._logged.get(kind)
        if last is None:
            logger.warning(
                "example #%d failed: %s: %s", failure.index, kind, _first_line(failure.message)
            )
            self._logged[kind] = (now, count)
        elif now - last[0] >= self._interval:
            logger.warning(
                "%d examples failed with %s so far; the first: %s",
                count,
                kind,
                _first_line(self._first[kind].message),
            )
            self._logged[kind] = (now, count)

    def _dead_endpoint(self, done: int, kind: str, failure: ExampleFailure) -> str | None:
        """A reason to stop when the first ``dead_after`` examples all failed alike."""
        if not self._all_failed or done > self._dead_after or not self._same_lm_error:
            return None
        exc = failure.exception
        if not isinstance(exc, LMError):
            self._same_lm_error = False
            return None
        if not isinstance(exc, CircuitOpenError):  # an open circuit follows the real error
            if self._first_lm_kind is None:
                self._first_lm_kind = kind
            elif kind != self._first_lm_kind:
                self._same_lm_error = False
                return None
        if done < self._dead_after:
            return None
        shown = self._first_lm_kind or kind
        first = self._first[shown]
        return (
            f"the first {done} examples all failed with {shown} ({_first_line(first.message)}); "
            "stopped instead of running the rest against an LM that does not answer"
        )

    def log_totals(self) -> None:
        """At the end of a run: one WARNING per kind with failures not yet counted in a log."""
        for kind, count in self._counts.items():
            _, logged = self._logged.get(kind, (0.0, 0))
            if count > logged:
                logger.warning(
                    "%d examples failed with %s; the first: %s",
                    count,
                    kind,
                    _first_line(self._first[kind].message),
                )
