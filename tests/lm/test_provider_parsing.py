"""Provider replies the local server does not send: thinking parts, cache tokens, tool-only
replies, refusals and safety stops in streams, mid-stream errors. The providers are pure
functions of the payload, so these run them on payloads shaped like the real APIs'."""

from __future__ import annotations

import json
from typing import Any

import pytest

import dspex_actors as dx
from dspex_actors._types import LMToolCall
from dspex_actors.lm.providers import AnthropicProvider, GeminiProvider, OpenAIProvider

WHERE = {"model": "p/m", "endpoint": "https://api.example/x"}


def stream(decoder: Any, events: list[dict[str, Any]]) -> dx.LMResponse:
    for event in events:
        data = json.dumps(event)
        if decoder.done(data):
            return decoder.result()  # type: ignore[no-any-return]
        decoder.feed(data)
    final = decoder.at_end()
    assert final is not None
    return final  # type: ignore[no-any-return]


def test_anthropic_usage_counts_cache_tokens_and_joins_text_blocks() -> None:
    reply = AnthropicProvider().parse(
        {
            "content": [
                {"type": "thinking", "thinking": "hmm"},
                {"type": "text", "text": "a"},
                {"type": "text", "text": "b"},
            ],
            "stop_reason": "max_tokens",
            "model": "claude-x",
            "usage": {
                "input_tokens": 10,
                "cache_read_input_tokens": 90,
                "cache_creation_input_tokens": 5,
                "output_tokens": 7,
            },
        },
        **WHERE,
    )
    assert reply.texts == ("ab",) and reply.finish_reasons == ("length",)
    assert reply.usage == {
        "prompt_tokens": 105,
        "completion_tokens": 7,
        "total_tokens": 112,
        "cache_read_input_tokens": 90,
        "cache_creation_input_tokens": 5,
    }


def test_anthropic_tool_only_and_refusal() -> None:
    provider = AnthropicProvider()
    tool_only = {"content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]}
    reply = provider.parse({**tool_only, "stop_reason": "tool_use"}, **WHERE)
    assert reply.texts == ("",) and reply.tool_calls[0][0].name == "f"  # native calling
    thinking = {"content": [{"type": "thinking", "thinking": "hm"}]}
    with pytest.raises(dx.MalformedResponseError, match=r"anthropic.*no text.*thinking"):
        provider.parse(thinking, **WHERE)
    with pytest.raises(dx.ContentBlockedError) as refused:
        provider.parse({"content": [], "stop_reason": "refusal"}, **WHERE)
    assert refused.value.reason == "refusal"


def test_anthropic_stream_refusal_and_error_event() -> None:
    provider = AnthropicProvider()
    start = {"type": "message_start", "message": {"model": "c", "usage": {"input_tokens": 3}}}
    delta = {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "text_delta", "text": "I"},
    }
    refusal = {"type": "message_delta", "delta": {"stop_reason": "refusal"}, "usage": {}}
    with pytest.raises(dx.ContentBlockedError):
        stream(provider.stream_decoder(**WHERE), [start, delta, refusal, {"type": "message_stop"}])
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    with pytest.raises(dx.LMHTTPStatusError) as overloaded:
        stream(provider.stream_decoder(**WHERE), [start, error])
    assert overloaded.value.status_code == 529 and "Overloaded" in str(overloaded.value)


def test_gemini_leaves_thoughts_out_and_counts_them_as_output() -> None:
    reply = GeminiProvider().parse(
        {
            "candidates": [
                {
                    "content": {
                        "parts": [{"text": "thinking...", "thought": True}, {"text": "42"}],
                        "role": "model",
                    },
                    "finishReason": "STOP",
                }
            ],
            "usageMetadata": {
                "promptTokenCount": 4,
                "candidatesTokenCount": 1,
                "thoughtsTokenCount": 20,
                "totalTokenCount": 25,
            },
        },
        **WHERE,
    )
    assert reply.texts == ("42",)
    assert reply.usage == {"prompt_tokens": 4, "completion_tokens": 21, "total_tokens": 25}


