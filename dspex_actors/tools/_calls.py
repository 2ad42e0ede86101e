"""``ToolCalls``: the function calls an LM asked for, as an output field's value (DSPy's type).

With native function calling the adapter sends a ``list[Tool]`` input as the request's
``tools`` and fills a ``ToolCalls`` output from the reply's tool calls; without it the LM
writes the calls as JSON (``{"tool_calls": [{"name": ..., "args": {...}}]}``) and they are
read with this model. Either way ``call.execute(tools)`` runs one.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pydantic

from dspex_actors._errors import ToolArgumentError
from dspex_actors.signatures import loads_tolerant
from dspex_actors.tools._tool import Tool

__all__ = ["ToolCalls", "tool_calls_from_reply"]

logger = logging.getLogger(__name__)

_DESCRIPTION = (
    "Tool calls must be a JSON object with `tool_calls`, a list of calls. "
    "Each call must include `name` and `args`. "
    'Example: {"tool_calls": [{"name": "search", "args": {"query": "cats"}}]}'
)


class ToolCalls(pydantic.BaseModel):
    """The calls, in order; each a :class:`ToolCalls.ToolCall` with ``name`` and ``args``."""

    class ToolCall(pydantic.BaseModel):
        """One call: the tool's ``name``, its ``args`` and the provider's call ``id``."""

        id: str | None = None
        name: str
        args: dict[str, Any] = pydantic.Field(json_schema_extra={"additionalProperties": True})

        @classmethod
        def __get_pydantic_json_schema__(
            cls, core_schema: Any, handler: pydantic.GetJsonSchemaHandler
        ) -> dict[str, Any]:
            """The schema the prompt shows (DSPy's): without ``id`` (nor this docstring)."""
            return _prompt_schema(core_schema, handler, drop="id")

        def format(self) -> dict[str, Any]:
            """``{"name": ..., "args": {...}}``: the call as a prompt shows it."""
            return {"name": self.name, "args": self.args}

        def execute(
            self, functions: Mapping[str, Callable[..., Any]] | Sequence[Any] | None = None
        ) -> Any:
            """Run the call: the tool named ``name`` among ``functions`` (a dict of name ->
            function, or a list of :class:`Tool`\\ s and functions; None: the caller's local
            and global names, as DSPy looks them up) with ``args``.

            Raises :class:`ToolArgumentError` when no tool has that name or its arguments do
            not fit; an error the tool raises propagates as it is.
            """
            if functions is None:
                caller = inspect.currentframe()
                frame = caller.f_back if caller is not None else None
                try:
                    scope = {**frame.f_globals, **frame.f_locals} if frame is not None else {}
                finally:
                    del caller, frame
                func = scope.get(self.name)
            elif isinstance(functions, Mapping):
                func = functions.get(self.name)
            else:
                func = next((f for f in functions if _tool_name(f) == self.name), None)
            if func is None or not callable(func):
                raise ToolArgumentError(
                    f"no tool named {self.name!r} to execute: pass the tools, e.g. "
                    f"call.execute([dx.Tool(fn), ...]) or call.execute({{{self.name!r}: fn}})"
                )
            tool = func if isinstance(func, Tool) else Tool(func, name=self.name)
            return tool(**self.args)

    tool_calls: list[ToolCall]

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: Any, handler: pydantic.GetJsonSchemaHandler
    ) -> dict[str, Any]:
        """The schema the prompt shows (DSPy's): without this docstring."""
        return _prompt_schema(core_schema, handler)

    @classmethod
    def description(cls) -> str:
        """What the prompt says of this type when the LM writes the calls itself."""
        return _DESCRIPTION

    @classmethod
    def from_dict_list(cls, tool_calls_dicts: Sequence[Mapping[str, Any]]) -> ToolCalls:
        """From ``[{"name": ..., "args": {...}}, ...]`` (or OpenAI's ``function`` shape)."""
        return cls(tool_calls=[cls.ToolCall(**_normalized(item)) for item in tool_calls_dicts])

    def format(self) -> dict[str, Any]:
        """``{"tool_calls": [{"name": ..., "args": {...}}, ...]}``."""
        return {"tool_calls": [call.format() for call in self.tool_calls]}

    @pydantic.model_serializer()
    def _serialize(self) -> dict[str, Any]:
        return self.format()

    @pydantic.model_validator(mode="before")
    @classmethod
    def _validate_input(cls, data: Any) -> Any:
        """A list of calls, one call, or ``{"tool_calls": [...]}``, in DSPy's or OpenAI's shape."""
        if isinstance(data, cls):
            return data
        if isinstance(data, list) and all(isinstance(i, dict) and _is_call(i) for i in data):
            return {"tool_calls": [_normalized(item) for item in data]}
        if isinstance(data, dict):
            calls = data.get("tool_calls")
            if isinstance(calls, list):
                return {"tool_calls": [_normalized(i) if isinstance(i, dict) else i for i in calls]}
            if _is_call(data):
                return {"tool_calls": [_normalized(data)]}
        raise ValueError(f"Received invalid value for `ToolCalls`: {data!r}")


def _prompt_schema(
    core_schema: Any, handler: pydantic.GetJsonSchemaHandler, drop: str | None = None
) -> dict[str, Any]:
    """pydantic's schema without the class docstring and the property ``drop``."""
    schema: dict[str, Any] = handler.resolve_ref_schema(handler(core_schema))
    schema.pop("description", None)
    if drop is not None:
        schema.get("properties", {}).pop(drop, None)
        if isinstance(schema.get("required"), list):
            schema["required"] = [name for name in schema["required"] if name != drop]
    return schema


def _tool_name(func: Any) -> str | None:
    name = func.name if isinstance(func, Tool) else getattr(func, "__name__", None)
    return name if isinstance(name, str) else None


def _is_call(data: Mapping[str, Any]) -> bool:
    return ("name" in data and ("args" in data or "arguments" in data)) or "function" in data


def _normalized(data: Mapping[str, Any]) -> dict[str, Any]:
    """``{id, name, args}`` of a call in DSPy's shape or OpenAI's (``function.arguments``,
    JSON text)."""
    function = data.get("function")
    if isinstance(function, Mapping):
        arguments: Any = function.get("arguments", {})
        name = function.get("name") or data.get("name")
    else:
        arguments = data.get("args", data.get("arguments", {}))
        name = data.get("name")
    if isinstance(arguments, str):
        arguments = loads_tolerant(arguments) if arguments.strip() else {}
    if not isinstance(arguments, dict):
        arguments = {}
    return {"id": data.get("id") or data.get("call_id"), "name": name, "args": arguments}


def tool_calls_from_reply(calls: Sequence[Any]) -> ToolCalls:
    """A :class:`ToolCalls` from a reply's ``(id, name, arguments JSON)`` calls."""
    return ToolCalls(
        tool_calls=[
            ToolCalls.ToolCall(**_normalized({"id": i, "function": {"name": n, "arguments": a}}))
            for i, n, a in calls
        ]
    )
