"""The plain-text results table of ``Evaluate(display_table=True|N)`` (DSPy's, without pandas).

One row per example in devset order: the example's and the prediction's fields (merged as in
``EvaluationResult.rows()``) and the metric column as DSPy styles it (``✔️ [0.500]``). A cell
is cut to 25 words like DSPy's, then to a fixed width so the columns line up in a terminal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["format_table"]

_MAX_WORDS = 25
_MAX_WIDTH = 40
_HIDDEN = ("error_type", "error")


def format_table(
    rows: Sequence[Mapping[str, Any]],
    metric_name: str,
    limit: int | None = None,
) -> str:
    """The first ``limit`` rows (all when None) as an aligned text table, plus a line saying
    how many more rows there are. The error columns appear only when a shown row failed."""
    shown = list(rows if limit is None else rows[: max(limit, 0)])
    any_failed = any(row.get("error_type") is not None for row in shown)
    columns: dict[str, None] = {}
    for row in shown:
        columns.update(dict.fromkeys(k for k in row if k not in _HIDDEN or any_failed))
    if metric_name in columns:  # the score last, as DSPy shows it
        del columns[metric_name]
        columns[metric_name] = None
    names = list(columns)
    cells = [
        [
            _metric_cell(row.get(name)) if name == metric_name else _cell(row.get(name))
            for name in names
        ]
        for row in shown
    ]
    widths = [max([len(name), *(len(line[i]) for line in cells)]) for i, name in enumerate(names)]
    lines = [
        "  ".join(name.ljust(w) for name, w in zip(names, widths, strict=True)).rstrip(),
        "  ".join("-" * w for w in widths),
        *(
            "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
            for line in cells
        ),
    ]
    hidden = len(rows) - len(shown)
    if hidden > 0:
        lines.append(f"... {hidden} more rows not displayed ...")
    return "\n".join(lines)


def _metric_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"✔️ [{value:.3f}]"
    return f"✔️ [{value}]"


def _cell(value: Any) -> str:
    words = ("" if value is None else str(value)).split()
    text = " ".join(words[:_MAX_WORDS]) + ("..." if len(words) > _MAX_WORDS else "")
    return text if len(text) <= _MAX_WIDTH else text[: _MAX_WIDTH - 3] + "..."
