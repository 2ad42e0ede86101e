"""The one place that relies on Pykka's private methods, and the check that they still fit.

Pykka (4.x) has no public hook for what supervision needs: noticing, on the actor's own
thread, that its loop ended and why. ``Supervised`` (``_supervised.py``) therefore
overrides ``_start_actor_loop``, ``_actor_loop``, ``_handle_receive`` and
``_handle_failure``. :class:`SimpleQueueInbox` overrides ``_create_actor_inbox``: the hot
actors of an ActorSystem take several messages per LM call, and pykka's default
``queue.Queue`` costs a Python-level Condition on every put and get. :func:`check_pykka_hooks`
fails loudly when a Pykka release renames or reshapes any of these; the tests call it.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import queue
from typing import Any

import pykka

__all__ = ["PYKKA_HOOKS", "SimpleQueueInbox", "check_pykka_hooks"]

PYKKA_HOOKS: dict[str, list[str]] = {
    "_create_actor_inbox": [],
    "_start_actor_loop": ["self"],
    "_actor_loop": ["self"],
    "_handle_receive": ["self", "message"],
    "_handle_failure": ["self", "exception_type", "exception_value", "traceback"],
}
"""Each private ``pykka.Actor`` method overridden here or in ``_supervised.py``, and the
parameters it is expected to take."""


class SimpleQueueInbox:
    """Mixin (list it before ``pykka.ThreadingActor``): a C ``queue.SimpleQueue`` as inbox.

    It fits Pykka's inbox protocol (``put``/``get``/``empty``) at a fraction of the cost
    per message of the default ``queue.Queue``.
    """

    @staticmethod
    def _create_actor_inbox() -> queue.SimpleQueue[Any]:
        return queue.SimpleQueue()


def check_pykka_hooks() -> None:
    """Raise RuntimeError naming what changed if Pykka's private hooks no longer fit."""
    problems = []
    for name, expected in PYKKA_HOOKS.items():
        method = inspect.getattr_static(pykka.ThreadingActor, name, None)
        if method is None:
            problems.append(f"pykka.ThreadingActor.{name} is gone")
            continue
        function = method.__func__ if isinstance(method, staticmethod) else method
        params = list(inspect.signature(function).parameters)
        if params != expected:
            problems.append(
                f"pykka.ThreadingActor.{name}{tuple(params)} != {tuple(expected)}"
            )
    inbox = pykka.ThreadingActor._create_actor_inbox()
    for needed in ("put", "get", "empty"):
        if not hasattr(inbox, needed):
            problems.append(f"pykka's inbox has no {needed}()")
    if problems:
        version = importlib.metadata.version("pykka")
        raise RuntimeError(
            f"pykka {version} changed the private hooks supervision uses: " + "; ".join(problems)
        )
