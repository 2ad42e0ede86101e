"""OpenAI chat completions: OpenAI itself and every compatible server.

vLLM, Ollama, llama.cpp, LM Studio and the local test server all speak it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from dspex_actors._errors import ContentBlockedError, MalformedResponseError
from dspex_actors._types import LMRequest, LMResponse, LMToolCall
from dspex_actors.lm.providers._base import (
    Provider,
    StreamDecoder,
    is_loopback_url,
    json_event,
    malformed,
    token_count,
)

__all__ = ["OpenAIProvider"]

logger = logging.getLogger(__name__)


class OpenAIProvider(Provider):
    """``POST {api_base}/chat/completions`` with a bearer key."""

    name = "openai"
    default_api_base = "https://api.openai.com/v1"
    api_key_envs = ("OPENAI_API_KEY",)

    def needs_key(self, api_base: str) -> bool:
        return not is_loopback_url(api_base)  # local servers (vLLM, Ollama, ...) need none

    def url(
        self,
        api_base: str,
        model_name: str,
        *,
        stream: bool = False,
        api_version: str | None = None,
    ) -> str:
        return api_base.rstrip("/") + "/chat/completions"

    def headers(self, api_key: str | None) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        return headers

    def body(self, model_name: str, request: LMRequest) -> dict[str, Any]:
        body: dict[str, Any] = dict(request.params)
        body["model"] = model_name
        body["messages"] = [dict(message) for message in request.messages]
        return body

    def stream_body(self, model_name: str, request: LMRequest) -> dict[str, Any]:
        body = self.body(model_name, request)
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
        return body

    def stream_decoder(self, *, model: str, endpoint: str) -> StreamDecoder:
        return _ChunkDecoder(self.name, model, endpoint)

    def parse(self, payload: Any, *, model: str, endpoint: str) -> LMResponse:
        bad = malformed(self.name, model, endpoint)

        if not isinstance(payload, dict):
            raise bad(f"expected a JSON object, got {type(payload).__name__}")
        choices = payload.get("choices")
        if not isinstance(choices, list) or not choices:
            raise bad("no 'choices' list")
        texts: list[str] = []
        reasons: list[str | None] = []
        calls: list[tuple[LMToolCall, ...]] = []
        for index, choice in enumerate(choices):
            message = choice.get("message") if isinstance(choice, dict) else None
            if not isinstance(message, dict):
                raise bad(f"choice {index} has no 'message' object")
            reason = choice.get("finish_reason")
            choice_calls = _tool_calls(message.get("tool_calls"), index, bad)
            content = message.get("content")
            if content is None:
                if not choice_calls:
                    _no_content(self.name, message, reason, model, endpoint)
                content = ""
            if not isinstance(content, str):
                raise bad(f"choice {index} content is not a string")
            texts.append(content)
            reasons.append(reason if isinstance(reason, str) else None)
            calls.append(choice_calls)
        served_by = payload.get("model")
        return LMResponse(
            texts=tuple(texts),
            usage=_usage(payload.get("usage")),
            model=served_by if isinstance(served_by, str) else "",
            finish_reasons=tuple(reasons),
            tool_calls=tuple(calls) if any(calls) else (),
        )


def _tool_calls(
    raw: Any, index: int, bad: Callable[[str], MalformedResponseError]
) -> tuple[LMToolCall, ...]:
    """A message's ``tool_calls`` (``[{id, type, function: {name, arguments}}]``); the
    arguments stay the JSON text OpenAI sends (an object some servers send is encoded)."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise bad(f"choice {index} 'tool_calls' is not a list")
    calls = []
    for call in raw:
        function = call.get("function") if isinstance(call, dict) else None
        name = function.get("name") if isinstance(function, dict) else None
        if not isinstance(function, dict) or not isinstance(name, str) or not name:
            raise bad(f"choice {index} has a tool call without a function name")
        arguments = function.get("arguments")
        if isinstance(arguments, dict):
            arguments = json.dumps(arguments, ensure_ascii=False)
        elif arguments is None:
            arguments = "{}"
        elif not isinstance(arguments, str):
            raise bad(f"choice {index} tool call {name!r} has arguments that are not JSON text")
        call_id = call.get("id")
        calls.append(LMToolCall(call_id if isinstance(call_id, str) else None, name, arguments))
    return tuple(calls)


def _no_content(
    provider: str,
    message: dict[str, Any],
    reason: Any,
    model: str,
    endpoint: str,
) -> None:
    """A choice whose content is null and that calls no tool: filtered (typed error), or
    simply empty (the caller reads it as "")."""
    if reason == "content_filter":
        refusal = message.get("refusal")
        raise _filtered(provider, model, endpoint, refusal if isinstance(refusal, str) else "")


