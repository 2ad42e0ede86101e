"""Arithmetic for the deterministic test models: find, solve, and generate questions.

The weak model's rule lives here too (:func:`weak_model_is_wrong`) so tests can
predict exactly which questions it gets wrong.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import logging
import operator
import random
import re
from collections.abc import Callable

__all__ = [
    "WEAK_WRONG_RATE",
    "WEAK_WRONG_RATE_WITH_DEMOS",
    "arithmetic_dataset",
    "format_number",
    "solve_arithmetic",
    "stable_fraction",
    "weak_model_is_wrong",
]

logger = logging.getLogger(__name__)

WEAK_WRONG_RATE = 0.45
"""Share of arithmetic questions the weak model answers wrongly when the prompt has no demos."""

WEAK_WRONG_RATE_WITH_DEMOS = 0.0
"""Share it answers wrongly when the prompt holds at least one few-shot demo."""

_WORD_OPERATORS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), symbol)
    for pattern, symbol in (
        (r"\bmultiplied\s+by\b", "*"),
        (r"\btimes\b", "*"),
        (r"\bdivided\s+by\b", "/"),
        (r"\bplus\b", "+"),
        (r"\bminus\b", "-"),
        (r"(?<=\d)\s*[x\u00d7]\s*(?=\d)", " * "),
        (r"\u00f7", "/"),
    )
)
_CANDIDATE = re.compile(r"[\d.+\-*/()\s]+")
_BINARY: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}
_MAX_MAGNITUDE = 1e15


def _evaluate(node: ast.AST) -> float:
    """Evaluate a parsed expression made only of numbers and + - * /."""
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        if isinstance(node.value, bool):
            raise ValueError("not a number")
        return float(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        value = _evaluate(node.operand)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        result = _BINARY[type(node.op)](_evaluate(node.left), _evaluate(node.right))
        if abs(result) > _MAX_MAGNITUDE:
            raise ValueError("number too large")
        return result
    raise ValueError(f"unsupported expression node {type(node).__name__}")


def _has_binop(tree: ast.AST) -> bool:
    return any(isinstance(node, ast.BinOp) for node in ast.walk(tree))


@functools.lru_cache(maxsize=4096)
def solve_arithmetic(text: str) -> tuple[str, float] | None:
    """Find the first arithmetic expression in ``text`` and solve it.

    Understands digits with ``+ - * /`` and parentheses, and the words plus, minus,
    times, multiplied by, divided by (``"What is 7 times 6?"``). Returns the
    normalised expression and its value, or None when there is none (or it divides by 0).
    """
    normalised = text
    for pattern, symbol in _WORD_OPERATORS:
        normalised = pattern.sub(symbol, normalised)
    for match in _CANDIDATE.finditer(normalised):
        candidate = match.group(0).strip().rstrip(".").strip()
        if not any(ch.isdigit() for ch in candidate):
            continue
        try:
            tree = ast.parse(candidate, mode="eval")
        except SyntaxError:
            continue
        if not _has_binop(tree):
            continue
        try:
            value = _evaluate(tree)
        except (ValueError, ZeroDivisionError):
            continue
        return " ".join(candidate.split()), value
    return None


def format_number(value: float) -> str:
    """``5.0`` → ``"5"``, ``2.5`` → ``"2.5"``, ``1/3`` → ``"0.333333"``."""
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.6f}".rstrip("0").rstrip(".")


def stable_fraction(text: str) -> float:
    """A deterministic number in [0, 1) derived from ``text`` (SHA-256, stable across runs)."""
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def weak_model_is_wrong(
    question: str,
    *,
    demos: int = 0,
    wrong_rate: float = WEAK_WRONG_RATE,
    wrong_rate_with_demos: float = WEAK_WRONG_RATE_WITH_DEMOS,
) -> bool:
    """Whether the weak model answers ``question`` wrongly.

    The rule: ``stable_fraction(question.strip()) < rate`` where ``rate`` is
    ``wrong_rate`` (0.45) when the prompt has no demos and ``wrong_rate_with_demos``
    (0.0) when it has at least one. A wrong answer is the correct value plus one.
    Only questions with an arithmetic expression can be wrong.
    """
    if solve_arithmetic(question) is None:
        return False
    rate = wrong_rate if demos == 0 else wrong_rate_with_demos
    return stable_fraction(question.strip()) < rate


def arithmetic_dataset(
    n: int, seed: int = 0, *, ops: str = "+-*", max_operand: int = 20
) -> list[dict[str, str]]:
    """``n`` distinct questions ``{"question": "What is 3 + 4?", "answer": "7"}``.

    Operands are 1..``max_operand``; ``ops`` picks from ``+ - *``. The same ``n`` and
    ``seed`` always give the same list.
    """
    if n < 0:
        raise ValueError(f"arithmetic_dataset: n must be >= 0, got {n}")
    if not ops or any(op not in "+-*" for op in ops):
        raise ValueError(f"arithmetic_dataset: ops must be made of '+', '-', '*', got {ops!r}")
    if max_operand < 1:
        raise ValueError(f"arithmetic_dataset: max_operand must be >= 1, got {max_operand}")
    capacity = len(set(ops)) * max_operand * max_operand
    if n > capacity:
        raise ValueError(
            f"arithmetic_dataset: only {capacity} distinct questions exist for ops={ops!r} "
            f"and max_operand={max_operand}, asked for {n}"
        )
    rng = random.Random(seed)
    seen: set[str] = set()
    rows: list[dict[str, str]] = []
    while len(rows) < n:
        a, b = rng.randint(1, max_operand), rng.randint(1, max_operand)
        op = rng.choice(ops)
        question = f"What is {a} {op} {b}?"
        if question in seen:
            continue
        seen.add(question)
        value = {"+": a + b, "-": a - b, "*": a * b}[op]
        rows.append({"question": question, "answer": str(value)})
    return rows
