"""Following one output field through an XMLAdapter reply that arrives in pieces.

The reply holds each output field as ``<name>...</name>`` with ``&``, ``<`` and ``>``
escaped. A field's text is given out as it arrives, unescaped; the tail is held back while
it could be the start of the closing tag or of an entity, and so is surrounding whitespace
(the parsed value is stripped): the pieces add up to the field's text.
"""

from __future__ import annotations

from xml.sax.saxutils import unescape

from dspex_actors.streaming._markers import Follower

__all__ = ["XMLFieldFollower"]


class XMLFieldFollower(Follower):
    """The text of field ``name`` in an XML reply fed piece by piece (one reply, one choice)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._open = f"<{name}>"
        self._close = f"</{name}>"

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
            return self._give(unescape(region[:end]).strip(), last=True)
        return self._give(unescape(region[: self._safe_end(region)]).strip(), last=False)

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
            return self._give(value.strip(), last=True)
        region = self._text[self._start :]
        end = region.find(self._close)
        return self._give(unescape(region if end < 0 else region[:end]).strip(), last=True)
