"""JSONL datasets for the CLI: every line accounted for, bad lines named by number.

A data file holds one JSON object per line. Blank lines are ignored; any other line
that is not a JSON object with the needed fields is *bad*: without ``--skip-bad`` the
command stops with an error listing the bad lines; with it, they are reported, skipped
and written to the results file, so nothing is dropped silently.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dspex_actors._errors import ConfigurationError
from dspex_actors.primitives import Example

__all__ = [
    "BadLine",
    "Dataset",
    "check_output_path",
    "load_jsonl",
    "write_jsonl",
]

logger = logging.getLogger(__name__)

MAX_LISTED_BAD_LINES = 10


@dataclass(frozen=True)
class BadLine:
    """A line of a data file that could not be used, and why."""

    line: int
    error: str


@dataclass
class Dataset:
    """The examples of a data file, the line number of each, and the bad lines."""

    path: str
    examples: list[Example] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    bad: list[BadLine] = field(default_factory=list)


def _check_line(text: str, required: Sequence[str]) -> dict[str, Any]:
    """The JSON object on a line; ValueError saying what is wrong with it."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object {{...}}, got a JSON {type(value).__name__}")
    missing = [name for name in required if name not in value]
    if missing:
        present = ", ".join(sorted(value)) or "none"
        raise ValueError(f"missing field(s) {', '.join(missing)} (fields on this line: {present})")
    return value


def load_jsonl(
    path: str | os.PathLike[str],
    *,
    inputs: Sequence[str],
    labels: Sequence[str] = (),
    skip_bad: bool = False,
    option: str = "data file",
) -> Dataset:
    """Read a JSONL data file into Examples whose inputs are ``inputs``.

    Each line must hold every field of ``inputs`` and ``labels``. Raises a
    ConfigurationError naming the file and the bad line numbers, unless ``skip_bad``
    (the bad lines are then in ``Dataset.bad``), or when no example is left.
    """
    name = os.fspath(path)
    source = Path(name)
    if not source.is_file():
        what = "is a directory" if source.is_dir() else "does not exist"
        raise ConfigurationError(f"{option} {name} {what}")
    required = [*inputs, *(label for label in labels if label not in inputs)]
    dataset = Dataset(path=name)
    try:
        with source.open(encoding="utf-8") as handle:
            for number, raw in enumerate(handle, start=1):
                if not raw.strip():
                    continue
                try:
                    row = _check_line(raw, required)
                except ValueError as exc:
                    dataset.bad.append(BadLine(number, str(exc)))
                    continue
                dataset.examples.append(Example(row).with_inputs(*inputs))
                dataset.lines.append(number)
    except UnicodeDecodeError as exc:
        raise ConfigurationError(f"{option} {name} is not UTF-8 text: {exc.reason}") from None
    except OSError as exc:
        raise ConfigurationError(f"cannot read {option} {name}: {exc.strerror or exc}") from None
    if dataset.bad and not skip_bad:
        raise ConfigurationError(_bad_lines_message(dataset))
    if not dataset.examples:
        detail = f" ({len(dataset.bad)} bad lines skipped)" if dataset.bad else ""
        raise ConfigurationError(f"{option} {name} holds no usable examples{detail}")
    return dataset


def _bad_lines_message(dataset: Dataset) -> str:
    shown = dataset.bad[:MAX_LISTED_BAD_LINES]
    lines = [f"{dataset.path} line {bad.line}: {bad.error}" for bad in shown]
    if len(dataset.bad) > len(shown):
        lines.append(f"... and {len(dataset.bad) - len(shown)} more bad lines")
    lines.append(
        "fix these lines, or pass --skip-bad to record and skip them "
        "(each line must be one JSON object)"
    )
    return "\n".join(lines)


def check_output_path(path: str | os.PathLike[str], option: str) -> None:
    """Fail early (before any LM call) when ``path`` cannot be written."""
    target = Path(os.fspath(path))
    if target.is_dir():
        raise ConfigurationError(f"{option} {target} is a directory; give a file name")
    parent = target.parent
    if not parent.is_dir():
        raise ConfigurationError(f"{option} {target}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise ConfigurationError(f"{option} {target}: directory {parent} is not writable")


def write_jsonl(path: str | os.PathLike[str], rows: Iterable[Mapping[str, Any]]) -> int:
    """Write one JSON object per line; returns the number of rows written."""
    count = 0
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False, default=str))
            handle.write("\n")
            count += 1
    return count
