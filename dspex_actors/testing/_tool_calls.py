"""Native function calling on the local server: a reply that calls the request's tools.

A request with ``tools`` (OpenAI's ``[{"type": "function", "function": {name, parameters}}]``;
the Anthropic and Gemini routes translate theirs to it) and no tool results yet is answered
with one call of the tool ``tool_choice`` forces (``{"type": "function", "function":
{"name": ...}}``), else the tool named in the question (else the first listed), its arguments
read off the question as the ReAct agent reads them (``_agent.tool_arguments``), and no
text, as a model that decides to call a tool does. Once the conversation holds a tool
result (a ``tool`` message), the reply is text again.

The call travels as a :class:`ToolCallReply`: a reply text (a ``str``, so the server's token
counts and fault paths treat it as any reply) that also carries the calls; each protocol
writes them in its own shape.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from dspex_actors.testing._agent import choose_tool, tool_arguments

__all__ = [
    "ToolCallReply",
    "openai_choice",
    "openai_tool_calls",
    "planned_tool_calls",
    "with_tool_calls",
]

logger = logging.getLogger(__name__)


class ToolCallReply(str):
    """A reply text that also asks for function calls: ``calls`` holds ``(name, args)``."""

    calls: tuple[tuple[str, dict[str, Any]], ...]

    def __new__(cls, text: str, calls: Sequence[tuple[str, dict[str, Any]]]) -> ToolCallReply:
        reply = super().__new__(cls, text)
        reply.calls = tuple(calls)
        return reply


def _declared_tools(tools: Any) -> list[tuple[str, dict[str, Any]]]:
    """``(name, argument schemas)`` of each OpenAI-shaped tool declaration."""
    found = []
    for tool in tools if isinstance(tools, list) else ():
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            continue
        parameters = function.get("parameters")
        properties = parameters.get("properties") if isinstance(parameters, dict) else None
        found.append((function["name"], properties if isinstance(properties, dict) else {}))
    return found


def planned_tool_calls(
    params: Mapping[str, Any], messages: Sequence[Mapping[str, Any]], question: str
) -> list[tuple[str, dict[str, Any]]]:
    """The calls to answer with: one, while the request has tools and no tool result yet."""
    tools = _declared_tools(params.get("tools"))
    choice = params.get("tool_choice")
    if not tools or choice == "none":
        return []
    function = choice.get("function") if isinstance(choice, Mapping) else None
    forced = function.get("name") if isinstance(function, Mapping) else None
    tools = [tool for tool in tools if tool[0] == forced] or tools
    if any(message.get("role") == "tool" for message in messages):
        return []
    name, schemas = choose_tool(question, tools)
    return [(name, tool_arguments(question, schemas))]


def with_tool_calls(text: str, calls: Sequence[tuple[str, dict[str, Any]]]) -> str:
    """``text`` unchanged without calls; else a :class:`ToolCallReply` with no text."""
    return ToolCallReply("", calls) if calls else text


def openai_tool_calls(reply: ToolCallReply, call_prefix: str) -> list[dict[str, Any]]:
    """The calls as an OpenAI message's ``tool_calls`` (arguments as JSON text)."""
    return [
        {
            "id": f"{call_prefix}-{index}",
            "type": "function",
            "function": {"name": name, "arguments": json.dumps(args)},
        }
        for index, (name, args) in enumerate(reply.calls)
    ]


def openai_choice(index: int, reply: ToolCallReply, call_prefix: str) -> str:
    """One chat-completion choice (JSON) that calls the reply's tools."""
    message = {
        "role": "assistant",
        "content": str(reply) or None,
        "tool_calls": openai_tool_calls(reply, call_prefix),
    }
    return json.dumps(
        {"index": index, "message": message, "finish_reason": "tool_calls", "logprobs": None}
    )
