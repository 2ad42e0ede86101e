"""Reading LM text as a field's type (``parse_value``); writing values into prompts.

Follows DSPy 3.4.1 (``dspy/adapters/utils.py``) without json_repair: ``str`` is kept as is;
other types are decoded as JSON, then as a Python literal, then (tolerantly) with code fences
stripped, trailing commas dropped and unclosed brackets closed; the decoded value is then
checked and converted to the annotation (pydantic-"lax"-like: ``"5"``/``5.0`` -> ``5``,
``"true"``/``"yes"`` -> ``True``, Literal/Enum by value or name). A type holding a pydantic
model or a dataclass is validated by pydantic itself, as DSPy does.
"""

from __future__ import annotations

import ast
import dataclasses
import datetime
import decimal
import enum
import json
import logging
import re
import uuid
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any, Literal, get_args, get_origin

from dspex_actors._errors import CoercionError
from dspex_actors.signatures._types import (
    NoneType,
    annotation_name,
    contains_model,
    is_enum_type,
    is_model_type,
    is_union,
    type_adapter,
)

__all__ = ["format_value", "parse_value", "to_jsonable"]

logger = logging.getLogger(__name__)

_MAX_LITERAL_EVAL = 100_000
_TRUE = frozenset({"true", "t", "yes", "y", "on", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "off", "0"})
_FENCE = re.compile(r"^```[\w+-]*[ \t]*\n?(.*?)\n?```$", re.DOTALL)
_TRAILING_COMMA = re.compile(r",(\s*[\]}])")


class _NoMatch(Exception):
    """Internal: the value does not fit the annotation (``reason`` says why)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# ---------------------------------------------------------------------------------------------
# parse_value


def parse_value(value: Any, annotation: Any) -> Any:
    """Read ``value`` (LM text, or a JSON-decoded value) as ``annotation``.

    Raises :class:`~dspex_actors.CoercionError` (a ``ValueError``) when it does not fit.
    """
    if annotation is str:
        return value if isinstance(value, str) else str(value)
    try:
        return _parse(value, annotation)
    except _NoMatch as exc:
        reason = exc.reason
    except RecursionError:  # an LM reply nested thousands of levels deep
        reason = "the value is nested too deeply"
    shown = value if not isinstance(value, str) or len(value) <= 200 else value[:200] + "..."
    raise CoercionError(
        f"cannot read {shown!r} as {annotation_name(annotation)}: {reason}",
        annotation=annotation,
        value=value,
    ) from None


def _parse(value: Any, annotation: Any) -> Any:
    if is_enum_type(annotation) and isinstance(value, str):
        member = _enum_member_from_text(annotation, value)
        if member is not None:
            return member
    if get_origin(annotation) is Literal and isinstance(value, str):
        allowed = get_args(annotation)
        if value in allowed:
            return value
        text = _strip_literal_wrapping(value)
        if text in allowed:
            return text
        value = text
    if not isinstance(value, str):
        return _convert(value, annotation)
    if is_union(annotation) and str in get_args(annotation) and NoneType in get_args(annotation):
        return value
    return _convert(loads_tolerant(value), annotation)


def _strip_literal_wrapping(value: str) -> str:
    text = value.strip()
    if text.startswith(("Literal[", "str[")) and text.endswith("]"):
        text = text[text.find("[") + 1 : -1]
    if len(text) > 1 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1]
    return text


def loads_tolerant(text: str) -> Any:
    """Decode ``text`` as JSON or a Python literal, tolerating fences and small damage.

    Returns the stripped text itself when nothing decodes (so ``"yes"`` can still become a bool).
    """
    stripped = text.strip()
    fenced = _FENCE.match(stripped)
    if fenced:
        stripped = fenced.group(1).strip()
    if not stripped:
        return stripped
    for candidate in _repair_candidates(stripped):
        decoded = _decode(candidate)
        if decoded is not _UNDECODED:
            return decoded
    return stripped


_UNDECODED = object()


def _decode(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        pass
    if len(text) <= _MAX_LITERAL_EVAL:
        try:
            return ast.literal_eval(text)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            pass
    return _UNDECODED


def _repair_candidates(text: str) -> list[str]:
    candidates = [text]
    start = min((i for i in (text.find("["), text.find("{")) if i >= 0), default=-1)
    if start >= 0:
        body = _balanced_prefix(text[start:])
        candidates.append(body)
        candidates.append(_TRAILING_COMMA.sub(r"\1", body))
    return candidates


def _balanced_prefix(text: str) -> str:
    """The first bracketed JSON-ish value in ``text``, closing brackets left open at the end."""
    stack: list[str] = []
    quote: str | None = None
    escaped = False
    for i, ch in enumerate(text):
        if quote is not None:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = None
            continue
        if ch in "\"'":
            quote = ch
        elif ch in "[{":
            stack.append("]" if ch == "[" else "}")
        elif ch in "]}":
            if stack and stack[-1] == ch:
                stack.pop()
            if not stack:
                return text[: i + 1]
    closing = (quote or "") + "".join(reversed(stack))
    return _TRAILING_COMMA.sub(r"\1", text.rstrip().rstrip(",") + closing)


def _convert(value: Any, annotation: Any) -> Any:
    if annotation is Any:
        return value
    if contains_model(annotation):
        return _validate_model(value, annotation)
    if annotation is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise _NoMatch(f"expected a string, got {type(value).__name__}")
    if annotation is bool:
        return _to_bool(value)
    if annotation is int:
        return _to_int(value)
    if annotation is float:
        return _to_float(value)
    if annotation is NoneType:
        if value is None or (isinstance(value, str) and value.strip() in ("None", "null")):
            return None
        raise _NoMatch("expected None")
    if is_enum_type(annotation):
        member = _enum_member(annotation, value)
        if member is None:
            allowed = "; ".join(str(m.value) for m in annotation)
            raise _NoMatch(f"not a value or name of {annotation.__name__} (one of: {allowed})")
        return member
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin is Literal:
        return _to_literal(value, args)
    if annotation is list or origin is list:
        if not isinstance(value, (list, tuple)):
            raise _NoMatch(f"expected a list, got {type(value).__name__}")
        item_type = args[0] if args else Any
        return [_convert(item, item_type) for item in value]
    if annotation is dict or origin is dict:
        if not isinstance(value, Mapping):
            raise _NoMatch(f"expected a dict, got {type(value).__name__}")
        key_type, value_type = args if args else (Any, Any)
        return {_convert(k, key_type): _convert(v, value_type) for k, v in value.items()}
    if is_union(annotation):
        return _to_union(value, args)
    raise _NoMatch(f"unsupported type {annotation_name(annotation)}")


def _validate_model(value: Any, annotation: Any) -> Any:
    """pydantic's (lax) validation of ``value`` as ``annotation``; errors listed by location."""
    import pydantic

    try:
        return type_adapter(annotation).validate_python(value)
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'value'}: {error['msg']}"
            for error in exc.errors(include_url=False)
        )
        raise _NoMatch(f"{exc.error_count()} validation error(s): {problems}") from None


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise _NoMatch("expected True or False")


