"""Prediction: a predictor's output fields, all its completions, usage and raw texts.

As in DSPy, a Prediction is an :class:`Example` whose fields are the first completion's
outputs; ``.completions`` holds every choice when ``n > 1``. A Prediction with a
``score`` field also works as a number (DSPy metrics may return one).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from dspex_actors.primitives._example import Example

__all__ = ["Completions", "Prediction"]

logger = logging.getLogger(__name__)


class Completions:
    """All the choices of one call: field name → list of values, one per choice.

    ``completions[i]`` is choice ``i`` as a :class:`Prediction`; ``completions.answer``
    (or ``completions["answer"]``) is the list of every choice's answer.
    """

    def __init__(
        self,
        list_or_dict: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]],
        signature: Any = None,
    ) -> None:
        self.signature = signature
        columns: dict[str, list[Any]] = {}
        if isinstance(list_or_dict, Mapping):
            columns = {k: list(v) for k, v in list_or_dict.items()}
            lengths = {len(v) for v in columns.values()}
            if len(lengths) > 1:
                raise ValueError(
                    f"Completions columns must all have the same length, got {sorted(lengths)}"
                )
            self._count = lengths.pop() if lengths else 0
        else:
            rows = list(list_or_dict)
            for row in rows:
                for key in row:
                    columns.setdefault(key, [])
            for row in rows:
                for key, column in columns.items():
                    column.append(row.get(key))
            self._count = len(rows)
        self._columns = columns

    def items(self) -> list[tuple[str, list[Any]]]:
        """``(field, values)`` pairs."""
        return list(self._columns.items())

    def keys(self) -> list[str]:
        """The field names."""
        return list(self._columns)

    def __getitem__(self, key: int | str) -> Any:
        if isinstance(key, int):
            index = key + self._count if key < 0 else key
            if not 0 <= index < self._count:
                raise IndexError(f"completion index {key} out of range ({self._count} completions)")
            return Prediction({k: v[index] for k, v in self._columns.items()})
        return self._columns[key]

    def __getattr__(self, name: str) -> list[Any]:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._columns[name]
        except KeyError:
            raise AttributeError(
                f"'Completions' object has no field '{name}' (fields: {list(self._columns)})"
            ) from None

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[Prediction]:
        for index in range(self._count):
            yield self[index]

    def __contains__(self, key: object) -> bool:
        return key in self._columns

    def __repr__(self) -> str:
        body = ",\n    ".join(f"{k}={v!r}" for k, v in self._columns.items())
        return f"Completions(\n    {body}\n)"


class Prediction(Example):
    """The output of a predictor or module: output fields plus completions and usage.

    ``.usage`` and ``.raw_texts`` give the call's token usage and reply texts unless the
    signature has fields of those names (then ``get_lm_usage()`` still gives the usage).
    """

    _completions: Completions | None
    _lm_usage: dict[str, Any] | None
    _raw_texts: tuple[str, ...]

    def __init__(self, base: Mapping[str, Any] | Example | None = None, **fields: Any) -> None:
        super().__init__(base, **fields)
        object.__setattr__(self, "_input_keys", None)
        object.__setattr__(self, "_completions", None)
        object.__setattr__(self, "_lm_usage", None)
        object.__setattr__(self, "_raw_texts", ())

    @classmethod
    def from_completions(
        cls,
        list_or_dict: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]],
        signature: Any = None,
        *,
        usage: Mapping[str, Any] | None = None,
        raw_texts: Sequence[str] = (),
    ) -> Prediction:
        """A Prediction whose fields are the first completion's; all kept in ``.completions``."""
        completions = Completions(list_or_dict, signature=signature)
        pred = cls({k: v[0] for k, v in completions.items()} if len(completions) else {})
        object.__setattr__(pred, "_completions", completions)
        object.__setattr__(pred, "_lm_usage", dict(usage) if usage is not None else None)
        object.__setattr__(pred, "_raw_texts", tuple(raw_texts))
        return pred

    @property
    def completions(self) -> Completions | None:
        """Every choice of the call (``len`` is ``n``), or None when built by hand."""
        return self._completions

    @property
    def usage(self) -> Any:
        """Token usage of the call per model, as :meth:`get_lm_usage` (empty if unknown);
        a field named ``usage`` wins."""
        if "usage" in self._store:
            return self._store["usage"]
        return dict(self._lm_usage or {})

    @property
    def raw_texts(self) -> Any:
        """The LM's raw reply texts, one per choice; a field named ``raw_texts`` wins."""
        if "raw_texts" in self._store:
            return self._store["raw_texts"]
        return self._raw_texts

    def get_lm_usage(self) -> dict[str, Any] | None:
        """DSPy's accessor for the usage: ``{model: {prompt_tokens, completion_tokens,
        total_tokens}}`` summed over every LM request of the call that made it (plus
        ``cost`` with LM prices, ``cache_hits`` for answers from the cache)."""
        return self._lm_usage

    def set_lm_usage(self, value: Mapping[str, Any] | None) -> None:
        """DSPy's setter for the usage."""
        object.__setattr__(self, "_lm_usage", dict(value) if value is not None else None)

    def __repr__(self) -> str:
        body = ",\n    ".join(f"{k}={v!r}" for k, v in self._store.items())
        count = len(self._completions) if self._completions is not None else 1
        if count <= 1:
            return f"Prediction(\n    {body}\n)"
        return (
            f"Prediction(\n    {body},\n    completions=Completions(...)\n)"
            f" ({count - 1} completions omitted)"
        )

    # -- a Prediction with a `score` works as a number (DSPy) ------------------------

    def __float__(self) -> float:
        if "score" not in self._store:
            raise ValueError("Prediction has no 'score' field to convert to float")
        return float(self._store["score"])

    def _other_float(self, other: object, op: str) -> float:
        if isinstance(other, Prediction):
            return float(other)
        if isinstance(other, int | float):
            return float(other)
        raise TypeError(f"unsupported operand type for {op}: Prediction and {type(other).__name__}")

    def __add__(self, other: object) -> float:
        return float(self) + self._other_float(other, "+")

    def __radd__(self, other: object) -> float:
        return self._other_float(other, "+") + float(self)

    def __truediv__(self, other: object) -> float:
        return float(self) / self._other_float(other, "/")

    def __rtruediv__(self, other: object) -> float:
        return self._other_float(other, "/") / float(self)

    def __lt__(self, other: object) -> bool:
        return float(self) < self._other_float(other, "<")

    def __le__(self, other: object) -> bool:
        return float(self) <= self._other_float(other, "<=")

    def __gt__(self, other: object) -> bool:
        return float(self) > self._other_float(other, ">")

    def __ge__(self, other: object) -> bool:
        return float(self) >= self._other_float(other, ">=")

    __hash__ = Example.__hash__
