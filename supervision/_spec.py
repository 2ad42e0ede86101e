"""Child specifications and the read-only child information a supervisor reports."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, get_args

import pykka

from supervision._errors import ChildSpecError

__all__ = ["RESTART_TYPES", "ChildInfo", "ChildSpec", "ChildState", "RestartType"]

RestartType = Literal["permanent", "transient", "temporary"]
"""``permanent``: always restarted; ``transient``: only after an abnormal exit;
``temporary``: never restarted (and forgotten once it exits)."""

ChildState = Literal["running", "restarting", "stopped"]

RESTART_TYPES: frozenset[str] = frozenset(get_args(RestartType))


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """How to start one child and what to do when it exits.

    ``start`` is called on the supervisor's thread and must return the new actor's
    :class:`pykka.ActorRef` (e.g. ``lambda: MyActor.start(arg)``); a wrong return value
    is detected when the supervisor calls it. ``shutdown_timeout`` bounds how long the
    supervisor waits for the child to stop (its ``on_stop`` included).
    """

    id: str
    start: Callable[[], pykka.ActorRef[Any]]
    restart: RestartType = "permanent"
    shutdown_timeout: float = 5.0

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ChildSpecError(self.id, "id must be a non-empty string")
        if not callable(self.start):
            raise ChildSpecError(
                self.id,
                "start must be a callable returning a pykka.ActorRef, "
                f"got a {type(self.start).__name__}",
            )
        if self.restart not in RESTART_TYPES:
            raise ChildSpecError(
                self.id,
                f"unknown restart type {self.restart!r}; expected one of {sorted(RESTART_TYPES)}",
            )
        timeout = self.shutdown_timeout
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not math.isfinite(timeout)
            or timeout <= 0
        ):
            raise ChildSpecError(
                self.id, f"shutdown_timeout must be a positive number of seconds, got {timeout!r}"
            )


@dataclass(frozen=True, slots=True)
class ChildInfo:
    """A snapshot of one child, as returned by ``Supervisor.which_children()``.

    ``state`` is ``running``, ``restarting`` (a start attempt failed and another is
    queued, or the child is being restarted) or ``stopped`` (terminated or exited and
    not restarted). ``ref`` is the current incarnation, ``None`` when not running.
    """

    id: str
    ref: pykka.ActorRef[Any] | None
    alive: bool
    state: ChildState
    restart: RestartType
    restart_count: int
