"""Pieces shared by the chat and JSON adapters: field descriptions, type notes, demos, errors."""

from __future__ import annotations

import enum
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal, get_args, get_origin

from dspex_actors._errors import AdapterParseError
from dspex_actors.signatures import FieldInfo, Signature, annotation_name, json_schema
from dspex_actors.tools import ToolCalls

if TYPE_CHECKING:
    from dspex_actors._types import LMResponse

__all__ = [
    "AsyncRequestFn",
    "RequestFn",
    "demo_to_dict",
    "field_description_string",
    "parse_error",
    "translate_field_type",
]

logger = logging.getLogger(__name__)

RequestFn = Callable[[list[dict[str, str]], dict[str, Any]], "LMResponse"]
"""Sends chat messages with request params to the LM (through the system) and returns the reply."""

AsyncRequestFn = Callable[[list[dict[str, str]], dict[str, Any]], Awaitable["LMResponse"]]
"""The awaitable twin of :data:`RequestFn`."""

_EXCERPT = 500


def demo_to_dict(demo: Any) -> dict[str, Any]:
    """A plain dict of a demo: a mapping, or an Example-like object with ``items()``/``keys()``."""
    if isinstance(demo, dict):
        return demo
    items = getattr(demo, "items", None)
    if callable(items):
        return dict(items())
    if isinstance(demo, Mapping):
        return dict(demo)
    keys = getattr(demo, "keys", None)
    if callable(keys):
        return {k: demo[k] for k in keys()}
    raise TypeError(f"a demo must be a mapping or an Example, got {type(demo).__name__}")


def field_description_string(fields: Mapping[str, FieldInfo]) -> str:
    """``1. `name` (type): desc`` per field, one a line (DSPy's field description string)."""
    lines = []
    for idx, (name, field) in enumerate(fields.items()):
        desc = field.desc if field.desc != f"${{{name}}}" else ""
        if _mentions_tool_calls(field.annotation):
            desc = f"{desc}\n    Type description of ToolCalls: {ToolCalls.description()}"
        lines.append(f"{idx + 1}. `{name}` ({annotation_name(field.annotation)}): {desc}")
    return "\n".join(lines).strip()


def translate_field_type(name: str, field: FieldInfo) -> str:
    """The ``{name}`` placeholder plus, for typed outputs, DSPy's ``# note:`` on the type."""
    annotation = field.annotation
    if field.is_input or annotation is str:
        desc = ""
    elif annotation is bool:
        desc = "must be True or False"
    elif annotation in (int, float):
        desc = f"must be a single {annotation.__name__} value"
    elif isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        desc = f"must be one of: {'; '.join(str(m.value) for m in annotation)}"
    elif get_origin(annotation) is Literal:
        desc = (
            "must exactly match (no extra characters) one of: "
            f"{'; '.join(str(x) for x in annotation.__args__)}"
        )
    else:
        schema = json.dumps(json_schema(annotation), ensure_ascii=False)
        desc = f"must adhere to the JSON schema: {schema}"
    note = (" " * 8) + f"# note: the value you produce {desc}" if desc else ""
    return f"{{{name}}}{note}"


def _mentions_tool_calls(annotation: Any) -> bool:
    """Whether ``annotation`` is or contains :class:`ToolCalls` (described in the prompt)."""
    return annotation is ToolCalls or any(_mentions_tool_calls(a) for a in get_args(annotation))


def type_requirement(field: FieldInfo) -> str:
    """`` (must be formatted as a valid Python int)`` for non-str outputs, else ``""``."""
    if field.annotation is ToolCalls:
        return ' (must be a JSON object like {"tool_calls": [{"name": "...", "args": {...}}]})'
    if field.annotation is str:
        return ""
    return f" (must be formatted as a valid Python {annotation_name(field.annotation)})"


def parse_error(
    adapter: str,
    signature: type[Signature],
    completion: str,
    *,
    problem: str | None = None,
    parsed: Mapping[str, Any] | None = None,
    bad_fields: Iterable[str] = (),
) -> AdapterParseError:
    """An :class:`AdapterParseError` naming the signature, the missing/bad fields and the reply."""
    parsed = dict(parsed or {})
    bad = list(bad_fields)
    missing = [name for name in signature.output_fields if name not in parsed or name in bad]
    excerpt = completion if len(completion) <= _EXCERPT else completion[:_EXCERPT] + "..."
    message = (
        f"{adapter} could not parse the LM reply for signature `{signature.signature}`"
        + (f": {problem}" if problem else "")
        + f". Expected output fields: [{', '.join(signature.output_fields)}]; "
        + f"missing or invalid: [{', '.join(missing)}]. LM reply: {excerpt!r}"
    )
    return AdapterParseError(
        message, signature=signature, missing_fields=missing, lm_response=completion, parsed=parsed
    )
