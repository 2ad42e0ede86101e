"""The helpers the instruction optimizers share: prefixes, copies, checkpoints, budgets."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from dspex_actors._errors import OptimizerError
from dspex_actors.predict import Predict
from dspex_actors.teleprompt._checkpoint import Checkpoint, rng_from_json, rng_to_json
from dspex_actors.teleprompt._instructions import (
    instructions_of,
    program_source,
    strip_prefix,
    with_instructions,
)


def test_strip_prefix_drops_a_label_like_dspy() -> None:
    assert strip_prefix("Proposed Instruction: Add the numbers.") == "Add the numbers."
    assert strip_prefix('"Quoted."') == "Quoted."
    assert strip_prefix("No label here, just text.") == "No label here, just text."


def test_with_instructions_copies_and_leaves_the_original() -> None:
    original = Predict("question -> answer")
    copy = with_instructions(original, {"self": "Be exact."})
    assert instructions_of(copy) == {"self": "Be exact."}
    assert instructions_of(original) == {
        "self": "Given the fields `question`, produce the fields `answer`."
    }


def test_checkpoint_round_trip_and_settings_guard(tmp_path: Path) -> None:
    rng = random.Random(7)
    rng.random()
    checkpoint = Checkpoint(tmp_path, "x")
    checkpoint.save({"seed": 7}, {"rng": rng_to_json(rng), "done": [1, 2]})
    state = Checkpoint(tmp_path, "x").load({"seed": 7})
    assert state is not None and state["done"] == [1, 2]
    assert rng_from_json(state["rng"]).random() == rng.random()
    with pytest.raises(OptimizerError, match="other settings"):
        Checkpoint(tmp_path, "x").load({"seed": 8})
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(OptimizerError, match="cannot read checkpoint"):
        Checkpoint(tmp_path, "x").load({"seed": 7})
    assert Checkpoint(None, "x").load({"seed": 7}) is None
    assert list(tmp_path.glob(".x.json.*")) == []  # no temporary file left behind


def test_program_source_is_dspys_for_a_bare_predict() -> None:
    # DSPy's get_dspy_source_code shows no code for a bare Predict; the proposer's prompts
    # then match DSPy's byte for byte.
    assert program_source(Predict("question -> answer")) == "\n\n"
