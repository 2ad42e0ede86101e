"""``majority``: the most common answer among several completions (self-consistency).

DSPy 3.4.1's semantics: values of the field (by default the signature's last output field, or
the last key of the first completion) are normalised with ``normalize_text``; a completion
whose value normalises to nothing is ignored unless all do; on a tie the earliest wins. The
result is a Prediction holding the first completion with the winning value.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from dspex_actors._errors import PredictInputError
from dspex_actors.evaluate import normalize_text
from dspex_actors.primitives import Completions, Prediction

__all__ = ["default_normalize", "majority"]


def default_normalize(value: Any) -> str | None:
    """``normalize_text`` of the value's text, or None when nothing is left."""
    return normalize_text(value if isinstance(value, str) else str(value)) or None


def majority(
    prediction_or_completions: Prediction | Completions | Sequence[Any],
    normalize: Callable[[Any], Any] | None = default_normalize,
    field: str | None = None,
) -> Prediction:
    """The completion whose ``field`` value is the most common (see the module docstring)."""
    source = prediction_or_completions
    completions: Any
    if isinstance(source, Prediction):
        completions = source.completions if source.completions is not None else [source]
    elif isinstance(source, Completions) or (
        isinstance(source, Sequence) and not isinstance(source, (str, bytes))
    ):
        completions = source
    else:
        raise PredictInputError(
            "majority() takes a Prediction, its Completions or a list of predictions, "
            f"got {type(source).__name__}"
        )
    rows = [_row(index, c) for index, c in enumerate(completions)]
    if not rows:
        raise PredictInputError("majority() needs at least one completion, got none")
    signature = getattr(completions, "signature", None)
    if not field:
        if signature is not None:
            field = list(signature.output_fields)[-1]
        else:
            keys = list(rows[0])
            if not keys:
                raise PredictInputError("majority(): the first completion has no fields")
            field = keys[-1]
    for index, row in enumerate(rows):
        if field not in row:
            raise PredictInputError(
                f"majority(): completion #{index} has no field {field!r} (fields: {list(row)})"
            )
    norm = normalize if normalize else _identity
    normalized = [norm(row[field]) for row in rows]
    counted = [value for value in normalized if value is not None] or normalized
    counts: dict[Any, int] = {}
    for value in counted:
        counts[value] = counts.get(value, 0) + 1
    winner = max(counts, key=lambda value: counts[value])
    chosen = next(row for row, value in zip(rows, normalized, strict=True) if value == winner)
    return Prediction.from_completions([chosen], signature=signature)


def _row(index: int, completion: Any) -> dict[str, Any]:
    if isinstance(completion, Mapping):
        return dict(completion)
    items = getattr(completion, "items", None)
    if callable(items):
        return dict(items())
    raise PredictInputError(
        f"majority(): completion #{index} must be a Prediction or a dict, "
        f"got {type(completion).__name__}"
    )


def _identity(value: Any) -> Any:
    return value
