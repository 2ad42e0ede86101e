"""The OpenTelemetry API, when installed (the ``[otel]`` extra): the library's tracer,
meter and instruments, got lazily.

Lazily, because an application may install its TracerProvider/MeterProvider after
importing this library; the API's proxy tracer and meter forward to them once they are
set. The library never installs an SDK or an exporter. Without the API installed every
accessor returns None and telemetry costs one attribute check per call.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable
from typing import Any

from dspex_actors._version import __version__

__all__ = [
    "Instruments",
    "capture_content",
    "check_otel_hooks",
    "instruments",
    "meter",
    "observe_restarts",
    "trace_api",
    "tracer",
]

_SCOPE = "dspex_actors"
_CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"

DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48)
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304)
"""The bucket boundaries the GenAI semantic conventions advise."""


@dataclasses.dataclass(frozen=True)
class Instruments:
    """The metric instruments (``gen_ai.*`` per the GenAI conventions, ``dspex.*`` ours)."""

    duration: Any
    token_usage: Any
    in_flight: Any
    queued: Any
    retries: Any
    breaker_state: Any
    cache_hits: Any
    cache_misses: Any


class _API:
    """The imported API modules and what was made from them (set once, on first use)."""

    checked = False
    trace: Any = None
    tracer: Any = None
    instruments: Instruments | None = None
    meter: Any = None
    metrics: Any = None
    restarts_registered = False
    metrics_internal: Any = None
    no_tracer_providers: tuple[type, ...] = ()
    no_meter_providers: tuple[type, ...] = ()
    tracing = False
    metering = False


def _load() -> None:
    if _API.checked:
        return
    try:
        from opentelemetry import metrics, trace
    except ImportError:
        _API.checked = True
        return
    from opentelemetry.metrics import NoOpMeterProvider, _internal

    trace.get_tracer_provider()  # loads one named by OTEL_PYTHON_TRACER_PROVIDER, if any
    metrics.get_meter_provider()
    _API.trace = trace
    _API.metrics = metrics
    _API.metrics_internal = _internal
    _API.no_tracer_providers = (trace.ProxyTracerProvider, trace.NoOpTracerProvider)
    _API.no_meter_providers = (NoOpMeterProvider,)
    _API.tracer = trace.get_tracer(_SCOPE, __version__)
    meter = metrics.get_meter(_SCOPE, __version__)
    _API.meter = meter
    _API.instruments = Instruments(
        duration=meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration",
            explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
        ),
        token_usage=meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used",
            explicit_bucket_boundaries_advisory=list(TOKEN_BUCKETS),
        ),
        in_flight=meter.create_up_down_counter(
            "dspex.lm.in_flight", unit="{request}", description="HTTP attempts in flight"
        ),
        queued=meter.create_up_down_counter(
            "dspex.lm.queued", unit="{call}", description="LM calls waiting to be sent"
        ),
        retries=meter.create_counter(
            "dspex.lm.retries", unit="{retry}", description="LM call attempts retried"
        ),
        breaker_state=meter.create_gauge(
            "dspex.breaker.state",
            unit="1",
            description="Circuit breaker state: 0 closed, 1 half-open, 2 open",
        ),
        cache_hits=meter.create_counter(
            "dspex.cache.hits", unit="{call}", description="LM calls answered by the cache"
        ),
        cache_misses=meter.create_counter(
            "dspex.cache.misses", unit="{call}", description="LM calls the cache sent on"
        ),
    )
    _API.checked = True


def trace_api() -> Any:
    """The ``opentelemetry.trace`` module while a TracerProvider is installed, or None."""
    return _API.trace if tracer() is not None else None


def tracer() -> Any:
    """The library's tracer while the application has installed a TracerProvider, else
    None (without a provider every span would be a no-op: skipping them keeps the cost of
    an idle API near zero)."""
    _load()
    if _API.tracing or _installed(_API.trace, "_TRACER_PROVIDER", _API.no_tracer_providers):
        _API.tracing = True
        return _API.tracer
    return None


def instruments() -> Instruments | None:
    """The library's metric instruments while a MeterProvider is installed, else None."""
    _load()
    if _API.metering or _installed(
        _API.metrics_internal, "_METER_PROVIDER", _API.no_meter_providers
    ):
        _API.metering = True
        return _API.instruments
    return None


def _installed(module: Any, name: str, inert: tuple[type, ...]) -> bool:
    """Whether the API module's global provider has been set to a real one.

    The one private hook on the OpenTelemetry API (``check_otel_hooks`` tests it): the
    public getters look the provider's environment variable up on every call, which costs
    more than the span; a provider, once set, can never be replaced, so a True is final.
    """
    if module is None:
        return False
    provider = getattr(module, name, None)
    return provider is not None and not isinstance(provider, inert)


def check_otel_hooks() -> None:
    """Raise if the OpenTelemetry API no longer has the globals :func:`_installed` reads."""
    from opentelemetry import trace
    from opentelemetry.metrics import _internal

    for module, name in ((trace, "_TRACER_PROVIDER"), (_internal, "_METER_PROVIDER")):
        if not hasattr(module, name):
            raise RuntimeError(f"opentelemetry changed: {module.__name__}.{name} is gone")


def meter() -> Any:
    """The library's meter, or None without the API."""
    _load()
    return _API.meter


def observe_restarts(counts: Callable[[], Iterable[tuple[str, int]]]) -> None:
    """Report ``dspex.actor.restarts`` per system from ``counts()`` (``(system name, total
    restarts)`` pairs) whenever metrics are collected. Registered once."""
    _load()
    if _API.meter is None or _API.restarts_registered:
        return
    metrics = _API.metrics

    def observe(options: Any) -> Iterable[Any]:
        return [metrics.Observation(total, {"dspex.system": name}) for name, total in counts()]

    _API.meter.create_observable_counter(
        "dspex.actor.restarts",
        callbacks=[observe],
        unit="{restart}",
        description="Actors restarted by their supervisor",
    )
    _API.restarts_registered = True


def capture_content() -> bool:
    """Whether message content may be recorded (off unless the convention's variable says
    ``true``)."""
    return os.environ.get(_CONTENT_ENV, "").strip().lower() == "true"
