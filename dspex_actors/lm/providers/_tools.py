"""OpenAI-format function-calling parameters in the Anthropic and Gemini request shapes.

The adapters plan ``tools`` (``[{"type": "function", "function": {name, description,
parameters}}]``), ``tool_choice`` (``"auto"``/``"none"``/``"required"`` or one named
function) and ``parallel_tool_calls`` as OpenAI takes them; these functions write the
same request for the Messages API and for generateContent. A tool already in the
provider's own shape passes through unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from dspex_actors._errors import ConfigurationError

__all__ = ["TOOL_PARAMS", "anthropic_tool_params", "gemini_tool_params"]

TOOL_PARAMS = frozenset({"tools", "tool_choice", "parallel_tool_calls"})
"""The OpenAI parameters translated here (never sent as they are)."""

_GEMINI_SCHEMA_KEYS = frozenset(
    {
        "type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems",
        "properties", "required", "minProperties", "maxProperties", "minLength", "maxLength",
        "pattern", "example", "anyOf", "propertyOrdering", "default", "items", "minimum",
        "maximum",
    }
)  # fmt: skip
"""The OpenAPI subset Gemini's ``parameters`` takes; other schemas go as
``parametersJsonSchema``."""
_GEMINI_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY", "function": "ANY"}
_ANTHROPIC_CHOICES = {"auto": "auto", "none": "none", "required": "any", "function": "tool"}
_ANTHROPIC_KINDS = frozenset(_ANTHROPIC_CHOICES.values())


class _Function(NamedTuple):
    """One OpenAI-format function declaration."""

    name: str
    description: str
    parameters: dict[str, Any]


def anthropic_tool_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """``tools`` (``{name, description, input_schema}``) and ``tool_choice`` for the
    Messages API; ``parallel_tool_calls=False`` is ``disable_parallel_tool_use``."""
    tools = _tools(params.get("tools"), native=lambda tool: "function" not in tool)
    if not tools:
        return {}
    body: dict[str, Any] = {"tools": [_anthropic_tool(tool) for tool in tools]}
    raw_choice = params.get("tool_choice")
    if isinstance(raw_choice, Mapping) and raw_choice.get("type") in _ANTHROPIC_KINDS:
        choice: dict[str, Any] = dict(raw_choice)  # already the Messages API's shape
    else:
        kind, name = _choice(raw_choice)
        choice = {"type": _ANTHROPIC_CHOICES[kind or "auto"]}
        if name is not None:
            choice["name"] = name
    if params.get("parallel_tool_calls") is False and choice["type"] != "none":
        choice["disable_parallel_tool_use"] = True
    if raw_choice is not None or choice != {"type": "auto"}:
        body["tool_choice"] = choice
    return body


def gemini_tool_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """``tools`` (one ``functionDeclarations`` list) and ``toolConfig`` for generateContent.

    Gemini has no switch for parallel calls: ``parallel_tool_calls`` is not sent.
    """
    tools = _tools(params.get("tools"), native=lambda tool: tool.get("type") != "function")
    if not tools:
        return {}
    declarations = [_gemini_declaration(t) for t in tools if isinstance(t, _Function)]
    body: dict[str, Any] = {"tools": [t for t in tools if not isinstance(t, _Function)]}
    if declarations:
        body["tools"].append({"functionDeclarations": declarations})
    kind, name = _choice(params.get("tool_choice"))
    if kind is not None:
        config: dict[str, Any] = {"mode": _GEMINI_MODES[kind]}
        if name is not None:
            config["allowedFunctionNames"] = [name]
        body["toolConfig"] = {"functionCallingConfig": config}
    return body


def _tools(raw: Any, *, native: Any) -> list[_Function | dict[str, Any]]:
    """The declared tools: OpenAI-format functions read, the provider's own kept as is."""
    if raw is None:
        return []
    if not isinstance(raw, list | tuple):
        raise ConfigurationError(f"tools must be a list of tool declarations, got {raw!r:.100}")
    tools: list[_Function | dict[str, Any]] = []
    for index, tool in enumerate(raw):
        if not isinstance(tool, Mapping):
            raise ConfigurationError(f"tools[{index}] is not a tool declaration: {tool!r:.100}")
        if native(tool):
            tools.append(dict(tool))
            continue
        function = tool.get("function")
        name = function.get("name") if isinstance(function, Mapping) else None
        if not isinstance(function, Mapping) or not isinstance(name, str) or not name:
            raise ConfigurationError(
                f'tools[{index}] has no function name: expected {{"type": "function", '
                f'"function": {{"name": ..., "parameters": {{...}}}}}}, got {tool!r:.100}'
            )
        parameters = function.get("parameters")
        if parameters is None:
            parameters = {"type": "object", "properties": {}}
        if not isinstance(parameters, Mapping):
            raise ConfigurationError(
                f"tools[{index}] ({name}) has parameters that are not a JSON schema object"
            )
        description = function.get("description")
        tools.append(_Function(name, description or "", dict(parameters)))
    return tools


def _choice(raw: Any) -> tuple[str | None, str | None]:
    """``tool_choice`` as ``(kind, function name)``; kind ``auto``/``none``/``required``/
    ``function``, or None when not given."""
    if raw is None:
        return None, None
    if raw in ("auto", "none", "required"):
        return str(raw), None
    function = raw.get("function") if isinstance(raw, Mapping) else None
    name = function.get("name") if isinstance(function, Mapping) else None
    if isinstance(raw, Mapping) and raw.get("type") == "function" and isinstance(name, str):
        return "function", name
    raise ConfigurationError(
        f'tool_choice must be "auto", "none", "required" or '
        f'{{"type": "function", "function": {{"name": ...}}}}, got {raw!r:.100}'
    )


def _anthropic_tool(tool: _Function | dict[str, Any]) -> dict[str, Any]:
    if not isinstance(tool, _Function):
        return tool
    declared: dict[str, Any] = {"name": tool.name}
    if tool.description:
        declared["description"] = tool.description
    declared["input_schema"] = tool.parameters
    return declared


def _gemini_declaration(function: _Function) -> dict[str, Any]:
    """A ``FunctionDeclaration``: no parameters for a tool without arguments (Gemini refuses
    an empty object schema), ``parametersJsonSchema`` for a schema beyond its subset."""
    declared: dict[str, Any] = {"name": function.name}
    if function.description:
        declared["description"] = function.description
    if function.parameters.get("properties") or function.parameters.get("type") != "object":
        key = "parameters" if _fits_gemini(function.parameters) else "parametersJsonSchema"
        declared[key] = function.parameters
    return declared


def _fits_gemini(schema: Any) -> bool:
    """Whether ``schema`` uses only Gemini's OpenAPI subset (recursively)."""
    if not isinstance(schema, Mapping) or not set(schema) <= _GEMINI_SCHEMA_KEYS:
        return False
    if "type" in schema and not isinstance(schema["type"], str):
        return False
    properties = schema.get("properties", {})
    children = list(properties.values()) if isinstance(properties, Mapping) else [None]
    if "items" in schema:
        children.append(schema["items"])
    children.extend(schema.get("anyOf", []))
    return all(_fits_gemini(child) for child in children)
