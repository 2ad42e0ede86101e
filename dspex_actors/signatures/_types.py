"""Field types: reading them from signature strings (without eval), checking, naming, JSON schema.

Supported: ``str``, ``int``, ``float``, ``bool``, ``Any``, ``list[...]``, ``dict[..., ...]``,
``Literal[...]``, ``Optional[...]`` / ``X | None`` / ``Union[...]``, ``Enum`` subclasses,
pydantic ``BaseModel`` subclasses (``History`` among them) and dataclasses, nested freely.
Names are rendered exactly as DSPy 3.4.1 renders them, and JSON schemas are pydantic's
``TypeAdapter(t).json_schema()`` with DSPy's key order, because both appear in prompts.
"""

from __future__ import annotations

import ast
import dataclasses
import enum
import functools
import logging
import sys
import types
import typing
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, Union, get_args, get_origin

from dspex_actors._errors import SignatureTypeError
from dspex_actors.signatures._history import History

if TYPE_CHECKING:
    import pydantic

__all__ = [
    "annotation_allows_none",
    "annotation_name",
    "check_annotation",
    "contains_model",
    "is_enum_type",
    "is_model_type",
    "is_union",
    "json_schema",
    "parse_annotation",
    "type_adapter",
]

logger = logging.getLogger(__name__)

NoneType = type(None)

_SIMPLE_NAMES: dict[str, Any] = {
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
    "Any": Any,
    "None": NoneType,
    "NoneType": NoneType,
    "list": list,
    "List": list,
    "dict": dict,
    "Dict": dict,
    "History": History,
}
_GENERIC_NAMES = {"Optional", "Union", "Literal"}
_SCALARS = (str, int, float, bool, NoneType)


def is_enum_type(annotation: Any) -> bool:
    """Whether ``annotation`` is an ``Enum`` subclass."""
    return isinstance(annotation, type) and issubclass(annotation, enum.Enum)


def is_model_type(annotation: Any) -> bool:
    """Whether ``annotation`` is a pydantic ``BaseModel`` subclass or a dataclass type."""
    if not isinstance(annotation, type):
        return False
    if dataclasses.is_dataclass(annotation):
        return True
    pydantic_main = sys.modules.get("pydantic.main")  # no BaseModel exists before its import
    return pydantic_main is not None and issubclass(annotation, pydantic_main.BaseModel)


def contains_model(annotation: Any) -> bool:
    """Whether a model type (:func:`is_model_type`) appears anywhere in ``annotation``."""
    return is_model_type(annotation) or any(contains_model(a) for a in get_args(annotation))


@functools.lru_cache(maxsize=256)
def _cached_adapter(annotation: Any) -> pydantic.TypeAdapter[Any]:
    import pydantic

    return pydantic.TypeAdapter(annotation)


def type_adapter(annotation: Any) -> pydantic.TypeAdapter[Any]:
    """pydantic's ``TypeAdapter`` for ``annotation`` (cached: building one costs milliseconds)."""
    try:
        return _cached_adapter(annotation)
    except TypeError:  # an unhashable annotation (Literal of a list, say): not cached
        import pydantic

        return pydantic.TypeAdapter(annotation)


def is_union(annotation: Any) -> bool:
    """Whether ``annotation`` is ``Union[...]``, ``Optional[...]`` or ``X | Y``."""
    origin = get_origin(annotation)
    return origin is Union or origin is types.UnionType


def annotation_allows_none(annotation: Any) -> bool:
    """Whether the annotation admits None (``Optional[X]``, ``X | None``, ``Any``)."""
    if annotation is NoneType or annotation is None or annotation is Any:
        return True
    return is_union(annotation) and any(annotation_allows_none(a) for a in get_args(annotation))


# ---------------------------------------------------------------------------------------------
# Reading a type from signature text


def parse_annotation(
    text: str, *, field: str = "?", custom_types: Mapping[str, Any] | None = None
) -> Any:
    """Read a type written in a signature string (``"list[str]"``) without evaluating code.

    Only the supported type names are known, plus ``custom_types`` (name -> Enum class).
    Raises :class:`SignatureTypeError` naming the field and the offending text.
    """
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as exc:
        raise SignatureTypeError(f"field `{field}`: cannot read the type {text!r}") from exc
    return annotation_from_node(node, field=field, custom_types=custom_types)


