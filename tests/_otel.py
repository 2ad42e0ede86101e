"""One OpenTelemetry SDK for the whole test process (a provider can be set only once):
spans recorded in memory while a test asks for them, metrics read in memory and by a
Prometheus reader (the service examples' ``/metrics``)."""

from __future__ import annotations

from opentelemetry import metrics, trace
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

__all__ = ["SDK", "install_sdk"]


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


class SDK:
    """The process's exporter, span switch and in-memory metric reader."""

    exporter = InMemorySpanExporter()
    switch = _Switch(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    installed = False


def install_sdk() -> None:
    """Install the providers (once per process; later calls do nothing)."""
    if SDK.installed:
        return
    provider = TracerProvider()
    provider.add_span_processor(SDK.switch)
    trace.set_tracer_provider(provider)
    readers = [SDK.reader, PrometheusMetricReader()]
    metrics.set_meter_provider(MeterProvider(metric_readers=readers))
    SDK.installed = True
