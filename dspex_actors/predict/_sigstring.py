"""A signature back to its string form (``"question -> answer: int"``).

Saved programs carry this string so that a program can be rebuilt from the file
alone (the CLI does that); DSPy ignores the extra key. A file saved by DSPy lacks it: when
the instructions are still DSPy's default, they name the fields
(:func:`signature_from_default_instructions`).
"""

from __future__ import annotations

import logging
import re
import types
import typing
from collections.abc import Mapping
from typing import Any

__all__ = ["annotation_to_str", "signature_from_default_instructions", "signature_to_string"]

logger = logging.getLogger(__name__)


def annotation_to_str(annotation: Any) -> str:
    """The source form of a field type: ``int``, ``list[str]``, ``Literal['a', 'b']``."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return "Literal[" + ", ".join(repr(a) for a in args) + "]"
    if origin is typing.Union or origin is types.UnionType:
        members = [a for a in args if a is not type(None)]
        if len(members) == 1 and len(args) == 2:
            return f"Optional[{annotation_to_str(members[0])}]"
        return "Union[" + ", ".join(annotation_to_str(a) for a in args) + "]"
    if origin is not None and args:
        name = getattr(origin, "__name__", None) or repr(origin).removeprefix("typing.")
        return f"{name}[" + ", ".join(annotation_to_str(a) for a in args) + "]"
    if annotation is None or annotation is type(None):
        return "None"
    if annotation is typing.Any:
        return "Any"
    if isinstance(annotation, type):
        return annotation.__name__
    return repr(annotation).removeprefix("typing.")


def _side(fields: typing.Mapping[str, Any]) -> str:
    parts = []
    for name, info in fields.items():
        annotation = getattr(info, "annotation", str)
        if annotation is None or annotation is str:
            parts.append(name)
        else:
            parts.append(f"{name}: {annotation_to_str(annotation)}")
    return ", ".join(parts)


def signature_to_string(signature: Any) -> str:
    """``"context: list[str], question -> answer: int"`` for a signature class."""
    return f"{_side(signature.input_fields)} -> {_side(signature.output_fields)}"


_DEFAULT_INSTRUCTIONS = re.compile(r"Given the fields (.+), produce the fields (.+)\.")
_NAME = re.compile(r"`(\w+)`")
_REASONING_PREFIX = "Reasoning:"


def signature_from_default_instructions(sig_state: Mapping[str, Any]) -> str | None:
    """``"question -> answer"`` from a saved signature whose instructions are DSPy's default
    (``Given the fields `question`, produce the fields `answer`.``), or None.

    The saved field list must fit the names: one entry per field, plus a leading
    ``reasoning`` output when the entry after the inputs has the ``Reasoning:`` prefix
    (a ChainOfThought). Every field is ``str``: DSPy does not save types.
    """
    instructions = sig_state.get("instructions")
    fields = sig_state.get("fields")
    if not isinstance(instructions, str) or not isinstance(fields, list):
        return None
    match = _DEFAULT_INSTRUCTIONS.fullmatch(instructions.strip())
    if match is None:
        return None
    inputs = _NAME.findall(match.group(1))
    outputs = _NAME.findall(match.group(2))
    if not inputs or not outputs:
        return None
    if len(fields) == len(inputs) + len(outputs) + 1:
        after_inputs = fields[len(inputs)]
        prefix = after_inputs.get("prefix") if isinstance(after_inputs, Mapping) else None
        if not isinstance(prefix, str) or not prefix.startswith(_REASONING_PREFIX):
            return None
        outputs = ["reasoning", *outputs]
    if len(fields) != len(inputs) + len(outputs):
        return None
    return f"{', '.join(inputs)} -> {', '.join(outputs)}"
