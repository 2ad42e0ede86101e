"""Following one output field through a JSON-adapter reply that arrives in pieces.

The reply is a JSON object (``{"reasoning": "...", "answer": "..."}``, sometimes inside a
code fence). A listened field's value is a JSON string; its characters are given out as
they arrive, decoded, with an escape sequence split across pieces held back until it is
complete. A value that is not a string (a number, a list) is given whole when the reply
ends, as the parsed value.
"""

from __future__ import annotations

import json
import re

from dspex_actors.streaming._markers import Follower

__all__ = ["JSONFieldFollower"]

_SIMPLE_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r"}
_SIMPLE_ESCAPES["t"] = "\t"
_HEX4 = re.compile(r"[0-9a-fA-F]{4}")


def _key_pattern(name: str) -> re.Pattern[str]:
    return re.compile(r'"' + re.escape(name) + r'"\s*:\s*(\S)')


class JSONFieldFollower(Follower):
    """The text of field ``name`` in a JSON reply fed piece by piece (one reply, one choice).

    ``_start`` is where the string value's first character is (after its opening quote).
    """

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._key = _key_pattern(name)
        self._scanned = 0
        self._decoded = ""
        self._not_a_string = False

    def feed(self, piece: str) -> tuple[str, bool] | None:
        """Add ``piece``; the field's new text and whether the field is complete, or None."""
        if self.finished:
            return None
        self._text += piece
        if self._start is None and not self._not_a_string:
            match = self._key.search(self._text)
            if match is None:
                return None
            if match.group(1) != '"':
                self._not_a_string = True  # given whole, parsed, at the end
                return None
            self._start = self._scanned = match.end()
        if self._start is None:
            return None
        closed = self._decode()
        return self._give(self._decoded.strip(), last=closed)

    def _decode(self) -> bool:
        """Decode what arrived of the string value; whether its closing quote came."""
        text, position = self._text, self._scanned
        while position < len(text):
            char = text[position]
            if char == '"':
                self._scanned = position + 1
                return True
            if char != "\\":
                self._decoded += char
                position += 1
                continue
            if position + 1 >= len(text):
                break  # the escape's second half has not arrived
            code = text[position + 1]
            if code == "u":
                digits = text[position + 2 : position + 6]
                if len(digits) < 4:
                    break
                if _HEX4.fullmatch(digits) is None:  # not JSON: keep it as written
                    self._decoded += text[position : position + 2]
                    position += 2
                    continue
                value = int(digits, 16)
                if 0xD800 <= value < 0xDC00:  # a surrogate pair: wait for its low half
                    low = text[position + 6 : position + 12]
                    if len(low) < 6:
                        break
                    self._decoded += json.loads(f'"{text[position : position + 12]}"')
                    position += 12
                    continue
                self._decoded += chr(value)
                position += 6
                continue
            self._decoded += _SIMPLE_ESCAPES.get(code, code)
            position += 2
        self._scanned = position
        return False

    def finish(self, value: str | None = None) -> tuple[str, bool] | None:
        """The reply ended: the rest of the field (``value``, the parsed one, when the
        field was not a string or never came)."""
        if self.finished:
            return None
        if self._start is None:
            if value is None:
                return None
            self._decoded = value
        return self._give(self._decoded.strip(), last=True)
