"""Responders: the pluggable "model" behind :class:`LocalLMServer`.

A responder is any callable ``(ChatRequest) -> str | list[str]``. The default one
reads DSPy chat-adapter (and JSON-adapter) prompts and answers in the requested
output fields; the weak one gets a stable subset of arithmetic questions wrong unless
the prompt holds few-shot demos.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import itertools
import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dspex_actors.testing._agent import agent_values
from dspex_actors.testing._arithmetic import (
    WEAK_WRONG_RATE,
    WEAK_WRONG_RATE_WITH_DEMOS,
    format_number,
    solve_arithmetic,
    weak_model_is_wrong,
)
from dspex_actors.testing._tool_calls import planned_tool_calls, with_tool_calls

__all__ = [
    "RESPONDERS",
    "ChatRequest",
    "DSPyPrompt",
    "DefaultResponder",
    "Responder",
    "WeakResponder",
    "echo_responder",
    "fixed_responder",
    "parse_dspy_prompt",
    "resolve_responder",
    "runs_inline",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChatRequest:
    """One parsed ``POST /v1/chat/completions`` call, as a responder sees it.

    ``params`` holds every body key except ``model`` and ``messages`` (temperature,
    max_tokens, n, response_format, ...); ``headers`` has lower-cased names.
    """

    model: str
    messages: list[dict[str, Any]]
    params: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def n(self) -> int:
        """How many choices were asked for."""
        value = self.params.get("n")
        return value if isinstance(value, int) and value > 0 else 1

    @property
    def system_text(self) -> str:
        """The text of every system message, joined."""
        return "\n".join(message_text(m) for m in self.messages if m.get("role") == "system")

    @property
    def last_user_text(self) -> str:
        """The text of the final user message ("" if there is none)."""
        for message in reversed(self.messages):
            if message.get("role") == "user":
                return message_text(message)
        return ""


Responder = Callable[[ChatRequest], "str | list[str]"]
"""A responder: gets the request, returns the reply text (or one text per choice)."""


def message_text(message: Mapping[str, Any]) -> str:
    """The text of a message whose content is a string or a list of content parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text", "") for p in content if isinstance(p, dict)]
        return "\n".join(p for p in parts if isinstance(p, str))
    return ""


# --- DSPy prompt parsing -------------------------------------------------------------

_FIELD_LINE = re.compile(r"^\s*\d+\.\s+`(\w+)`\s*\((.+?)\)(?::|\s*$)")
_MARKER = re.compile(r"^\s*\[\[ ## (\w+) ## \]\]", re.MULTILINE)
_CHAT_SUFFIX = "Respond with the corresponding output fields"
_JSON_SUFFIX = "Respond with a JSON object"
_SUFFIX_FIELD = re.compile(
    r"`\[\[ ## (\w+) ## \]\]`(?:\s*\(must be formatted as a valid Python ([\w\[\], .'\"]+?)\))?"
)


@dataclass(frozen=True)
class DSPyPrompt:
    """What the responders read from a DSPy adapter prompt."""

    output_fields: list[tuple[str, str]]
    """``(name, type)`` pairs in the requested order; type as written, e.g. ``"int"``."""
    inputs: dict[str, str]
    json_mode: bool
    demo_count: int

    @property
    def question(self) -> str:
        """The ``question`` input, else the first input, else ""."""
        if "question" in self.inputs:
            return self.inputs["question"]
        return next(iter(self.inputs.values()), "")


def _field_list(system: str, header: str, stop: str) -> list[tuple[str, str]]:
    start = system.find(header)
    if start < 0:
        return []
    block = system[start + len(header) :]
    end = block.find(stop)
    if end >= 0:
        block = block[:end]
    fields = []
    for line in block.splitlines():
        match = _FIELD_LINE.match(line)
        if match:
            fields.append((match.group(1), match.group(2).strip()))
    return fields


def _suffix_fields(user: str) -> list[tuple[str, str]]:
    chat_at = user.rfind(_CHAT_SUFFIX)
    if chat_at >= 0:
        return [
            (name, kind or "str")
            for name, kind in _SUFFIX_FIELD.findall(user[chat_at:])
            if name != "completed"
        ]
    json_at = user.rfind(_JSON_SUFFIX)
    if json_at >= 0:
        return [(name, "str") for name in re.findall(r"`(\w+)`", user[json_at:])]
    return []


def _split_sections(text: str) -> dict[str, str]:
    """Split at ``[[ ## name ## ]]`` lines like DSPy's parser; the first section wins."""
    sections: dict[str, str] = {}
    matches = list(_MARKER.finditer(text))
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        sections.setdefault(match.group(1), text[match.end() : end].strip())
    return sections


