"""Native function calling cases, built with either DSPy 3.4.1 or dspex_actors (``m``).

Each case: name, adapter class name, adapter keyword arguments, signature, inputs. The
recorder (``golden/record_tool_calls_with_dspy.py``) sends them with DSPy to a recording
server; the test sends them with dspex_actors to the local server and compares requests.
"""

from typing import Any

REPLY_CALLS = [
    {
        "id": "call_1",
        "type": "function",
        "function": {"name": "add", "arguments": '{"a": 2, "b": 3}'},
    }
]
"""The tool calls the recording server answers with (what the DSPy prediction then holds)."""


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def search(query: str, limit: int = 3) -> str:
    """Search the web."""
    return f"results for {query} ({limit})"


def build_tool_cases(m: Any) -> list[tuple[str, str, dict[str, Any], Any, dict[str, Any]]]:
    class UseTools(m.Signature):
        """Use tools."""

        question: str = m.InputField()
        tools: list[m.Tool] = m.InputField()
        answer: str = m.OutputField()
        calls: m.ToolCalls = m.OutputField()

    class OnlyCalls(m.Signature):
        """Pick the tool calls that answer the question."""

        question: str = m.InputField()
        tools: list[m.Tool] = m.InputField(desc="what you may call")
        calls: m.ToolCalls = m.OutputField()

    tools = [m.Tool(add), m.Tool(search)]
    inputs = {"question": "What is 2 + 3?", "tools": tools}
    return [
        (
            "tools_chat_native",
            "ChatAdapter",
            {"use_native_function_calling": True},
            UseTools,
            inputs,
        ),
        ("tools_json_native", "JSONAdapter", {}, UseTools, inputs),
        ("tools_chat_text", "ChatAdapter", {}, UseTools, inputs),
        (
            "tools_json_text",
            "JSONAdapter",
            {"use_native_function_calling": False},
            OnlyCalls,
            inputs,
        ),
        (
            "tools_chat_parallel",
            "ChatAdapter",
            {"use_native_function_calling": True, "parallel_tool_calls": False},
            OnlyCalls,
            inputs,
        ),
    ]
