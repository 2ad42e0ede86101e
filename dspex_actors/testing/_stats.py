"""Counters the local server keeps, and the snapshot tests read."""

from __future__ import annotations

import hashlib
import re
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ServerStats", "StatsRecorder"]


SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "x-api-key", "api-key", "x-goog-api-key"}
)
"""Request headers that carry credentials: logged only as a fingerprint."""


def secret_fingerprint(value: str) -> str:
    """How a credential header's value appears in the server's stats: never the value,
    but enough for a test to check which credential was sent."""
    return "*** sha256:" + hashlib.sha256(value.encode("utf-8")).hexdigest()[:16]


_SECRET_NAME = re.compile(r"auth|key|token|secret|cookie|password|signature", re.I)
"""Any other header whose name says it carries a credential (``X-Custom-Api-Key``...)."""


def redact_headers(headers: dict[str, str]) -> dict[str, str]:
    """``headers`` with every credential replaced by its fingerprint."""
    return {
        name: secret_fingerprint(value)
        if name.lower() in SECRET_HEADERS or _SECRET_NAME.search(name)
        else value
        for name, value in headers.items()
    }


@dataclass(frozen=True)
class ServerStats:
    """A snapshot of the server's counters (the same shape in and out of process).

    ``requests_total`` counts chat requests of every protocol (faulted ones
    included); ``status_counts`` maps HTTP status → replies sent (a dropped connection
    has no status); ``in_flight`` counts requests received and not yet answered (a
    request leaves it just before its reply is written); ``faults`` maps a fault label
    (``http_429``, ``hang``, ``malformed_json``, ``no_choices``, ``drop``, ``stream_cut``)
    → times injected; ``requests`` holds the most recent parsed request bodies in arrival
    order, ``headers`` their headers.

    ``streams`` counts replies sent as an event stream (``"stream": true``; cut ones
    included). A stream's status and usage count when its first event is written; the
    request stays in ``in_flight`` until its last event is written (or the stream is
    cut, abandoned at stop, or found at its next event to have lost its client).
    """

    requests_total: int = 0
    status_counts: dict[int, int] = field(default_factory=dict)
    in_flight: int = 0
    max_in_flight: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    models_requests: int = 0
    streams: int = 0

    def status(self, code: int) -> int:
        """Replies sent with HTTP status ``code``."""
        return self.status_counts.get(code, 0)

    @property
    def last_request(self) -> dict[str, Any] | None:
        """The most recent request body, if any."""
        return self.requests[-1] if self.requests else None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (status codes become string keys)."""
        return {
            "requests_total": self.requests_total,
            "status_counts": {str(k): v for k, v in self.status_counts.items()},
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "faults": dict(self.faults),
            "requests": list(self.requests),
            "headers": list(self.headers),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "models_requests": self.models_requests,
            "streams": self.streams,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ServerStats:
        """Inverse of :meth:`to_dict`."""
        return cls(
            requests_total=int(data["requests_total"]),
            status_counts={int(k): int(v) for k, v in data["status_counts"].items()},
            in_flight=int(data["in_flight"]),
            max_in_flight=int(data["max_in_flight"]),
            faults={str(k): int(v) for k, v in data["faults"].items()},
            requests=list(data.get("requests", [])),
            headers=list(data.get("headers", [])),
            prompt_tokens=int(data.get("prompt_tokens", 0)),
            completion_tokens=int(data.get("completion_tokens", 0)),
            models_requests=int(data.get("models_requests", 0)),
            streams=int(data.get("streams", 0)),
        )


class StatsRecorder:
    """The live, thread-safe counters behind :class:`ServerStats`.

    Every change notifies :meth:`wait_for` callers; with none waiting (the usual case) a
    change costs one uncontended lock.
    """

    def __init__(self, max_logged_requests: int) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._waiters = 0
        self._max_logged = max_logged_requests
        self._reset_locked(in_flight=0)

    def _reset_locked(self, in_flight: int) -> None:
        self._requests_total = 0
        self._status: Counter[int] = Counter()
        self._in_flight = in_flight
        self._max_in_flight = in_flight
        self._faults: Counter[str] = Counter()
        self._log: deque[dict[str, Any]] = deque(maxlen=self._max_logged)
        self._headers: deque[dict[str, str]] = deque(maxlen=self._max_logged)
        self._prompt_tokens = 0
        self._completion_tokens = 0
        self._models_requests = 0
        self._streams = 0

    def _notify_locked(self) -> None:
        if self._waiters:
            self._changed.notify_all()

    def reset(self) -> None:
        """Zero every counter and clear the log; in-flight requests stay counted."""
        with self._lock:
            self._reset_locked(in_flight=self._in_flight)
            self._notify_locked()

    def _start_locked(self, body: dict[str, Any] | None, headers: dict[str, str]) -> None:
        self._requests_total += 1
        self._in_flight += 1
        self._max_in_flight = max(self._max_in_flight, self._in_flight)
        if body is not None:
            self._log.append(body)
            self._headers.append(redact_headers(headers))

    def _reply_locked(self, status: int, prompt_tokens: int, completion_tokens: int) -> None:
        self._in_flight -= 1
        self._status[status] += 1
        self._prompt_tokens += prompt_tokens
        self._completion_tokens += completion_tokens

    def chat_started(self, body: dict[str, Any] | None, headers: dict[str, str]) -> None:
        """A chat request arrived (``body`` None when it was not valid JSON)."""
        with self._lock:
            self._start_locked(body, headers)
            self._notify_locked()

    def chat_answered(
        self,
        body: dict[str, Any] | None,
        headers: dict[str, str],
        status: int,
        prompt_tokens: int,
        completion_tokens: int,
    ) -> None:
        """A chat request arrived and its reply is about to be written at once.

        :meth:`chat_started` and :meth:`chats_replied` in one update: counted before the
        bytes leave, so a client that reads the stats right after its call never sees its
        own request in flight.
        """
        with self._lock:
            self._start_locked(body, headers)
            self._reply_locked(status, prompt_tokens, completion_tokens)
            self._notify_locked()

    def chats_replied(self, replies: Iterable[tuple[int, int, int]]) -> None:
        """Replies about to be written: ``(status, prompt_tokens, completion_tokens)`` each."""
        with self._lock:
            for status, prompt_tokens, completion_tokens in replies:
                self._reply_locked(status, prompt_tokens, completion_tokens)
            self._notify_locked()

    def stream_started(self, prompt_tokens: int, completion_tokens: int) -> None:
        """A ``200`` event stream's first event is about to be written.

        Counts the status and usage now; the request stays in flight until
        :meth:`chats_finished` once the stream ends.
        """
        with self._lock:
            self._streams += 1
            self._reply_locked(200, prompt_tokens, completion_tokens)
            self._in_flight += 1  # still being answered
            self._notify_locked()

    def chats_finished(self, count: int = 1) -> None:
        """Requests leaving ``in_flight`` with nothing more to write.

        Dropped, abandoned at stop (held or mid-stream), or streams that ended.
        """
        with self._lock:
            self._in_flight -= count
            self._notify_locked()

    def fault(self, label: str) -> None:
        """A fault was injected."""
        with self._lock:
            self._faults[label] += 1
            self._notify_locked()

    def models_request(self) -> None:
        """``GET /v1/models`` was served."""
        with self._lock:
            self._models_requests += 1
            self._notify_locked()

    def snapshot(self, *, include_requests: bool = True) -> ServerStats:
        """A consistent copy of every counter."""
        with self._lock:
            return self._snapshot_locked(include_requests)

    def wait_for(self, predicate: Callable[[ServerStats], bool], timeout: float) -> ServerStats:
        """Block until ``predicate(stats)`` holds, checked on every change.

        Raises TimeoutError after ``timeout`` seconds. Tests wait on this instead of
        polling the counters.
        """
        with self._lock:
            self._waiters += 1
            try:
                reached = self._changed.wait_for(
                    lambda: predicate(self._snapshot_locked(include_requests=False)), timeout
                )
            finally:
                self._waiters -= 1
            if not reached:
                raise TimeoutError(f"server stats did not reach the condition in {timeout:g}s")
            return self._snapshot_locked(include_requests=True)

    def _snapshot_locked(self, include_requests: bool) -> ServerStats:
        return ServerStats(
            requests_total=self._requests_total,
            status_counts=dict(self._status),
            in_flight=self._in_flight,
            max_in_flight=self._max_in_flight,
            faults=dict(self._faults),
            requests=list(self._log) if include_requests else [],
            headers=list(self._headers) if include_requests else [],
            prompt_tokens=self._prompt_tokens,
            completion_tokens=self._completion_tokens,
            models_requests=self._models_requests,
            streams=self._streams,
        )
