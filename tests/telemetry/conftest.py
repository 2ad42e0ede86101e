"""An OpenTelemetry SDK installed once for the test process, recording only inside tests
that ask for it (``spans`` and ``metric_points`` fixtures)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan

from tests._otel import SDK, install_sdk


@pytest.fixture
def spans() -> Iterator[Callable[[], list[ReadableSpan]]]:
    """``spans()``: the spans finished since the test started."""
    install_sdk()
    SDK.exporter.clear()
    SDK.switch.on = True
    try:
        yield lambda: list(SDK.exporter.get_finished_spans())
    finally:
        SDK.switch.on = False
        SDK.exporter.clear()


@pytest.fixture
def metric_points() -> Callable[[str], list[Any]]:
    """``metric_points(name)``: the data points of metric ``name`` collected now."""
    install_sdk()

    def collect(name: str) -> list[Any]:
        data = SDK.reader.get_metrics_data()
        points: list[Any] = []
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        points.extend(metric.data.data_points)
        return points

    return collect
