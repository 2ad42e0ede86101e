"""Following one output field through a chat-adapter reply that arrives in pieces.

The reply is ``[[ ## field ## ]]`` markers, each followed by that field's text, ending with
``[[ ## completed ## ]]``. A marker may be split across pieces, so the tail of what has
arrived is held back while it could still be the start of a marker, and so is trailing
whitespace (the parsed value is stripped): the pieces given out add up to the field's
text exactly.
"""

from __future__ import annotations

import re

__all__ = ["FieldFollower", "Follower"]

_ANY_MARKER = re.compile(r"\[\[ ## (\w+) ## \]\]")
_MARKER_HEAD = "[[ ## "
_MARKER_REST = re.compile(r"\w*(?: (?:#(?:#(?: (?:\](?:\])?)?)?)?)?)?")
_LONGEST_PARTIAL = 64


def _could_be_marker(tail: str) -> bool:
    """Whether ``tail`` (starting with ``[``) may still grow into a complete marker."""
    if len(tail) <= len(_MARKER_HEAD):
        return _MARKER_HEAD.startswith(tail)
    return (
        tail.startswith(_MARKER_HEAD)
        and _MARKER_REST.fullmatch(tail[len(_MARKER_HEAD) :]) is not None
    )


def _held_back_from(text: str) -> int:
    """Where the part of ``text`` that may be the start of a marker begins (len: none)."""
    start = max(0, len(text) - _LONGEST_PARTIAL)
    position = text.find("[", start)
    while position != -1:
        if _could_be_marker(text[position:]):
            return position
        position = text.find("[", position + 1)
    return len(text)


class Follower:
    """What every follower shares: the field's name, where its text starts once found
    (``_start``), and how much of its visible text was given out (``_give``).

    ``feed(piece)`` and ``finish(value)`` return ``(new text, is_last)`` or None; the
    pieces given out add up to the field's visible (stripped) text exactly.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._text = ""
        self._start: int | None = None
        self._given = 0
        self.finished = False

    @property
    def started(self) -> bool:
        """Whether the field's text has begun."""
        return self._start is not None

    @property
    def gave_out(self) -> bool:
        """Whether any of the field's text, or its last (empty) piece, was given out."""
        return self._given > 0 or self.finished

    def feed(self, piece: str) -> tuple[str, bool] | None:
        """Add ``piece``; the field's new text and whether the field is complete, or None."""
        raise NotImplementedError

    def finish(self, value: str | None = None) -> tuple[str, bool] | None:
        """The reply ended: the rest of the field (``value``, the parsed one, if it never
        began)."""
        raise NotImplementedError

    def _give(self, visible: str, *, last: bool) -> tuple[str, bool] | None:
        """The part of ``visible`` not given out yet (the last piece even when empty)."""
        new = visible[self._given :]
        self._given = max(self._given, len(visible))
        if last:
            self.finished = True
            return new, True
        return (new, False) if new else None


class FieldFollower(Follower):
    """The text of field ``name`` in a reply fed piece by piece (one reply, one choice)."""

    def feed(self, piece: str) -> tuple[str, bool] | None:
        """Add ``piece``; the field's new text and whether the field is complete, or None."""
        if self.finished:
            return None
        self._text += piece
        if self._start is None:
            for match in _ANY_MARKER.finditer(self._text):
                if match.group(1) == self.name:
                    self._start = match.end()
                    break
            else:
                return None
        region = self._text[self._start :]
        following = _ANY_MARKER.search(region)
        if following is not None:
            return self._give(region[: following.start()].strip(), last=True)
        visible = region[: _held_back_from(region)].lstrip().rstrip()
        return self._give(visible, last=False)

    def finish(self, value: str | None = None) -> tuple[str, bool] | None:
        """The reply ended: the rest of the field (``value`` if its marker never came)."""
        if self.finished:
            return None
        if self._start is None:
            if value is None:
                return None
            return self._give(value, last=True)
        return self._give(self._text[self._start :].strip(), last=True)
