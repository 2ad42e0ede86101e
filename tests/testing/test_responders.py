"""The deterministic models: DSPy prompt parsing, typed answers, JSON mode, the weak rule."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest
from _lmserver_helpers import body, chat_messages

from dspex_actors.testing import (
    WEAK_WRONG_RATE,
    ChatRequest,
    DefaultResponder,
    LocalLMServer,
    WeakResponder,
    arithmetic_dataset,
    fixed_responder,
    parse_dspy_prompt,
    solve_arithmetic,
    weak_model_is_wrong,
)

JSON_SYSTEM = """Your input fields are:
1. `question` (str):
Your output fields are:
1. `reasoning` (str): 
2. `answer` (int):
All interactions will be structured in the following way, with the appropriate values filled in.

Inputs will have the following structure:

[[ ## question ## ]]
{question}

Outputs will be a JSON object with the following fields.

{
  "reasoning": "{reasoning}",
  "answer": "{answer}        # note: the value you produce must be a single int value"
}
In adhering to this structure, your objective is: 
        Given the fields `question`, produce the fields `answer`."""  # noqa: W291

TYPED_SYSTEM = """Your input fields are:
1. `text` (str):
Your output fields are:
1. `count` (int):
2. `score` (float):
3. `ok` (bool):
4. `items` (list[str]):
5. `label` (Literal['positive', 'negative']):
All interactions will be structured in the following way, with the appropriate values filled in."""


def _request(messages: list[dict[str, str]], **params: object) -> ChatRequest:
    return ChatRequest(model="m", messages=messages, params=dict(params))


def _sections(text: str) -> dict[str, str]:
    parts = text.split("[[ ## ")
    result = {}
    for part in parts[1:]:
        name, _, value = part.partition(" ## ]]")
        result[name] = value.strip()
    return result


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        ("What is 2 + 3?", "5"),
        ("3 * 4", "12"),
        ("What is 7 times 6?", "42"),
        ("Compute 10 - 15.", "-5"),
        ("What is 9 divided by 2?", "4.5"),
        ("What is (2 + 3) * 4?", "20"),
    ],
)
def test_default_solves_arithmetic_in_answer_field(question: str, answer: str) -> None:
    reply = DefaultResponder()(_request(chat_messages(question)))
    sections = _sections(reply)
    assert list(sections) == ["reasoning", "answer", "completed"]
    assert sections["answer"] == answer
    assert answer in sections["reasoning"]
    assert reply.endswith("[[ ## completed ## ]]")


def test_unknown_question_gets_deterministic_placeholder() -> None:
    request = _request(chat_messages("Who wrote Hamlet?"))
    first, second = DefaultResponder()(request), DefaultResponder()(request)
    assert first == second
    assert _sections(first)["answer"].startswith("placeholder-answer-")
    other = DefaultResponder()(_request(chat_messages("Who painted the Mona Lisa?")))
    assert _sections(other)["answer"] != _sections(first)["answer"]


def test_typed_fields_get_plausible_values() -> None:
    messages = [
        {"role": "system", "content": TYPED_SYSTEM},
        {"role": "user", "content": "[[ ## text ## ]]\nWhat is 4 + 4?\n\nRespond with ..."},
    ]
    sections = _sections(DefaultResponder()(_request(messages)))
    assert sections["count"] == "8"
    assert float(sections["score"]) == 8.0
    assert sections["ok"] == "True"
    assert json.loads(sections["items"]) == ["8"]
    assert sections["label"] in {"positive", "negative"}


def test_json_mode_from_system_message() -> None:
    messages = [
        {"role": "system", "content": JSON_SYSTEM},
        {
            "role": "user",
            "content": "[[ ## question ## ]]\nWhat is 5 * 5?\n\nRespond with a JSON object in "
            "the following order of fields: `reasoning`, then `answer` (must be formatted as a "
            "valid Python int).",
        },
    ]
    reply = json.loads(DefaultResponder()(_request(messages)))
    assert list(reply) == ["reasoning", "answer"]
    assert reply["answer"] == 25


def test_json_mode_from_response_format() -> None:
    reply = DefaultResponder()(
        _request(chat_messages("What is 1 + 2?"), response_format={"type": "json_object"})
    )
    assert json.loads(reply)["answer"] == "3"


def test_output_fields_from_suffix_when_system_lacks_them() -> None:
    messages = [
        {"role": "system", "content": "Be helpful."},
        {
            "role": "user",
            "content": "[[ ## question ## ]]\nWhat is 8 - 3?\n\nRespond with the corresponding "
            "output fields, starting with the field `[[ ## answer ## ]]` (must be formatted as a "
            "valid Python int), and then ending with the marker for `[[ ## completed ## ]]`.",
        },
    ]
    prompt = parse_dspy_prompt(_request(messages))
    assert prompt is not None
    assert prompt.output_fields == [("answer", "int")]
    assert prompt.inputs == {"question": "What is 8 - 3?"}
    assert _sections(DefaultResponder()(_request(messages)))["answer"] == "5"


def test_plain_prompt_gets_plain_reply() -> None:
    assert DefaultResponder()(_request([{"role": "user", "content": "What is 2+2?"}])) == "4"
    reply = DefaultResponder()(_request([{"role": "user", "content": "hello"}]))
    assert reply.startswith("placeholder reply ")


def test_parse_counts_demos() -> None:
    prompt = parse_dspy_prompt(
        _request(chat_messages("What is 1 + 5?", demos=[("What is 1 + 1?", "2")]))
    )
    assert prompt is not None
    assert prompt.demo_count == 1
    assert prompt.question == "What is 1 + 5?"
    assert not prompt.json_mode


def test_weak_model_follows_documented_rule() -> None:
    dataset = arithmetic_dataset(60, seed=3)
    weak = WeakResponder()
    wrong_without_demos = 0
    for row in dataset:
        expected_wrong = weak_model_is_wrong(row["question"])
        answer = _sections(weak(_request(chat_messages(row["question"]))))["answer"]
        assert (answer != row["answer"]) == expected_wrong
        if expected_wrong:
            assert int(answer) == int(row["answer"]) + 1
        wrong_without_demos += expected_wrong
        with_demos = weak(_request(chat_messages(row["question"], demos=[("What is 1 + 1?", "2")])))
        assert _sections(with_demos)["answer"] == row["answer"]
    assert 0.25 * len(dataset) < wrong_without_demos < 0.65 * len(dataset)
    assert WEAK_WRONG_RATE == 0.45


def test_weak_rates_are_configurable() -> None:
    always_wrong = WeakResponder(wrong_rate=1.0, wrong_rate_with_demos=1.0)
    reply = always_wrong(_request(chat_messages("What is 2 + 2?", demos=[("What is 1 + 1?", "2")])))
    assert _sections(reply)["answer"] == "5"
    with pytest.raises(ValueError, match="wrong_rate"):
        WeakResponder(wrong_rate=1.5)


def test_arithmetic_dataset_is_deterministic_and_correct() -> None:
    rows = arithmetic_dataset(50, seed=1)
    assert rows == arithmetic_dataset(50, seed=1)
    assert rows != arithmetic_dataset(50, seed=2)
    assert len({r["question"] for r in rows}) == 50
    for row in rows:
        solved = solve_arithmetic(row["question"])
        assert solved is not None
        assert str(int(solved[1])) == row["answer"]
    with pytest.raises(ValueError, match="distinct questions"):
        arithmetic_dataset(10, ops="+", max_operand=2)


def test_solve_arithmetic_rejects_non_arithmetic() -> None:
    assert solve_arithmetic("What is the capital of France?") is None
    assert solve_arithmetic("Divide 1 / 0") is None
    assert solve_arithmetic("2 ** 1000") is None


def test_fixed_responder_cycles() -> None:
    responder = fixed_responder("a", "b")
    request = _request([{"role": "user", "content": "x"}])
    assert [responder(request) for _ in range(3)] == ["a", "b", "a"]


def test_weak_responder_by_name_over_http(make_lm_server: Callable[..., LocalLMServer]) -> None:
    server = make_lm_server("weak")
    row = next(r for r in arithmetic_dataset(40, seed=0) if weak_model_is_wrong(r["question"]))
    with httpx.Client(base_url=server.url) as http:
        data = http.post("/chat/completions", json=body(chat_messages(row["question"]))).json()
    assert _sections(data["choices"][0]["message"]["content"])["answer"] != row["answer"]


def test_only_the_built_in_responders_run_on_the_io_thread() -> None:
    from dspex_actors.testing._responders import echo_responder, runs_inline

    class Custom(DefaultResponder):
        pass

    assert all(
        runs_inline(r)
        for r in (DefaultResponder(), WeakResponder(), echo_responder, fixed_responder("x"))
    )
    assert not any(runs_inline(r) for r in (Custom(), lambda request: "x"))
