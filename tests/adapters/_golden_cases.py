"""Prompt cases shared by the golden tests and the script that recorded the golden files.

``build_cases(lib)`` takes a module-like object with ``Signature``, ``InputField`` and
``OutputField`` (``dspex_actors`` here, ``dspy`` 3.4.1 in ``golden/record_with_dspy.py``)
and returns ``(case name, adapter kind, signature, demos, inputs)`` tuples. Both libraries
share this signature API, so the same code builds the same task in each.
"""

from __future__ import annotations

import enum
from typing import Any, Literal, Optional

Case = tuple[str, str, Any, list[dict[str, Any]], dict[str, Any]]


class Priority(enum.Enum):
    LOW = "low"
    HIGH = "high"


class Level(enum.Enum):
    """How loud it is."""

    ONE = 1
    TWO = 2


def build_cases(lib: Any) -> list[Case]:
    """Every golden case, built with ``lib``'s signature API."""

    class QA(lib.Signature):  # type: ignore[misc,name-defined]
        """Answer questions with short factoid answers."""

        question: str = lib.InputField()
        answer: str = lib.OutputField(desc="often between 1 and 5 words")

    class Triage(lib.Signature):  # type: ignore[misc,name-defined]
        """Triage the support ticket.

        Be conservative:
            only escalate real outages.
        """

        ticket: str = lib.InputField(desc="the customer's message")
        history: list[str] = lib.InputField()
        priority: Priority = lib.OutputField()
        tags: list[str] = lib.OutputField(desc="short labels")
        scores: dict[str, int] = lib.OutputField()
        eta_days: Optional[int] = lib.OutputField()  # noqa: UP045 -- spelled as users do
        level: Optional[Level] = lib.OutputField()  # noqa: UP045
        summary: str = lib.OutputField()

    class Sentiment(lib.Signature):  # type: ignore[misc,name-defined]
        text: str = lib.InputField()
        sentiment: Literal["positive", "negative", "neutral"] = lib.OutputField()
        confident: bool = lib.OutputField()
        score: float = lib.OutputField(desc="between 0 and 1")

    typed = lib.Signature("context: list[str], question -> answer: int")
    cot = typed.prepend("reasoning", lib.OutputField(desc="${reasoning}"), type_=str)
    multi = lib.Signature(
        "question, context -> answer, confidence: float",
        "Answer using the context.\nCite nothing.",
    )
    plain = lib.Signature("question -> answer")

    qa_demos = [
        {"question": "What is the capital of France?", "answer": "Paris"},
        {"question": "Who wrote Hamlet?", "answer": "William Shakespeare"},
    ]
    multi_demos = [
        {"question": "q-complete", "context": "c1", "answer": "a1", "confidence": 0.9},
        {"question": "q-no-context", "answer": "a2", "confidence": 0.5},
        {"question": "q-no-confidence", "context": "c3", "answer": "a3"},
        {"question": "q-none-answer", "context": "c4", "answer": None, "confidence": 0.1},
        {"question": "q-outputs-missing", "context": "c5"},
        {"answer": "inputs-missing", "confidence": 1.0},
        {
            "question": "q-complete-2",
            "context": "c6",
            "answer": "a6",
            "confidence": 1,
            "extra": "x",
        },
    ]
    sentiment_demos = [
        {"text": "I love it", "sentiment": "positive", "confident": True, "score": 0.95},
        {"text": "meh", "sentiment": "neutral", "confident": False},
    ]
    triage_demo = {
        "ticket": "Site down!",
        "history": ["first contact", "line one\nline two"],
        "priority": Priority.HIGH,
        "tags": ["outage", "web"],
        "scores": {"urgency": 9, "impact": 8},
        "eta_days": None,
        "level": Level.TWO,
        "summary": "Outage reported.",
    }
    typed_inputs = {
        "context": ["Paris is in France.", "Berlin «capital» of Germany"],
        "question": "Where is Paris?",
    }

    return [
        ("qa_basic", "chat", QA, [], {"question": "What is 2 + 3?"}),
        ("qa_demos", "chat", QA, qa_demos, {"question": "Largest planet?"}),
        ("plain_string", "chat", plain, [], {"question": "  spaced  \n"}),
        ("typed_list_input", "chat", typed, [], typed_inputs),
        ("typed_single_item_list", "chat", typed, [], {"context": ["only one"], "question": "q"}),
        ("typed_empty_list", "chat", typed, [], {"context": [], "question": "q"}),
        (
            "cot_typed",
            "chat",
            cot,
            [{"context": ["ctx"], "question": "q", "reasoning": "r", "answer": 5}],
            typed_inputs,
        ),
        (
            "incomplete_demos",
            "chat",
            multi,
            multi_demos,
            {"question": "final q", "context": "final c"},
        ),
        ("literal_bool_float", "chat", Sentiment, sentiment_demos, {"text": "Great product"}),
        (
            "complex_types",
            "chat",
            Triage,
            [triage_demo],
            {"ticket": "Cannot log in", "history": []},
        ),
        ("json_typed", "json", typed, [], typed_inputs),
        (
            "json_incomplete_demos",
            "json",
            multi,
            multi_demos,
            {"question": "final q", "context": "final c"},
        ),
        (
            "json_complex_types",
            "json",
            Triage,
            [triage_demo],
            {"ticket": "Cannot log in", "history": ["x"]},
        ),
    ]


