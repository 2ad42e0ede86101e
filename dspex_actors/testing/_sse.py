"""Server-Sent Events for streamed chat completions (``chat.completion.chunk`` objects).

What the OpenAI API sends for ``"stream": true``: each choice gets a first delta with
the role (and empty content), then its content in pieces, then an empty delta with the
finish reason; the choices of an ``n > 1`` reply take turns, one choice per chunk. With
``stream_options.include_usage`` a last chunk has no choices and the usage, and every
other chunk says ``"usage": null``. Then ``data: [DONE]``.

No I/O and no timing here: the server frames the events, spaces them and injects faults.
Payloads are written from templates, byte for byte what ``json.dumps`` gives.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from json.encoder import encode_basestring_ascii as _json_str
from typing import Any

__all__ = ["DONE", "chunk_payloads", "sse_event"]

DONE = b"data: [DONE]\n\n"
"""The event that ends a stream."""


def sse_event(payload: str) -> bytes:
    """One ``data:`` event (a JSON payload has no newline, so one line is enough)."""
    return b"data: " + payload.encode("ascii") + b"\n\n"


def _pieces(content: str, size: int) -> list[str]:
    return [content[start : start + size] for start in range(0, len(content), size)]


def chunk_payloads(
    completion_id: str,
    created: int,
    model: str,
    choices: Sequence[tuple[str, str]],
    *,
    chunk_chars: int,
    usage: tuple[int, int] | None = None,
    with_choices: bool = True,
    tool_calls: Sequence[Sequence[dict[str, Any]]] = (),
) -> list[str]:
    """The JSON of every chunk of a streamed completion, in order (``[DONE]`` not included).

    ``choices`` holds each choice's ``(content, finish_reason)``; content is cut every
    ``chunk_chars`` characters (so a DSPy ``[[ ## field ## ]]`` marker may be split:
    clients reassemble). ``usage`` is ``(prompt_tokens, completion_tokens)`` when the
    request asked for it. ``with_choices=False`` leaves ``choices`` out of every chunk
    (the ``no_choices`` fault). ``tool_calls`` holds each choice's calls (OpenAI message
    ``tool_calls``); they stream as OpenAI streams them, after the content: a delta with the
    call's index, id and name, then its arguments' JSON text in pieces.
    """
    if chunk_chars < 1:
        raise ValueError(f"chunk_chars must be >= 1, got {chunk_chars}")
    common = (
        f'{{"id": {_json_str(completion_id)}, "object": "chat.completion.chunk", '
        f'"created": {created}, "model": {_json_str(model)}, "system_fingerprint": "dspex-local"'
    )
    tail = "}" if usage is None else ', "usage": null}'

    def chunk(index: int, delta: str, finish_reason: str | None) -> str:
        if not with_choices:
            return common + tail
        finish = "null" if finish_reason is None else _json_str(finish_reason)
        return (
            f'{common}, "choices": [{{"index": {index}, "delta": {delta}, '
            f'"logprobs": null, "finish_reason": {finish}}}]{tail}'
        )

    role = '{"role": "assistant", "content": ""}'
    payloads = [chunk(index, role, None) for index in range(len(choices))]
    pieces = [_pieces(content, chunk_chars) for content, _ in choices]
    for turn in range(max((len(p) for p in pieces), default=0)):
        for index, choice_pieces in enumerate(pieces):
            if turn < len(choice_pieces):
                delta = f'{{"content": {_json_str(choice_pieces[turn])}}}'
                payloads.append(chunk(index, delta, None))
    for index, calls in enumerate(tool_calls):
        for number, call in enumerate(calls):
            head = {
                "index": number,
                "id": call["id"],
                "type": "function",
                "function": {"name": call["function"]["name"], "arguments": ""},
            }
            payloads.append(chunk(index, json.dumps({"tool_calls": [head]}), None))
            for piece in _pieces(call["function"]["arguments"], chunk_chars):
                more = {"tool_calls": [{"index": number, "function": {"arguments": piece}}]}
                payloads.append(chunk(index, json.dumps(more), None))
    payloads.extend(chunk(index, "{}", finish) for index, (_, finish) in enumerate(choices))
    if usage is not None:
        prompt_tokens, completion_tokens = usage
        listed = ', "choices": []' if with_choices else ""
        payloads.append(
            f'{common}{listed}, "usage": {{"prompt_tokens": {prompt_tokens}, '
            f'"completion_tokens": {completion_tokens}, '
            f'"total_tokens": {prompt_tokens + completion_tokens}}}}}'
        )
    return payloads
