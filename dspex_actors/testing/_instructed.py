"""An instruction-sensitive model, for showing that an instruction optimizer really searches.

Task questions (arithmetic, as in :func:`arithmetic_dataset`) are answered right only
when the prompt's instructions hold :data:`INSTRUCTED_PHRASE`; without it, a stable
:data:`INSTRUCTED_BASE_RATE` share of questions is right and the rest are off by one,
whatever demos the prompt carries. Requests for instructions -- a DSPy prompt with an
output field named like ``proposed_instruction`` (MIPROv2's proposer), GEPA's reflection
prompt (answered in a fenced block), SIMBA's ``module_advice`` -- get candidates from
:data:`INSTRUCTION_POOL`, picked by a digest of the prompt, so the same prompt always
gets the same candidate and some candidates hold the phrase.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from dspex_actors.testing._arithmetic import stable_fraction
from dspex_actors.testing._responders import (
    ChatRequest,
    DSPyPrompt,
    answer_prompt,
    parse_dspy_prompt,
    render_reply,
)

__all__ = [
    "INSTRUCTED_BASE_RATE",
    "INSTRUCTED_PHRASE",
    "INSTRUCTION_POOL",
    "REFLECTION_MARKER",
    "InstructionSensitiveResponder",
    "instructed_is_right",
]

INSTRUCTED_PHRASE = "check the arithmetic twice"
"""The phrase whose presence in the instructions makes every task answer right."""

INSTRUCTED_BASE_RATE = 0.4
"""Share of questions answered right when the instructions lack the phrase."""

INSTRUCTION_POOL: tuple[str, ...] = (
    "Answer the arithmetic question with a single number.",
    "Read the question carefully and check the arithmetic twice before answering.",
    "You are a careful calculator. Give only the final number.",
    "Work out the expression step by step, then check the arithmetic twice.",
    "Reply with the numeric result and nothing else.",
    "Solve the problem; check the arithmetic twice and give the number.",
    "Be concise: state the value of the expression.",
    "As a math tutor, check the arithmetic twice, then answer with the number only.",
)
"""Candidate instructions handed out for proposal and reflection requests (half hold the phrase)."""

REFLECTION_MARKER = "I provided an assistant with the following instructions"
"""How GEPA's reflection prompt begins."""

_ADVICE_FIELD = "module_advice"


def instructed_is_right(question: str, instructions: str, *, base_rate: float) -> bool:
    """Whether the model answers ``question`` right under ``instructions``."""
    if INSTRUCTED_PHRASE in instructions.lower():
        return True
    return stable_fraction("instructed:" + question.strip()) < base_rate


def _pick(*parts: str) -> str:
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).digest()
    return INSTRUCTION_POOL[int.from_bytes(digest[:8], "big") % len(INSTRUCTION_POOL)]


def _prompt_text(request: ChatRequest) -> str:
    return "\n".join(str(m.get("content", "")) for m in request.messages)


class InstructionSensitiveResponder:
    """Right on task questions only with :data:`INSTRUCTED_PHRASE` in the instructions.

    ``base_rate`` (default 0.4): share of questions right without the phrase. Demos
    never change an answer. Instruction requests get a candidate from the pool.
    """

    def __init__(self, base_rate: float = INSTRUCTED_BASE_RATE) -> None:
        if not 0.0 <= base_rate <= 1.0:
            raise ValueError(
                f"InstructionSensitiveResponder: base_rate must be within [0, 1], got {base_rate}"
            )
        self.base_rate = base_rate

    def __call__(self, request: ChatRequest) -> str:
        prompt = parse_dspy_prompt(request)
        if prompt is None:
            text = request.last_user_text
            if REFLECTION_MARKER in text:
                return f"```\n{_pick(_prompt_text(request))}\n```"
            return _pick(_prompt_text(request))
        names = [name for name, _ in prompt.output_fields]
        if any("instruction" in name for name in names):
            return self._propose(request, prompt)
        if _ADVICE_FIELD in names:
            return self._advise(request, prompt)
        right = instructed_is_right(prompt.question, request.system_text, base_rate=self.base_rate)
        return answer_prompt(prompt, wrong=not right)

    @staticmethod
    def _propose(request: ChatRequest, prompt: DSPyPrompt) -> str:
        text = _prompt_text(request)
        values: dict[str, Any] = {}
        for name, _ in prompt.output_fields:
            values[name] = _pick(text) if "instruction" in name else f"Notes on {name}."
        return render_reply(prompt, values)

    @staticmethod
    def _advise(request: ChatRequest, prompt: DSPyPrompt) -> str:
        text = _prompt_text(request)
        try:
            modules = json.loads(prompt.inputs.get("module_names", "[]"))
        except ValueError:
            modules = []
        if not isinstance(modules, list) or not modules:
            modules = ["self"]
        values: dict[str, Any] = {}
        for name, _ in prompt.output_fields:
            if name == _ADVICE_FIELD:
                values[name] = {str(m): _pick(text, str(m)) for m in modules}
            else:
                values[name] = "The worse trajectory answered off by one."
        return render_reply(prompt, values)
