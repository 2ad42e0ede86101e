"""The default responder playing a ReAct agent: one tool call, then ``finish``, then the answer.

A ReAct step prompt (outputs ``next_thought``, ``next_tool_name``, ``next_tool_args``) with no
observation yet calls a tool: the first one named in the question, else the first listed.
Its arguments come from the question: a string argument gets the question itself, an
integer or number argument the next number written in the question (an argument with a
default is left out when no number is left). Once an observation is in the trajectory the
agent calls ``finish``. The extract step (a ``trajectory`` input) answers every output field
from the last observation: text fields get it verbatim, number fields its first number.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["agent_values", "choose_tool", "tool_arguments"]

STEP_FIELDS = ("next_thought", "next_tool_name", "next_tool_args")
FINISH = "finish"
_TOOL_LINE = re.compile(
    r"^\s*\(\d+\) (\w+)(?:, whose description is <desc>.*?</desc>)?\. "
    r"It takes arguments (\{.*\})\.\s*$",
    re.MULTILINE,
)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def agent_values(
    output_fields: Sequence[tuple[str, str]], inputs: Mapping[str, str], system: str
) -> dict[str, Any] | None:
    """The agent's output values for a ReAct step or extract prompt; None for any other.

    ``output_fields`` are ``(name, type)`` pairs, ``inputs`` the prompt's input sections (the
    trajectory's own sections among them), ``system`` the system message.
    """
    names = tuple(name for name, _ in output_fields)
    if names[:3] == STEP_FIELDS:
        return _step(inputs, system)
    if "trajectory" in inputs:
        return _extract(output_fields, inputs)
    return None


def _tools(system: str) -> list[tuple[str, dict[str, Any]]]:
    """``(name, argument schemas)`` of every tool the system message lists."""
    tools = []
    for match in _TOOL_LINE.finditer(system):
        try:
            args = ast.literal_eval(match.group(2))
        except (ValueError, SyntaxError):
            args = {}
        tools.append((match.group(1), args if isinstance(args, dict) else {}))
    return tools


def _observations(inputs: Mapping[str, str]) -> list[str]:
    found = [(k, v) for k, v in inputs.items() if k.startswith("observation_")]
    found.sort(key=lambda item: int(item[0].rsplit("_", 1)[1]))
    return [value for _, value in found]


def _step(inputs: Mapping[str, str], system: str) -> dict[str, Any]:
    question = inputs.get("question", next(iter(inputs.values()), ""))
    tools = [(name, args) for name, args in _tools(system) if name != FINISH]
    if _observations(inputs) or not tools:
        return {
            "next_thought": "I have what I need.",
            "next_tool_name": FINISH,
            "next_tool_args": {},
        }
    name, schemas = choose_tool(question, tools)
    return {
        "next_thought": f"I will call {name} to find out.",
        "next_tool_name": name,
        "next_tool_args": tool_arguments(question, schemas),
    }


def choose_tool(
    question: str, tools: Sequence[tuple[str, dict[str, Any]]]
) -> tuple[str, dict[str, Any]]:
    """The tool named in the question, else the first one (``tools`` is not empty)."""
    return next(((n, a) for n, a in tools if n in question), tools[0])


def tool_arguments(question: str, schemas: Mapping[str, Any]) -> dict[str, Any]:
    """A call's arguments read off the question: numbers for number arguments (in order),
    the question itself for string ones; optional arguments left out when nothing fits."""
    numbers = [float(n) for n in _NUMBER.findall(question)]
    args: dict[str, Any] = {}
    for arg, schema in schemas.items():
        kind = schema.get("type") if isinstance(schema, dict) else None
        if kind in ("integer", "number"):
            if numbers:
                value = numbers.pop(0)
                args[arg] = round(value) if kind == "integer" else value
            elif "default" not in schema:
                args[arg] = 0
        elif "default" not in schema or kind == "string":
            args[arg] = question
    return args


def _extract(output_fields: Sequence[tuple[str, str]], inputs: Mapping[str, str]) -> dict[str, Any]:
    observations = [o for o in _observations(inputs) if o != "Completed."]
    observation = observations[-1] if observations else ""
    values: dict[str, Any] = {}
    for name, kind in output_fields:
        base = kind.strip().lower()
        if name in {"reasoning", "rationale"}:
            values[name] = f"The tool observation says: {observation}"
        elif base in ("int", "float"):
            found = _NUMBER.search(observation)
            number = float(found.group()) if found else 0.0
            values[name] = round(number) if base == "int" else number
        else:
            values[name] = observation
    return values
