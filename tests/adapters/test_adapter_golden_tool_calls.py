"""Native function calling against DSPy 3.4.1: the request and the prediction, byte for byte.

``golden/tool_calls.json`` was recorded by ``golden/record_tool_calls_with_dspy.py``: DSPy 3.4.1
sent each case of ``_golden_tool_cases.py`` to a server that answers with ``REPLY_CALLS``.
Here the same cases go over HTTP to the local server answering the same calls.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _golden_tool_cases import REPLY_CALLS, build_tool_cases

import dspex_actors as dx
from dspex_actors.testing import ChatRequest, LocalLMServer, ToolCallReply

GOLDEN = json.loads((Path(__file__).parent / "golden" / "tool_calls.json").read_text("utf-8"))
CASES = {case[0]: case for case in build_tool_cases(dx)}
TOOL_KEYS = ("tools", "tool_choice", "parallel_tool_calls")


def _reply_calls(request: ChatRequest) -> str:
    """What the recording server answered: REPLY_CALLS, no text."""
    calls = [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in REPLY_CALLS]
    return ToolCallReply("", calls)


def _plain(prediction: dx.Prediction) -> dict[str, Any]:
    return {
        key: [{"name": c.name, "args": c.args} for c in value.tool_calls]
        if isinstance(value, dx.ToolCalls)
        else value
        for key, value in prediction.items()
    }


@pytest.mark.parametrize("name", sorted(CASES))
def test_request_and_prediction_match_dspy(
    name: str, make_lm_server: Callable[..., LocalLMServer]
) -> None:
    assert GOLDEN["dspy_version"] == "3.4.1"
    golden = GOLDEN[name]
    _, adapter_name, kwargs, signature, inputs = CASES[name]
    server = make_lm_server(_reply_calls)
    lm = dx.LM("openai/gpt-4o-mini", api_base=server.url, cache=False)
    adapter = getattr(dx, adapter_name)(**kwargs)
    with dx.ActorSystem(lm=lm):
        prediction = dx.Predict(signature, adapter=adapter)(**inputs)
    body = server.stats().requests[-1]
    assert body["messages"] == golden["messages"]
    assert {k: body[k] for k in TOOL_KEYS if k in body} == golden["params"]
    assert _plain(prediction) == golden["prediction"]
