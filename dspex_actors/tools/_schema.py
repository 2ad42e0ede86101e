"""The JSON schema of a tool argument, as DSPy 3.4.1 shows it in the ReAct prompt.

DSPy renders ``pydantic.TypeAdapter(T).json_schema()`` with ``$ref``\\ s resolved inline: keys
sorted alphabetically (pydantic's order), then ``default`` last. Basic types come from
:func:`dspex_actors.signatures.json_schema` (re-sorted); a type it does not know (a pydantic
model, a tuple, a set) is asked of pydantic when pydantic is installed, else it is ``{}`` (any
value, passed to the function as given).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from dspex_actors._errors import SignatureTypeError
from dspex_actors.signatures import json_schema
from dspex_actors.signatures._types import check_annotation

__all__ = ["arg_schema", "is_checked_type"]

logger = logging.getLogger(__name__)


def is_checked_type(annotation: Any) -> bool:
    """Whether argument values of this type are read with ``parse_value`` (a basic type)."""
    try:
        check_annotation(annotation, field="tool argument")
    except SignatureTypeError:
        return False
    return annotation is not Any


def arg_schema(annotation: Any) -> dict[str, Any]:
    """The argument's schema as DSPy prints it (a fresh dict the caller may extend)."""
    if annotation is Any:
        return {}
    schema: dict[str, Any]
    if is_checked_type(annotation):
        schema = json_schema(annotation)
    else:
        schema = _pydantic_schema(annotation)
    result: dict[str, Any] = _sorted(_resolve_refs(schema))
    return result


def _pydantic_schema(annotation: Any) -> dict[str, Any]:
    """pydantic's schema of a type ours does not describe; ``{}`` without pydantic."""
    try:
        import pydantic
    except ImportError:
        logger.debug("pydantic is not installed: no schema for %r", annotation)
        return {}
    try:
        schema: dict[str, Any] = pydantic.TypeAdapter(annotation).json_schema()
    except Exception as exc:  # pydantic cannot describe it either: any value
        logger.debug("no JSON schema for %r: %s", annotation, exc)
        return {}
    return schema


def _resolve_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """``$ref``\\ s replaced by their ``$defs`` entry and ``$defs`` dropped (as DSPy does)."""
    defs = schema.get("$defs")
    if not defs:
        return schema

    def resolve(value: Any) -> Any:
        if isinstance(value, Mapping):
            ref = value.get("$ref")
            if isinstance(ref, str):
                return resolve(defs[ref.rsplit("/", 1)[-1]])
            return {k: resolve(v) for k, v in value.items() if k != "$defs"}
        if isinstance(value, list):
            return [resolve(v) for v in value]
        return value

    resolved: dict[str, Any] = resolve(schema)
    return resolved


def _sorted(value: Any, parent: str | None = None) -> Any:
    """pydantic's key order: sorted, except the members of ``properties`` and ``default``."""
    if isinstance(value, Mapping):
        keys = list(value) if parent in ("properties", "default") else sorted(value)
        return {k: _sorted(value[k], k) for k in keys}
    if isinstance(value, list):
        return [_sorted(v, parent) for v in value]
    return value
