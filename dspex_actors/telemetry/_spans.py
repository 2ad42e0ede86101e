"""Spans and metrics of module, predictor, item and LM calls (OpenTelemetry, when installed).

Module and predictor calls are INTERNAL spans made current around the call, so whatever
the call does on this thread or task is their child. An LM call is a CLIENT span
``chat {model}`` made on the caller's side when the reply arrives, with the start time of
the request: the Client actor records when each HTTP attempt started and ended and what
became of it (``CallRecord``), and those become child CLIENT spans of the LM span. So
the parent chain holds although the HTTP ran on the I/O thread, and a cache hit (no
request) makes no CLIENT span but marks the current span ``dspex.cache.hit``.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar
from urllib.parse import urlsplit

from dspex_actors._types import CallRecord, LMRequest, LMResponse
from dspex_actors.telemetry._callbacks import Hook, has_callbacks, start_hook
from dspex_actors.telemetry._otel import (
    Instruments,
    capture_content,
    instruments,
    trace_api,
    tracer,
)

__all__ = [
    "LMCallObserver",
    "ObservedRun",
    "internal_span",
    "observe_lm_call",
    "observed_run",
    "run_item",
    "server_attributes",
]

R = TypeVar("R")

_PROVIDER_NAMES = {"gemini": "gcp.gemini", "azure": "azure.ai.openai"}
"""``gen_ai.provider.name`` where the convention's name differs from our prefix."""

_REQUEST_PARAMS = (
    ("temperature", "gen_ai.request.temperature"),
    ("max_tokens", "gen_ai.request.max_tokens"),
    ("top_p", "gen_ai.request.top_p"),
    ("n", "gen_ai.request.choice.count"),
)


@contextlib.contextmanager
def internal_span(name: str, attributes: dict[str, Any] | None = None) -> Iterator[Any]:
    """An INTERNAL span, current inside the block (nothing without the API)."""
    active = tracer()
    if active is None:
        yield None
        return
    with active.start_as_current_span(name, attributes=attributes) as span:
        yield span


def run_item(fn: Callable[[Any], R], item: Any, index: int) -> R:
    """``fn(item)`` of a batch (Evaluate, an optimizer) in a span naming its index."""
    if tracer() is None:
        return fn(item)
    with internal_span("dspex.item", {"dspex.example.index": index}):
        return fn(item)


def server_attributes(endpoint: str) -> dict[str, Any]:
    """``server.address`` and ``server.port`` (an int) of ``endpoint`` (no credentials)."""
    parts = urlsplit(endpoint)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme, 0)
    return {"server.address": parts.hostname or "", "server.port": port}


class LMCallObserver:
    """One LM request seen from its caller: callbacks, the CLIENT span, the metrics."""

    __slots__ = ("_hook", "_lm", "_request", "_start_ns", "_via_cache")

    def __init__(self, lm: Any, request: LMRequest, hook: Hook | None, via_cache: bool) -> None:
        self._lm = lm
        self._request = request
        self._hook = hook
        self._via_cache = via_cache
        self._start_ns = time.time_ns()

    def done(self, response: LMResponse) -> None:
        """The call returned ``response``."""
        if self._hook is not None:
            self._hook.end(list(response.texts), None)
        meters, active = instruments(), tracer()
        if self._via_cache and meters is not None:
            counter = meters.cache_hits if response.cached else meters.cache_misses
            counter.add(1, {"gen_ai.request.model": self._lm.model_name})
        if active is not None and self._via_cache:
            trace_api().get_current_span().set_attribute("dspex.cache.hit", response.cached)
        if not response.cached:
            self._record(meters, active, response, None, response.record)

    def failed(self, error: BaseException) -> None:
        """The call raised ``error``."""
        if self._hook is not None:
            self._hook.end(None, error)
        self._record(instruments(), tracer(), None, error, getattr(error, "record", None))

    def _record(
        self,
        meters: Instruments | None,
        active: Any,
        response: LMResponse | None,
        error: BaseException | None,
        record: CallRecord | None,
    ) -> None:
        """The call's metrics (``meters``) and CLIENT span (``active``: the tracer)."""
        if meters is None and active is None:
            return
        lm = self._lm
        end_ns = time.time_ns()
        server = server_attributes(lm.endpoint)
        base = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": _PROVIDER_NAMES.get(lm.provider, lm.provider),
            "gen_ai.request.model": lm.model_name,
            **server,
        }
        metric_attributes = dict(base)
        if response is not None and response.model:
            metric_attributes["gen_ai.response.model"] = response.model
        if error is not None:
            metric_attributes["error.type"] = type(error).__name__
        if meters is not None:
            meters.duration.record((end_ns - self._start_ns) / 1e9, metric_attributes)
            if response is not None:
                for kind, key in (("input", "prompt_tokens"), ("output", "completion_tokens")):
                    if key in response.usage:
                        usage_attributes = {**metric_attributes, "gen_ai.token.type": kind}
                        meters.token_usage.record(response.usage[key], usage_attributes)
        if active is None:
            return
        api = trace_api()
        span = active.start_span(
            f"chat {lm.model_name}",
            kind=api.SpanKind.CLIENT,
            start_time=self._start_ns,
            attributes={**base, **self._request_attributes()},
        )
        if not span.is_recording():
            span.end(end_time=end_ns)
            return
        self._add_attempts(api, active, span, record, server)
        if response is not None:
            span.set_attributes(_response_attributes(response))
        else:
            span.set_attribute("error.type", type(error).__name__)
            span.set_status(api.Status(api.StatusCode.ERROR, str(error)[:200]))
        span.end(end_time=end_ns)

    def _request_attributes(self) -> dict[str, Any]:
        params = self._request.params
        attributes: dict[str, Any] = {
            name: params[key]
            for key, name in _REQUEST_PARAMS
            if isinstance(params.get(key), (int, float)) and not isinstance(params[key], bool)
        }
        stop = params.get("stop")
        if isinstance(stop, str):
            attributes["gen_ai.request.stop_sequences"] = [stop]
        if capture_content():
            attributes["gen_ai.input.messages"] = json.dumps(
                [
                    {
                        "role": m.get("role"),
                        "parts": [{"type": "text", "content": m.get("content")}],
                    }
                    for m in self._request.messages
                ],
                ensure_ascii=False,
            )
        return attributes

    def _add_attempts(
        self,
        api: Any,
        active: Any,
        span: Any,
        record: CallRecord | None,
        server: dict[str, Any],
    ) -> None:
        if record is None:
            return
        parent = api.set_span_in_context(span)
        for number, attempt in enumerate(record.attempts, start=1):
            attributes: dict[str, Any] = {
                "http.request.method": "POST",
                "dspex.attempt": number,
                **server,
            }
            if attempt.status is not None:
                attributes["http.response.status_code"] = attempt.status
            child = active.start_span(
                "POST",
                context=parent,
                kind=api.SpanKind.CLIENT,
                start_time=attempt.start_ns,
                attributes=attributes,
            )
            if attempt.error_type is not None:
                child.set_attribute("error.type", attempt.error_type)
                child.set_status(api.Status(api.StatusCode.ERROR))
            child.end(end_time=attempt.end_ns)
        for event in record.events:
            span.add_event(event.name, dict(event.attributes), timestamp=event.time_ns)


