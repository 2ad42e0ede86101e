"""A cheaper Pykka inbox for the actors on the LM hot path."""

from __future__ import annotations

import queue
from typing import Any

__all__ = ["SimpleQueueInbox"]


class SimpleQueueInbox:
    """Mixin (list it before ``pykka.ThreadingActor``): a C ``queue.SimpleQueue`` as inbox.

    It fits Pykka's inbox protocol (put/get/empty) and costs less per message than the
    default ``queue.Queue``, whose put and get each take a Python-level Condition. Every
    LM call sends a few messages, so this shows in CPU per call.
    """

    @staticmethod
    def _create_actor_inbox() -> queue.SimpleQueue[Any]:
        return queue.SimpleQueue()
