"""Field declarations of a signature: ``InputField()`` / ``OutputField()`` and ``FieldInfo``."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from typing import Any, Literal

from dspex_actors._errors import SignatureError

__all__ = ["FieldInfo", "FieldKind", "InputField", "OutputField", "infer_prefix"]

logger = logging.getLogger(__name__)

FieldKind = Literal["input", "output"]


@dataclass(frozen=True)
class FieldInfo:
    """One field of a signature: its kind, type annotation, description and prefix.

    Fields are immutable values. Inside a signature ``desc`` defaults to ``"${name}"``
    (DSPy's placeholder, omitted from prompts) and ``prefix`` to the name in title
    case followed by ``:`` (kept only so saved programs carry over to DSPy).
    ``annotation`` is None until the field is bound to a signature.
    """

    kind: FieldKind
    desc: str | None = None
    prefix: str | None = None
    annotation: Any = None

    @property
    def is_input(self) -> bool:
        """Whether this is an input field."""
        return self.kind == "input"

    @property
    def is_output(self) -> bool:
        """Whether this is an output field."""
        return self.kind == "output"

    @property
    def json_schema_extra(self) -> dict[str, Any]:
        """The field's metadata under DSPy's key names (for code ported from DSPy)."""
        return {"__dspy_field_type": self.kind, "desc": self.desc, "prefix": self.prefix}

    def bind(self, name: str, annotation: Any) -> FieldInfo:
        """This field as a member ``name`` of a signature, with defaults filled in."""
        return replace(
            self,
            annotation=annotation,
            desc=self.desc if self.desc is not None else f"${{{name}}}",
            prefix=self.prefix if self.prefix is not None else infer_prefix(name) + ":",
        )


def _make_field(
    kind: FieldKind, desc: str | None, prefix: str | None, description: str | None
) -> FieldInfo:
    if desc is None:
        desc = description
    for label, value in (("desc", desc), ("prefix", prefix)):
        if value is not None and not isinstance(value, str):
            raise SignatureError(
                f"{label}= must be a string, got {type(value).__name__}: {value!r}"
            )
    return FieldInfo(kind=kind, desc=desc, prefix=prefix)


def InputField(
    *, desc: str | None = None, prefix: str | None = None, description: str | None = None
) -> Any:
    """Declare an input field (``question: str = InputField(desc=...)``).

    Typed ``Any`` so that it can be assigned to an annotated class attribute.
    ``description`` is accepted as an alias of ``desc`` (pydantic's name, used by DSPy).
    """
    return _make_field("input", desc, prefix, description)


def OutputField(
    *, desc: str | None = None, prefix: str | None = None, description: str | None = None
) -> Any:
    """Declare an output field (``answer: int = OutputField(desc=...)``)."""
    return _make_field("output", desc, prefix, description)


def infer_prefix(attribute_name: str) -> str:
    """DSPy's prefix for a field name: ``"snake_case"`` -> ``"Snake Case"``, ``"HTMLParser"``
    -> ``"HTML Parser"``."""
    s1 = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", attribute_name)
    intermediate = re.sub("([a-z0-9])([A-Z])", r"\1_\2", s1)
    with_numbers = re.sub(r"([a-zA-Z])(\d)", r"\1_\2", intermediate)
    with_numbers = re.sub(r"(\d)([a-zA-Z])", r"\1_\2", with_numbers)
    words = [w if w.isupper() else w.capitalize() for w in with_numbers.split("_")]
    return " ".join(words)
