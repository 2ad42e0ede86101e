"""Example: one row of data with named fields and a marked set of input keys.

Behaves like DSPy's ``dspy.Example``: attribute and item access, the mapping methods the
adapter uses for demos, ``with_inputs``/``inputs``/``labels`` for the input/label split.
Keys starting with ``dspy_`` are internal: hidden from ``keys()``, ``len()`` and ``repr``
but kept by ``toDict()`` so they survive save/load (as does DSPy's ``augmented`` flag,
which is an ordinary key).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from enum import Enum
from typing import Any, Self

__all__ = ["Example"]

logger = logging.getLogger(__name__)

_INTERNAL_PREFIX = "dspy_"


def _hashable(value: Any) -> Any:
    """Reduce nested containers to something ``hash()`` accepts."""
    if isinstance(value, Mapping):
        return tuple(sorted(((str(k), _hashable(v)) for k, v in value.items()), key=repr))
    if isinstance(value, list | tuple):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, set | frozenset):
        return tuple(sorted((_hashable(v) for v in value), key=repr))
    try:
        hash(value)
    except TypeError:
        return repr(value)
    return value


def _to_plain(value: Any) -> Any:
    """Convert nested Examples, mappings and sequences to plain dicts and lists."""
    to_dict = getattr(value, "toDict", None)
    if callable(to_dict):
        return to_dict()
    model_dump = getattr(value, "model_dump", None)
    if callable(model_dump):
        return model_dump()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, list | tuple):
        return [_to_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    return value


class Example:
    """A record with named fields; some of them marked as inputs, the rest labels.

    ``Example(question="...", answer="...")`` or ``Example({"question": ...})``, or
    ``Example(other_example, answer="...")`` to copy and override.
    """

    _store: dict[str, Any]
    _input_keys: frozenset[str] | None

    def __init__(self, base: Mapping[str, Any] | Example | None = None, **fields: Any) -> None:
        object.__setattr__(self, "_input_keys", None)
        if isinstance(base, Example):
            store = dict(base._store)
            object.__setattr__(self, "_input_keys", getattr(base, "_input_keys", None))
        elif base is None:
            store = {}
        elif isinstance(base, Mapping):
            store = dict(base)
        else:
            raise TypeError(
                f"Example() takes a dict or an Example as its positional argument, "
                f"not {type(base).__name__}"
            )
        store.update(fields)
        object.__setattr__(self, "_store", store)

    # -- attribute and item access -------------------------------------------------

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_"):
            raise AttributeError(key)
        try:
            return self._store[key]
        except KeyError:
            raise AttributeError(
                f"'{type(self).__name__}' object has no attribute '{key}' "
                f"(its fields: {self.keys()})"
            ) from None

    def __setattr__(self, key: str, value: Any) -> None:
        if key.startswith("_") or hasattr(type(self), key):
            object.__setattr__(self, key, value)
        else:
            self._store[key] = value

    def __delattr__(self, key: str) -> None:
        if key in self._store:
            del self._store[key]
        else:
            object.__delattr__(self, key)

    def __getitem__(self, key: str) -> Any:
        return self._store[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._store[key] = value

    def __delitem__(self, key: str) -> None:
        del self._store[key]

    def __contains__(self, key: object) -> bool:
        return key in self._store

    def __len__(self) -> int:
        return sum(1 for k in self._store if not k.startswith(_INTERNAL_PREFIX))

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._store))

    # -- mapping-style methods (DSPy returns lists) ---------------------------------

    def keys(self, include_dspy: bool = False) -> list[str]:
        """Field names, without internal ``dspy_`` keys unless asked."""
        return [k for k in self._store if include_dspy or not k.startswith(_INTERNAL_PREFIX)]

    def values(self, include_dspy: bool = False) -> list[Any]:
        """Field values, in field order."""
        return [
            v for k, v in self._store.items() if include_dspy or not k.startswith(_INTERNAL_PREFIX)
        ]

    def items(self, include_dspy: bool = False) -> list[tuple[str, Any]]:
        """``(name, value)`` pairs, in field order."""
        return [
            (k, v)
            for k, v in self._store.items()
            if include_dspy or not k.startswith(_INTERNAL_PREFIX)
        ]

    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key``, or ``default`` when the field is absent."""
        return self._store.get(key, default)

    # -- input/label split ---------------------------------------------------------

    def with_inputs(self, *keys: str) -> Self:
        """A copy with ``keys`` marked as the inputs; the other fields are labels."""
        copied = self.copy()
        object.__setattr__(copied, "_input_keys", frozenset(keys))
        return copied

    @property
    def input_keys(self) -> frozenset[str] | None:
        """The keys marked by :meth:`with_inputs`, or None when none were marked."""
        return self._input_keys

    def inputs(self) -> Self:
        """An Example holding only the input fields (requires :meth:`with_inputs`)."""
        input_keys = self._input_keys
        if input_keys is None:
            raise ValueError(
                f"Inputs have not been set for this example: {self!r}. "
                "Use `example.with_inputs('field', ...)` to mark its input fields."
            )
        subset = type(self)({k: v for k, v in self._store.items() if k in input_keys})
        object.__setattr__(subset, "_input_keys", input_keys)
        return subset

    def labels(self) -> Self:
        """An Example holding only the non-input fields (requires :meth:`with_inputs`)."""
        input_keys = self.inputs().keys(include_dspy=True)
        return type(self)({k: v for k, v in self._store.items() if k not in input_keys})

    # -- copies and conversion -----------------------------------------------------

    def copy(self, **updates: Any) -> Self:
        """A shallow copy (input keys kept), with ``updates`` applied."""
        return type(self)(self, **updates)

    def without(self, *keys: str) -> Self:
        """A copy with ``keys`` removed."""
        copied = self.copy()
        for key in keys:
            del copied._store[key]
        return copied

    def toDict(self) -> dict[str, Any]:
        """A plain dict of every field (internal ones included), nested values converted."""
        return {k: _to_plain(v) for k, v in self._store.items()}

    def to_dict(self) -> dict[str, Any]:
        """Alias of :meth:`toDict`."""
        return self.toDict()

    # -- value semantics -----------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Example) and self._store == other._store

    def __hash__(self) -> int:
        return hash(frozenset((k, _hashable(v)) for k, v in self._store.items()))

    def __repr__(self) -> str:
        visible = {k: v for k, v in self._store.items() if not k.startswith(_INTERNAL_PREFIX)}
        keys = "None"
        if self._input_keys is not None:
            keys = "{" + ", ".join(repr(k) for k in sorted(self._input_keys)) + "}"
        return f"{type(self).__name__}({visible}) (input_keys={keys})"

    def __str__(self) -> str:
        return self.__repr__()

    # -- pickling / copying: bypass __getattr__ and __setattr__ ----------------------

    def __getstate__(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def __setstate__(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            object.__setattr__(self, key, value)


Mapping.register(Example)
