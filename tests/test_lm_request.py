"""LMRequest.with_circuit_policy keeps every other field (a field added later included)."""

from __future__ import annotations

import dataclasses

from dspex_actors._types import LMRequest


def test_with_circuit_policy_equals_replace_for_every_field() -> None:
    values = {
        "messages": ({"role": "user", "content": "hi"},),
        "params": {"temperature": 0.5},
        "cache": False,
        "rollout_id": 7,
        "on_circuit_open": None,
    }
    assert set(values) == {f.name for f in dataclasses.fields(LMRequest)}
    request = LMRequest(**values)  # type: ignore[arg-type]
    assert request.with_circuit_policy("wait") == dataclasses.replace(
        request, on_circuit_open="wait"
    )
