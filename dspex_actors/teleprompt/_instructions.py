"""Instruction helpers the instruction optimizers share (MIPROv2, GEPA, SIMBA).

An optimized instruction lives where DSPy keeps it, in ``predictor.signature.instructions``,
so a compiled program saves and loads like any other.
"""

from __future__ import annotations

import inspect
import re
import textwrap
from collections.abc import Mapping
from typing import Any

from dspex_actors.primitives import Module, Parameter

__all__ = [
    "describe_modules",
    "example_string",
    "instructions_of",
    "program_source",
    "set_instruction",
    "strip_prefix",
    "with_instructions",
]

_PREFIX = re.compile(r"^[\*\s]*(([\w\'\-]+\s+){0,4}[\w\'\-]+):\s*")


def set_instruction(predictor: Any, instructions: str) -> None:
    """Give ``predictor`` a signature with ``instructions`` (fields unchanged)."""
    predictor.signature = predictor.signature.with_instructions(instructions)


def instructions_of(program: Module) -> dict[str, str]:
    """Predictor name → its current instructions."""
    return {name: p.signature.instructions for name, p in program.named_predictors()}


def with_instructions(program: Module, instructions: Mapping[str, str]) -> Module:
    """A deep copy of ``program`` whose named predictors carry ``instructions``."""
    copy = program.deepcopy()
    for name, predictor in copy.named_predictors():
        if name in instructions:
            set_instruction(predictor, instructions[name])
    return copy


def strip_prefix(text: str) -> str:
    """Drop a leading ``Label:`` (up to five words) and surrounding quotes, as DSPy does."""
    return _PREFIX.sub("", str(text)).strip('"')


def example_string(signature: Any, example: Any) -> str:
    """One demo as ``Prefix: value`` lines over the signature's fields (DSPy's layout)."""
    lines = []
    for name, info in signature.fields.items():
        prefix = info.prefix if info.prefix is not None else f"{name}:"
        lines.append(f"{prefix} {example.get(name)}")
    return "\n".join(lines)


def program_source(program: Module) -> str:
    """The program code MIPROv2's proposer shows (DSPy's ``get_dspy_source_code``).

    The class source of a custom module (none for a Predict or ChainOfThought), after the
    source (or text) of the signature of each predictor held in an attribute, and the same
    for each sub-module, each once. A bare Predict gives an empty text, as in DSPy.
    """
    header: list[str] = []
    done: set[Any] = set()
    for value in vars(program).values():
        items = list(value.values()) if isinstance(value, dict) else value
        if not isinstance(items, list | tuple):
            items = [value]
        for item in items:
            signature = getattr(item, "signature", None)
            if isinstance(item, Parameter) and signature is not None and id(signature) not in done:
                done.add(id(signature))
                try:
                    header.append(inspect.getsource(signature))
                except (OSError, TypeError):
                    header.append(str(signature))
            if isinstance(item, Module) and item is not program:
                code = program_source(item).strip()
                if code not in done:
                    done.add(code)
                    header.append(code)
    body = ""
    if type(program).__name__ not in {"Predict", "ChainOfThought"}:
        try:
            body = inspect.getsource(type(program))
        except (OSError, TypeError):
            body = ""
    return "\n\n".join(header) + "\n\n" + body


def describe_modules(program: Module) -> str:
    """Each predictor's name, fields and instructions (SIMBA's ``modules_defn``)."""
    separator = "-" * 80
    parts = [separator]
    for name, predictor in program.named_predictors():
        signature = predictor.signature
        instructions = ("\n" + "\t" * 2).join(
            ["", *textwrap.dedent(signature.instructions).splitlines()]
        )
        parts.append(f"Module {name}")
        parts.append("\n\tInput Fields:")
        parts.append(_fields_text(signature.input_fields))
        parts.append("\tOutput Fields:")
        parts.append(_fields_text(signature.output_fields))
        parts.append(f"\tOriginal Instructions: {instructions}")
        parts.append(separator)
    return "\n".join(p.strip("\n") for p in parts)


def _fields_text(fields: Mapping[str, Any]) -> str:
    lines = []
    for index, (name, info) in enumerate(fields.items(), start=1):
        kind = getattr(info.annotation, "__name__", str(info.annotation))
        line = f"{index}. `{name}` ({kind})"
        if info.desc and not str(info.desc).startswith("${"):
            line += f": {info.desc}"
        lines.append("\t\t" + line)
    return "\n".join(lines)
