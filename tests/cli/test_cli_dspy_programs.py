"""``dspex-actors evaluate`` on program files saved by DSPy 3.4.1 (``dspy_programs/``).

The files were written by ``dspy_programs/record_with_dspy.py`` running DSPy itself. DSPy
records neither field names nor types: the signature comes from DSPy's default instructions,
or from ``--signature``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from cli_helpers import Run

from dspex_actors import ProgramLoadError
from dspex_actors.predict import ChainOfThought, load_program
from dspex_actors.testing import LocalLMServer

PROGRAMS = Path(__file__).resolve().parent / "dspy_programs"


def _lm_args(server: LocalLMServer) -> list[str]:
    return ["--model", "openai/local-model", "--api-base", server.url, "--no-progress"]


def test_dspy_predict_file_evaluates(
    cli: Callable[..., Run], lm_server: LocalLMServer, dev_jsonl: Path
) -> None:
    run = cli("evaluate", str(PROGRAMS / "predict.json"), str(dev_jsonl), *_lm_args(lm_server))
    assert run.code == 0, run.err
    assert "(question -> answer)" in run.err
    assert "score: 100.0" in run.out
    prompt = lm_server.stats().requests[0]["messages"]
    assert [m["role"] for m in prompt] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
    ]
    assert prompt[1]["content"] == "[[ ## question ## ]]\nWhat is 1 + 1?"


def test_dspy_chain_of_thought_file_gets_its_types_from_signature(
    cli: Callable[..., Run], lm_server: LocalLMServer, dev_jsonl: Path
) -> None:
    path = PROGRAMS / "cot_typed.json"
    loaded = load_program(path)
    assert isinstance(loaded, ChainOfThought)
    assert loaded.predict.signature.output_fields["answer"].annotation is str
    typed = load_program(path, signature="question -> answer: int")
    assert list(typed.predict.signature.output_fields) == ["reasoning", "answer"]
    assert typed.predict.signature.output_fields["answer"].annotation is int
    assert typed.predict.demos[0].answer == 4
    run = cli(
        "evaluate",
        str(path),
        str(dev_jsonl),
        "--signature",
        "question -> answer: int",
        *_lm_args(lm_server),
    )
    assert run.code == 0, run.err
    assert "(question -> reasoning, answer: int)" in run.err
    assert "score: 100.0" in run.out


def test_custom_instructions_need_the_signature(
    cli: Callable[..., Run], lm_server: LocalLMServer, dev_jsonl: Path
) -> None:
    path = PROGRAMS / "custom_instructions.json"
    run = cli("evaluate", str(path), str(dev_jsonl), *_lm_args(lm_server))
    assert run.code == 2, (run.out, run.err)
    assert "--signature 'question -> answer'" in run.err
    assert lm_server.stats().requests_total == 0
    run = cli(
        "evaluate",
        str(path),
        str(dev_jsonl),
        "--signature",
        "question -> answer",
        *_lm_args(lm_server),
    )
    assert run.code == 0, run.err
    system = lm_server.stats().requests[0]["messages"][0]["content"]
    assert "Answer the arithmetic question with a number only." in system
    assert "1. `answer` (str): just the number" in system


def test_a_signature_that_does_not_fit_the_file_names_both() -> None:
    with pytest.raises(ProgramLoadError, match=r"the file has 2 fields.*\['q', 'a', 'b'\]"):
        load_program(PROGRAMS / "predict.json", signature="q -> a, b")
