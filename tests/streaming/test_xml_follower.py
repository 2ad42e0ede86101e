"""Following a field through an XMLAdapter reply cut into arbitrary pieces."""

from __future__ import annotations

from typing import Any

import pytest

import dspex_actors as dx
from dspex_actors.streaming._xml_follower import XMLFieldFollower
from dspex_actors.testing import fixed_responder

ANSWER = "fish & chips < 3 > 2, said \"she\""
REPLY = (
    "<reasoning>\n  Think it through.\n</reasoning>\n"
    "<answer>\n  fish &amp; chips &lt; 3 &gt; 2, said \"she\"\n</answer>"
)


def _follow(reply: str, field: str, size: int, value: str | None = None) -> list[tuple[str, bool]]:
    follower = XMLFieldFollower(field)
    pieces = [reply[i : i + size] for i in range(0, len(reply), size)]
    out = [p for p in (follower.feed(piece) for piece in pieces) if p is not None]
    end = follower.finish(value)
    if end is not None:
        out.append(end)
    return out


@pytest.mark.parametrize("size", [1, 2, 3, 5, 1000])
def test_tags_and_entities_split_anywhere(size: int) -> None:
    pieces = _follow(REPLY, "answer", size)
    assert "".join(text for text, _ in pieces) == ANSWER
    assert [last for _, last in pieces].count(True) == 1 and pieces[-1][1]
    assert "".join(t for t, _ in _follow(REPLY, "reasoning", size)) == "Think it through."


def test_text_arrives_before_the_tag_closes_and_missing_fields() -> None:
    follower = XMLFieldFollower("answer")
    assert follower.feed("<answer>Par") == ("Par", False)
    assert follower.feed("is &am") == ("is", False)  # the partial entity is held back
    assert follower.feed("p; co</ans") == (" & co", False)
    assert follower.feed("wer>") == ("", True)
    assert _follow("<other>x</other>", "answer", 2) == []
    assert _follow("<other>x</other>", "answer", 2, value="parsed") == [("parsed", True)]


def test_streamify_follows_xml_adapter_output(make_lm_server: Any) -> None:
    server = make_lm_server(fixed_responder(REPLY), stream_chunk_chars=2)
    cot = dx.ChainOfThought("question -> answer")
    listeners = [dx.StreamListener("reasoning"), dx.StreamListener("answer")]
    stream = dx.streamify(cot, stream_listeners=listeners, async_streaming=False)
    lm = dx.LM("openai/local-model", api_base=server.url, cache=False)
    with dx.ActorSystem(lm=lm), dx.context(adapter=dx.XMLAdapter()):
        items = list(stream(question="q?"))
    final = items[-1]
    texts = {
        field: "".join(
            i.chunk for i in items
            if isinstance(i, dx.StreamResponse) and i.signature_field_name == field
        )
        for field in ("reasoning", "answer")
    }  # fmt: skip
    assert texts == {"reasoning": final.reasoning, "answer": final.answer}
    assert final.answer == ANSWER
    assert (server.stats().requests_total, server.stats().streams) == (1, 1)
