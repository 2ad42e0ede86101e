"""The Gemini API on the local server: ``POST /v1beta/models/{model}:generateContent``
and ``:streamGenerateContent?alt=sse``.

Validated as the real API does: an ``x-goog-api-key`` header, ``contents`` required,
roles ``user``/``model`` only, no unknown fields (names in lowerCamel or snake_case, as
proto JSON allows). Errors are ``{"error": {"code", "message", "status"}}``. A stream is
partial responses, the last one with ``finishReason`` and ``usageMetadata``, then the
body ends. ``tools`` (``functionDeclarations``) and ``toolConfig`` are validated as the API
does and reach responders in OpenAI's format; a :class:`ToolCallReply` is answered with
``functionCall`` parts, and a turn holding ``functionResponse`` parts reaches them as a
``tool`` message.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from typing import Any

from dspex_actors.testing._responders import ChatRequest
from dspex_actors.testing._tool_calls import ToolCallReply
from dspex_actors.testing._wire import (
    StreamEvents,
    WireError,
    WireProtocol,
    dumps,
    model_choices,
    pieces,
    prompt_tokens,
)

__all__ = ["GeminiWire"]

logger = logging.getLogger(__name__)

_FIELDS = frozenset(
    {
        "contents", "systemInstruction", "generationConfig", "safetySettings", "tools",
        "toolConfig", "cachedContent", "labels",
    }
)  # fmt: skip
_CONFIG_FIELDS = frozenset(
    {
        "temperature", "topP", "topK", "candidateCount", "maxOutputTokens", "stopSequences",
        "responseMimeType", "responseSchema", "responseJsonSchema", "presencePenalty",
        "frequencyPenalty", "seed", "responseLogprobs", "logprobs", "thinkingConfig",
        "responseModalities", "mediaResolution", "speechConfig", "enableEnhancedCivicAnswers",
    }
)  # fmt: skip
_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_TOOL_FIELDS = frozenset(
    {
        "functionDeclarations", "googleSearch", "googleSearchRetrieval", "codeExecution",
        "urlContext", "retrieval", "computerUse", "fileSearch", "googleMaps",
    }
)  # fmt: skip
_DECLARATION_FIELDS = frozenset(
    {"name", "description", "parameters", "parametersJsonSchema", "response",
     "responseJsonSchema", "behavior"}
)  # fmt: skip
_MODES = frozenset({"MODE_UNSPECIFIED", "AUTO", "ANY", "NONE", "VALIDATED"})
_FUNCTION_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_.:-]{0,127}$")
_BAD_NAME = (
    "Invalid function name. Must start with a letter or an underscore. Must be a-z, A-Z, "
    "0-9, or contain underscores, dots, colons and dashes, with a maximum length of 128."
)
_FINISH = {"stop": "STOP", "stop_sequence": "STOP", "length": "MAX_TOKENS"}
_SNAKE = re.compile(r"_([a-z])")


def _camel(name: str) -> str:
    return _SNAKE.sub(lambda m: m.group(1).upper(), name)


def _camel_keys(data: Mapping[str, Any], known: frozenset[str], where: str) -> dict[str, Any]:
    """``data`` with lowerCamel keys; an unknown key is refused as the real API refuses it."""
    out = {}
    for key, value in data.items():
        name = _camel(key)
        if name not in known:
            at = f" at '{where}'" if where else ""
            raise WireError(
                400, f'Invalid JSON payload received. Unknown name "{key}"{at}: Cannot find field.'
            )
        out[name] = value
    return out


def _parts_text(content: Any, where: str) -> str:
    parts = content.get("parts") if isinstance(content, dict) else None
    if not isinstance(parts, list) or not parts:
        raise WireError(
            400, f"* GenerateContentRequest.{where}.parts: contents.parts must not be empty."
        )
    texts = [p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str)]
    return "".join(texts)


def _tools(tools: Any) -> list[dict[str, Any]]:
    """The function declarations validated as the API does, in OpenAI's format."""
    if not isinstance(tools, list):
        raise WireError(400, "Invalid JSON payload received. 'tools' must be a list.")
    declared = []
    for index, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise WireError(400, f"Invalid JSON payload received. tools[{index}] is not an object.")
        functions = _camel_keys(tool, _TOOL_FIELDS, f"tools[{index}]").get("functionDeclarations")
        for number, function in enumerate(functions or ()):
            where = f"* GenerateContentRequest.tools[{index}].function_declarations[{number}]"
            if not isinstance(function, dict):
                raise WireError(400, f"{where}: must be an object")
            declaration = _camel_keys(function, _DECLARATION_FIELDS, "function_declarations")
            name = declaration.get("name")
            if not isinstance(name, str) or not name:
                raise WireError(400, f"{where}.name: Name cannot be empty.")
            if not _FUNCTION_NAME.match(name):
                raise WireError(400, f"{where}.name: {_BAD_NAME}")
            if "parameters" in declaration and "parametersJsonSchema" in declaration:
                raise WireError(
                    400, f"{where}: parameters and parameters_json_schema are mutually exclusive"
                )
            schema = declaration.get("parameters", declaration.get("parametersJsonSchema"))
            if schema is not None and not isinstance(schema, dict):
                raise WireError(400, f"{where}.parameters: must be an object")
            if schema is not None and "parameters" in declaration:
                kind = str(schema.get("type", "")).upper()
                if kind == "OBJECT" and not schema.get("properties"):
                    raise WireError(
                        400, f"{where}.parameters.properties: should be non-empty for OBJECT type"
                    )
            openai_shape = {
                "name": name,
                "description": declaration.get("description", ""),
                "parameters": schema or {"type": "object", "properties": {}},
            }
            declared.append({"type": "function", "function": openai_shape})
    return declared