def annotation_from_node(
    node: ast.expr, *, field: str, custom_types: Mapping[str, Any] | None = None
) -> Any:
    """Turn a parsed annotation node into a type (see :func:`parse_annotation`)."""
    names = custom_types or {}

    def unknown(what: str) -> SignatureTypeError:
        return SignatureTypeError(
            f"field `{field}`: unknown or unsupported type {what!r} "
            "(supported: str, int, float, bool, Any, History, list[...], dict[..., ...], "
            "Optional[...], Union[...], Literal[...], X | None, and Enum, pydantic BaseModel "
            "and dataclass types: in a class, those visible in "
            "its module; in a string, those passed as custom_types={'Name': Name})"
        )

    def literal_value(n: ast.expr) -> Any:
        if isinstance(n, ast.Constant) and isinstance(n.value, (str, int, float, bool, NoneType)):
            return n.value
        if (
            isinstance(n, ast.UnaryOp)
            and isinstance(n.op, ast.USub)
            and isinstance(n.operand, ast.Constant)
            and isinstance(n.operand.value, (int, float))
            and not isinstance(n.operand.value, bool)
        ):
            return -n.operand.value
        raise SignatureTypeError(
            f"field `{field}`: Literal[...] takes constants only, got {ast.unparse(n)!r}"
        )

    def walk(n: ast.expr) -> Any:
        if isinstance(n, ast.Attribute):  # `dx.History`, `models.Person`
            owner = walk_module(n.value)
            if owner is not None and hasattr(owner, n.attr):
                return getattr(owner, n.attr)
            raise unknown(ast.unparse(n))
        if isinstance(n, ast.Name):
            if n.id in names:
                return names[n.id]
            if n.id in _SIMPLE_NAMES:
                return _SIMPLE_NAMES[n.id]
            raise unknown(n.id)
        if isinstance(n, ast.Constant) and n.value is None:
            return NoneType
        if isinstance(n, ast.BinOp) and isinstance(n.op, ast.BitOr):
            left, right = walk(n.left), walk(n.right)
            return Union[left, right]  # noqa: UP007 -- built from runtime values
        if isinstance(n, ast.Subscript) and isinstance(n.value, ast.Name):
            base = n.value.id
            elts = list(n.slice.elts) if isinstance(n.slice, ast.Tuple) else [n.slice]
            if base == "Literal" and base not in names:
                return Literal[tuple(literal_value(e) for e in elts)]
            args = tuple(walk(e) for e in elts)
            if base in _GENERIC_NAMES and base not in names:
                if base == "Optional":
                    if len(args) != 1:
                        raise SignatureTypeError(
                            f"field `{field}`: Optional[...] takes one type, got {ast.unparse(n)!r}"
                        )
                    return typing.Optional[args[0]]  # noqa: UP045 -- built from runtime values
                return Union[args]  # noqa: UP007
            container = names.get(base, _SIMPLE_NAMES.get(base))
            if container is list:
                if len(args) != 1:
                    raise SignatureTypeError(
                        f"field `{field}`: list[...] takes one type, got {ast.unparse(n)!r}"
                    )
                return list[args[0]]  # type: ignore[valid-type]
            if container is dict:
                if len(args) != 2:
                    raise SignatureTypeError(
                        f"field `{field}`: dict[...] takes two types, got {ast.unparse(n)!r}"
                    )
                return dict[args[0], args[1]]  # type: ignore[valid-type]
            raise unknown(ast.unparse(n))
        raise unknown(ast.unparse(n))

    def walk_module(n: ast.expr) -> Any:
        if isinstance(n, ast.Name):
            found = names.get(n.id)
            return found if isinstance(found, types.ModuleType) else None
        if isinstance(n, ast.Attribute):
            owner = walk_module(n.value)
            found = getattr(owner, n.attr, None) if owner is not None else None
            return found if isinstance(found, types.ModuleType) else None
        return None

    annotation = walk(node)
    check_annotation(annotation, field=field)
    return annotation


# ---------------------------------------------------------------------------------------------
# Checking a type given as a Python annotation (class form)


def check_annotation(annotation: Any, *, field: str) -> None:
    """Raise :class:`SignatureTypeError` unless ``annotation`` is a supported field type."""
    bad = _unsupported_part(annotation)
    if bad is not None:
        raise SignatureTypeError(
            f"field `{field}`: unsupported type {annotation_name(bad)!r}"
            + (f" in {annotation_name(annotation)!r}" if bad is not annotation else "")
            + " (supported: str, int, float, bool, Any, list[...], dict[..., ...], Optional[...], "
            "Union[...], Literal[...], Enum subclasses, pydantic BaseModel subclasses, dataclasses)"
        )


def _unsupported_part(annotation: Any) -> Any:
    if annotation is Any or annotation in _SCALARS or annotation in (list, dict):
        return None
    if is_enum_type(annotation) or is_model_type(annotation):
        return None
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin is Literal:
        ok = all(isinstance(a, (str, int, float, bool, NoneType)) for a in args)
        return None if ok else annotation
    if origin in (list, dict) or is_union(annotation):
        for arg in args:
            bad = _unsupported_part(arg)
            if bad is not None:
                return bad
        return None
    return annotation


# ---------------------------------------------------------------------------------------------
# Naming a type the way DSPy prints it in prompts


def annotation_name(annotation: Any) -> str:
    """The type's name as DSPy prints it: ``list[str]``, ``Union[int, NoneType]``, ..."""
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin is types.UnionType:
        origin = Union
    if origin is None:
        name = getattr(annotation, "__name__", None)
        return name if isinstance(name, str) else str(annotation)
    if origin is Literal:
        args_str = ", ".join(
            _quoted_literal(a) if isinstance(a, str) else annotation_name(a) for a in args
        )
    else:
        args_str = ", ".join(annotation_name(a) for a in args)
    return f"{annotation_name(origin)}[{args_str}]"


def _quoted_literal(s: str) -> str:
    has_single, has_double = "'" in s, '"' in s
    if has_single and not has_double:
        return f'"{s}"'
    if has_single and has_double:
        escaped = s.replace("'", "\\'")
        return f"'{escaped}'"
    return f"'{s}'"


# ---------------------------------------------------------------------------------------------
# JSON schema, as pydantic's TypeAdapter(t).json_schema() with DSPy's "type first" key order


def json_schema(annotation: Any) -> dict[str, Any]:
    """A JSON schema of ``annotation`` as DSPy shows it in prompts (keys sorted, ``type`` first)."""
    result = _type_first(type_adapter(annotation).json_schema())
    assert isinstance(result, dict)
    return result


def _type_first(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {
            k: _type_first(v)
            for k, v in sorted(value.items(), key=lambda item: (item[0] != "type", item[0]))
        }
    if isinstance(value, list):
        return [_type_first(v) for v in value]
    return value
