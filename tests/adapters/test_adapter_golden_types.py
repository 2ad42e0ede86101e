"""Pydantic, dataclass and History field types, and the XML adapter, against DSPy 3.4.1 goldens.

The goldens were written by ``golden/record_with_dspy.py`` running DSPy 3.4.1 on the cases in
``_golden_type_cases.py``; here the same cases are built with dspex_actors.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from _golden_type_cases import MODEL_PARSE_CASES, build_type_cases, plain

import dspex_actors as dx
from dspex_actors import AdapterParseError
from dspex_actors.adapters import ChatAdapter, JSONAdapter, XMLAdapter

GOLDEN = Path(__file__).resolve().parent / "golden"
CASES = {case[0]: case for case in build_type_cases(dx)}
ADAPTERS: dict[str, type[ChatAdapter]] = {
    "chat": ChatAdapter,
    "json": JSONAdapter,
    "xml": XMLAdapter,
}


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((GOLDEN / f"{name}.json").read_text(encoding="utf-8"))
    return data


@pytest.mark.parametrize("name", sorted(CASES))
def test_typed_messages_match_dspy_byte_for_byte(name: str) -> None:
    _, kind, signature, demos, inputs = CASES[name]
    golden = _load(name)
    assert golden["dspy_version"] == "3.4.1"
    messages = ADAPTERS[kind]().format(signature, demos, inputs)
    assert [m["role"] for m in messages] == [m["role"] for m in golden["messages"]]
    for ours, theirs in zip(messages, golden["messages"], strict=True):
        assert ours["content"] == theirs["content"]


@pytest.mark.parametrize(
    ("name", "case", "kind", "completion"), MODEL_PARSE_CASES, ids=[c[0] for c in MODEL_PARSE_CASES]
)
def test_typed_parse_matches_dspy(name: str, case: str, kind: str, completion: str) -> None:
    expected = _load("model_parse_cases")[name]
    signature = CASES[case][2]
    adapter = ADAPTERS[kind]()
    if "error" in expected:
        with pytest.raises(AdapterParseError) as info:
            adapter.parse(signature, completion)
        assert info.value.lm_response == completion
        assert info.value.missing_fields
    else:
        assert plain(adapter.parse(signature, completion)) == expected["ok"]