def test_gemini_safety_stop_and_function_call_only() -> None:
    provider = GeminiProvider()
    with pytest.raises(dx.ContentBlockedError) as blocked:
        provider.parse({"candidates": [{"finishReason": "SAFETY", "index": 0}]}, **WHERE)
    assert blocked.value.reason == "SAFETY"
    call = {"content": {"parts": [{"functionCall": {"name": "f"}}]}, "finishReason": "STOP"}
    reply = provider.parse({"candidates": [call]}, **WHERE)
    assert reply.texts == ("",) and reply.tool_calls[0][0].id == "call_0"  # native calling
    thought = {"content": {"parts": [{"text": "hm", "thought": True}]}, "finishReason": "STOP"}
    with pytest.raises(dx.MalformedResponseError, match=r"gemini.*no text"):
        provider.parse({"candidates": [thought]}, **WHERE)
    decoder = provider.stream_decoder(**WHERE)
    decoder.feed(json.dumps({"candidates": [{"content": {"parts": [{"text": "x"}]}}]}))
    assert decoder.at_end() is None  # no finishReason yet: the stream was cut


def test_openai_tool_calls_without_a_function_are_malformed() -> None:
    message = {"role": "assistant", "content": None, "tool_calls": [{"id": "1"}]}
    with pytest.raises(dx.MalformedResponseError, match=r"openai.*without a function name"):
        OpenAIProvider().parse(
            {"choices": [{"message": message, "finish_reason": "tool_calls"}]}, **WHERE
        )
    empty = {"role": "assistant", "content": None}
    reply = OpenAIProvider().parse(
        {"choices": [{"message": empty, "finish_reason": "stop"}]}, **WHERE
    )
    assert reply.texts == ("",)


def test_error_bodies_give_the_providers_words() -> None:
    anthropic_body = {"type": "error", "error": {"type": "not_found_error", "message": "model: x"}}
    assert AnthropicProvider().error_message(anthropic_body) == "not_found_error: model: x"
    gemini_body = {
        "error": {"code": 400, "message": "API key not valid.", "status": "INVALID_ARGUMENT"}
    }
    assert GeminiProvider().error_message(gemini_body) == "INVALID_ARGUMENT: API key not valid."
    assert OpenAIProvider().error_message({"detail": "no"}) is None


def _tool_use_events(partial_json: list[str]) -> list[dict[str, Any]]:
    use = {"type": "tool_use", "id": "toolu_9", "name": "f", "input": {}}
    return [
        {"type": "content_block_start", "index": 0, "content_block": use},
        *(
            {"type": "content_block_delta", "index": 0,
             "delta": {"type": "input_json_delta", "partial_json": piece}}
            for piece in partial_json
        ),
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {}},
        {"type": "message_stop"},
    ]  # fmt: skip


def test_anthropic_stream_of_a_tool_use_and_a_broken_input() -> None:
    provider = AnthropicProvider()
    reply = stream(provider.stream_decoder(**WHERE), _tool_use_events(['{"x"', ": 1}"]))
    assert reply.texts == ("",) and reply.finish_reasons == ("tool_calls",)
    assert reply.tool_calls == ((LMToolCall("toolu_9", "f", '{"x": 1}'),),)
    with pytest.raises(dx.MalformedResponseError, match="input of tool_use 'f' is not a JSON"):
        stream(provider.stream_decoder(**WHERE), _tool_use_events(['{"x"']))


def test_gemini_stream_numbers_calls_across_chunks() -> None:
    decoder = GeminiProvider().stream_decoder(**WHERE)
    for name in ("f", "g"):
        part = {"functionCall": {"name": name, "args": {}}}
        decoder.feed(json.dumps({"candidates": [{"content": {"parts": [part]}, "index": 0}]}))
    decoder.feed(json.dumps({"candidates": [{"index": 0, "finishReason": "STOP"}]}))
    reply = decoder.at_end()
    assert reply is not None and reply.finish_reasons == ("tool_calls",)
    assert [(c.id, c.name) for c in reply.tool_calls[0]] == [("call_0", "f"), ("call_1", "g")]
