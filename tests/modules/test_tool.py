"""dx.Tool: descriptions as DSPy 3.4.1 writes them, argument checks, sync and async functions."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pydantic
import pytest
from _golden_modules import add, tool_functions

import dspex_actors as dx
from dspex_actors import ConfigurationError, ToolArgumentError

GOLDEN = Path(__file__).resolve().parent / "golden" / "tools.json"


def test_tool_descriptions_match_dspy() -> None:
    golden = json.loads(GOLDEN.read_text(encoding="utf-8"))
    assert golden["dspy_version"] == "3.4.1"
    ours = [str(dx.Tool(fn)) for fn in tool_functions()]
    assert ours == golden["tools"]


def test_name_desc_and_args_come_from_the_function_unless_given() -> None:
    tool = dx.Tool(add)
    assert (tool.name, tool.desc) == ("add", "Add two integers.")
    assert tool.args == {"a": {"type": "integer"}, "b": {"type": "integer", "default": 1}}
    assert tool.arg_types == {"a": int, "b": int, "return": int}
    named = dx.Tool(add, name="plus", desc="Sum.", arg_desc={"a": "the first"})
    assert str(named) == (
        "plus, whose description is <desc>Sum.</desc>. It takes arguments "
        "{'a': {'type': 'integer', 'description': 'the first'}, "
        "'b': {'type': 'integer', 'default': 1}}."
    )
    function_call = named.format_as_litellm_function_call()
    assert function_call["function"]["parameters"]["required"] == ["a"]


def test_arguments_are_read_as_their_types() -> None:
    tool = dx.Tool(add)
    assert tool(a="2", b=3.0) == 5
    assert tool(a=4) == 5
    with pytest.raises(ToolArgumentError, match=r"'add'.*'a' is invalid"):
        tool(a="two")
    with pytest.raises(ToolArgumentError, match=r"'add' has no argument 'c'"):
        tool(a=1, c=2)
    with pytest.raises(ToolArgumentError, match=r"missing argument\(s\) \['a'\]"):
        tool(b=2)


def test_a_function_without_hints_takes_its_arguments_as_given() -> None:
    def shout(text, times=2):  # type: ignore[no-untyped-def]
        return text.upper() * times

    tool = dx.Tool(shout)
    assert tool.args == {"text": {}, "times": {"default": 2}}
    assert tool(text="hi") == "HIHI"
    assert tool(text="ok", times=1) == "OK"


def test_async_tools_are_awaited() -> None:
    seen: list[str] = []

    async def fetch(url: str) -> str:
        await asyncio.sleep(0)
        seen.append(url)
        return f"page at {url}"

    tool = dx.Tool(fetch)
    assert asyncio.run(tool.acall(url="x")) == "page at x"
    assert tool(url="y") == "page at y"  # no loop running here: run to completion
    assert seen == ["x", "y"]

    async def inside_a_loop() -> None:
        with pytest.raises(ConfigurationError, match=r"await tool\.acall"):
            tool(url="z")

    asyncio.run(inside_a_loop())
    assert seen == ["x", "y"]


def test_a_sync_tool_runs_off_the_event_loop_in_acall() -> None:
    import threading

    threads: list[threading.Thread] = []

    def where(x: int) -> int:
        threads.append(threading.current_thread())
        return x

    async def main() -> int:
        loop_thread = threading.current_thread()
        value: int = await dx.Tool(where).acall(x="7")
        assert threads[0] is not loop_thread
        return value

    assert asyncio.run(main()) == 7


def test_bad_tools_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="wraps a callable"):
        dx.Tool("not a function")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="identifier"):
        dx.Tool(add, name="two words")

    def bad_hint(x: NoSuchType) -> None:  # type: ignore[name-defined]  # noqa: F821
        pass

    with pytest.raises(ConfigurationError, match=r"bad_hint.*NoSuchType"):
        dx.Tool(bad_hint)


def test_a_copy_of_a_program_shares_its_tools_functions() -> None:
    class Holder:
        def __init__(self) -> None:
            self.client = object()

        def lookup(self, key: str) -> str:
            """Look it up."""
            return key

    holder = Holder()
    react = dx.ReAct("question -> answer", tools=[holder.lookup])
    copied = react.deepcopy()
    assert copied.tools["lookup"] is not react.tools["lookup"]
    assert copied.tools["lookup"].func.__self__ is holder  # not a copy of its client


def test_two_tools_with_one_name_are_refused_naming_both() -> None:
    def search(query: str) -> str:
        return query

    other = dx.Tool(lambda query: query, name="search")
    with pytest.raises(ConfigurationError) as info:
        dx.ReAct("question -> answer", tools=[search, other])
    message = str(info.value)
    assert "two tools are named 'search'" in message
    assert "test_two_tools_with_one_name_are_refused_naming_both.<locals>.search" in message
    assert "<lambda>" in message
    with pytest.raises(ConfigurationError, match="named 'finish'"):
        dx.ReAct("question -> answer", tools=[dx.Tool(search, name="finish")])


class Point(pydantic.BaseModel):
    x: int
    y: int = 0


def test_a_pydantic_model_argument_is_described_and_validated() -> None:
    def norm(p: Point, pair: tuple[int, str]) -> str:
        return f"{p.x},{p.y} {pair}"

    tool = dx.Tool(norm)
    assert tool.args["p"] == {
        "properties": {
            "x": {"title": "X", "type": "integer"},
            "y": {"default": 0, "title": "Y", "type": "integer"},
        },
        "required": ["x"],
        "title": "Point",
        "type": "object",
    }
    assert tool(p={"x": "3"}, pair=[1, "a"]) == "3,0 (1, 'a')"
    with pytest.raises(ToolArgumentError, match=r"argument 'p' is invalid"):
        tool(p={"y": 1}, pair=[1, "a"])
