"""The streamed run of one program: which predictors stream, and where their pieces go.

``streamify`` opens a :class:`StreamSession` in a context variable around the program's
run; ``Predict.aforward`` asks :func:`current_session` for a :class:`CallStream` for
itself and, when it gets one, sends its LM call streamed with that stream as the sink.
Pieces arrive on the system's I/O thread and are handed to the session's loop; there the
followers of each listened field turn them into :class:`StreamResponse` items, in order,
before the call's own reply (both travel through the loop's one ordered inbox).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dspex_actors._errors import AdapterParseError
from dspex_actors._inbox import inbox_for
from dspex_actors._types import LMResponse, StreamChunk
from dspex_actors.adapters import ChatAdapter, JSONAdapter, XMLAdapter
from dspex_actors.signatures import Signature
from dspex_actors.streaming._json_follower import JSONFieldFollower
from dspex_actors.streaming._markers import FieldFollower, Follower
from dspex_actors.streaming._response import StreamResponse
from dspex_actors.streaming._xml_follower import XMLFieldFollower

__all__ = ["Binding", "CallStream", "StreamSession", "current_session", "follower_for"]

_session: contextvars.ContextVar[StreamSession | None] = contextvars.ContextVar(
    "dspex_actors_stream_session", default=None
)


@dataclass(frozen=True)
class Binding:
    """A listener bound to one predictor of the program (by identity) and its name."""

    predictor: Any
    predict_name: str
    field: str
    allow_reuse: bool


def follower_for(adapter: ChatAdapter, field: str) -> Follower:
    """What reads ``field`` out of a reply in ``adapter``'s format as it streams."""
    if isinstance(adapter, JSONAdapter):
        return JSONFieldFollower(field)
    if isinstance(adapter, XMLAdapter):
        return XMLFieldFollower(field)
    return FieldFollower(field)


class CallStream:
    """One predictor call's listened fields; ``put`` is the thread-safe sink of its pieces."""

    def __init__(
        self, session: StreamSession, bindings: Sequence[Binding], adapter: ChatAdapter
    ) -> None:
        self._session = session
        self._followers = [(binding, follower_for(adapter, binding.field)) for binding in bindings]
        self._pieces = 0
        self._requests = 0

    def begin_request(self, signature: type[Signature]) -> None:
        """On the loop, before each LM request of the call. A second one is the adapter's
        JSON-mode retry (its reply did not parse): that reply is followed as JSON. It is
        not sent (AdapterParseError) if a listened field already gave out text of the
        failed reply, which a stream cannot take back."""
        self._requests += 1
        if self._requests == 1:
            return
        given = [binding.field for binding, follower in self._followers if follower.gave_out]
        if given:
            names = ", ".join(f"`{field}`" for field in given)
            raise AdapterParseError(
                f"not sent: the stream had already given out {names} of the reply that "
                f"did not parse (signature `{signature.signature}`), and streamed text cannot be "
                "taken back",
                signature=signature,
            )
        self._followers = [
            (binding, JSONFieldFollower(binding.field)) for binding, _ in self._followers
        ]
        self._pieces = 0

    def put(self, item: StreamChunk, /) -> None:
        """From the I/O thread: hand the piece to the session's loop."""
        with contextlib.suppress(RuntimeError):  # the consumer's loop is gone
            inbox_for(self._session.loop).put(self._on_piece, item)

    def _on_piece(self, item: StreamChunk) -> None:
        if item.choice != 0:
            return
        self._pieces += 1
        for binding, follower in self._followers:
            self._emit(binding, follower.feed(item.text))

    def finish(self, response: LMResponse, values: dict[str, Any]) -> None:
        """On the loop, after the call: a reply that was not streamed (a cache hit) is fed
        whole; every field still open gets its last piece."""
        if not self._pieces and response.texts:
            for binding, follower in self._followers:
                self._emit(binding, follower.feed(response.texts[0]))
        for binding, follower in self._followers:
            value = values.get(binding.field)
            self._emit(binding, follower.finish(None if value is None else str(value)))

    def _emit(self, binding: Binding, piece: tuple[str, bool] | None) -> None:
        if piece is None:
            return
        text, last = piece
        if last:
            self._session.done_with(binding)
        self._session.queue.put_nowait(
            StreamResponse(binding.predict_name, binding.field, text, last)
        )


class StreamSession:
    """The listeners of one streamed program run, and the queue its consumer reads."""

    def __init__(self, loop: asyncio.AbstractEventLoop, bindings: Sequence[Binding]) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        """StreamResponse pieces and StatusMessage items, in the order they happened."""
        self._bindings = list(bindings)
        self._finished: set[int] = set()

    def stream_for(self, predictor: Any, adapter: ChatAdapter) -> CallStream | None:
        """A CallStream for a call of ``predictor`` formatted by ``adapter``, or None when
        nothing listens to it."""
        bindings = [
            b
            for b in self._bindings
            if b.predictor is predictor and (b.allow_reuse or id(b) not in self._finished)
        ]
        return CallStream(self, bindings, adapter) if bindings else None

    def post(self, item: Any) -> None:
        """Put ``item`` in the stream, from the session's loop or from any other thread
        (then through the loop's ordered inbox)."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            self.queue.put_nowait(item)
            return
        with contextlib.suppress(RuntimeError):  # the consumer's loop is gone
            inbox_for(self.loop).put(self.queue.put_nowait, item)

    def done_with(self, binding: Binding) -> None:
        """A listener without ``allow_reuse`` has streamed its one completion."""
        self._finished.add(id(binding))

    def enter(self) -> contextvars.Token[StreamSession | None]:
        return _session.set(self)

    @staticmethod
    def leave(token: contextvars.Token[StreamSession | None]) -> None:
        _session.reset(token)


def current_session() -> StreamSession | None:
    """The streamed run this code is part of, if any."""
    return _session.get()