def _tool_choice(config: Any) -> str | dict[str, Any] | None:
    """``toolConfig`` validated, in OpenAI's form when it forbids calls or allows just one."""
    if not isinstance(config, dict):
        raise WireError(400, "Invalid JSON payload received. tool_config must be an object.")
    calling = _camel_keys(config, frozenset({"functionCallingConfig", "retrievalConfig"}), "")
    function_config = calling.get("functionCallingConfig") or {}
    if not isinstance(function_config, dict):
        raise WireError(
            400, "Invalid JSON payload received. function_calling_config must be an object."
        )
    names = frozenset({"mode", "allowedFunctionNames"})
    function_config = _camel_keys(function_config, names, "function_calling_config")
    mode = function_config.get("mode", "AUTO")
    if mode not in _MODES:
        raise WireError(
            400,
            "Invalid value at 'tool_config.function_calling_config.mode' (type.googleapis.com/"
            f'google.ai.generativelanguage.v1beta.FunctionCallingConfig.Mode), "{mode}"',
        )
    if function_config.get("allowedFunctionNames") and mode not in ("ANY", "VALIDATED"):
        raise WireError(
            400,
            "* GenerateContentRequest.tool_config.function_calling_config.allowed_function_names:"
            " allowed_function_names may only be set when mode is ANY or VALIDATED.",
        )
    allowed = function_config.get("allowedFunctionNames")
    if isinstance(allowed, list) and len(allowed) == 1 and isinstance(allowed[0], str):
        return {"type": "function", "function": {"name": allowed[0]}}
    return "none" if mode == "NONE" else None


def _function_responses(content: Any) -> list[str]:
    """The ``response`` objects (as JSON) of a turn's ``functionResponse`` parts."""
    parts = content.get("parts") if isinstance(content, dict) else None
    listed = parts if isinstance(parts, list) else []
    responses = [
        p.get("functionResponse", p.get("function_response")) for p in listed if isinstance(p, dict)
    ]
    return [json.dumps(r.get("response")) for r in responses if isinstance(r, dict)]


def _parts(choice_text: str, reply: str) -> list[dict[str, Any]]:
    """A candidate's parts: its text, or the function calls a :class:`ToolCallReply` asks."""
    if not isinstance(reply, ToolCallReply):
        return [{"text": choice_text}]
    text = [{"text": choice_text}] if choice_text else []
    return text + [{"functionCall": {"name": n, "args": args}} for n, args in reply.calls]


