"""Optimizer checkpoints: one JSON file per run in ``log_dir``, rewritten after every step.

A checkpoint holds what a run needs to go on where it stopped: the settings it was
started with (a resumed run must use the same ones), the finished steps' results and
the RNG state. It is written atomically (temporary file, then rename), so a crash
while writing leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import logging
import os
import random
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dspex_actors._errors import OptimizerError
from dspex_actors.primitives import Example

__all__ = [
    "Checkpoint",
    "demos_from_json",
    "demos_to_json",
    "rng_from_json",
    "rng_to_json",
]

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1


class Checkpoint:
    """The state file ``<log_dir>/<name>.json`` of one optimizer run (``log_dir=None``: off).

    ``load(settings)`` returns the saved state when the file exists (an OptimizerError
    if it was written with other settings), else None; ``save(state)`` replaces it.
    """

    def __init__(self, log_dir: str | os.PathLike[str] | None, name: str) -> None:
        self.path = None if log_dir is None else Path(log_dir) / f"{name}.json"
        self.name = name

    @property
    def enabled(self) -> bool:
        """Whether this run writes a checkpoint."""
        return self.path is not None

    def load(self, settings: Mapping[str, Any]) -> dict[str, Any] | None:
        """The saved state of a run with the same ``settings``, or None for a fresh run."""
        if self.path is None or not self.path.exists():
            return None
        try:
            saved = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise OptimizerError(f"{self.name}: cannot read checkpoint {self.path}: {exc}") from exc
        if not isinstance(saved, dict) or saved.get("format") != FORMAT_VERSION:
            raise OptimizerError(f"{self.name}: {self.path} is not a checkpoint of this version")
        if saved.get("settings") != _plain(settings):
            raise OptimizerError(
                f"{self.name}: checkpoint {self.path} was written by a run with other settings "
                f"({saved.get('settings')}); use another log_dir or the same settings "
                f"({_plain(settings)})"
            )
        logger.info("%s: resuming from %s", self.name, self.path)
        state: dict[str, Any] = saved["state"]
        return state

    def save(self, settings: Mapping[str, Any], state: Mapping[str, Any]) -> None:
        """Write ``state`` (JSON-ready) atomically."""
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"format": FORMAT_VERSION, "settings": _plain(settings), "state": state}
        text = json.dumps(payload, ensure_ascii=False, default=repr)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _plain(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists)."""
    return json.loads(json.dumps(value, default=repr))


def rng_to_json(rng: random.Random) -> list[Any]:
    """A ``random.Random``'s state as JSON-ready lists."""
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]


def rng_from_json(state: list[Any]) -> random.Random:
    """A ``random.Random`` in the state :func:`rng_to_json` saved."""
    rng = random.Random()
    rng.setstate((state[0], tuple(state[1]), state[2]))
    return rng


def demos_to_json(demos: list[Any]) -> list[dict[str, Any]]:
    """Demos (Examples) as plain dicts."""
    return [d.toDict() if isinstance(d, Example) else dict(d) for d in demos]


def demos_from_json(rows: list[dict[str, Any]]) -> list[Example]:
    """Demos back from :func:`demos_to_json`."""
    return [Example(row) for row in rows]
