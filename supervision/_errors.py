"""Typed errors of the supervision package (it never imports dspex_actors)."""

from __future__ import annotations

__all__ = [
    "ChildNotFoundError",
    "ChildNotRunningError",
    "ChildRestartTimeoutError",
    "ChildSpecError",
    "ChildStartError",
    "ChildUnavailableError",
    "RestartIntensityError",
    "SpecError",
    "SupervisionError",
    "SupervisorStoppedError",
]


class SupervisionError(Exception):
    """Base class of every error raised by the supervision package."""


class SpecError(SupervisionError, ValueError):
    """Bad supervisor configuration (unknown strategy, bad intensity limits, ...)."""


class ChildSpecError(SpecError):
    """A bad child specification; ``child_id`` names the child."""

    def __init__(self, child_id: object, message: str) -> None:
        super().__init__(f"child {child_id!r}: {message}")
        self.child_id = child_id


class ChildStartError(SupervisionError):
    """A child's ``start()`` raised (the original error is the ``__cause__``)."""

    def __init__(self, child_id: str, message: str) -> None:
        super().__init__(f"child {child_id!r}: {message}")
        self.child_id = child_id


class RestartIntensityError(SupervisionError):
    """A supervisor gave up: more than ``max_restarts`` restarts within ``max_seconds``.

    It is the exit reason the supervisor reports to its parent (an abnormal exit) and
    the argument of its ``on_exit`` callback.
    """


class ChildUnavailableError(SupervisionError):
    """A :class:`ChildHandle` could not reach a running incarnation of its child."""


class ChildNotFoundError(ChildUnavailableError, LookupError):
    """The supervisor has no child with this id (never added, removed, or temporary and exited)."""


class ChildNotRunningError(ChildUnavailableError):
    """The child exists but is stopped for good (terminated, or exited and not restarted)."""


class ChildRestartTimeoutError(ChildUnavailableError, TimeoutError):
    """The child was being restarted and no new incarnation appeared within the timeout."""


class SupervisorStoppedError(ChildUnavailableError):
    """The supervisor is stopping or stopped (normally or because it gave up)."""
