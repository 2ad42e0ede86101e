"""Module cases shared by the golden tests and the script that recorded them from DSPy 3.4.1.

``build_cases(lib)`` takes ``dspex_actors`` or ``dspy`` (3.4.1, in
``golden/record_with_dspy.py``) and returns, per case, the program, its call arguments and the
replies a scripted LM gives, as field dicts. Both libraries share this module API, so the same
code builds the same program in each; the recorder writes the messages DSPy sent.
"""

from __future__ import annotations

import enum
from typing import Any, Literal, Optional


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


Case = tuple[str, Any, dict[str, Any], list[dict[str, Any]]]
"""(case name, program, call keyword arguments, scripted replies as field -> value)."""

TOOL_CALLS: list[tuple[str, dict[str, Any]]] = []
"""Every call of the cases' tools, in order: (tool name, arguments)."""


def get_weather(city: str) -> str:
    """Get the current weather for a city.

    Returns a short sentence.
    """
    TOOL_CALLS.append(("get_weather", {"city": city}))
    return f"The weather in {city} is sunny, 21 C."


def add(a: int, b: int = 1) -> int:
    """Add two integers."""
    TOOL_CALLS.append(("add", {"a": a, "b": b}))
    return a + b


def never_enough(args: dict[str, Any], pred: Any) -> float:
    """A reward no attempt meets, so Refine asks for advice."""
    return 0.0


def build_cases(lib: Any) -> list[Case]:
    """Every module golden case, built with ``lib``'s API."""

    class Weather(lib.Signature):  # type: ignore[misc,name-defined]
        """Answer questions about the weather."""

        question: str = lib.InputField()
        answer: str = lib.OutputField(desc="a short answer")

    react_replies: list[dict[str, Any]] = [
        {
            "next_thought": "I should look up the weather.",
            "next_tool_name": "get_weather",
            "next_tool_args": {"city": "Paris"},
        },
        {"next_thought": "Now add.", "next_tool_name": "add", "next_tool_args": {"a": 2, "b": 3}},
        {"next_thought": "Done.", "next_tool_name": "finish", "next_tool_args": {}},
        {"reasoning": "The tool said it is sunny.", "answer": "Sunny, 21 C"},
    ]
    react_string_replies: list[dict[str, Any]] = [
        {"next_thought": "Add them.", "next_tool_name": "add", "next_tool_args": {"a": 1}},
        {"reasoning": "One plus one.", "answer": "2"},
    ]
    attempts = [
        {"reasoning": "Paris is the capital.", "answer": "Paris"},
        {"reasoning": "It is Paris, France.\nSecond line.", "answer": "Paris, France"},
        {"rationale": "I think it is Lyon", "answer": "Lyon"},
    ]
    return [
        (
            "react_two_tools",
            lib.ReAct(Weather, tools=[get_weather, add], max_iters=5),
            {"question": "What is the weather in Paris?"},
            react_replies,
        ),
        (
            "react_max_iters",
            lib.ReAct("question -> answer: int", tools=[add], max_iters=1),
            {"question": "What is 1 + 1?"},
            react_string_replies,
        ),
        (
            "multi_chain_comparison",
            lib.MultiChainComparison("question -> answer", M=3),
            {"completions": attempts, "question": "What is the capital of France?"},
            [{"rationale": "compare the attempts: all but one say Paris.", "answer": "Paris"}],
        ),
        (
            "refine_advice",
            lib.Refine(
                module=lib.Predict("question -> answer"),
                N=2,
                reward_fn=never_enough,
                threshold=1.0,
            ),
            {"question": "What is the capital of France?"},
            [
                {"answer": "Lyon"},
                {"discussion": "The module answered wrongly.", "advice": {"self": "Say Paris."}},
                {"answer": "Paris"},
            ],
        ),
    ]


def tool_functions() -> list[Any]:
    """Functions whose tool descriptions (``str(Tool(fn))``) are compared with DSPy's."""

    def typed(  # noqa: PLR0917 -- one argument per type
        a: int,
        b: str,
        c: float,
        d: bool,
        e: list[str],
        g: dict[str, int],
        h: Optional[int],  # noqa: UP045 -- spelled as users do
        i: Literal["x", "y"],
        j: Any,
        k,  # type: ignore[no-untyped-def]
        color: Color = Color.RED,
        m: int = 3,
        n: list = None,  # type: ignore[type-arg,assignment]  # noqa: RUF013
        r: int | str = 1,
        s: list[dict[str, Any]] = None,  # type: ignore[assignment]  # noqa: RUF013
        t: Literal["one"] = "one",
        **extra: Any,
    ) -> None:
        """Take one argument of each type.

        Args: many.
        """

    def untyped(query, limit=5):  # type: ignore[no-untyped-def]
        return query

    class Searcher:
        def __call__(self, query: str) -> list[str]:
            """Search the index."""
            return [query]

    async def fetch(url: str, retries: int = 2) -> str:
        return url

    return [typed, untyped, Searcher(), fetch, add, get_weather]
