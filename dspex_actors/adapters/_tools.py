"""Native function calling in the adapters, as DSPy 3.4.1's ``Adapter`` does it.

A signature with a ``Tool``/``list[Tool]`` input and a ``ToolCalls`` output, called with
``use_native_function_calling``: the tools go in the request's ``tools`` parameter (OpenAI's
format), both fields leave the prompt, and the reply's tool calls fill the ``ToolCalls``
field (the other outputs are read from the reply's text, None when it has none). Without
native calling, ``tools``/``tool_choice``/``parallel_tool_calls`` are dropped from the request
and the fields stay in the prompt; a reply's tool calls still fill the field.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, NamedTuple, get_args, get_origin

from dspex_actors._errors import ConfigurationError, PredictInputError
from dspex_actors.signatures import Signature
from dspex_actors.tools import Tool, ToolCalls

__all__ = ["ToolPlan", "plan_tools", "tool_input_field", "tool_output_field"]

logger = logging.getLogger(__name__)

_TOOL_PARAMS = ("tools", "tool_choice", "parallel_tool_calls")


class ToolPlan(NamedTuple):
    """What a call sends and reads: the signature it formats (tool fields removed when
    native), and the output field the reply's tool calls fill (None: no such field)."""

    signature: type[Signature]
    output_field: str | None


def tool_input_field(signature: type[Signature]) -> str | None:
    """The first input field typed ``Tool`` or ``list[Tool]``."""
    for name, field in signature.input_fields.items():
        annotation = field.annotation
        is_list = get_origin(annotation) is list and get_args(annotation) == (Tool,)
        if annotation is Tool or is_list:
            return name
    return None


def tool_output_field(signature: type[Signature]) -> str | None:
    """The first output field typed ``ToolCalls``."""
    return next((n for n, f in signature.output_fields.items() if f.annotation is ToolCalls), None)


def plan_tools(
    signature: type[Signature],
    inputs: Mapping[str, Any],
    params: dict[str, Any],
    *,
    native: bool,
    parallel_tool_calls: bool | None,
) -> ToolPlan:
    """Settle the call's tool handling; ``params`` gets ``tools`` (or loses them) in place."""
    output_field = tool_output_field(signature)
    if not native:
        for key in _TOOL_PARAMS:
            params.pop(key, None)
        return ToolPlan(signature, output_field)
    input_field = tool_input_field(signature)
    if output_field is not None and input_field is None:
        raise ConfigurationError(
            f"signature `{signature.signature}` has the output field `{output_field}` to receive "
            "tool calls but no tools as input: add an input field typed list[dx.Tool]"
        )
    if output_field is None or input_field is None:
        return ToolPlan(signature, output_field)
    params["tools"] = [
        tool.format_as_litellm_function_call() for tool in _tools(input_field, inputs)
    ]
    if parallel_tool_calls is not None and params.get("parallel_tool_calls") is None:
        params["parallel_tool_calls"] = parallel_tool_calls
    if params.get("parallel_tool_calls") is not None:
        params.setdefault("tool_choice", "auto")
    return ToolPlan(signature.delete(output_field).delete(input_field), output_field)


def _tools(name: str, inputs: Mapping[str, Any]) -> list[Tool]:
    """The tools given for input ``name`` (functions are wrapped in :class:`Tool`)."""
    if name not in inputs:
        raise PredictInputError(f"input field `{name}` (the tools) is missing")
    value = inputs[name]
    items = value if isinstance(value, list | tuple) else [value]
    tools = []
    for item in items:
        if isinstance(item, Tool):
            tools.append(item)
        elif callable(item):
            tools.append(Tool(item))
        else:
            raise PredictInputError(
                f"input field `{name}` takes dx.Tool values (or functions), "
                f"got {type(item).__name__}"
            )
    return tools
