"""Telemetry: DSPy-style callbacks and OpenTelemetry spans and metrics.

OpenTelemetry (the ``[otel]`` extra, ``opentelemetry-api`` only) is used when installed:
the library emits through whatever TracerProvider/MeterProvider the application installs
and never installs one. Message content is recorded only when
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``; credentials never.
"""

from dspex_actors.telemetry._callbacks import BaseCallback

__all__ = ["BaseCallback"]
