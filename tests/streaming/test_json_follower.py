"""Following a field's JSON string value through a reply cut into arbitrary pieces."""

from __future__ import annotations

import json

import pytest

from dspex_actors.streaming._json_follower import JSONFieldFollower


def _follow(reply: str, field: str, size: int, value: str | None = None) -> list[tuple[str, bool]]:
    follower = JSONFieldFollower(field)
    pieces = [reply[i : i + size] for i in range(0, len(reply), size)]
    out = [p for p in (follower.feed(piece) for piece in pieces) if p is not None]
    end = follower.finish(value)
    if end is not None:
        out.append(end)
    return out


TRICKY = 'say "hi"\\ then\nnew line, caf\u00e9, \U0001f600 and a tab\t.'


@pytest.mark.parametrize("size", [1, 2, 3, 5, 1000])
def test_escapes_split_anywhere_decode_exactly(size: int) -> None:
    reply = "```json\n" + json.dumps({"reasoning": "think", "answer": TRICKY}) + "\n```"
    pieces = _follow(reply, "answer", size)
    assert "".join(text for text, _ in pieces) == TRICKY.strip()
    assert [last for _, last in pieces].count(True) == 1 and pieces[-1][1]
    ascii_reply = json.dumps({"answer": TRICKY}, ensure_ascii=True)  # \uXXXX and a pair
    assert "".join(t for t, _ in _follow(ascii_reply, "answer", size)) == TRICKY.strip()


def test_text_arrives_before_the_value_closes() -> None:
    follower = JSONFieldFollower("answer")
    assert follower.feed('{"reasoning": "r", "ans') is None
    assert follower.feed('wer": "  Par') == ("Par", False)
    assert follower.feed("is ") == ("is", False)  # trailing space held back
    assert follower.feed('France", "x": 1}') == (" France", True)
    assert follower.finish("Paris France") is None


def test_a_value_that_is_not_a_string_comes_whole_at_the_end() -> None:
    pieces = _follow('{"answer": 13}', "answer", 2, value="13")
    assert pieces == [("13", True)]


def test_a_field_that_never_comes_gives_the_parsed_value_or_nothing() -> None:
    assert _follow('{"other": "x"}', "answer", 3) == []
    assert _follow('{"other": "x"}', "answer", 3, value="fallback") == [("fallback", True)]