def _to_int(value: Any) -> int:
    if isinstance(value, int):  # a bool too, as pydantic's lax mode does
        return int(value)
    if isinstance(value, float):
        if value.is_integer():
            return int(value)
        raise _NoMatch("expected an int, got a fractional number")
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            pass
        try:
            number = float(text)
        except ValueError:
            raise _NoMatch("expected an int") from None
        if number.is_integer():
            return int(number)
        raise _NoMatch("expected an int, got a fractional number")
    raise _NoMatch(f"expected an int, got {type(value).__name__}")


def _to_float(value: Any) -> float:
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            raise _NoMatch("expected a number") from None
    raise _NoMatch(f"expected a number, got {type(value).__name__}")


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


def _to_literal(value: Any, allowed: tuple[Any, ...]) -> Any:
    for option in allowed:
        if _same(option, value):
            return option
    if isinstance(value, (int, float)):
        for option in allowed:
            if (
                isinstance(option, (int, float))
                and not isinstance(option, bool)
                and option == value
            ):
                return option
    if isinstance(value, str):
        text = _strip_literal_wrapping(value)
        for option in allowed:
            if (isinstance(option, str) and option == text) or (
                not isinstance(option, str) and str(option) == text
            ):
                return option
    shown = "; ".join(str(a) for a in allowed)
    raise _NoMatch(f"expected one of: {shown}")


def _enum_member_from_text(enum_type: type[enum.Enum], text: str) -> enum.Enum | None:
    member = _enum_member(enum_type, text)
    if member is not None:
        return member
    stripped = _strip_literal_wrapping(text)
    if stripped.startswith(f"{enum_type.__name__}."):
        stripped = stripped[len(enum_type.__name__) + 1 :]
    return _enum_member(enum_type, stripped)


