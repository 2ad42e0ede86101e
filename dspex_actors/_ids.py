"""Ids for history entries and callback calls: random UUIDs without a system call.

``uuid.uuid4()`` reads ``os.urandom`` on every call, which costs 50-75 µs on this kind of
VM (measured: it was the largest single cost of an LM call on the caller's side). These
ids only need to be unique, not unpredictable, so they come from ``random``.
"""

from __future__ import annotations

import random
import uuid

__all__ = ["random_uuid"]


def random_uuid() -> uuid.UUID:
    """A version-4 UUID from the ``random`` module's generator (not for secrets)."""
    return uuid.UUID(int=random.getrandbits(128), version=4)
