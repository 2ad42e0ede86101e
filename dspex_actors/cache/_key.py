"""Stable cache keys: what was asked of which model, never who asked or where."""

from __future__ import annotations

import hashlib
import json
import logging

from dspex_actors._types import LMRequest

__all__ = ["cache_key"]

logger = logging.getLogger(__name__)


def cache_key(model: str, request: LMRequest) -> str:
    """sha256 of model, messages, parameters and rollout id (no credentials, no api_base).

    Keys are stable across processes (sorted JSON), so the persistent tier is reused.
    """
    payload = {
        "model": model,
        "messages": [dict(message) for message in request.messages],
        "params": request.params,
        "rollout_id": request.rollout_id,
    }
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False, default=repr)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
