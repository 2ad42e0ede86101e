"""The instruction-sensitive responder: right only with the phrase, candidates for proposals."""

from __future__ import annotations

from dspex_actors.testing import (
    INSTRUCTED_PHRASE,
    INSTRUCTION_POOL,
    RESPONDERS,
    ChatRequest,
    InstructionSensitiveResponder,
    arithmetic_dataset,
    solve_arithmetic,
)

SYSTEM = (
    "Your input fields are:\n1. `question` (str):\nYour output fields are:\n"
    "1. `answer` (str):\nAll interactions will be structured in the following way, "
    "with the appropriate values filled in.\n\nIn adhering to this structure, your "
    "objective is: \n        {instructions}"
)


def task(question: str, instructions: str, demos: int = 0) -> ChatRequest:
    turns = []
    for i in range(demos):
        turns += [
            {"role": "user", "content": f"[[ ## question ## ]]\nWhat is {i} + 1?"},
            {"role": "assistant", "content": f"[[ ## answer ## ]]\n{i + 1}"},
        ]
    final = (
        f"[[ ## question ## ]]\n{question}\n\nRespond with the corresponding output fields, "
        "starting with the field `[[ ## answer ## ]]`, and then ending with the marker for "
        "`[[ ## completed ## ]]`."
    )
    messages = [
        {"role": "system", "content": SYSTEM.format(instructions=instructions)},
        *turns,
        {"role": "user", "content": final},
    ]
    return ChatRequest(model="m", messages=messages)


def answered(reply: str) -> str:
    after = reply.split("[[ ## answer ## ]]")[1]
    return after.split("[[ ## completed ## ]]", maxsplit=1)[0].strip()


def right_share(responder: InstructionSensitiveResponder, instructions: str, demos: int) -> float:
    rows = arithmetic_dataset(200, seed=5)
    right = 0
    for row in rows:
        reply = responder(task(row["question"], instructions, demos))
        right += answered(reply) == row["answer"]
    return right / len(rows)


def test_right_only_with_the_phrase_and_demos_do_not_help() -> None:
    responder = RESPONDERS["instructed"]()
    assert isinstance(responder, InstructionSensitiveResponder)
    base = right_share(responder, "Given the fields `question`, produce the fields `answer`.", 0)
    assert 0.3 <= base <= 0.5
    assert right_share(responder, "Answer.", 3) == base
    assert right_share(responder, f"Please {INSTRUCTED_PHRASE.upper()}.", 0) == 1.0


def test_wrong_answers_are_off_by_one() -> None:
    responder = InstructionSensitiveResponder(base_rate=0.0)
    question = "What is 6 * 7?"
    solved = solve_arithmetic(question)
    assert solved is not None
    assert answered(responder(task(question, "Answer."))) == "43"


def test_proposals_and_reflections_come_from_the_pool() -> None:
    responder = InstructionSensitiveResponder()
    proposal_system = SYSTEM.replace("`answer`", "`proposed_instruction`").format(
        instructions="Propose an instruction."
    )
    picks = set()
    for i in range(40):
        request = ChatRequest(
            model="m",
            messages=[
                {"role": "system", "content": proposal_system},
                {"role": "user", "content": f"[[ ## question ## ]]\nvariant {i}"},
            ],
        )
        reply = responder(request)
        picks.add(reply.split("[[ ## proposed_instruction ## ]]")[1].split("[[ ##")[0].strip())
        assert responder(request) == reply  # the same prompt, the same candidate
    assert picks <= set(INSTRUCTION_POOL)
    assert any(INSTRUCTED_PHRASE in p for p in picks)
    assert any(INSTRUCTED_PHRASE not in p for p in picks)

    reflection = ChatRequest(
        model="m",
        messages=[
            {
                "role": "user",
                "content": "I provided an assistant with the following instructions to "
                "perform a task for me:\n```\nAnswer.\n```\nProvide the new instructions "
                "within ``` blocks.",
            }
        ],
    )
    reply = responder(reflection)
    assert reply.startswith("```\n") and reply.endswith("\n```")
    assert reply.strip("`\n") in INSTRUCTION_POOL
