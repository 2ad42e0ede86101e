"""Settings: the LM, adapter and callbacks a call uses when it names none.

``configure(lm=..., adapter=..., callbacks=...)`` sets the process-wide values;
``context(...)`` overrides them for the code inside its ``with`` block, per thread and per
asyncio task (a context variable: Evaluate workers and tasks inherit it, a new plain
thread starts without it).
Neither starts or stops anything: the same system, cache and Client actors serve every
setting.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
from collections.abc import Iterator
from typing import Any

from dspex_actors._errors import ConfigurationError
from dspex_actors.adapters import ChatAdapter
from dspex_actors.lm._lm import LM
from dspex_actors.telemetry._callbacks import context_callbacks

__all__ = [
    "SETTING_NAMES",
    "Overrides",
    "check_setting",
    "configured_adapter",
    "context",
    "context_lm",
    "current_adapter",
    "set_configured_adapter",
]

SETTING_NAMES = ("lm", "adapter", "callbacks")
"""What ``context()`` (and the settings part of ``configure()``) accept."""


@dataclasses.dataclass(frozen=True)
class Overrides:
    """The settings ``context()`` blocks set here, innermost last (None: not overridden)."""

    values: tuple[tuple[str, Any], ...] = ()

    def get(self, name: str) -> Any:
        """The value ``name`` is overridden with here, or None."""
        for key, value in self.values:
            if key == name:
                return value
        return None

    def merged(self, more: dict[str, Any]) -> Overrides:
        """These overrides with ``more`` on top (an inner block wins; None changes nothing)."""
        given = {k: v for k, v in more.items() if v is not None}
        kept = tuple((k, v) for k, v in self.values if k not in given)
        return Overrides(kept + tuple(given.items()))


_NO_OVERRIDES = Overrides()
_overrides: contextvars.ContextVar[Overrides] = contextvars.ContextVar(
    "dspex_actors_settings", default=_NO_OVERRIDES
)


class _Configured:
    """What ``configure()`` set that is not the default system's LM."""

    adapter: ChatAdapter | None = None


_DEFAULT_ADAPTER = ChatAdapter()
"""DSPy's default: the chat layout with one JSON retry (stateless, shared)."""


def check_setting(where: str, name: str, value: Any) -> None:
    """Refuse an unknown setting or a value of the wrong type, naming both."""
    if name not in SETTING_NAMES:
        raise ConfigurationError(
            f"{where}: unknown setting {name!r}; the settings are {list(SETTING_NAMES)}"
        )
    if name == "lm" and value is not None and not isinstance(value, LM):
        raise ConfigurationError(f"{where}: lm must be a dspex_actors.LM or None, got {value!r}")
    if name == "callbacks" and value is not None and (
        isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple))
    ):
        raise ConfigurationError(
            f"{where}: callbacks must be a list of callback objects (dx.BaseCallback "
            f"subclasses), got {value!r}"
        )
    if name == "adapter" and value is not None and not isinstance(value, ChatAdapter):
        raise ConfigurationError(
            f"{where}: adapter must be an adapter such as dx.ChatAdapter() or "
            f"dx.JSONAdapter(), got {value!r}"
        )


def context(**settings: Any) -> contextlib.AbstractContextManager[None]:
    """Override settings (``lm=``, ``adapter=``, ``callbacks=``) for the code inside the block.

    Per thread and per asyncio task; nested blocks stack; None leaves a setting as it is.
    It changes what calls use, not which system runs them: the current system's cache and
    Client actors serve them. Bad settings are refused here, before the block.
    """
    for name, value in settings.items():
        check_setting("dx.context()", name, value)
    return _overriding(settings)


@contextlib.contextmanager
def _overriding(settings: dict[str, Any]) -> Iterator[None]:
    callbacks = settings.get("callbacks")
    scoped = context_callbacks()
    callbacks_token = scoped.set(tuple(callbacks)) if callbacks is not None else None
    token = _overrides.set(_overrides.get().merged(settings))
    try:
        yield
    finally:
        _overrides.reset(token)
        if callbacks_token is not None:
            scoped.reset(callbacks_token)


def context_lm() -> LM | None:
    """The LM a ``context()`` block here sets, or None."""
    lm: LM | None = _overrides.get().get("lm")
    return lm


def current_adapter() -> ChatAdapter:
    """The adapter of a call made here: ``context()``'s, ``configure()``'s, else ChatAdapter."""
    adapter: ChatAdapter | None = _overrides.get().get("adapter")
    if adapter is not None:
        return adapter
    configured = _Configured.adapter
    return configured if configured is not None else _DEFAULT_ADAPTER


def configured_adapter() -> ChatAdapter | None:
    """The adapter ``configure()`` set (None: the default)."""
    return _Configured.adapter


def set_configured_adapter(adapter: ChatAdapter | None) -> None:
    """Used by ``configure(adapter=...)``."""
    _Configured.adapter = adapter
