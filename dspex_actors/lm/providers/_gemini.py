"""Google's Gemini API: ``POST {api_base}/v1beta/models/{model}:generateContent``.

The key goes in ``x-goog-api-key`` (never in the URL); roles are ``user``/``model``, the
system prompt is ``systemInstruction`` and sampling settings live in ``generationConfig``.
A streamed call uses ``:streamGenerateContent?alt=sse``: each event is a partial
response and the body simply ends after the one carrying ``finishReason``. A safety block
(``promptFeedback.blockReason``, or a candidate finishing with ``SAFETY`` and the like)
is a :class:`~dspex_actors.ContentBlockedError`. Native function calling: the OpenAI-format
``tools``/``tool_choice`` become ``functionDeclarations`` and ``toolConfig`` (``_tools``), a
reply's ``functionCall`` parts its tool calls (ids ``call_<index>`` when Gemini sends none).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from dspex_actors._errors import ContentBlockedError, MalformedResponseError
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
from dspex_actors.lm.providers._tools import TOOL_PARAMS, gemini_tool_params

__all__ = ["GeminiProvider"]

logger = logging.getLogger(__name__)

_CONFIG_NAMES = {
    "temperature": "temperature",
    "max_tokens": "maxOutputTokens",
    "max_completion_tokens": "maxOutputTokens",
    "top_p": "topP",
    "top_k": "topK",
    "n": "candidateCount",
    "presence_penalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty",
    "seed": "seed",
}
"""OpenAI-style parameters and their ``generationConfig`` names."""
_DROPPED = frozenset({"stop", "response_format", "stream_options", "generationConfig"})
_BLOCKED = frozenset(
    {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"}
)
_FINISH = {"STOP": "stop", "MAX_TOKENS": "length"}


class GeminiProvider(Provider):
    """``gemini/<model>``: generateContent of the Gemini Developer API."""

    name = "gemini"
    default_api_base = "https://generativelanguage.googleapis.com"
    api_key_envs = ("GEMINI_API_KEY", "GOOGLE_API_KEY")

    def url(
        self,
        api_base: str,
        model_name: str,
        *,
        stream: bool = False,
        api_version: str | None = None,
    ) -> str:
        method = "streamGenerateContent?alt=sse" if stream else "generateContent"
        return f"{api_base.rstrip('/')}/v1beta/models/{quote(model_name, safe='')}:{method}"

    def headers(self, api_key: str | None) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if api_key:
            headers["x-goog-api-key"] = api_key
        return headers

    def body(self, model_name: str, request: LMRequest) -> dict[str, Any]:
        params = request.params
        system, turns = merge_turns(request.messages, "model")
        config: dict[str, Any] = dict(params.get("generationConfig") or {})
        body: dict[str, Any] = {}
        for key, value in params.items():
            if key in _CONFIG_NAMES:
                if value is not None:
                    config[_CONFIG_NAMES[key]] = value
            elif key not in _DROPPED and key not in TOOL_PARAMS:
                body[key] = value  # Gemini's own fields (safetySettings, toolConfig, ...)
        for key, value in gemini_tool_params(params).items():
            body.setdefault(key, value)
        stops = stop_list(params.get("stop"))
        if stops:
            config["stopSequences"] = stops
        response_format = params.get("response_format")
        if isinstance(response_format, dict) and response_format.get("type") in (
            "json_object",
            "json_schema",
        ):
            config["responseMimeType"] = "application/json"
        body["contents"] = [{"role": role, "parts": [{"text": text}]} for role, text in turns]
        if system is not None:
            body["systemInstruction"] = {"parts": [{"text": system}]}
        if config:
            body["generationConfig"] = config
        return body

    def stream_body(self, model_name: str, request: LMRequest) -> dict[str, Any]:
        return self.body(model_name, request)  # streaming is in the URL

    def stream_decoder(self, *, model: str, endpoint: str) -> StreamDecoder:
        return _ChunkDecoder(model, endpoint)

    def parse(self, payload: Any, *, model: str, endpoint: str) -> LMResponse:
        bad = malformed(self.name, model, endpoint)
        if not isinstance(payload, dict):
            raise bad(f"expected a JSON object, got {type(payload).__name__}")
        _check_prompt_blocked(payload, model, endpoint)
        candidates = payload.get("candidates")
        if not isinstance(candidates, list) or not candidates:
            raise bad("the reply has no text (no candidates)")
        texts: list[str] = []
        reasons: list[str | None] = []
        calls: list[tuple[LMToolCall, ...]] = []
        for candidate in candidates:
            if not isinstance(candidate, dict):
                raise bad("a candidate is not a JSON object")
            reason = candidate.get("finishReason")
            text = _candidate_text(candidate)
            candidate_calls = _function_calls(candidate, bad)
            if reason in _BLOCKED and not text:
                raise _blocked(model, endpoint, str(reason), "the reply")
            if text is None and not candidate_calls:
                raise bad(f"the reply has no text (candidate finishReason {reason})")
            texts.append(text or "")
            reasons.append("tool_calls" if candidate_calls else _finish(reason))
            calls.append(candidate_calls)
        served_by = payload.get("modelVersion")
        return LMResponse(
            texts=tuple(texts),
            usage=_usage(payload.get("usageMetadata")),
            model=served_by if isinstance(served_by, str) else "",
            finish_reasons=tuple(reasons),
            tool_calls=tuple(calls) if any(calls) else (),
        )


def _function_calls(
    candidate: dict[str, Any], bad: Callable[[str], MalformedResponseError], first: int = 0
) -> tuple[LMToolCall, ...]:
    """A candidate's ``functionCall`` parts (``{name, args}``, ``id`` when sent), arguments
    encoded as JSON text; a call without an id gets ``call_<index>`` (counted from ``first``,
    the calls a stream already brought), stable per reply."""
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    calls: list[LMToolCall] = []
    for part in parts if isinstance(parts, list) else ():
        call = part.get("functionCall") if isinstance(part, dict) else None
        if call is None:
            continue
        name = call.get("name") if isinstance(call, dict) else None
        if not isinstance(call, dict) or not isinstance(name, str) or not name:
            raise bad("a functionCall part has no name")
        arguments = call.get("args") or {}
        if not isinstance(arguments, dict):
            raise bad(f"the functionCall of {name!r} has args that are not an object")
        call_id = call.get("id")
        calls.append(
            LMToolCall(
                call_id if isinstance(call_id, str) and call_id else f"call_{first + len(calls)}",
                name,
                json.dumps(arguments, ensure_ascii=False),
            )
        )
    return tuple(calls)


def _candidate_text(candidate: dict[str, Any]) -> str | None:
    """The text parts of a candidate joined (thought parts left out); None if it has none."""
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    if not isinstance(parts, list):
        return None
    texts = [
        part["text"]
        for part in parts
        if isinstance(part, dict) and isinstance(part.get("text"), str) and not part.get("thought")
    ]
    return "".join(texts) if texts else None


def _check_prompt_blocked(payload: dict[str, Any], model: str, endpoint: str) -> None:
    feedback = payload.get("promptFeedback")
    reason = feedback.get("blockReason") if isinstance(feedback, dict) else None
    if isinstance(reason, str) and reason:
        raise _blocked(model, endpoint, reason, "the prompt")


def _blocked(model: str, endpoint: str, reason: str, what: str) -> ContentBlockedError:
    return ContentBlockedError(
        f"gemini blocked {what} at {endpoint} for {model} (reason {reason}); "
        "rephrase it or adjust safetySettings",
        reason=reason,
        model=model,
        endpoint=endpoint,
    )


def _finish(reason: Any) -> str | None:
    return _FINISH.get(reason, reason.lower()) if isinstance(reason, str) else None


def _usage(raw: Any) -> dict[str, int]:
    """``promptTokenCount``, ``candidatesTokenCount`` (+ thoughts), OpenAI-named."""
    if not isinstance(raw, dict):
        return {}
    prompt = token_count(raw, "promptTokenCount")
    completion = token_count(raw, "candidatesTokenCount") + token_count(raw, "thoughtsTokenCount")
    total = token_count(raw, "totalTokenCount") or prompt + completion
    usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total}
    cached = token_count(raw, "cachedContentTokenCount")
    if cached:
        usage["cached_content_tokens"] = cached
    return usage


class _ChunkDecoder(StreamDecoder):
    """Partial GenerateContentResponses; the reply is whole once a finishReason came."""

    def __init__(self, model: str, endpoint: str) -> None:
        self._model_id, self._endpoint = model, endpoint
        self._malformed = malformed("gemini", model, endpoint)
        self._texts: dict[int, list[str]] = {}
        self._reasons: dict[int, str] = {}
        self._calls: dict[int, list[LMToolCall]] = {}
        self._usage: dict[str, int] = {}
        self._served_by = ""

    def done(self, data: str) -> bool:
        return False  # the body ends after the last chunk

    def feed(self, data: str) -> list[tuple[int, str]]:
        chunk = json_event(data, self._malformed)
        _check_prompt_blocked(chunk, self._model_id, self._endpoint)
        if isinstance(chunk.get("usageMetadata"), dict):
            self._usage = _usage(chunk["usageMetadata"])
        if isinstance(chunk.get("modelVersion"), str):
            self._served_by = chunk["modelVersion"]
        candidates = chunk.get("candidates", [])
        if not isinstance(candidates, list):
            raise self._malformed("a stream event's 'candidates' is not a list")
        pieces: list[tuple[int, str]] = []
        for position, candidate in enumerate(candidates):
            if not isinstance(candidate, dict):
                raise self._malformed("a streamed candidate is not a JSON object")
            index = candidate.get("index", position)
            index = index if isinstance(index, int) else position
            texts = self._texts.setdefault(index, [])
            text = _candidate_text(candidate)
            if text:
                texts.append(text)
                pieces.append((index, text))
            calls = self._calls.setdefault(index, [])
            calls.extend(_function_calls(candidate, self._malformed, first=len(calls)))
            reason = candidate.get("finishReason")
            if isinstance(reason, str):
                if reason in _BLOCKED and not texts:
                    raise _blocked(self._model_id, self._endpoint, reason, "the reply")
                self._reasons[index] = reason
        return pieces

    def result(self) -> LMResponse:
        order = sorted(self._texts)
        calls = tuple(tuple(self._calls.get(i, ())) for i in order)
        if not order or not any(self._texts[i] or calls[n] for n, i in enumerate(order)):
            raise self._malformed("the stream ended without any text")
        return LMResponse(
            texts=tuple("".join(self._texts[i]) for i in order),
            usage=self._usage,
            model=self._served_by,
            finish_reasons=tuple(
                "tool_calls" if calls[n] else _finish(self._reasons.get(i))
                for n, i in enumerate(order)
            ),
            tool_calls=calls if any(calls) else (),
        )

    def at_end(self) -> LMResponse | None:
        return self.result() if self._reasons else None