def _response_attributes(response: LMResponse) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    if response.model:
        attributes["gen_ai.response.model"] = response.model
    reasons = [reason for reason in response.finish_reasons if reason]
    if reasons:
        attributes["gen_ai.response.finish_reasons"] = reasons
    if "prompt_tokens" in response.usage:
        attributes["gen_ai.usage.input_tokens"] = response.usage["prompt_tokens"]
    if "completion_tokens" in response.usage:
        attributes["gen_ai.usage.output_tokens"] = response.usage["completion_tokens"]
    if capture_content():
        attributes["gen_ai.output.messages"] = json.dumps(
            [
                {"role": "assistant", "parts": [{"type": "text", "content": text}]}
                for text in response.texts
            ],
            ensure_ascii=False,
        )
    return attributes


def observe_lm_call(lm: Any, request: LMRequest, *, via_cache: bool) -> LMCallObserver | None:
    """Start observing an LM request (callbacks' ``on_lm_start``, as DSPy calls it: prompt,
    messages, kwargs); None when nothing watches: no callbacks and no OpenTelemetry API."""
    hook = None
    if has_callbacks(lm):
        inputs = {
            "prompt": None,
            "messages": [dict(m) for m in request.messages],
            "kwargs": dict(request.params),
        }
        hook = start_hook("lm", lm, inputs)
    if hook is None and tracer() is None and instruments() is None:
        return None
    return LMCallObserver(lm, request, hook, via_cache)


class ObservedRun:
    """A run (Evaluate, compile) between callbacks' ``on_{kind}_start``/``end`` hooks, in an
    INTERNAL span: ``with observed_run(...) as run: return run.returns(value)``."""

    def __init__(
        self,
        kind: str,
        instance: Any,
        inputs: dict[str, Any],
        span_name: str,
        attributes: dict[str, Any],
    ) -> None:
        self._kind, self._instance, self._inputs = kind, instance, inputs
        self._span = internal_span(span_name, attributes)
        self._hook: Hook | None = None
        self._value: Any = None

    def __enter__(self) -> ObservedRun:
        self._hook = start_hook(self._kind, self._instance, self._inputs)
        self._span.__enter__()
        return self

    def returns(self, value: R) -> R:
        """Record what the run returns (for ``on_{kind}_end``) and give it back."""
        self._value = value
        return value

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        try:
            self._span.__exit__(exc_type, exc, tb)
        finally:
            if self._hook is not None:
                self._hook.end(None if exc is not None else self._value, exc)


def observed_run(
    kind: str,
    instance: Any,
    inputs: dict[str, Any],
    span_name: str,
    attributes: dict[str, Any] | None = None,
) -> ObservedRun:
    """See :class:`ObservedRun`."""
    return ObservedRun(kind, instance, inputs, span_name, attributes or {})
