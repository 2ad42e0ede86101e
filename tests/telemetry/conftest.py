"""An OpenTelemetry SDK installed once for the test process, recording only inside tests
that ask for it (``spans`` and ``metric_points`` fixtures)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


class _Switch(SpanProcessor):
    """Forwards finished spans to the exporter only while a test records."""

    def __init__(self, inner: SpanProcessor) -> None:
        self.inner = inner
        self.on = False

    def on_end(self, span: ReadableSpan) -> None:
        if self.on:
            self.inner.on_end(span)

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


class _SDK:
    exporter = InMemorySpanExporter()
    switch = _Switch(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    installed = False


def _install() -> None:
    if _SDK.installed:
        return
    provider = TracerProvider()
    provider.add_span_processor(_SDK.switch)
    trace.set_tracer_provider(provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[_SDK.reader]))
    _SDK.installed = True


@pytest.fixture
def spans() -> Iterator[Callable[[], list[ReadableSpan]]]:
    """``spans()``: the spans finished since the test started."""
    _install()
    _SDK.exporter.clear()
    _SDK.switch.on = True
    try:
        yield lambda: list(_SDK.exporter.get_finished_spans())
    finally:
        _SDK.switch.on = False
        _SDK.exporter.clear()


@pytest.fixture
def metric_points() -> Callable[[str], list[Any]]:
    """``metric_points(name)``: the data points of metric ``name`` collected now."""
    _install()

    def collect(name: str) -> list[Any]:
        data = _SDK.reader.get_metrics_data()
        points: list[Any] = []
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        points.extend(metric.data.data_points)
        return points

    return collect
