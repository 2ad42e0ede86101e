"""Helpers for the local LM server tests: DSPy-shaped prompts and bounded waits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

CHAT_SYSTEM = """Your input fields are:
1. `question` (str):
Your output fields are:
1. `reasoning` (str): 
2. `answer` ({answer_type}):
All interactions will be structured in the following way, with the appropriate values filled in.

[[ ## question ## ]]
{{question}}

[[ ## reasoning ## ]]
{{reasoning}}

[[ ## answer ## ]]
{{answer}}

[[ ## completed ## ]]
In adhering to this structure, your objective is: 
        Given the fields `question`, produce the fields `answer`."""  # noqa: W291

CHAT_SUFFIX = (
    "Respond with the corresponding output fields, starting with the field "
    "`[[ ## reasoning ## ]]`, then `[[ ## answer ## ]]`, and then ending with the marker "
    "for `[[ ## completed ## ]]`."
)


def chat_messages(
    question: str, *, answer_type: str = "str", demos: Sequence[tuple[str, str]] = ()
) -> list[dict[str, str]]:
    """A ChainOfThought-style DSPy chat-adapter prompt, with optional (question, answer) demos."""
    messages = [{"role": "system", "content": CHAT_SYSTEM.format(answer_type=answer_type)}]
    for demo_q, demo_a in demos:
        messages.append({"role": "user", "content": f"[[ ## question ## ]]\n{demo_q}"})
        messages.append(
            {
                "role": "assistant",
                "content": f"[[ ## reasoning ## ]]\nNot supplied for this particular example. "
                f"\n\n[[ ## answer ## ]]\n{demo_a}\n\n[[ ## completed ## ]]\n",
            }
        )
    messages.append(
        {"role": "user", "content": f"[[ ## question ## ]]\n{question}\n\n{CHAT_SUFFIX}"}
    )
    return messages


def body(messages: list[dict[str, str]], **params: Any) -> dict[str, Any]:
    """An OpenAI chat-completions request body."""
    return {"model": "local-model", "messages": messages, **params}
