"""The Anthropic Messages API on the local server: ``POST /v1/messages``.

Validated as the real API does: a key (``x-api-key``, or a bearer ``Authorization`` as
newer SDKs send) and an ``anthropic-version`` header,
``model``/``max_tokens``/``messages`` required, no unknown fields, user/assistant roles
only (the system prompt is top level), alternating turns starting with the user.
Errors are ``{"type": "error", "error": {"type": ..., "message": ...}}``; 529 is
``overloaded_error``. Streams are typed events ending with ``message_stop``. ``tools`` and
``tool_choice`` are validated as the API does and reach responders in OpenAI's format; a
:class:`ToolCallReply` is answered with ``tool_use`` blocks (stop_reason ``tool_use``), and
a user turn holding ``tool_result`` blocks reaches them as a ``tool`` message.
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

__all__ = ["AnthropicWire"]

logger = logging.getLogger(__name__)

_FIELDS = frozenset(
    {
        "model", "messages", "max_tokens", "system", "stop_sequences", "stream",
        "temperature", "top_p", "top_k", "metadata", "tools", "tool_choice", "thinking",
        "service_tier",
    }
)  # fmt: skip
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}
_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "stop_sequence": "stop_sequence"}
_TOOL_FIELDS = frozenset({"type", "name", "description", "input_schema", "cache_control"})
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_SERVER_TOOL = re.compile(r"^[a-z_]+_\d{8}$")
_CHOICES = {
    "auto": frozenset({"type", "disable_parallel_tool_use"}),
    "any": frozenset({"type", "disable_parallel_tool_use"}),
    "tool": frozenset({"type", "name", "disable_parallel_tool_use"}),
    "none": frozenset({"type"}),
}
"""The ``tool_choice`` types and the fields each takes."""


def _tools(tools: Any) -> list[dict[str, Any]]:
    """Custom tools validated as the API does, in OpenAI's format for the responders."""
    if not isinstance(tools, list):
        raise _invalid("tools: Input should be a valid list")
    declared = []
    for index, tool in enumerate(tools):
        where = f"tools.{index}.custom"
        if not isinstance(tool, dict):
            raise _invalid(f"tools.{index}: Input should be a valid dictionary")
        kind = tool.get("type", "custom")
        if kind != "custom" and isinstance(kind, str) and _SERVER_TOOL.match(kind):
            continue  # a server tool (web_search_20250305, ...): not one the model calls here
        if kind != "custom":
            raise _invalid(
                f"tools.{index}: Input tag '{kind}' found using 'type' does not match any of "
                "the expected tags: 'custom' or a versioned server tool (e.g. "
                "'web_search_20250305')"
            )
        for name in tool:
            if name not in _TOOL_FIELDS:
                raise _invalid(f"{where}.{name}: Extra inputs are not permitted")
        for name in ("name", "input_schema"):
            if name not in tool:
                raise _invalid(f"{where}.{name}: Field required")
        if not isinstance(tool["name"], str) or not _TOOL_NAME.match(tool["name"]):
            raise _invalid(f"{where}.name: String should match pattern '{_TOOL_NAME.pattern}'")
        schema = tool["input_schema"]
        if not isinstance(schema, dict):
            raise _invalid(f"{where}.input_schema: Input should be a valid dictionary")
        if schema.get("type") != "object":
            raise _invalid(f"{where}.input_schema.type: Input should be 'object'")
        function = {"name": tool["name"], "description": tool.get("description", "")}
        declared.append({"type": "function", "function": {**function, "parameters": schema}})
    return declared


def _tool_choice(choice: Any) -> str | dict[str, Any] | None:
    """``tool_choice`` validated, in OpenAI's form when it forbids calls or forces one."""
    if not isinstance(choice, dict):
        raise _invalid("tool_choice: Input should be a valid dictionary")
    kind = choice.get("type")
    if kind not in _CHOICES:
        raise _invalid(
            f"tool_choice: Input tag '{kind}' found using 'type' does not match any of the "
            "expected tags: " + ", ".join(f"'{c}'" for c in _CHOICES)
        )
    for name in choice:
        if name not in _CHOICES[kind]:
            raise _invalid(f"tool_choice.{kind}.{name}: Extra inputs are not permitted")
    if kind == "tool" and not isinstance(choice.get("name"), str):
        raise _invalid("tool_choice.tool.name: Field required")
    if kind == "tool":
        return {"type": "function", "function": {"name": choice["name"]}}
    return "none" if kind == "none" else None