class GeminiWire(WireProtocol):
    """generateContent requests, replies, streams and errors."""

    name = "gemini"

    def parse(
        self,
        body: Any,
        headers: Mapping[str, str],
        *,
        model: str | None,
        stream: bool,
        default_model: str,
    ) -> ChatRequest:
        if not headers.get("x-goog-api-key"):
            raise WireError(
                403,
                "Method doesn't allow unregistered callers (callers without established "
                "identity). Please use API Key or other form of API consumer identity to call "
                "this API.",
            )
        if not isinstance(body, dict):
            raise WireError(400, "Invalid JSON payload received. Expected an object.")
        request = _camel_keys(body, _FIELDS, "")
        contents = request.get("contents")
        if not isinstance(contents, list) or not contents:
            raise WireError(400, "* GenerateContentRequest.contents: contents is not specified")
        chat: list[dict[str, Any]] = []
        if request.get("systemInstruction") is not None:
            system = _parts_text(request["systemInstruction"], "system_instruction")
            chat.append({"role": "system", "content": system})
        for index, content in enumerate(contents):
            role = content.get("role", "user") if isinstance(content, dict) else None
            if role not in ("user", "model"):
                raise WireError(400, "Please use a valid role: user, model.")
            text = _parts_text(content, f"contents[{index}]")
            responses = _function_responses(content)
            chat.extend({"role": "tool", "content": response} for response in responses)
            if text or not responses:  # a turn of function responses only is no user text
                chat.append({"role": "assistant" if role == "model" else "user", "content": text})
        config = request.get("generationConfig") or {}
        if not isinstance(config, dict):
            raise WireError(
                400, "Invalid JSON payload received. generation_config must be an object."
            )
        config = _camel_keys(config, _CONFIG_FIELDS, "generation_config")
        count = config.get("candidateCount", 1)
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise WireError(
                400, "* GenerateContentRequest.generation_config.candidate_count: must be positive"
            )
        params: dict[str, Any] = {
            "n": count,
            "stream": stream,
            "max_tokens": config.get("maxOutputTokens"),
            "stop": config.get("stopSequences"),
            "generationConfig": config,
        }
        if "temperature" in config:
            params["temperature"] = config["temperature"]
        if "tools" in request:
            params["tools"] = _tools(request["tools"])
        if "toolConfig" in request:
            params["tool_choice"] = _tool_choice(request["toolConfig"])
        return ChatRequest(
            model=model or default_model, messages=chat, params=params, headers=dict(headers)
        )

    def error_body(self, status: int, message: str) -> bytes:
        state = _STATUS.get(status, "INTERNAL" if status >= 500 else "FAILED_PRECONDITION")
        return dumps({"error": {"code": status, "message": message, "status": state}})

    def _usage(self, prompt: int, completion: int) -> dict[str, int]:
        return {
            "promptTokenCount": prompt,
            "candidatesTokenCount": completion,
            "totalTokenCount": prompt + completion,
        }

    def reply(
        self, request: ChatRequest, texts: list[str], *, reply_id: str, fault: str | None
    ) -> tuple[bytes, int, int]:
        choices = model_choices(texts, request.params.get("max_tokens"), request.params.get("stop"))
        prompt = prompt_tokens(request)
        completion = sum(c.tokens for c in choices)
        payload: dict[str, Any] = {
            "candidates": [
                {
                    "content": {"parts": _parts(choice.text, text), "role": "model"},
                    "finishReason": _FINISH[choice.finish],
                    "index": index,
                }
                for index, (choice, text) in enumerate(zip(choices, texts, strict=True))
            ],
            "usageMetadata": self._usage(prompt, completion),
            "modelVersion": request.model,
            "responseId": reply_id,
        }
        if fault == "no_choices":
            del payload["candidates"]
        elif fault == "blocked":
            del payload["candidates"]
            payload["promptFeedback"] = {"blockReason": "SAFETY"}
            payload["usageMetadata"] = self._usage(prompt, 0)
            completion = 0
        return dumps(payload), prompt, completion

    def stream(
        self,
        request: ChatRequest,
        texts: list[str],
        *,
        reply_id: str,
        chunk_chars: int,
        fault: str | None,
    ) -> StreamEvents:
        choices = model_choices(texts, request.params.get("max_tokens"), request.params.get("stop"))
        prompt = prompt_tokens(request)
        completion = sum(c.tokens for c in choices)
        common = {"modelVersion": request.model, "responseId": reply_id}
        payloads: list[dict[str, Any]] = []
        if fault == "blocked":
            completion = 0
            payloads.append(
                {"promptFeedback": {"blockReason": "SAFETY"},
                 "usageMetadata": self._usage(prompt, 0), **common}
            )  # fmt: skip
        else:
            cut_texts = [pieces(choice.text, chunk_chars) or [""] for choice in choices]
            for turn in range(max(len(p) for p in cut_texts)):
                for index, choice_pieces in enumerate(cut_texts):
                    if turn >= len(choice_pieces):
                        continue
                    last = turn == len(choice_pieces) - 1
                    parts = _parts(choice_pieces[turn], texts[index] if last else "")
                    candidate: dict[str, Any] = {
                        "content": {"parts": parts, "role": "model"},
                        "index": index,
                    }
                    if fault == "no_choices":
                        candidate = {"index": index}
                    if turn == len(choice_pieces) - 1:
                        candidate["finishReason"] = _FINISH[choices[index].finish]
                    payloads.append(
                        {"candidates": [candidate],
                         "usageMetadata": {"promptTokenCount": prompt}, **common}
                    )  # fmt: skip
            payloads[-1]["usageMetadata"] = self._usage(prompt, completion)
        events = [b"data: " + dumps(p) + b"\r\n\r\n" for p in payloads]
        if fault == "malformed_json":
            events[0] = events[0][: len(events[0]) // 2] + b"\r\n\r\n"
        cut = fault == "stream_cut"
        if cut:
            del events[max(1, len(events) // 2) :]
        return StreamEvents(events, prompt, completion, cut)
