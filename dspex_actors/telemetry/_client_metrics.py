"""The Client actor's metrics: attempts in flight, calls queued, retries (OpenTelemetry).

The Client reports its counts after each batch of bookkeeping; the up-down counters get
the differences, so they always equal the actor's own numbers. Without the API installed
nothing is done.
"""

from __future__ import annotations

from typing import Any

from dspex_actors.telemetry._otel import Instruments, instruments
from dspex_actors.telemetry._spans import server_attributes

__all__ = ["ClientGauges"]


class ClientGauges:
    """One Client actor's in-flight and queued counts and its retries (its thread only)."""

    def __init__(self, lm: Any) -> None:
        self._instruments: Instruments | None = instruments()
        self._attributes = (
            {"gen_ai.request.model": lm.model_name, **server_attributes(lm.endpoint)}
            if self._instruments is not None
            else {}
        )
        self._in_flight = 0
        self._queued = 0

    def update(self, in_flight: int, queued: int) -> None:
        """The actor's counts now."""
        meters = self._instruments
        if meters is None:
            return
        if in_flight != self._in_flight:
            meters.in_flight.add(in_flight - self._in_flight, self._attributes)
            self._in_flight = in_flight
        if queued != self._queued:
            meters.queued.add(queued - self._queued, self._attributes)
            self._queued = queued

    def retried(self) -> None:
        """A failed attempt will be retried."""
        if self._instruments is not None:
            self._instruments.retries.add(1, self._attributes)