def _tool_results(content: Any) -> list[str]:
    """The texts of a turn's ``tool_result`` blocks."""
    blocks = content if isinstance(content, list) else []
    return [
        _text_of(block.get("content", ""), "tool_result.content") or ""
        for block in blocks
        if isinstance(block, dict) and block.get("type") == "tool_result"
    ]


def _invalid(message: str) -> WireError:
    return WireError(400, message)


def _text_of(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list) and content:
        texts = []
        for index, block in enumerate(content):
            if not isinstance(block, dict) or not isinstance(block.get("type"), str):
                raise _invalid(f"{where}.{index}: Input should be a valid dictionary")
            if block["type"] == "text":
                if not isinstance(block.get("text"), str):
                    raise _invalid(f"{where}.{index}.text: Field required")
                texts.append(block["text"])
        return "\n".join(texts)
    raise _invalid(f"{where}: Input should be a valid string or a non-empty list")


class AnthropicWire(WireProtocol):
    """Messages API requests, replies, streams and errors."""

    name = "anthropic"

    def parse(
        self,
        body: Any,
        headers: Mapping[str, str],
        *,
        model: str | None,
        stream: bool,
        default_model: str,
    ) -> ChatRequest:
        if not (headers.get("x-api-key") or headers.get("authorization")):
            raise WireError(401, "x-api-key header is required")
        if not headers.get("anthropic-version"):
            raise _invalid("anthropic-version: header is required")
        if not isinstance(body, dict):
            raise _invalid("request body must be a JSON object")
        for name in ("model", "messages", "max_tokens"):
            if name not in body:
                raise _invalid(f"{name}: Field required")
        for name in body:
            if name not in _FIELDS:
                raise _invalid(f"{name}: Extra inputs are not permitted")
        max_tokens = body["max_tokens"]
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise _invalid("max_tokens: Input should be a valid integer greater than 0")
        temperature = body.get("temperature")
        if temperature is not None and not (
            isinstance(temperature, (int, float)) and 0 <= temperature <= 1
        ):
            raise _invalid("temperature: Input should be less than or equal to 1")
        stops = body.get("stop_sequences")
        if stops is not None and not (
            isinstance(stops, list) and all(isinstance(s, str) for s in stops)
        ):
            raise _invalid("stop_sequences: Input should be a valid list of strings")
        messages = body["messages"]
        if not isinstance(messages, list) or not messages:
            raise _invalid("messages: at least one message is required")
        chat: list[dict[str, Any]] = []
        system = body.get("system")
        if system is not None:
            chat.append({"role": "system", "content": _text_of(system, "system")})
        previous = None
        for index, message in enumerate(messages):
            role = message.get("role") if isinstance(message, dict) else None
            if role == "system":
                raise _invalid(
                    'messages: Unexpected role "system". The Messages API accepts a top-level '
                    '`system` parameter, not "system" as an input message role.'
                )
            if role not in ("user", "assistant"):
                raise _invalid(f"messages.{index}.role: Input should be 'user' or 'assistant'")
            if index == 0 and role != "user":
                raise _invalid('messages: first message must use the "user" role')
            if role == previous:
                raise _invalid(
                    f'messages: roles must alternate between "user" and "assistant", '
                    f'but found multiple "{role}" roles in a row'
                )
            previous = role
            assert isinstance(message, dict)
            if "content" not in message:
                raise _invalid(f"messages.{index}.content: Field required")
            text = _text_of(message["content"], f"messages.{index}.content")
            results = _tool_results(message["content"])
            chat.extend({"role": "tool", "content": result} for result in results)
            if text or not results:  # a turn of tool results only is no user text
                chat.append({"role": role, "content": text})
        name = body["model"]
        if not isinstance(name, str) or not name:
            raise _invalid("model: Input should be a valid string")
        params = {k: v for k, v in body.items() if k not in {"model", "messages", "system"}}
        params["n"] = 1
        if "tools" in body:
            params["tools"] = _tools(body["tools"])
        if "tool_choice" in body:
            if not body.get("tools"):
                raise _invalid("tool_choice may only be specified while providing tools.")
            params["tool_choice"] = _tool_choice(body["tool_choice"])
        return ChatRequest(model=name, messages=chat, params=params, headers=dict(headers))

    def error_body(self, status: int, message: str) -> bytes:
        kind = _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
        return dumps({"type": "error", "error": {"type": kind, "message": message}})

    def _message(
        self, request: ChatRequest, texts: list[str], reply_id: str, fault: str | None
    ) -> tuple[dict[str, Any], str, int, int]:
        limit = request.params.get("max_tokens")
        choice = model_choices(texts[:1], limit, request.params.get("stop_sequences"))[0]
        prompt = prompt_tokens(request)
        stop_reason = _STOP_REASONS[choice.finish]
        content: list[dict[str, Any]] = [{"type": "text", "text": choice.text}]
        if isinstance(texts[0], ToolCallReply):
            content = content if choice.text else []
            content += [
                {"type": "tool_use", "id": f"toolu_{reply_id}_{index}", "name": name, "input": args}
                for index, (name, args) in enumerate(texts[0].calls)
            ]
            stop_reason = "tool_use"
        if fault == "no_choices":
            content = []
        elif fault == "blocked":
            content, stop_reason = [], "refusal"
        message = {
            "id": reply_id,
            "type": "message",
            "role": "assistant",
            "model": request.model,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": choice.stop_sequence,
            "usage": {"input_tokens": prompt, "output_tokens": choice.tokens},
        }
        return message, choice.text, prompt, choice.tokens

    def reply(
        self, request: ChatRequest, texts: list[str], *, reply_id: str, fault: str | None
    ) -> tuple[bytes, int, int]:
        message, _, prompt, completion = self._message(request, texts, reply_id, fault)
        return dumps(message), prompt, completion

    def stream(
        self,
        request: ChatRequest,
        texts: list[str],
        *,
        reply_id: str,
        chunk_chars: int,
        fault: str | None,
    ) -> StreamEvents:
        message, text, prompt, completion = self._message(request, texts, reply_id, fault)
        start = dict(message, content=[], stop_reason=None, stop_sequence=None)
        start["usage"] = {"input_tokens": prompt, "output_tokens": 1}
        payloads: list[tuple[str, dict[str, Any]]] = [
            ("message_start", {"type": "message_start", "message": start}),
        ]
        for index, block in enumerate(message["content"]):
            opened: dict[str, Any] = {"type": "text", "text": ""}
            key, kind, whole = "text", "text_delta", text
            if block["type"] == "tool_use":
                opened = {**block, "input": {}}
                key, kind, whole = "partial_json", "input_json_delta", json.dumps(block["input"])
            payloads.append(
                (
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": opened},
                )
            )
            if index == 0:
                payloads.append(("ping", {"type": "ping"}))
            for piece in pieces(whole, chunk_chars):
                delta = {"type": kind, key: piece}
                payloads.append(
                    (
                        "content_block_delta",
                        {"type": "content_block_delta", "index": index, "delta": delta},
                    )
                )
            payloads.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
        end = {"stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"]}
        payloads.append(
            ("message_delta", {"type": "message_delta", "delta": end,
                               "usage": {"output_tokens": completion}})
        )  # fmt: skip
        payloads.append(("message_stop", {"type": "message_stop"}))
        events = [
            b"event: " + name.encode() + b"\ndata: " + dumps(p) + b"\n\n" for name, p in payloads
        ]
        if fault == "malformed_json":
            first = 3 if message["content"] else 1
            events[first] = events[first][: len(events[first]) // 2] + b"\n\n"
        cut = fault == "stream_cut"
        if cut:
            del events[max(1, len(events) // 2) :]
        return StreamEvents(events, prompt, completion, cut)