def _filtered(provider: str, model: str, endpoint: str, refusal: str) -> ContentBlockedError:
    detail = f": {refusal}" if refusal else ""
    return ContentBlockedError(
        f"{provider} blocked the reply from {endpoint} for {model} "
        f"(finish_reason content_filter){detail}",
        model=model,
        endpoint=endpoint,
        reason="content_filter",
    )


def _usage(raw: Any) -> dict[str, int]:
    usage: dict[str, int] = {}
    if isinstance(raw, dict):
        for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
            if isinstance(raw.get(key), int):
                usage[key] = token_count(raw, key)
    return usage


class _ChunkDecoder(StreamDecoder):
    """``chat.completion.chunk`` events: content deltas per choice, then ``[DONE]``; tool
    calls arrive as ``delta.tool_calls`` pieces (index, id and name first, then the
    arguments' JSON text in pieces), assembled per choice."""

    def __init__(self, provider: str, model: str, endpoint: str) -> None:
        self._where = (provider, model, endpoint)
        self._malformed = malformed(provider, model, endpoint)
        self._texts: dict[int, list[str]] = {}
        self._reasons: dict[int, str | None] = {}
        self._usage: dict[str, int] = {}
        self._model = ""
        self._calls: dict[int, dict[int, dict[str, Any]]] = {}

    def done(self, data: str) -> bool:
        return data.strip() == "[DONE]"

    def feed(self, data: str) -> list[tuple[int, str]]:
        chunk = json_event(data, self._malformed)
        if isinstance(chunk.get("model"), str):
            self._model = chunk["model"]
        if isinstance(chunk.get("usage"), dict):
            self._usage = _usage(chunk["usage"])
        choices = chunk.get("choices")
        if not isinstance(choices, list):
            raise self._malformed("a stream event has no 'choices' list")
        pieces: list[tuple[int, str]] = []
        for choice in choices:
            index = choice.get("index") if isinstance(choice, dict) else None
            delta = choice.get("delta") if isinstance(choice, dict) else None
            if not isinstance(index, int) or not isinstance(delta, dict):
                raise self._malformed("a stream choice has no 'index' and 'delta'")
            texts = self._texts.setdefault(index, [])
            content = delta.get("content")
            if isinstance(content, str) and content:
                texts.append(content)
                pieces.append((index, content))
            self._add_calls(index, delta.get("tool_calls"))
            reason = choice.get("finish_reason")
            if isinstance(reason, str):
                self._reasons[index] = reason
        return pieces

    def _add_calls(self, choice: int, deltas: Any) -> None:
        if deltas is None:
            return
        if not isinstance(deltas, list):
            raise self._malformed("a stream delta's 'tool_calls' is not a list")
        calls = self._calls.setdefault(choice, {})
        for piece in deltas:
            number = piece.get("index") if isinstance(piece, dict) else None
            if not isinstance(number, int):
                raise self._malformed("a streamed tool call has no 'index'")
            call = calls.setdefault(number, {"id": None, "name": "", "arguments": []})
            if isinstance(piece.get("id"), str):
                call["id"] = piece["id"]
            function = piece.get("function")
            if isinstance(function, dict):
                if isinstance(function.get("name"), str):
                    call["name"] += function["name"]
                if isinstance(function.get("arguments"), str):
                    call["arguments"].append(function["arguments"])

    def result(self) -> LMResponse:
        if not self._texts:
            raise self._malformed("the stream ended without any choice")
        order = sorted(self._texts)
        if all(self._reasons.get(i) == "content_filter" and not self._texts[i] for i in order):
            provider, model, endpoint = self._where
            raise _filtered(provider, model, endpoint, "")
        calls = [self._choice_calls(i) for i in order]
        return LMResponse(
            texts=tuple("".join(self._texts[i]) for i in order),
            usage=self._usage,
            model=self._model,
            finish_reasons=tuple(self._reasons.get(i) for i in order),
            tool_calls=tuple(calls) if any(calls) else (),
        )

    def _choice_calls(self, choice: int) -> tuple[LMToolCall, ...]:
        """A choice's streamed calls, checked as a whole message's are."""
        assembled = [
            {
                "id": call["id"],
                "function": {"name": call["name"], "arguments": "".join(call["arguments"])},
            }
            for _, call in sorted(self._calls.get(choice, {}).items())
        ]
        return _tool_calls(assembled or None, choice, self._malformed)
