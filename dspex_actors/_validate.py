"""Checks of numeric configuration values, shared by ``LM`` and ``ActorSystem``."""

from __future__ import annotations

import math
from typing import Any

from dspex_actors._errors import ConfigurationError

__all__ = ["check_number"]


def check_number(
    owner: str, name: str, value: Any, *, minimum: float, strict: bool, integer: bool
) -> None:
    """Raise a ConfigurationError naming ``owner`` and ``name`` unless ``value`` is a finite
    number (an int if ``integer``) that is >= ``minimum`` (> if ``strict``)."""
    kind = "an int" if integer else "a number"
    ok_type = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not ok_type or not math.isfinite(value):
        raise ConfigurationError(f"{owner} {name} must be {kind}, got {value!r}")
    if value < minimum or (strict and value == minimum):
        relation = ">" if strict else ">="
        raise ConfigurationError(f"{owner} {name} must be {relation} {minimum:g}, got {value!r}")