# (signature string, annotations module names, completion) cases for the parse goldens.
PARSE_CASES: list[tuple[str, str, str]] = [
    ("ok_simple", "question -> answer", "[[ ## answer ## ]]\nParis\n\n[[ ## completed ## ]]"),
    ("ok_no_completed", "question -> answer", "[[ ## answer ## ]]\nParis"),
    ("ok_same_line", "question -> answer: int", "[[ ## answer ## ]] 42"),
    (
        "ok_first_wins",
        "question -> answer",
        "[[ ## answer ## ]]\nfirst\n[[ ## answer ## ]]\nsecond",
    ),
    ("ok_preamble", "question -> answer", "Sure!\n[[ ## answer ## ]]\n  x  \n\n"),
    ("ok_int_float_text", "q -> answer: int", "[[ ## answer ## ]]\n5.0"),
    ("ok_list", "q -> items: list[str]", '[[ ## items ## ]]\n["a", "b"]'),
    ("ok_list_python", "q -> items: list[str]", "[[ ## items ## ]]\n['a', 'b']"),
    ("ok_list_fenced", "q -> items: list[int]", "[[ ## items ## ]]\n```json\n[1, 2]\n```"),
    ("ok_dict", "q -> d: dict[str, int]", "[[ ## d ## ]]\n{'a': 1, \"b\": 2}"),
    ("ok_bool_lower", "q -> flag: bool", "[[ ## flag ## ]]\ntrue"),
    ("ok_bool_python", "q -> flag: bool", "[[ ## flag ## ]]\nFalse"),
    ("ok_bool_yes", "q -> flag: bool", "[[ ## flag ## ]]\nyes"),
    ("ok_literal", "q -> s: Literal['pos', 'neg']", "[[ ## s ## ]]\nneg"),
    ("ok_literal_quoted", "q -> s: Literal['pos', 'neg']", "[[ ## s ## ]]\n'pos'"),
    ("ok_literal_wrapped", "q -> s: Literal['pos', 'neg']", "[[ ## s ## ]]\nLiteral[pos]"),
    ("ok_literal_int", "q -> s: Literal[1, 2]", "[[ ## s ## ]]\n2"),
    ("ok_optional_none", "q -> n: Optional[int]", "[[ ## n ## ]]\nNone"),
    ("ok_optional_null", "q -> n: int | None", "[[ ## n ## ]]\nnull"),
    ("ok_optional_missing", "q -> a, n: Optional[int]", "[[ ## a ## ]]\nx"),
    ("ok_optional_str", "q -> s: Optional[str]", "[[ ## s ## ]]\nNone"),
    ("ok_union_int_str", "q -> v: Union[str, int]", "[[ ## v ## ]]\n1"),
    ("ok_float", "q -> x: float", "[[ ## x ## ]]\n3.5"),
    (
        "ok_two_fields",
        "q -> a, b: int",
        "[[ ## a ## ]]\nline1\nline2\n\n[[ ## b ## ]]\n7\n\n[[ ## completed ## ]]",
    ),
    ("ok_unclosed_list", "q -> items: list[int]", "[[ ## items ## ]]\n[1, 2"),
    ("ok_trailing_comma", "q -> d: dict[str, int]", '[[ ## d ## ]]\n{"a": 1,}'),
    ("err_missing", "question -> answer", "The answer is Paris."),
    ("err_one_missing", "q -> a, b", "[[ ## a ## ]]\nx"),
    ("err_int_text", "q -> answer: int", "[[ ## answer ## ]]\nfive apples"),
    ("err_literal", "q -> s: Literal['pos', 'neg']", "[[ ## s ## ]]\nmaybe"),
    ("err_list_of_str_numbers", "q -> items: list[int]", "[[ ## items ## ]]\n['a']"),
    ("err_float", "q -> x: float", "[[ ## x ## ]]\nabc"),
    ("err_optional_empty", "q -> n: Optional[int]", "[[ ## n ## ]]\n"),
    ("err_csv_list", "q -> items: list[str]", "[[ ## items ## ]]\na, b"),
]
