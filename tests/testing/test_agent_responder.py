"""The default responder plays a ReAct agent on the prompts DSPy 3.4.1 itself sends.

The prompts are the recorded golden ones of ``tests/modules/golden``: what holds for them
holds for a DSPy program pointed at the local server as well as for ours.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dspex_actors.testing import ChatRequest, DefaultResponder

GOLDEN = Path(__file__).resolve().parents[1] / "modules" / "golden" / "react_two_tools.json"


def _reply(messages: list[dict[str, Any]]) -> str:
    return DefaultResponder()(ChatRequest(model="m", messages=messages))


def _calls() -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = json.loads(GOLDEN.read_text(encoding="utf-8"))["calls"]
    return calls


def test_first_step_calls_the_first_tool_with_the_question() -> None:
    reply = _reply(_calls()[0]["messages"])
    assert "[[ ## next_tool_name ## ]]\nget_weather\n" in reply
    assert '[[ ## next_tool_args ## ]]\n{"city": "What is the weather in Paris?"}' in reply


def test_a_step_after_an_observation_finishes() -> None:
    reply = _reply(_calls()[1]["messages"])
    assert "[[ ## next_tool_name ## ]]\nfinish\n" in reply
    assert "[[ ## next_tool_args ## ]]\n{}" in reply


def test_the_extract_step_answers_from_the_last_observation() -> None:
    reply = _reply(_calls()[3]["messages"])
    assert "[[ ## answer ## ]]\n5\n" in reply  # observation_1; "Completed." is skipped
    assert reply.startswith("[[ ## reasoning ## ]]\nThe tool observation says: 5")


def test_other_prompts_are_answered_as_before() -> None:
    system = "Your input fields are:\n1. `question` (str):\nYour output fields are:\n" + (
        "1. `answer` (str):\nAll interactions will be structured"
    )
    user = "[[ ## question ## ]]\nWhat is 2 + 2?\n\nRespond with the corresponding output fields"
    reply = _reply([{"role": "system", "content": system}, {"role": "user", "content": user}])
    assert reply == "[[ ## answer ## ]]\n4\n\n[[ ## completed ## ]]"