@functools.lru_cache(maxsize=256)
def _system_fields(system: str) -> tuple[tuple[tuple[str, str], ...], bool]:
    """The output fields a system message lists, and whether it asks for JSON.

    Cached: a program sends the same system message with every call.
    """
    fields = _field_list(system, "Your output fields are:", "All interactions will be")
    return tuple(fields), "Outputs will be a JSON object" in system


def parse_dspy_prompt(request: ChatRequest) -> DSPyPrompt | None:
    """Read output fields, input values, JSON mode and demo count; None if not a DSPy prompt."""
    system = request.system_text
    user = request.last_user_text
    listed, system_json = _system_fields(system)
    outputs = list(listed)
    if not outputs:
        outputs = _suffix_fields(user)
    if not outputs:
        return None
    output_names = {name for name, _ in outputs}
    body = user
    for suffix in (_CHAT_SUFFIX, _JSON_SUFFIX):
        cut = body.rfind(suffix)
        if cut >= 0:
            body = body[:cut]
    inputs = {
        name: value
        for name, value in _split_sections(body).items()
        if name not in output_names and name != "completed"
    }
    response_format = request.params.get("response_format")
    json_mode = (
        system_json
        or _JSON_SUFFIX in user
        or (
            isinstance(response_format, dict)
            and response_format.get("type") in {"json_object", "json_schema"}
        )
    )
    last_user = max(
        (i for i, m in enumerate(request.messages) if m.get("role") == "user"), default=-1
    )
    demos = sum(1 for m in request.messages[:last_user] if m.get("role") == "assistant")
    return DSPyPrompt(outputs, inputs, json_mode, demos)


# --- answering -----------------------------------------------------------------------


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:6]


def _literal_values(kind: str) -> list[Any]:
    inner = kind[kind.index("[") + 1 : kind.rindex("]")]
    try:
        values = ast.literal_eval(f"({inner},)")
    except (ValueError, SyntaxError):
        return []
    return list(values)


def _inner_type(kind: str) -> str:
    if "[" in kind and kind.endswith("]"):
        return kind[kind.index("[") + 1 : -1].split(",", maxsplit=1)[0].strip()
    return "str"


def _typed_value(name: str, kind: str, question: str, number: float | None) -> Any:
    """A plausible Python value of type ``kind`` for output field ``name``."""
    base = kind.strip().lower()
    if base.startswith(("literal[", "typing.literal[")):
        choices = _literal_values(kind)
        if not choices:
            return f"placeholder-{name}-{_digest(question, name)}"
        if number is not None:
            for choice in choices:
                if str(choice) == format_number(number):
                    return choice
        return choices[int(_digest(question, name), 16) % len(choices)]
    if base.startswith(("list", "tuple", "set")):
        return [_typed_value(name, _inner_type(kind), question, number)]
    if base.startswith("dict"):
        return {name: _typed_value(name, "str", question, number)}
    if number is not None:
        if base == "int":
            return round(number)
        if base == "float":
            return float(number)
        if base == "bool":
            return bool(number)
        return format_number(number)
    key = _digest(question, name)
    if base == "int":
        return int(key, 16) % 100
    if base == "float":
        return (int(key, 16) % 1000) / 10
    if base == "bool":
        return int(key, 16) % 2 == 0
    return f"placeholder-{name}-{key}"


def _reasoning(expression: str | None, number: float | None) -> str:
    if expression is None or number is None:
        return "I cannot work this out exactly, so I give a placeholder answer."
    return f"The question asks for {expression}, which equals {format_number(number)}."


def _render_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)


def render_reply(prompt: DSPyPrompt, values: Mapping[str, Any]) -> str:
    """Format field values the way the prompt asked: ``[[ ## f ## ]]`` sections or JSON."""
    if prompt.json_mode:
        return json.dumps({name: values[name] for name, _ in prompt.output_fields})
    sections = [
        f"[[ ## {name} ## ]]\n{_render_text(values[name])}" for name, _ in prompt.output_fields
    ]
    return "\n\n".join([*sections, "[[ ## completed ## ]]"])


def answer_prompt(prompt: DSPyPrompt, *, wrong: bool = False) -> str:
    """Answer every output field; ``wrong`` shifts an arithmetic result by +1."""
    solved = solve_arithmetic(prompt.question)
    expression, number = solved if solved is not None else (None, None)
    if number is not None and wrong:
        number += 1
    values: dict[str, Any] = {}
    for name, kind in prompt.output_fields:
        if name in {"reasoning", "rationale"}:
            values[name] = _reasoning(expression, number)
        else:
            values[name] = _typed_value(name, kind, prompt.question, number)
    return render_reply(prompt, values)