def _enum_member(enum_type: type[enum.Enum], value: Any) -> enum.Enum | None:
    if isinstance(value, enum_type):
        return value
    for member in enum_type:
        if _same(member.value, value):
            return member
    if isinstance(value, str):
        if value in enum_type.__members__:
            return enum_type.__members__[value]
        for member in enum_type:
            if str(member.value) == value:
                return member
    for member in enum_type:
        if member.value == value and not isinstance(value, bool):
            return member
    return None


def _exact_fit(value: Any, annotation: Any) -> bool:
    if annotation is Any:
        return True
    if annotation in (str, int, float, bool, NoneType):
        return type(value) is annotation
    if is_enum_type(annotation):
        return isinstance(value, annotation)
    origin = get_origin(annotation)
    if annotation is list or origin is list:
        return isinstance(value, list)
    if annotation is dict or origin is dict:
        return isinstance(value, dict)
    if origin is Literal:
        return any(_same(value, option) for option in get_args(annotation))
    return False


def _to_union(value: Any, options: tuple[Any, ...]) -> Any:
    if value is None and NoneType in options:
        return None
    for option in options:
        if _exact_fit(value, option):
            try:
                return _convert(value, option)
            except _NoMatch:
                pass
    reasons = []
    for option in options:
        if option is NoneType:
            continue
        try:
            return _convert(value, option)
        except _NoMatch as exc:
            reasons.append(f"{annotation_name(option)}: {exc.reason}")
    if NoneType in options and isinstance(value, str) and value.strip() in ("None", "null"):
        return None
    raise _NoMatch("; ".join(reasons) or "no option fits")


# ---------------------------------------------------------------------------------------------
# format_value


def format_value(value: Any, annotation: Any) -> str:
    """Write ``value`` of a field typed ``annotation`` into a prompt, as DSPy does.

    A list given for a ``str`` field becomes ``«item»`` or a numbered ``[i] «...»`` list;
    dicts and lists are ``json.dumps``'d (``ensure_ascii=False``); anything else is ``str()``
    of its JSON-compatible form (Enum -> its value, None -> ``None``, True -> ``True``).
    """
    if isinstance(value, list) and annotation is str:
        return _format_list(value)
    jsonable = to_jsonable(value)
    if isinstance(jsonable, (dict, list)):
        return json.dumps(jsonable, ensure_ascii=False)
    return str(jsonable)


def _format_list(items: list[Any]) -> str:
    if not items:
        return "N/A"
    if len(items) == 1:
        return _format_blob(items[0])
    return "\n".join(f"[{i + 1}] {_format_blob(item)}" for i, item in enumerate(items))


def _format_blob(item: Any) -> str:
    blob = item if isinstance(item, str) else format_value(item, Any)
    if "\n" not in blob and "«" not in blob and "»" not in blob:
        return f"«{blob}»"
    indented = blob.replace("\n", "\n    ")
    return f"«««\n    {indented}\n»»»"


def to_jsonable(value: Any) -> Any:
    """A JSON-compatible form of ``value``: what DSPy's ``serialize_for_json`` gives, pydantic's
    ``TypeAdapter(type(value)).dump_python(value, mode="json")``.

    A model or dataclass value is dumped by its own type (a float field holding ``0`` gives
    ``0.0``); inside a container pydantic infers each item's type, and a dataclass there keeps
    its field values as they are, as here.
    """
    if type(value) in _PLAIN_TYPES:  # the common case: no type checks needed
        return value
    if is_model_type(type(value)):
        return type_adapter(type(value)).dump_python(value, mode="json", fallback=str)
    return _inferred_jsonable(value)


_PLAIN_TYPES = frozenset({str, int, float, bool, type(None)})
"""Exact types that are their own JSON form (never a model or dataclass type)."""


def _inferred_jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, enum.Enum):
        return _inferred_jsonable(value.value)
    if isinstance(value, Mapping):
        return {_jsonable_key(k): _inferred_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_inferred_jsonable(v) for v in value]
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (decimal.Decimal, uuid.UUID, PurePath)):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="replace")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: _inferred_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)
        }
    dump = getattr(value, "model_dump", None)  # a pydantic model: its own serializer
    if callable(dump):
        try:
            return _inferred_jsonable(dump(mode="json"))
        except Exception:
            logger.debug("model_dump failed for %s; using str()", type(value).__name__)
    return str(value)


def _jsonable_key(key: Any) -> Any:
    if isinstance(key, enum.Enum):
        key = key.value
    if key is None or isinstance(key, (str, int, float, bool)):
        return key
    return str(key)
