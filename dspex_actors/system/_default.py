"""The process-wide default system: ``configure()``, ``current_system()``, shutdown.

After ``os.fork()`` (gunicorn ``--preload``, multiprocessing "fork", Celery prefork) the child
drops the inherited default system and starts its own on first use.

``current_system()`` looks in this order: the system whose ``with`` block encloses the
current context (a contextvar, so tasks and copied contexts see it), the most recently
entered system still running (so plain threads started inside a ``with`` see it), then
the ``configure()``d default system, started on first use and stopped at exit.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from dspex_actors._errors import ConfigurationError
from dspex_actors._runtime import install_lookup
from dspex_actors.lm._lm import LM
from dspex_actors.system._settings import check_setting, set_configured_adapter
from dspex_actors.system._system import ActorSystem, current_from_context
from dspex_actors.telemetry._callbacks import set_global_callbacks

__all__ = ["configure", "current_system", "shutdown_default"]

logger = logging.getLogger(__name__)

_UNSET: Any = object()
"""A setting ``configure()`` was not given (None is a value: no LM)."""


class _Default:
    """The default system and the options it was configured with (guarded by ``lock``)."""

    lock = threading.RLock()
    system: ActorSystem | None = None
    options: dict[str, Any] = {}


def _build(lm: LM | None, options: dict[str, Any]) -> ActorSystem:
    try:
        return ActorSystem(lm, name="dspex-default", **options)
    except TypeError as exc:
        raise ConfigurationError(f"configure(): {exc}") from None


def configure(
    lm: Any = _UNSET, adapter: Any = _UNSET, callbacks: Any = _UNSET, **options: Any
) -> None:
    """Set the settings (``lm``, ``adapter``, ``callbacks``) and the ActorSystem options of
    the default system.

    Settings swap in place: calls in flight finish, the running system, its cache and its
    Client actors stay; a setting not given keeps its value (``configure(adapter=...)``
    keeps the LM, as in DSPy). Options (``cache_dir``, breaker settings, ...) given with
    new values replace the default system (it starts on first use).
    """
    if lm is not _UNSET:
        check_setting("configure()", "lm", lm)
    if adapter is not _UNSET:
        check_setting("configure()", "adapter", adapter)
    if callbacks is not _UNSET:
        check_setting("configure()", "callbacks", callbacks)
        set_global_callbacks(callbacks or ())
    with _Default.lock:
        merged = {**_Default.options, **options}
        replace = merged != _Default.options
        replacement = _build(_configured_lm(lm), merged) if replace else None
        old = _Default.system
        if adapter is not _UNSET:
            set_configured_adapter(adapter)
        if replacement is not None:
            _Default.system, _Default.options = replacement, merged
        elif lm is not _UNSET:
            if old is None:
                _Default.system = _build(lm, merged)
            else:
                old._set_default_lm(lm)
    if replacement is not None and old is not None:
        old.stop()


def _configured_lm(lm: Any) -> LM | None:
    """``lm`` if given, else the default system's current LM."""
    if lm is not _UNSET:
        configured: LM | None = lm
        return configured
    return _Default.system.lm if _Default.system is not None else None


def _default_system() -> ActorSystem:
    with _Default.lock:
        if _Default.system is None:
            _Default.system = _build(None, _Default.options)
        if not _Default.system.running:
            _Default.system.start()
        return _Default.system


def current_system() -> ActorSystem:
    """The ActorSystem calls made here should use (see the module docstring)."""
    system = current_from_context()
    if system is not None:
        return system
    return _default_system()


def shutdown_default(timeout: float = 30.0, *, reset: bool = False) -> None:
    """Stop the default system if it runs.

    It starts again on next use with the same configuration, unless ``reset`` also
    forgets what ``configure()`` set, settings included (for test isolation).
    """
    with _Default.lock:
        system = _Default.system
        if reset:
            _Default.system, _Default.options = None, {}
            set_configured_adapter(None)
            set_global_callbacks(())
    if system is not None:
        system.stop(timeout=timeout)


def _after_fork_in_child() -> None:
    """A forked child starts its own default system on first use (same configuration)."""
    _Default.lock = threading.RLock()
    inherited = _Default.system
    if inherited is not None:  # same LM and options, none of the parent's threads
        _Default.system = _build(inherited.lm, _Default.options)


os.register_at_fork(after_in_child=_after_fork_in_child)
install_lookup(current_system)
