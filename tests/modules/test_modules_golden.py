"""ReAct, MultiChainComparison and Refine send DSPy 3.4.1's prompts, byte for byte.

``golden/record_with_dspy.py`` ran each case of ``_golden_modules.py`` with DSPy 3.4.1 on a
scripted LM and recorded every call's messages and reply. Here the same programs, built with
dspex_actors, run against the local server answering with those replies; the messages the
server received must be the recorded ones, and the tools and outputs the same.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from _golden_modules import TOOL_CALLS, build_cases

import dspex_actors as dx
from dspex_actors.testing import fixed_responder
from tests.modules.conftest import SystemFor

GOLDEN = Path(__file__).resolve().parent / "golden"
CASES = {case[0]: case for case in build_cases(dx)}

# Refine's feedback prompt shows the program's source: DSPy's Predict class there, ours here.
SOURCE_FIELDS = {"refine_advice": "program_code"}


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((GOLDEN / f"{name}.json").read_text(encoding="utf-8"))
    return data


def _without_section(text: str, field: str) -> str:
    """``text`` with the ``[[ ## field ## ]]`` section's value blanked."""
    head, marker, rest = text.partition(f"[[ ## {field} ## ]]\n")
    assert marker, f"no {field} section"
    _, _, tail = rest.partition("\n\n[[ ## ")
    return f"{head}{marker}<source>\n\n[[ ## {tail}"


def test_every_case_has_a_golden_file() -> None:
    recorded = {p.stem for p in GOLDEN.glob("*.json")} - {"tools"}
    assert recorded == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_prompts_match_dspy_byte_for_byte(name: str, system_for: SystemFor) -> None:
    _, program, kwargs, _ = CASES[name]
    golden = _load(name)
    assert golden["dspy_version"] == "3.4.1"
    _, server = system_for(fixed_responder(*[call["reply"] for call in golden["calls"]]))
    TOOL_CALLS.clear()
    pred = program(**kwargs)
    sent = [request["messages"] for request in server.stats().requests]
    assert len(sent) == len(golden["calls"])
    for index, (ours, call) in enumerate(zip(sent, golden["calls"], strict=True)):
        theirs = call["messages"]
        assert [m["role"] for m in ours] == [m["role"] for m in theirs], index
        for mine, recorded in zip(ours, theirs, strict=True):
            field = SOURCE_FIELDS.get(name)
            if field and f"[[ ## {field} ## ]]\n" in recorded["content"]:
                assert _without_section(mine["content"], field) == _without_section(
                    recorded["content"], field
                )
                if mine["role"] == "user":
                    assert "class Predict(Module, Parameter):" in mine["content"]
            else:
                assert mine["content"] == recorded["content"], f"call {index}"
    assert [list(call) for call in TOOL_CALLS] == golden["tool_calls"]
    assert json.loads(json.dumps(dict(pred.items()))) == golden["outputs"]


def test_request_parameters_match_dspy(system_for: SystemFor) -> None:
    _, program, kwargs, _ = CASES["multi_chain_comparison"]
    golden = _load("multi_chain_comparison")
    _, server = system_for(fixed_responder(golden["calls"][0]["reply"]))
    program(**kwargs)
    request = server.stats().requests[0]
    assert request["temperature"] == golden["calls"][0]["params"]["temperature"] == 0.7
