"""Formatted messages and parse results against golden files recorded from DSPy 3.4.1.

The goldens were written by ``golden/record_with_dspy.py`` running DSPy 3.4.1 itself on the
cases in ``_golden_cases.py``; here the same cases are built with dspex_actors.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from _golden_cases import PARSE_CASES, build_cases
from _golden_type_cases import build_type_cases, plain

import dspex_actors.signatures as sigs
from dspex_actors import AdapterParseError
from dspex_actors.adapters import ChatAdapter, JSONAdapter

GOLDEN = Path(__file__).resolve().parent / "golden"
CASES = {case[0]: case for case in build_cases(sigs)}


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((GOLDEN / f"{name}.json").read_text(encoding="utf-8"))
    return data


def test_every_case_has_a_golden_file() -> None:
    recorded = {p.stem for p in GOLDEN.glob("*.json")} - {"parse_cases", "model_parse_cases"}
    assert recorded == set(CASES) | {case[0] for case in build_type_cases(sigs)}


@pytest.mark.parametrize("name", sorted(CASES))
def test_messages_match_dspy_byte_for_byte(name: str) -> None:
    _, kind, signature, demos, inputs = CASES[name]
    golden = _load(name)
    assert golden["dspy_version"] == "3.4.1"
    adapter = JSONAdapter() if kind == "json" else ChatAdapter()
    messages = adapter.format(signature, demos, inputs)
    assert [m["role"] for m in messages] == [m["role"] for m in golden["messages"]]
    for ours, theirs in zip(messages, golden["messages"], strict=True):
        assert ours["content"] == theirs["content"]
    assert messages == golden["messages"]


def test_formatting_twice_gives_the_same_messages() -> None:
    _, _, signature, demos, inputs = CASES["complex_types"]
    adapter = ChatAdapter()
    assert adapter.format(signature, demos, inputs) == adapter.format(signature, demos, inputs)


@pytest.mark.parametrize(
    ("name", "signature_text", "completion"), PARSE_CASES, ids=[c[0] for c in PARSE_CASES]
)
def test_parse_matches_dspy(name: str, signature_text: str, completion: str) -> None:
    expected = _load("parse_cases")[name]
    signature = sigs.make_signature(signature_text)
    if "error" in expected:
        with pytest.raises(AdapterParseError) as info:
            ChatAdapter().parse(signature, completion)
        assert info.value.signature is signature
        assert info.value.lm_response == completion
        assert info.value.missing_fields
    else:
        assert plain(ChatAdapter().parse(signature, completion)) == expected["ok"]
