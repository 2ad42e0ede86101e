"""The values that travel between Predict, the Cache actor, the Client actor and the I/O loop.

A leaf module (it imports no other part of the package), so the cache, the Client and
the system can all name these types without importing one another.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import pykka

__all__ = [
    "Answered",
    "AsyncReply",
    "AttemptRecord",
    "CallEvent",
    "CallRecord",
    "Cancel",
    "ChunkSink",
    "LMRequest",
    "LMResponse",
    "LMToolCall",
    "Message",
    "Reply",
    "ReplyTo",
    "StreamChunk",
    "Submit",
]

Message = dict[str, str]
"""One chat message: ``{"role": "system"|"user"|"assistant", "content": "..."}``."""


@dataclass(frozen=True)
class LMRequest:
    """One chat-completions call, before credentials and endpoint are added.

    ``params`` are request parameters (temperature, max_tokens, n, response_format,
    ...) already merged from the LM's defaults and the per-call overrides.
    ``cache`` False skips the cache for this call. ``rollout_id`` is folded into the
    cache key only, so a caller can ask for a fresh answer (BootstrapFewShot rounds).
    ``on_circuit_open`` is the caller's default for an open circuit (``"wait"`` in a
    batch), used when the LM sets none; it is not part of the cache key.
    """

    messages: tuple[Message, ...]
    params: dict[str, Any] = field(default_factory=dict)
    cache: bool = True
    rollout_id: int | None = None
    on_circuit_open: str | None = None

    def with_circuit_policy(self, on_circuit_open: str) -> LMRequest:
        """This request with the caller's ``on_circuit_open`` default (made for every call
        of a batch: ``dataclasses.replace`` costs several times a plain construction)."""
        return LMRequest(self.messages, self.params, self.cache, self.rollout_id, on_circuit_open)


class AttemptRecord(NamedTuple):
    """One HTTP attempt of a call, for telemetry: when (wall clock, ns) and how it ended."""

    start_ns: int
    end_ns: int
    status: int | None
    """The HTTP status of the reply (None: no reply: timeout, connection error)."""
    error_type: str | None
    """The error's class name when the attempt failed."""


class CallEvent(NamedTuple):
    """Something that happened to a call besides its attempts (a rate-limit wait, a wait
    for an open circuit, a breaker state change), for telemetry."""

    name: str
    time_ns: int
    attributes: tuple[tuple[str, str | int | float | bool], ...] = ()


class CallRecord(NamedTuple):
    """What the Client saw of one call: its attempts and events, in order."""

    attempts: tuple[AttemptRecord, ...] = ()
    events: tuple[CallEvent, ...] = ()


class LMToolCall(NamedTuple):
    """One function call a reply asks for (native function calling).

    ``arguments`` is the JSON text of the arguments object, as OpenAI sends it (other
    protocols' argument objects are encoded to it); ``id`` is the provider's call id.
    """

    id: str | None
    name: str
    arguments: str


@dataclass(frozen=True)
class LMResponse:
    """A completed call: one text per choice, token usage, and where it came from.

    ``cached``: answered without a request of its own (a cache hit, or a single-flight
    follower); ``record``: the Client's attempts and events (None when cached);
    ``tool_calls``: per choice, the function calls it asks for (``()``: none in any choice).
    """

    texts: tuple[str, ...]
    usage: dict[str, int] = field(default_factory=dict)
    model: str = ""
    finish_reasons: tuple[str | None, ...] = ()
    cached: bool = False
    record: CallRecord | None = field(default=None, compare=False)
    tool_calls: tuple[tuple[LMToolCall, ...], ...] = ()


class ReplyTo(NamedTuple):
    """Where an actor sends the outcome of a call: ``actor.tell(Answered(tag, outcome))``.

    The alternative to a reply future when the one waiting is itself an actor (the Cache
    actor waiting on a leader's call): the outcome arrives in its mailbox, on its thread.
    """

    actor: pykka.ActorRef[Any]
    tag: Hashable


class Answered(NamedTuple):
    """The outcome of a call, told to a :class:`ReplyTo` address."""

    tag: Hashable
    outcome: LMResponse | BaseException


class StreamChunk(NamedTuple):
    """A piece of a streamed reply: ``text`` added to choice number ``choice``.

    ``attempt`` numbers the HTTP attempt the piece came from (1, 2, ...): when a call is
    retried after part of a reply was streamed, the consumer drops the pieces of earlier
    attempts. The call's final :class:`LMResponse` still arrives as its reply.
    """

    choice: int
    text: str
    attempt: int = 1


class ChunkSink(Protocol):
    """Receives a streamed reply's chunks, on the I/O loop's thread; must not block.

    ``queue.SimpleQueue`` fits; an asyncio consumer wraps ``loop.call_soon_threadsafe``.
    """

    def put(self, item: StreamChunk, /) -> None:
        """Take one chunk."""


class AsyncReply(NamedTuple):
    """An asyncio future to complete on its own loop (through the loop's inbox).

    Awaiting a pykka future would block the event loop; an asyncio caller hands this
    instead and the actor's outcome is scheduled onto the caller's loop.
    """

    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[LMResponse]


Reply = pykka.ThreadingFuture[LMResponse] | ReplyTo | AsyncReply
"""Where a call's outcome goes: a future a thread waits on, an asyncio future, or an
actor's mailbox. Completed with :func:`dspex_actors._reply.deliver`."""


class Submit(NamedTuple):
    """To a Client actor: start a call.

    Told with ``reply_to`` (a future, or a :class:`ReplyTo` address), the Client completes
    it with the LMResponse or the error; asked without it, the reply is a new future.
    ``sink`` asks for the reply streamed: its chunks go there as they arrive (the final
    LMResponse still goes to ``reply_to``).
    """

    request: LMRequest
    reply_to: Reply | None = None
    sink: ChunkSink | None = None


class Cancel(NamedTuple):
    """To a Client actor: the caller answered by ``reply`` gave up (a cancelled task).

    The call's attempt in flight is cancelled and its concurrency slot freed; nothing is
    delivered to ``reply``. Unknown or finished calls are ignored.
    """

    reply: Reply
