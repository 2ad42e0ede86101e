"""The interface of a provider protocol the local server speaks besides OpenAI's.

A :class:`WireProtocol` turns its API's request into the :class:`ChatRequest` every
responder reads (OpenAI-style messages: the system prompt first, then user/assistant
turns), validates it as the real API does, and writes replies, streams and error bodies
in its own shapes. Timing, faults, counters and connections stay the server's.
"""

from __future__ import annotations

import functools
import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, NamedTuple

from dspex_actors.testing._responders import ChatRequest, message_text

__all__ = [
    "Choice",
    "StreamEvents",
    "WireError",
    "WireProtocol",
    "count_tokens",
    "dumps",
    "model_choices",
    "pieces",
    "prompt_tokens",
]

logger = logging.getLogger(__name__)


class WireError(Exception):
    """A request the protocol rejects: ``status`` and the API's own message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Choice(NamedTuple):
    """One choice of a reply: its text (cut to the token limit), why it ended, its tokens."""

    text: str
    finish: str
    """``"stop"``, ``"length"`` or ``"stop_sequence"``."""
    tokens: int
    stop_sequence: str | None = None


class StreamEvents(NamedTuple):
    """A streamed reply's events (each a whole SSE event, framing included)."""

    events: list[bytes]
    prompt_tokens: int
    completion_tokens: int
    cut: bool = False


@functools.lru_cache(maxsize=256)
def count_tokens(text: str) -> int:
    """Whitespace-separated words, the server's token count."""
    return len(text.split())


def model_choices(
    texts: list[str], max_tokens: int | None, stop: list[str] | None = None
) -> list[Choice]:
    """Each text cut at the first stop sequence, then at ``max_tokens`` words."""
    choices = []
    for whole in texts:
        content, finish, hit = whole, "stop", None
        for sequence in stop or ():
            at = whole.find(sequence) if sequence else -1
            if at >= 0 and (hit is None or at < whole.find(hit)):
                hit = sequence
        if hit is not None:
            content, finish = whole[: whole.find(hit)], "stop_sequence"
        words = content.split()
        if max_tokens is not None and len(words) > max_tokens:
            words = words[:max_tokens]
            content, finish, hit = " ".join(words), "length", None
        choices.append(Choice(content, finish, len(words), hit))
    return choices


def prompt_tokens(request: ChatRequest) -> int:
    """The prompt's tokens (every message's text)."""
    return sum(count_tokens(message_text(m)) for m in request.messages)


class WireProtocol(ABC):
    """One provider API on the local server."""

    name: str = ""

    @abstractmethod
    def parse(
        self,
        body: Any,
        headers: Mapping[str, str],
        *,
        model: str | None,
        stream: bool,
        default_model: str,
    ) -> ChatRequest:
        """The request as responders see it; :class:`WireError` when the API would refuse it.

        ``model`` is the model named in the URL (Gemini), ``stream`` whether the URL asks
        for a stream; ``params["stream"]`` of the result says whether to stream.
        """

    @abstractmethod
    def error_body(self, status: int, message: str) -> bytes:
        """The API's error JSON for ``status``."""

    @abstractmethod
    def reply(
        self, request: ChatRequest, texts: list[str], *, reply_id: str, fault: str | None
    ) -> tuple[bytes, int, int]:
        """A whole reply's JSON, its prompt tokens and its completion tokens.

        ``fault`` ``"no_choices"`` leaves the text out, ``"blocked"`` answers as a safety
        block or a refusal.
        """

    @abstractmethod
    def stream(
        self,
        request: ChatRequest,
        texts: list[str],
        *,
        reply_id: str,
        chunk_chars: int,
        fault: str | None,
    ) -> StreamEvents:
        """A streamed reply's events; ``fault`` as for :meth:`reply`, plus
        ``"malformed_json"`` (the first text event truncated) and ``"stream_cut"``."""


def dumps(payload: Any) -> bytes:
    """Compact JSON, ASCII only."""
    return json.dumps(payload, separators=(",", ":")).encode("ascii")


def pieces(text: str, size: int) -> list[str]:
    """``text`` cut every ``size`` characters."""
    return [text[start : start + size] for start in range(0, len(text), size)]
