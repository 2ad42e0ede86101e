"""GEPA's instruction proposal as DSPy 3.4.1 sends it (its default ``InstructionProposer``).

DSPy's default proposer asks the reflection LM through ``Predict(ProposeInstruction)``
and a ``JSONAdapter``: the current instruction and the reflective dataset (a list of
``{"Inputs", "Generated Outputs", "Feedback"}`` records, values kept as they are, the
adapter JSON-encodes the list) go in; ``new_instruction`` comes out, stripped. A reply
the adapter cannot parse raises :class:`AdapterParseError`; an empty instruction raises
:class:`ReflectionError` (DSPy's ``ValueError``). GEPA tries a failed proposal once more,
then gives up on that iteration's child, as ``gepa`` does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dspex_actors._errors import OptimizerError
from dspex_actors.adapters import JSONAdapter
from dspex_actors.predict import Predict
from dspex_actors.signatures import InputField, OutputField, Signature

__all__ = [
    "PROPOSAL_ATTEMPTS",
    "PROPOSER",
    "ProposeInstruction",
    "ReflectionError",
    "propose_instruction",
]

PROPOSAL_ATTEMPTS = 2
"""Tries per proposal: ``gepa`` re-runs a failed batch of proposals once, one by one."""

PROPOSER = "dspy-3.4.1 ProposeInstruction"
"""Names the proposal prompt in a checkpoint's settings: a run started with another
prompt (the ``gepa`` template before) is not resumed."""


class ReflectionError(OptimizerError, ValueError):
    """The reflection LM's reply held no usable instruction (empty after stripping)."""


class ProposeInstruction(Signature):
    """I provided an assistant with instructions to perform a task for me. You are given those instructions, along with examples of different task inputs provided to the assistant, the assistant's response for each of them, and some feedback on how the assistant's response could be better.

    Your task is to write a new instruction for the assistant.

    Read the inputs carefully and identify the input format and infer detailed task description about the task I wish to solve with the assistant.

    Read all the assistant responses and the corresponding feedback. Identify all niche and domain specific factual information about the task and include it in the instruction, as a lot of it may not be available to the assistant in the future. The assistant may have utilized a generalizable strategy to solve the task, if so, include that in the instruction as well."""  # noqa: E501

    current_instruction: str = InputField(desc="The instructions I provided to the assistant.")
    examples_with_feedback: list[dict[str, Any]] = InputField(
        desc="Task inputs provided to the assistant, the assistant's response for each, "
        "and feedback on how the response could be better."
    )
    new_instruction: str = OutputField(desc="The new instruction for the assistant.")


def propose_instruction(
    lm: Any, component: str, current: str, dataset: Sequence[Mapping[str, Any]]
) -> str:
    """One new instruction for ``component`` from its reflective ``dataset`` (one request)."""
    proposer = Predict(ProposeInstruction, adapter=JSONAdapter())
    reply = proposer(
        current_instruction=current,
        examples_with_feedback=[dict(record) for record in dataset],
        lm=lm,
    )
    draft = str(reply.new_instruction).strip()
    if not draft:
        raise ReflectionError(
            f"GEPA: the reflection LM returned an empty instruction for component {component!r}"
        )
    return draft
