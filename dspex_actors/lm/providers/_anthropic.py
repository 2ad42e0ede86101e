"""Anthropic's Messages API: ``POST {api_base}/v1/messages`` with an ``x-api-key``.

The system prompt goes top level, turns alternate user/assistant (consecutive demos of
one role are merged), ``max_tokens`` is always sent and ``stop`` becomes
``stop_sequences``. Streams are typed events (``message_start``, ``content_block_delta``,
``message_delta``, ``message_stop``; ``error`` mid-stream). Native function calling: the
OpenAI-format ``tools``/``tool_choice``/``parallel_tool_calls`` are translated
(``_tools``) and a reply's ``tool_use`` blocks become its tool calls.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from dspex_actors._errors import (
    ContentBlockedError,
    LMError,
    LMHTTPStatusError,
    MalformedResponseError,
)
from dspex_actors._types import LMRequest, LMResponse, LMToolCall
from dspex_actors.lm.providers._base import (
    Provider,
    StreamDecoder,
    json_event,
    malformed,
    merge_turns,
    stop_list,
    token_count,
)
from dspex_actors.lm.providers._tools import TOOL_PARAMS, anthropic_tool_params

__all__ = ["ANTHROPIC_VERSION", "AnthropicProvider"]

logger = logging.getLogger(__name__)

ANTHROPIC_VERSION = "2023-06-01"
_DROPPED = frozenset({"n", "response_format", "stream_options", "stop", "max_completion_tokens"})
"""OpenAI parameters the Messages API has no use for (``stop`` is renamed)."""
_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
}
_STREAM_ERROR_STATUS = {"overloaded_error": 529, "rate_limit_error": 429, "api_error": 500}


class AnthropicProvider(Provider):
    """``anthropic/<model>``: the Messages API."""

    name = "anthropic"
    default_api_base = "https://api.anthropic.com"
    api_key_envs = ("ANTHROPIC_API_KEY",)
    supports_n = False

    def url(
        self,
        api_base: str,
        model_name: str,
        *,
        stream: bool = False,
        api_version: str | None = None,
    ) -> str:
        return api_base.rstrip("/") + "/v1/messages"

    def headers(self, api_key: str | None) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "anthropic-version": ANTHROPIC_VERSION,
        }
        if api_key:
            headers["x-api-key"] = api_key
        return headers

    def body(self, model_name: str, request: LMRequest) -> dict[str, Any]:
        params = request.params
        system, turns = merge_turns(request.messages, "assistant")
        body: dict[str, Any] = {
            k: v for k, v in params.items() if k not in _DROPPED and k not in TOOL_PARAMS
        }
        body.update(anthropic_tool_params(params))
        body["model"] = model_name
        body["max_tokens"] = params.get("max_tokens") or params.get("max_completion_tokens")
        body["messages"] = [{"role": role, "content": text} for role, text in turns]
        if system is not None:
            body["system"] = system
        stops = stop_list(params.get("stop"))
        if stops:
            body["stop_sequences"] = stops
        return body

    def stream_body(self, model_name: str, request: LMRequest) -> dict[str, Any]:
        body = self.body(model_name, request)
        body["stream"] = True
        return body

    def stream_decoder(self, *, model: str, endpoint: str) -> StreamDecoder:
        return _EventDecoder(model, endpoint)

    def parse(self, payload: Any, *, model: str, endpoint: str) -> LMResponse:
        bad = malformed(self.name, model, endpoint)
        if not isinstance(payload, dict):
            raise bad(f"expected a JSON object, got {type(payload).__name__}")
        content = payload.get("content")
        if not isinstance(content, list):
            raise bad("no 'content' list")
        texts = [
            block["text"]
            for block in content
            if isinstance(block, dict) and block.get("type") == "text"
            and isinstance(block.get("text"), str)
        ]
        stop_reason = payload.get("stop_reason")
        if stop_reason == "refusal":
            raise _refused(model, endpoint, "".join(texts))
        calls = _tool_calls(content, bad)
        if not texts and not calls:
            kinds = sorted({str(b.get("type")) for b in content if isinstance(b, dict)})
            raise bad(f"the reply has no text (content blocks: {kinds or 'none'})")
        served_by = payload.get("model")
        return LMResponse(
            texts=("".join(texts),),
            usage=_usage(payload.get("usage")),
            model=served_by if isinstance(served_by, str) else "",
            finish_reasons=(_finish(stop_reason),),
            tool_calls=(calls,) if calls else (),
        )


def _tool_calls(
    content: list[Any], bad: Callable[[str], MalformedResponseError]
) -> tuple[LMToolCall, ...]:
    """The ``tool_use`` blocks (``{id, name, input}``), arguments encoded as JSON text."""
    calls = []
    for block in content:
        if not isinstance(block, dict) or block.get("type") != "tool_use":
            continue
        name, arguments = block.get("name"), block.get("input", {})
        if not isinstance(name, str) or not name:
            raise bad("a tool_use block has no name")
        if not isinstance(arguments, dict):
            raise bad(f"the tool_use block of {name!r} has an input that is not an object")
        call_id = block.get("id")
        calls.append(
            LMToolCall(
                call_id if isinstance(call_id, str) else None,
                name,
                json.dumps(arguments, ensure_ascii=False),
            )
        )
    return tuple(calls)


def _refused(model: str, endpoint: str, text: str) -> ContentBlockedError:
    detail = f": {text[:200]}" if text else ""
    return ContentBlockedError(
        f"anthropic refused to answer at {endpoint} for {model} (stop_reason refusal){detail}",
        reason="refusal",
        model=model,
        endpoint=endpoint,
    )


def _finish(stop_reason: Any) -> str | None:
    if not isinstance(stop_reason, str):
        return None
    return _FINISH.get(stop_reason, stop_reason)


def _usage(raw: Any) -> dict[str, int]:
    """``input_tokens`` (plus cache reads and writes) and ``output_tokens``, OpenAI-named;
    the cache counts also kept under their own names when reported."""
    if not isinstance(raw, dict):
        return {}
    cache_read = token_count(raw, "cache_read_input_tokens")
    cache_write = token_count(raw, "cache_creation_input_tokens")
    prompt = token_count(raw, "input_tokens") + cache_read + cache_write
    completion = token_count(raw, "output_tokens")
    usage = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if cache_read:
        usage["cache_read_input_tokens"] = cache_read
    if cache_write:
        usage["cache_creation_input_tokens"] = cache_write
    return usage


class _EventDecoder(StreamDecoder):
    """Messages API stream events: text deltas of the one choice, ended by ``message_stop``."""

    def __init__(self, model: str, endpoint: str) -> None:
        self._model_id, self._endpoint = model, endpoint
        self._malformed = malformed("anthropic", model, endpoint)
        self._texts: list[str] = []
        self._usage: dict[str, Any] = {}
        self._served_by = ""
        self._stop_reason: Any = None
        self._last: tuple[str, dict[str, Any]] | None = None
        self._uses: dict[int, tuple[str | None, str, list[str]]] = {}
        """Streamed ``tool_use`` blocks by index: id, name, the input's JSON pieces."""

    def _event(self, data: str) -> dict[str, Any]:
        if self._last is not None and self._last[0] is data:
            return self._last[1]
        event = json_event(data, self._malformed)
        if not isinstance(event.get("type"), str):
            raise self._malformed(f"a stream event has no 'type': {data[:100]!r}")
        self._last = (data, event)
        return event

    def done(self, data: str) -> bool:
        return bool(self._event(data)["type"] == "message_stop")

    def feed(self, data: str) -> list[tuple[int, str]]:
        event = self._event(data)
        kind = event["type"]
        if kind == "content_block_delta":
            delta = event.get("delta")
            if not isinstance(delta, dict):
                raise self._malformed("a content_block_delta has no 'delta'")
            text = delta.get("text")
            if delta.get("type") == "text_delta" and isinstance(text, str) and text:
                self._texts.append(text)
                return [(0, text)]
            use = self._uses.get(event.get("index", -1))
            if delta.get("type") == "input_json_delta" and use is not None:
                use[2].append(str(delta.get("partial_json") or ""))
        elif kind == "content_block_start":
            block = event.get("content_block")
            if isinstance(block, dict) and block.get("type") == "tool_use":
                [call] = _tool_calls([block], self._malformed)
                self._uses[int(event.get("index") or 0)] = (call.id, call.name, [])
        elif kind == "message_start":
            message = event.get("message")
            if isinstance(message, dict):
                self._served_by = str(message.get("model") or "")
                if isinstance(message.get("usage"), dict):
                    self._usage.update(message["usage"])
        elif kind == "message_delta":
            delta = event.get("delta")
            if isinstance(delta, dict) and "stop_reason" in delta:
                self._stop_reason = delta["stop_reason"]
            if isinstance(event.get("usage"), dict):
                self._usage.update(event["usage"])
        elif kind == "error":
            raise self._stream_error(event.get("error"))
        return []

    def _stream_error(self, error: Any) -> LMError:
        error = error if isinstance(error, dict) else {}
        kind = str(error.get("type") or "error")
        message = str(error.get("message") or "")
        status = _STREAM_ERROR_STATUS.get(kind, 500)
        return LMHTTPStatusError(
            f"{self._endpoint} sent an error event for {self._model_id} mid-stream: "
            f"{kind}: {message}",
            status_code=status,
            body_excerpt=f"{kind}: {message}"[:300],
            model=self._model_id,
            endpoint=self._endpoint,
        )

    def result(self) -> LMResponse:
        text = "".join(self._texts)
        if self._stop_reason == "refusal":
            raise _refused(self._model_id, self._endpoint, text)
        calls = tuple(self._streamed_call(*self._uses[i]) for i in sorted(self._uses))
        if not self._texts and not calls:
            raise self._malformed("the stream ended without any text")
        return LMResponse(
            texts=(text,),
            usage=_usage(self._usage),
            model=self._served_by,
            finish_reasons=(_finish(self._stop_reason),),
            tool_calls=(calls,) if calls else (),
        )

    def _streamed_call(self, call_id: str | None, name: str, pieces: list[str]) -> LMToolCall:
        arguments = "".join(pieces) or "{}"
        try:
            parsed = json.loads(arguments)
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            raise self._malformed(f"the streamed input of tool_use {name!r} is not a JSON object")
        return LMToolCall(call_id, name, arguments)
