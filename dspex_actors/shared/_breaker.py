"""Circuit state shared by every process using one endpoint and credential.

When outcomes in one process open a breaker, it writes a marker that expires with the
reset timeout and publishes the opening; every other process subscribed to the channel
opens its breaker for the time left, so its calls fail fast (or wait, per
``on_circuit_open``) without a request. A breaker created later reads the marker first.
A successful half-open trial closes the circuit everywhere (the marker is deleted).
After a lost subscription the listener reconnects by itself and re-reads every marker.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import secrets
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import redis.asyncio

from dspex_actors.lm._breaker import EndpointBreaker
from dspex_actors.shared._link import FIRST_BACKOFF, MAX_BACKOFF, RedisLink, RedisUnavailable

__all__ = ["SharedBreakers"]

logger = logging.getLogger(__name__)

LISTEN_POLL = 1.0
"""How long the listener waits for a message before looking again (bounded reads)."""


class SharedBreakers:
    """One system's link between its breakers and the shared markers and channel."""

    def __init__(self, link: RedisLink, channel: str) -> None:
        self._link = link
        self._channel = channel
        self._origin = secrets.token_hex(8)
        """Tells this system's own messages apart (not part of any shared key)."""
        self._lock = threading.Lock()
        self._breakers: dict[str, EndpointBreaker] = {}
        self._listening = False

    def start(self) -> None:
        """Start listening to the channel (on the loop, until the link closes)."""
        if not self._listening:
            self._listening = True
            self._link.spawn(self._listen())

    def attach(self, key: str, breaker: EndpointBreaker) -> None:
        """Share ``breaker``'s openings under ``key``; open it now if the marker is there.

        Called from a caller's thread when the breaker is created (blocks at most the
        link's timeout; Redis down: the breaker starts closed).
        """
        with self._lock:
            self._breakers[key] = breaker
        breaker.watch(lambda state, seconds: self._changed(key, state, seconds))
        if self._link.usable:
            with contextlib.suppress(RedisUnavailable):
                self._apply(breaker, self._link.call(lambda r: r.pttl(key)))

    @staticmethod
    def _apply(breaker: EndpointBreaker, pttl: Any) -> None:
        if isinstance(pttl, int) and pttl > 0:
            breaker.open_for(pttl / 1000.0)

    def _changed(self, key: str, state: str, seconds: float) -> None:
        """This process opened (or closed) ``key``'s circuit: mark it and tell the others."""
        ms = max(1, round(seconds * 1000))
        message = json.dumps({"key": key, "state": state, "ms": ms, "origin": self._origin})

        async def publish(r: redis.asyncio.Redis) -> Any:
            pipe = r.pipeline(transaction=False)
            if state == "open":
                pipe.set(key, "open", px=ms)
            else:
                pipe.delete(key)
            pipe.publish(self._channel, message)
            return await pipe.execute()

        self._link.submit(publish, write=True)

    async def _listen(self) -> None:
        backoff = FIRST_BACKOFF
        while True:
            pubsub = self._link.client.pubsub(ignore_subscribe_messages=True)
            try:
                async with asyncio.timeout(self._link.timeout):
                    await pubsub.subscribe(self._channel)
                await self._resync()
                backoff = FIRST_BACKOFF
                while True:
                    message = await pubsub.get_message(timeout=LISTEN_POLL)
                    if message is not None:
                        self._received(message.get("data"))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure of the subscription: reconnect later
                logger.debug("breaker channel lost (%s); resubscribing in %.1fs", exc, backoff)
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.shield(pubsub.aclose())  # type: ignore[no-untyped-call]
            await asyncio.sleep(backoff)
            backoff = min(MAX_BACKOFF, backoff * 2)

    async def _resync(self) -> None:
        """Re-read every marker (openings published while unsubscribed were missed)."""
        with self._lock:
            breakers = list(self._breakers.items())
        for key, breaker in breakers:
            with contextlib.suppress(RedisUnavailable):
                self._apply(breaker, await self._link.run(functools.partial(_pttl, key=key)))

    def _received(self, data: Any) -> None:
        try:
            message = json.loads(data)
            key, ms, origin = str(message["key"]), int(message["ms"]), message.get("origin")
            state = str(message.get("state", "open"))
        except (ValueError, KeyError, TypeError):
            logger.debug("ignored a malformed breaker message")
            return
        if origin == self._origin:
            return
        with self._lock:
            breaker = self._breakers.get(key)
        if breaker is None:
            return
        logger.info("circuit for %s %s by another process", breaker.name, state)
        if state == "closed":
            breaker.close_now()
        else:
            breaker.open_for(ms / 1000.0)


async def _pttl(client: redis.asyncio.Redis, *, key: str) -> int:
    """Milliseconds until ``key`` expires (negative: absent or no expiry)."""
    return int(await client.pttl(key))