def _plain_reply(request: ChatRequest) -> str:
    text = request.last_user_text
    solved = solve_arithmetic(text)
    if solved is not None:
        return format_number(solved[1])
    return f"placeholder reply {_digest(text)}"


class DefaultResponder:
    """The deterministic model: solves arithmetic, fills typed fields, honours JSON mode.

    For a DSPy prompt it answers each requested output field (``reasoning`` gets a
    sentence; int/float/bool/list/dict/Literal fields get values of that type; an
    unsolvable question gets ``placeholder-<field>-<hash>``). A ReAct prompt is answered as
    an agent that calls one tool, then finishes (see ``_agent``). Any other prompt gets the
    arithmetic result of the last user message or ``placeholder reply <hash>``.
    """

    def __call__(self, request: ChatRequest) -> str:
        prompt = parse_dspy_prompt(request)
        question = prompt.question if prompt is not None else request.last_user_text
        calls = planned_tool_calls(request.params, request.messages, question)
        if calls:
            return with_tool_calls("", calls)
        if prompt is None:
            return _plain_reply(request)
        agent = agent_values(prompt.output_fields, prompt.inputs, request.system_text)
        return render_reply(prompt, agent) if agent is not None else answer_prompt(prompt)


class WeakResponder:
    """Like the default model, but wrong on a stable subset of arithmetic questions.

    Rule (see :func:`weak_model_is_wrong`): with no demos in the prompt, a question is
    answered wrongly (correct value + 1) iff ``stable_fraction(question.strip()) <
    wrong_rate`` (default 0.45); with at least one demo (an assistant turn before the
    final user turn) the rate is ``wrong_rate_with_demos`` (default 0.0).
    """

    def __init__(
        self,
        wrong_rate: float = WEAK_WRONG_RATE,
        wrong_rate_with_demos: float = WEAK_WRONG_RATE_WITH_DEMOS,
    ) -> None:
        for label, rate in (
            ("wrong_rate", wrong_rate),
            ("wrong_rate_with_demos", wrong_rate_with_demos),
        ):
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"WeakResponder: {label} must be within [0, 1], got {rate}")
        self.wrong_rate = wrong_rate
        self.wrong_rate_with_demos = wrong_rate_with_demos

    def __call__(self, request: ChatRequest) -> str:
        prompt = parse_dspy_prompt(request)
        if prompt is None:
            return _plain_reply(request)
        wrong = weak_model_is_wrong(
            prompt.question,
            demos=prompt.demo_count,
            wrong_rate=self.wrong_rate,
            wrong_rate_with_demos=self.wrong_rate_with_demos,
        )
        return answer_prompt(prompt, wrong=wrong)


def echo_responder(request: ChatRequest) -> str:
    """Reply with the final user message verbatim."""
    return request.last_user_text


class _FixedResponder:
    """Returns its texts in turn, cycling."""

    def __init__(self, texts: tuple[str, ...]) -> None:
        self._texts = texts
        self._counter = itertools.count()

    def __repr__(self) -> str:
        return f"fixed_responder{self._texts!r}"

    def __call__(self, request: ChatRequest) -> str:
        return self._texts[next(self._counter) % len(self._texts)]


def fixed_responder(*texts: str) -> Responder:
    """A responder that returns ``texts`` in turn, cycling (one text: always that one)."""
    if not texts:
        raise ValueError("fixed_responder needs at least one text")
    return _FixedResponder(texts)


RESPONDERS: dict[str, Callable[[], Responder]] = {
    "default": DefaultResponder,
    "weak": WeakResponder,
    "echo": lambda: echo_responder,
}
"""Responders by name, for subprocess servers and the command line."""


def runs_inline(responder: Responder) -> bool:
    """Whether ``responder`` is one of this module's own: quick, never blocking.

    The server runs those on its I/O thread; any other callable may block and runs on
    a worker thread. Exact types only: a subclass may override ``__call__`` and block.
    """
    return type(responder) in _INLINE_TYPES or responder is echo_responder


_INLINE_TYPES: frozenset[type] = frozenset({DefaultResponder, WeakResponder, _FixedResponder})


def resolve_responder(responder: Responder | str | None) -> Responder:
    """A responder from a callable, a name in :data:`RESPONDERS`, or None (default)."""
    if responder is None:
        return DefaultResponder()
    if isinstance(responder, str):
        try:
            return RESPONDERS[responder]()
        except KeyError:
            raise ValueError(
                f"unknown responder {responder!r}; known: {', '.join(sorted(RESPONDERS))}"
            ) from None
    if not callable(responder):
        raise TypeError(f"responder must be callable or a name, got {type(responder).__name__}")
    return responder
