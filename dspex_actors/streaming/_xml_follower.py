"""Following one output field through an XMLAdapter reply that arrives in pieces.

The reply holds each output field as ``<name>...</name>`` with ``&``, ``<`` and ``>``
escaped. A field's text is given out as it arrives, unescaped; the tail is held back while
it could be the start of the closing tag or of an entity, and so is surrounding whitespace
(the parsed value is stripped): the pieces add up to the field's text.
"""

from __future__ import annotations

from xml.sax.saxutils import unescape

__all__ = ["XMLFieldFollower"]


class XMLFieldFollower:
    """The text of field ``name`` in an XML reply fed piece by piece (one reply, one choice).

    Same interface as the chat-marker follower: ``feed`` and ``finish`` return
    ``(new text, is_last)`` or None.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._open = f"<{name}>"
        self._close = f"</{name}>"
        self._text = ""
        self._start: int | None = None
        self._given = 0
        self.finished = False

    @property
    def started(self) -> bool:
        """Whether the field's opening tag has arrived."""
        return self._start is not None

    def feed(self, piece: str) -> tuple[str, bool] | None:
        """Add ``piece``; the field's new text and whether the field is complete, or None."""
        if self.finished:
            return None
        self._text += piece
        if self._start is None:
            position = self._text.find(self._open)
            if position < 0:
                return None
            self._start = position + len(self._open)
        region = self._text[self._start :]
        end = region.find(self._close)
        if end >= 0:
            return self._give(region[:end], last=True)
        return self._give(region[: self._safe_end(region)], last=False)

    def _safe_end(self, region: str) -> int:
        """Where the part of ``region`` that may still change begins (a partial closing tag
        or entity at its end)."""
        cut = len(region)
        tag = region.rfind("<")
        if tag >= 0 and self._close.startswith(region[tag:]):
            cut = tag
        entity = region.rfind("&", 0, cut)
        if entity >= 0 and ";" not in region[entity:cut]:
            cut = entity
        return cut

    def finish(self, value: str | None = None) -> tuple[str, bool] | None:
        """The reply ended: the rest of the field (``value``, the parsed one, if its tag
        never came)."""
        if self.finished:
            return None
        if self._start is None:
            if value is None:
                return None
            self._text, self._start = value, 0
            return self._give(value, last=True, escaped=False)
        region = self._text[self._start :]
        end = region.find(self._close)
        return self._give(region if end < 0 else region[:end], last=True)

    def _give(self, raw: str, *, last: bool, escaped: bool = True) -> tuple[str, bool] | None:
        visible = (unescape(raw) if escaped else raw).strip()
        new = visible[self._given :]
        self._given = max(self._given, len(visible))
        if last:
            self.finished = True
            return new, True
        return (new, False) if new else None
