"""Faults the local server injects, and the plan (script + seeded rates) that picks them."""

from __future__ import annotations

import logging
import random
import threading
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast, get_args

__all__ = ["Fault", "FaultKind", "FaultPlan"]

logger = logging.getLogger(__name__)

FaultKind = Literal[
    "http_error", "hang", "malformed_json", "no_choices", "drop", "stream_cut", "blocked"
]
_KINDS: tuple[str, ...] = get_args(FaultKind)


@dataclass(frozen=True)
class Fault:
    """One injected misbehaviour for one chat-completions request.

    - ``http_error``: reply ``status`` (429/500/503/...) with an OpenAI-style error
      body, plus ``Retry-After: <retry_after>`` when ``retry_after`` is not None
      (an int prints as ``"1"``, a float as ``"0.2"``).
    - ``hang``: wait ``seconds`` (interrupted at once by server stop), then reply normally.
    - ``malformed_json``: a 200 whose body is truncated JSON.
    - ``no_choices``: a 200 JSON body without ``choices``.
    - ``drop``: close the connection without any reply.
    - ``stream_cut``: a streamed reply stops half-way and the connection closes, without
      the end of the chunked body and without ``data: [DONE]`` (a dropped stream); a
      reply that is not streamed closes half-way through its body.
    - ``blocked``: a 200 saying the content was blocked: OpenAI ``finish_reason``
      ``content_filter`` with null content, an Anthropic ``refusal``, a Gemini
      ``promptFeedback.blockReason`` of ``SAFETY``; streamed too (no content deltas).

    On a streamed request (``"stream": true``) ``http_error`` still answers with a JSON
    error, ``hang`` delays the first event, ``malformed_json`` truncates the JSON of the
    first content event and ``no_choices`` leaves ``choices`` out of every event.

    Build them with the class methods: ``Fault.http(429, retry_after=1)``,
    ``Fault.hang(30)``, ``Fault.malformed_json()``, ``Fault.no_choices()``, ``Fault.drop()``,
    ``Fault.stream_cut()``, or ``Fault.parse("429")`` / ``"hang"`` / ``"drop"`` ...
    """

    kind: FaultKind
    status: int = 500
    retry_after: float | None = None
    seconds: float = 30.0

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; known: {', '.join(_KINDS)}")
        if self.kind == "http_error" and not 400 <= self.status <= 599:
            raise ValueError(f"Fault.http: status must be 4xx or 5xx, got {self.status}")
        if self.retry_after is not None and self.retry_after < 0:
            raise ValueError(f"Fault: retry_after must be >= 0, got {self.retry_after}")
        if self.seconds < 0:
            raise ValueError(f"Fault: seconds must be >= 0, got {self.seconds}")

    @classmethod
    def http(cls, status: int = 500, *, retry_after: float | None = None) -> Fault:
        """An HTTP error reply, optionally with ``Retry-After`` seconds."""
        return cls("http_error", status=status, retry_after=retry_after)

    @classmethod
    def hang(cls, seconds: float = 30.0) -> Fault:
        """Hold the request ``seconds`` before replying (past a client's timeout)."""
        return cls("hang", seconds=seconds)

    @classmethod
    def malformed_json(cls) -> Fault:
        """A 200 reply whose body is not valid JSON."""
        return cls("malformed_json")

    @classmethod
    def no_choices(cls) -> Fault:
        """A 200 JSON reply without ``choices``."""
        return cls("no_choices")

    @classmethod
    def drop(cls) -> Fault:
        """Close the connection without replying."""
        return cls("drop")

    @classmethod
    def stream_cut(cls) -> Fault:
        """Stop the reply half-way and close the connection (no ``[DONE]``)."""
        return cls("stream_cut")

    @classmethod
    def blocked(cls) -> Fault:
        """A 200 reply saying the content was blocked (a safety filter or a refusal)."""
        return cls("blocked")

    @classmethod
    def parse(cls, spec: str) -> Fault:
        """``"429"``/``"500"``/``"503"`` (any status), or a kind name such as ``"hang"``."""
        if spec.isdigit():
            return cls.http(int(spec))
        if spec in _KINDS and spec != "http_error":
            return cls(cast(FaultKind, spec))
        raise ValueError(f"cannot parse fault {spec!r}: use a status like '503' or one of {_KINDS}")

    @property
    def label(self) -> str:
        """Counter name: ``http_429``, or the kind (``hang``, ``drop``, ``stream_cut``, ...)."""
        return f"http_{self.status}" if self.kind == "http_error" else self.kind

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form, for the control endpoints."""
        return {
            "kind": self.kind,
            "status": self.status,
            "retry_after": self.retry_after,
            "seconds": self.seconds,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fault:
        """Inverse of :meth:`to_dict` (missing keys take their defaults)."""
        unknown = set(data) - {"kind", "status", "retry_after", "seconds"}
        if unknown:
            raise ValueError(f"unknown fault keys: {sorted(unknown)}")
        retry_after = data.get("retry_after")
        return cls(
            kind=data["kind"],
            status=int(data.get("status", 500)),
            retry_after=None if retry_after is None else float(retry_after),
            seconds=float(data.get("seconds", 30.0)),
        )


FaultRates = Mapping[Fault, float] | Sequence[tuple[Fault, float]]


class FaultPlan:
    """Chooses the fault (or None) for each request: the script first, then the rates.

    The script is a queue of the next K outcomes (``None`` = answer normally). Rates
    draw one seeded uniform number per request and walk the cumulative probabilities.
    Thread-safe.
    """

    def __init__(self, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._script: deque[Fault | None] = deque()
        self._rates: list[tuple[Fault, float]] = []
        self._rng = random.Random(seed)

    def push(self, faults: Iterable[Fault | None]) -> None:
        """Append outcomes to the script."""
        items = list(faults)
        for item in items:
            if item is not None and not isinstance(item, Fault):
                raise TypeError(f"script entries must be Fault or None, got {type(item).__name__}")
        with self._lock:
            self._script.extend(items)

    def set_rates(self, rates: FaultRates, *, seed: int | None = None) -> None:
        """Replace the rates (an empty value clears them); ``seed`` reseeds the draw."""
        pairs = list(rates.items()) if isinstance(rates, Mapping) else list(rates)
        total = 0.0
        for fault, probability in pairs:
            if not isinstance(fault, Fault):
                raise TypeError(f"fault rates need Fault keys, got {type(fault).__name__}")
            if not 0.0 <= probability <= 1.0:
                raise ValueError(
                    f"fault rate for {fault.label} must be in [0, 1], got {probability}"
                )
            total += probability
        if total > 1.0 + 1e-9:
            raise ValueError(f"fault rates add up to {total:.3f} > 1")
        with self._lock:
            self._rates = pairs
            if seed is not None:
                self._rng.seed(seed)

    def clear(self) -> None:
        """Drop the script and the rates."""
        with self._lock:
            self._script.clear()
            self._rates = []

    @property
    def pending(self) -> int:
        """Script entries not yet used."""
        with self._lock:
            return len(self._script)

    def next_fault(self) -> Fault | None:
        """The outcome for the next request."""
        if not self._script and not self._rates:
            return None  # no lock needed to see that nothing is planned
        with self._lock:
            if self._script:
                return self._script.popleft()
            if not self._rates:
                return None
            draw = self._rng.random()
            for fault, probability in self._rates:
                if draw < probability:
                    return fault
                draw -= probability
            return None


class ErrorReply(Exception):
    """Raised by a responder to answer one request with an HTTP error status (a fault that
    depends on the request: ``429`` for one API key only, say). ``retry_after`` adds the
    ``Retry-After`` header."""

    def __init__(self, status: int, message: str = "", *, retry_after: float | None = None):
        super().__init__(message or f"HTTP {status}")
        self.status = status
        self.message = message or f"HTTP {status}"
        self.retry_after = retry_after
