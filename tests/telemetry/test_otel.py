"""OpenTelemetry spans and metrics, read back with the SDK's in-memory exporter and reader."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

import dspex_actors as dx
from dspex_actors.testing import Fault, LocalLMServer

SECRET = "sk-otel-test-secret-0123456789"
Spans = Callable[[], list[ReadableSpan]]
Points = Callable[[str], list[Any]]


def _lm(server: LocalLMServer, **options: Any) -> dx.LM:
    return dx.LM("openai/local-model", api_base=server.url, api_key=SECRET, **options)


def _one(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, [s.name for s in spans]
    return found[0]


def _children(spans: list[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    return sorted(
        (s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id),
        key=lambda s: s.start_time or 0,
    )


def _no_secret_or_content(spans: list[ReadableSpan], *texts: str) -> None:
    for span in spans:
        blob = repr(dict(span.attributes or {})) + repr([e.attributes for e in span.events])
        assert SECRET not in blob
        for text in texts:
            assert text not in blob, (span.name, text)


def test_lm_call_is_a_client_span_under_the_predict_span(
    lm_server: LocalLMServer, spans: Spans
) -> None:
    with dx.ActorSystem(lm=_lm(lm_server, temperature=0.2, max_tokens=64)):
        dx.Predict("question -> answer")(question="What is 20 + 22?")
    recorded = spans()
    predict = _one(recorded, "Predict.forward")
    chat = _one(recorded, "chat local-model")
    assert chat.kind is SpanKind.CLIENT and predict.kind is SpanKind.INTERNAL
    assert chat.parent is not None and chat.parent.span_id == predict.context.span_id
    stats = lm_server.stats()
    attributes = dict(chat.attributes or {})
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.request.model"] == "local-model"
    assert attributes["gen_ai.request.temperature"] == 0.2
    assert attributes["gen_ai.request.max_tokens"] == 64
    assert attributes["gen_ai.response.model"] == "local-model"
    assert list(attributes["gen_ai.response.finish_reasons"]) == ["stop"]
    assert attributes["gen_ai.usage.input_tokens"] == stats.prompt_tokens
    assert attributes["gen_ai.usage.output_tokens"] == stats.completion_tokens
    assert attributes["server.address"] == "127.0.0.1"
    assert attributes["server.port"] == int(lm_server.url.split(":")[2].split("/")[0])
    (attempt,) = _children(recorded, chat)
    assert attempt.kind is SpanKind.CLIENT
    assert dict(attempt.attributes or {})["http.response.status_code"] == 200
    assert dict(predict.attributes or {})["dspex.cache.hit"] is False
    _no_secret_or_content(recorded, "20 + 22")


def test_a_retry_is_its_own_failed_attempt_span(lm_server: LocalLMServer, spans: Spans) -> None:
    lm_server.push_faults(Fault.http(503))
    with dx.ActorSystem(lm=_lm(lm_server), retry_base_delay=0.01):
        dx.Predict("question -> answer")(question="retry me")
    recorded = spans()
    chat = _one(recorded, "chat local-model")
    failed, succeeded = _children(recorded, chat)
    assert dict(failed.attributes or {})["http.response.status_code"] == 503
    assert dict(failed.attributes or {})["error.type"] == "LMHTTPStatusError"
    assert failed.status.status_code is StatusCode.ERROR
    assert dict(succeeded.attributes or {})["http.response.status_code"] == 200
    assert chat.status.status_code is not StatusCode.ERROR


def test_a_failed_call_and_breaker_events(lm_server: LocalLMServer, spans: Spans) -> None:
    lm_server.push_faults(Fault.http(500), Fault.http(500))
    system = dx.ActorSystem(lm=_lm(lm_server, num_retries=1), breaker_fail_max=2)
    with system, pytest.raises(dx.LMHTTPStatusError):
        dx.Predict("question -> answer")(question="broken")
    chat = _one(spans(), "chat local-model")
    assert dict(chat.attributes or {})["error.type"] == "LMHTTPStatusError"
    assert chat.status.status_code is StatusCode.ERROR
    (event,) = [e for e in chat.events if e.name == "dspex.breaker.state_change"]
    assert dict(event.attributes or {}) == {
        "dspex.breaker.from": "closed",
        "dspex.breaker.to": "open",
    }


def test_a_cache_hit_makes_no_client_span(lm_server: LocalLMServer, spans: Spans) -> None:
    qa = dx.Predict("question -> answer")
    with dx.ActorSystem(lm=_lm(lm_server)):
        qa(question="twice")
        qa(question="twice")
    recorded = spans()
    assert len([s for s in recorded if s.name == "chat local-model"]) == 1
    hits = [
        dict(s.attributes or {}).get("dspex.cache.hit")
        for s in recorded
        if s.name == "Predict.forward"
    ]
    assert hits == [False, True]


def test_async_calls_and_evaluate_keep_one_trace(lm_server: LocalLMServer, spans: Spans) -> None:
    qa = dx.Predict("question -> answer")
    devset = [dx.Example(question=f"q{i}", answer="a").with_inputs("question") for i in range(3)]
    with dx.ActorSystem(lm=_lm(lm_server, cache=False)):
        asyncio.run(qa.acall(question="async"))
        chat = _one(spans(), "chat local-model")
        predict = _one(spans(), "Predict.forward")
        assert chat.parent is not None and chat.parent.span_id == predict.context.span_id
        dx.Evaluate(devset=devset, metric=lambda g, p, t=None: 1.0, num_threads=3)(_Program(qa))
    recorded = spans()
    run = _one(recorded, "dspex.evaluate")
    items = [s for s in recorded if s.name == "dspex.item"]
    assert sorted(dict(s.attributes or {})["dspex.example.index"] for s in items) == [0, 1, 2]
    chats = [
        s
        for s in recorded
        if s.name == "chat local-model" and s.context.trace_id == run.context.trace_id
    ]
    assert len(chats) == 3  # each example's LM call is in the run's trace, across workers


class _Program(dx.Module):
    def __init__(self, qa: dx.Predict) -> None:
        super().__init__()
        self.qa = qa

    def forward(self, question: str) -> dx.Prediction:
        return self.qa(question=question)


def test_content_only_when_asked(
    lm_server: LocalLMServer, spans: Spans, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    with dx.ActorSystem(lm=_lm(lm_server)):
        dx.Predict("question -> answer")(question="What is 3 + 4?")
    attributes = dict(_one(spans(), "chat local-model").attributes or {})
    assert "What is 3 + 4?" in str(attributes["gen_ai.input.messages"])
    assert "7" in str(attributes["gen_ai.output.messages"])
    assert SECRET not in repr(attributes)


def _total(points: list[Any], **attributes: Any) -> float:
    def matches(point: Any) -> bool:
        return all(point.attributes.get(k) == v for k, v in attributes.items())

    return sum(getattr(p, "sum", getattr(p, "value", 0)) for p in points if matches(p))


def _count(points: list[Any], **attributes: Any) -> int:
    return sum(
        p.count for p in points if all(p.attributes.get(k) == v for k, v in attributes.items())
    )


def test_metrics_follow_the_conventions(lm_server: LocalLMServer, metric_points: Points) -> None:
    model = "local-model"
    calls_before = _count(
        metric_points("gen_ai.client.operation.duration"), **{"gen_ai.request.model": model}
    )
    tokens_before = _total(
        metric_points("gen_ai.client.token.usage"), **{"gen_ai.token.type": "input"}
    )
    retries_before = _total(metric_points("dspex.lm.retries"))
    hits_before = _total(metric_points("dspex.cache.hits"))
    lm_server.push_faults(Fault.http(503))
    qa = dx.Predict("question -> answer")
    with dx.ActorSystem(lm=_lm(lm_server), retry_base_delay=0.01):
        qa(question="metered")
        qa(question="metered")  # a cache hit: no duration, no tokens
    stats = lm_server.stats()
    calls = _count(
        metric_points("gen_ai.client.operation.duration"), **{"gen_ai.request.model": model}
    )
    assert calls == calls_before + 1
    tokens = _total(metric_points("gen_ai.client.token.usage"), **{"gen_ai.token.type": "input"})
    assert tokens - tokens_before == stats.prompt_tokens
    assert _total(metric_points("dspex.lm.retries")) == retries_before + 1
    assert _total(metric_points("dspex.cache.hits")) == hits_before + 1
    assert _total(metric_points("dspex.lm.in_flight")) == 0  # back to zero after the calls
    states = metric_points("dspex.breaker.state")
    assert all(p.value in (0, 1, 2) for p in states)


def test_the_one_private_opentelemetry_hook_still_exists() -> None:
    from dspex_actors.telemetry._otel import check_otel_hooks

    check_otel_hooks()  # fails when opentelemetry renames the provider globals we read
