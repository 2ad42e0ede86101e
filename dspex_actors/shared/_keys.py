"""Redis key names: built only from what every replica has in common.

Model, endpoint, a stable hash of the credential and the request's cache key, under a
namespace prefix; never a pid, a per-process id or the credential itself.
"""

from __future__ import annotations

import hashlib

from dspex_actors.cache._key import endpoint_identity
from dspex_actors.lm._lm import LM

__all__ = ["SharedKeys", "stable_credential_id"]

_CREDENTIAL_SALT = b"dspex-actors/shared-credential/v1\x00"
"""Fixed, so that every process derives the same id from the same key."""


def stable_credential_id(lm: LM) -> str:
    """A hash of ``lm``'s API key that is the same in every process ("none" without one).

    ``LM.credential_id`` is salted per process; shared keys need this one instead.
    """
    key = lm.api_key
    if not key:
        return "none"
    return hashlib.sha256(_CREDENTIAL_SALT + key.encode("utf-8")).hexdigest()[:32]


def _endpoint_id(endpoint: str) -> str:
    return hashlib.sha256(endpoint_identity(endpoint).encode("utf-8")).hexdigest()[:16]


class SharedKeys:
    """The key names of one namespace ``prefix`` (e.g. ``"dspex:"``)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def value(self, cache_key: str) -> str:
        """A cached response (JSON)."""
        return f"{self.prefix}cache:{cache_key}"

    def lock(self, cache_key: str) -> str:
        """The single-flight leader lock of a cache key."""
        return f"{self.prefix}lock:{cache_key}"

    def scope(self, lm: LM) -> str:
        """Endpoint and credential: what breakers and limits are per."""
        return f"{_endpoint_id(lm.endpoint)}:{stable_credential_id(lm)}"

    def bucket(self, lm: LM, kind: str, per_minute: float) -> str:
        """A token bucket (``kind`` "rpm" or "tpm") of ``lm``'s endpoint and credential."""
        return f"{self.prefix}{kind}:{self.scope(lm)}:{per_minute:g}"

    def breaker(self, lm: LM) -> str:
        """The open-circuit marker of ``lm``'s endpoint and credential."""
        return f"{self.prefix}breaker:{self.scope(lm)}"

    @property
    def breaker_channel(self) -> str:
        """Where circuit openings are published."""
        return f"{self.prefix}breaker-events"
