"""Stable cache keys: what was asked of which model at which endpoint, never who asked."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from urllib.parse import urlsplit

from dspex_actors._types import LMRequest

__all__ = ["cache_key", "endpoint_identity"]

logger = logging.getLogger(__name__)


@functools.lru_cache(maxsize=256)
def endpoint_identity(endpoint: str) -> str:
    """Scheme, host, port and path of ``endpoint``: any ``user:password@`` is left out.

    Remembered per endpoint (a process has a few; every cached call asks).
    """
    parts = urlsplit(endpoint)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme, 0)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}{parts.path}"


def cache_key(model: str, request: LMRequest, endpoint: str = "") -> str:
    """sha256 of model, endpoint, messages, parameters and rollout id (no credentials).

    The endpoint is part of it: two servers that serve the same model name answer for
    themselves. Keys are stable across processes (sorted JSON), so the persistent tier
    is reused.
    """
    payload = {
        "model": model,
        "endpoint": endpoint_identity(endpoint) if endpoint else "",
        "messages": [dict(message) for message in request.messages],
        "params": request.params,
        "rollout_id": request.rollout_id,
    }
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False, default=repr)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
