"""EvaluationResult: the score, per-example rows in devset order, and the failures."""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from dspex_actors.evaluate._failures import kinds_of
from dspex_actors.evaluate._table import format_table
from dspex_actors.evaluate._worker import ExampleFailure
from dspex_actors.signatures import is_model_type, to_jsonable

__all__ = ["EvaluationResult"]

logger = logging.getLogger(__name__)

_SUMMARY_FAILURES = 10


def _as_dict(value: Any) -> dict[str, Any] | None:
    """The fields of an Example/Prediction-like value, or None when it has none."""
    for name in ("toDict", "to_dict"):
        method = getattr(value, name, None)
        if callable(method):
            result = method()
            if isinstance(result, Mapping):
                return dict(result)
    if isinstance(value, Mapping):
        return dict(value)
    items = getattr(value, "items", None)
    if callable(items):
        return dict(items())
    return None


def _jsonable(value: Any) -> Any:
    """``value`` if JSON can encode it, else its plain fields or its ``str``."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if is_model_type(type(value)):  # a pydantic model or dataclass output: its JSON form
        return to_jsonable(value)
    fields = _as_dict(value)
    if fields is not None:
        return {str(k): _jsonable(v) for k, v in fields.items()}
    return str(value)


class EvaluationResult:
    """The outcome of an evaluation (also the partial one carried by EvaluationAborted).

    ``score``: 0..100 with two decimals, ``round(100 * sum(scores) / len(results), 2)``
    like DSPy. ``results``: ``[(example, prediction, score)]`` in devset order; a failed
    example has prediction ``None`` and the evaluation's ``failure_score``. ``failures``:
    one :class:`ExampleFailure` per failed example (index, exception type, message,
    traceback when asked). ``indices``: the devset index of each row of ``results``
    (``0..n-1`` for a complete run; a partial run has gaps). ``total``: the devset size
    when known. ``complete``: every example of the devset has a row.
    """

    def __init__(
        self,
        score: float,
        results: list[tuple[Any, Any, Any]],
        *,
        failures: Sequence[ExampleFailure] = (),
        indices: Sequence[int] | None = None,
        total: int | None = None,
        complete: bool = True,
        metric_name: str = "score",
    ) -> None:
        self.score = score
        self.results = results
        self.failures = list(failures)
        self.indices = list(range(len(results))) if indices is None else list(indices)
        self.total = total
        self.complete = complete
        self.metric_name = metric_name

    @property
    def failed_indices(self) -> list[int]:
        """Devset indices of the failed examples, ascending (to re-run just those)."""
        return sorted(f.index for f in self.failures)

    @property
    def scores(self) -> list[Any]:
        """The per-example scores, in devset order (``failure_score`` for failures)."""
        return [score for _, _, score in self.results]

    def __len__(self) -> int:
        return len(self.results)

    def __float__(self) -> float:
        """The score, so ``float(result)`` works as it does on DSPy's result."""
        return float(self.score)

    def table(self, max_rows: int | None = None) -> str:
        """The results as a plain-text table (what ``display_table`` prints): the first
        ``max_rows`` rows, all when None."""
        return format_table(self.rows(), self.metric_name, max_rows)

    def __iter__(self) -> Iterator[tuple[Any, Any, Any]]:
        return iter(self.results)

    def __repr__(self) -> str:
        state = "" if self.complete else ", partial"
        return (
            f"EvaluationResult(score={self.score}, results=<list of {len(self.results)} results>, "
            f"failures={len(self.failures)}{state})"
        )

    def summary(self, max_failures: int = _SUMMARY_FAILURES) -> str:
        """A plain-text summary: score, counts, failures by kind, the first failures and
        their indices."""
        total = sum(float(s) for s in self.scores)
        of = "" if self.complete else f" (partial: {len(self.results)}"
        if not self.complete:
            of += f" of {self.total})" if self.total is not None else " finished)"
        lines = [
            f"score: {self.score} ({total:.2f} / {len(self.results)}){of}",
            f"examples: {len(self.results)}, failed: {len(self.failures)}",
        ]
        if self.failures:
            lines.append("failures by kind:")
            said: set[str] = set()
            for kind, count, first in kinds_of(self.failures):
                message = first.message.splitlines()[0] if first.message else ""
                said.add(message)
                lines.append(f"  {kind}: {count} (first #{first.index}: {message})")
            lines.append("failures:")
            ordered = sorted(self.failures, key=lambda f: f.index)
            for failure in ordered[:max_failures]:
                message = failure.message.splitlines()[0] if failure.message else ""
                shown = "(as above)" if message in said else message
                lines.append(f"  #{failure.index} {failure.error_type}: {shown}")
            if len(ordered) > max_failures:
                lines.append(f"  ... {len(ordered) - max_failures} more")
            lines.append(f"failed indices: {self.failed_indices}")
        return "\n".join(lines)

    def rows(self) -> list[dict[str, Any]]:
        """One flat dict per result row, like DSPy's export (plus index and error columns).

        Example and prediction fields are merged; a name in both gets ``example_``/``pred_``
        prefixes; a prediction without fields is one ``prediction`` column; the score is
        under the metric's name.
        """
        failures = {f.index: f for f in self.failures}
        rows: list[dict[str, Any]] = []
        for index, (example, prediction, score) in zip(self.indices, self.results, strict=True):
            example_fields = _as_dict(example) or {"example": example}
            row: dict[str, Any] = {"index": index}
            pred_fields = _as_dict(prediction) if prediction is not None else None
            if pred_fields is None:
                row.update(example_fields)
                row["prediction"] = prediction
            else:
                for key, value in example_fields.items():
                    row[f"example_{key}" if key in pred_fields else key] = value
                for key, value in pred_fields.items():
                    row[f"pred_{key}" if key in example_fields else key] = value
            row[self.metric_name] = score
            failure = failures.get(index)
            row["error_type"] = failure.error_type if failure else None
            row["error"] = failure.message if failure else None
            rows.append({k: _jsonable(v) for k, v in row.items()})
        return rows

    def save_as_json(self, path: str | os.PathLike[str]) -> None:
        """Write the rows as one JSON array (DSPy's ``save_as_json`` layout)."""
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.rows(), f, ensure_ascii=False)

    def save_as_jsonl(self, path: str | os.PathLike[str]) -> None:
        """Write the rows as JSON Lines: one object per example, in devset order."""
        with open(path, "w", encoding="utf-8") as f:
            for row in self.rows():
                f.write(json.dumps(row, ensure_ascii=False))
                f.write("\n")

    def save_as_csv(self, path: str | os.PathLike[str]) -> None:
        """Write the rows as CSV with a header (columns: the union of all rows' keys)."""
        rows = self.rows()
        fieldnames: dict[str, None] = {}
        for row in rows:
            fieldnames.update(dict.fromkeys(row))
        with open(path, "w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(fieldnames))
            writer.writeheader()
            for row in rows:
                writer.writerow(
                    {
                        k: json.dumps(v, ensure_ascii=False) if isinstance(v, (list, dict)) else v
                        for k, v in row.items()
                    }
                )
