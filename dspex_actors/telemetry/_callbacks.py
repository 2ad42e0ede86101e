"""DSPy-style callbacks: ``BaseCallback`` and the hooks that call it.

The method names, arguments and order are DSPy 3.4.1's, so integrations written for DSPy
port over: ``on_module_start/end`` around a Module call, ``on_adapter_format_*`` and
``on_adapter_parse_*`` around formatting and parsing, ``on_lm_start/end`` around each LM
request, ``on_evaluate_*`` around an Evaluate run, ``on_compile_*`` around an optimizer's
compile. The callbacks of a call are the global ones (``dx.configure(callbacks=...)``,
overridden by ``dx.context(callbacks=...)``) followed by the instance's ``callbacks``. A
callback that raises is logged and never breaks the call.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Sequence
from typing import Any

from dspex_actors._ids import random_uuid

__all__ = [
    "BaseCallback",
    "Hook",
    "active_callbacks",
    "context_callbacks",
    "global_callbacks",
    "has_callbacks",
    "set_global_callbacks",
    "start_hook",
]

logger = logging.getLogger(__name__)


class BaseCallback:
    """Subclass and override the hooks you need (every one is a no-op here).

    Each ``*_start`` gets ``call_id`` (shared with its ``*_end``), ``instance`` (the Module,
    LM, adapter, Evaluate or optimizer) and ``inputs`` (a dict of the call's arguments);
    each ``*_end`` gets ``call_id``, ``outputs`` (None when the call raised) and
    ``exception``.
    """

    def on_module_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        """A Module (Predict, ChainOfThought, a user's program) was called."""

    def on_module_end(
        self, call_id: str, outputs: Any | None, exception: BaseException | None = None
    ) -> None:
        """The Module call returned ``outputs`` or raised ``exception``."""

    def on_lm_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        """An LM request is about to be made (``inputs``: prompt, messages, kwargs)."""

    def on_lm_end(
        self, call_id: str, outputs: Any | None, exception: BaseException | None = None
    ) -> None:
        """The LM request returned ``outputs`` (one text per choice) or failed."""

    def on_adapter_format_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        """An adapter formats ``signature``, ``demos`` and ``inputs`` into messages."""

    def on_adapter_format_end(
        self, call_id: str, outputs: Any | None, exception: BaseException | None = None
    ) -> None:
        """The messages the adapter formatted."""

    def on_adapter_parse_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        """An adapter parses a ``completion`` for a ``signature``."""

    def on_adapter_parse_end(
        self, call_id: str, outputs: Any | None, exception: BaseException | None = None
    ) -> None:
        """The parsed output fields."""

    def on_tool_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        """A tool is about to run."""

    def on_tool_end(
        self, call_id: str, outputs: Any | None, exception: BaseException | None = None
    ) -> None:
        """The tool returned or raised."""

    def on_evaluate_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        """An Evaluate run starts."""

    def on_evaluate_end(
        self, call_id: str, outputs: Any | None, exception: BaseException | None = None
    ) -> None:
        """The Evaluate run's result."""

    def on_compile_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        """An optimizer's compile starts."""

    def on_compile_end(
        self, call_id: str, outputs: Any | None, exception: BaseException | None = None
    ) -> None:
        """The compiled program."""


class _Global:
    callbacks: tuple[Any, ...] = ()


_context_callbacks: contextvars.ContextVar[tuple[Any, ...] | None] = contextvars.ContextVar(
    "dspex_actors_callbacks", default=None
)


def set_global_callbacks(callbacks: Sequence[Any]) -> None:
    """Used by ``configure(callbacks=...)``."""
    _Global.callbacks = tuple(callbacks)


def global_callbacks() -> tuple[Any, ...]:
    """The callbacks ``configure()`` set."""
    return _Global.callbacks


def context_callbacks() -> contextvars.ContextVar[tuple[Any, ...] | None]:
    """The context variable ``dx.context(callbacks=...)`` sets."""
    return _context_callbacks


def _outer_callbacks() -> tuple[Any, ...]:
    """The context's callbacks if a ``context()`` block set some, else the global ones."""
    scoped = _context_callbacks.get()
    return scoped if scoped is not None else _Global.callbacks


def active_callbacks(instance: Any) -> list[Any]:
    """The callbacks of a call on ``instance``: global (or the context's), then its own."""
    base = _outer_callbacks()
    own = getattr(instance, "callbacks", None) or ()
    return [*base, *own] if own else list(base)


def has_callbacks(instance: Any) -> bool:
    """Whether a call on ``instance`` has callbacks to notify (checked before building the
    hook's arguments)."""
    return bool(_outer_callbacks()) or bool(getattr(instance, "callbacks", None))


class Hook:
    """One call's start and end notifications (``kind``: module, lm, adapter_format, ...)."""

    __slots__ = ("call_id", "callbacks", "kind")

    def __init__(self, kind: str, callbacks: list[Any]) -> None:
        self.kind = kind
        self.callbacks = callbacks
        self.call_id = random_uuid().hex

    def start(self, instance: Any, inputs: dict[str, Any]) -> None:
        for callback in self.callbacks:
            _safely(
                callback, f"on_{self.kind}_start", self.call_id, instance=instance, inputs=inputs
            )

    def end(self, outputs: Any, exception: BaseException | None) -> None:
        for callback in self.callbacks:
            _safely(
                callback, f"on_{self.kind}_end", self.call_id, outputs=outputs, exception=exception
            )


def start_hook(kind: str, instance: Any, inputs: dict[str, Any]) -> Hook | None:
    """Notify the start of a call on ``instance``; None (and nothing done) without callbacks."""
    callbacks = active_callbacks(instance)
    if not callbacks:
        return None
    hook = Hook(kind, callbacks)
    hook.start(instance, inputs)
    return hook


def _safely(callback: Any, method: str, call_id: str, **arguments: Any) -> None:
    handler = getattr(callback, method, None)
    if handler is None:
        return
    try:
        handler(call_id=call_id, **arguments)
    except Exception:
        logger.warning(
            "callback %r failed in %s; the call goes on", callback, method, exc_info=True
        )
