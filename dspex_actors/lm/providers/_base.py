"""The provider seam: how one wire protocol turns an LMRequest into HTTP and back.

A provider knows the URL, headers and JSON body of a call and how to read the reply.
It does no I/O itself, so the Client actor's transport, retries and breaker work the
same for every protocol; adding a protocol means adding one module with a Provider.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from typing import Any

from dspex_actors._types import LMRequest, LMResponse

__all__ = ["Provider", "StreamDecoder"]

logger = logging.getLogger(__name__)


class StreamDecoder(ABC):
    """Turns one streamed reply's events into text pieces, then into its LMResponse.

    One decoder per HTTP attempt; it keeps what the pieces add up to.
    """

    @abstractmethod
    def feed(self, data: str) -> list[tuple[int, str]]:
        """One event's ``data``: the ``(choice, text)`` pieces it adds (maybe none).

        Raises :class:`~dspex_actors.MalformedResponseError` for an event that is not
        what the protocol sends.
        """

    @abstractmethod
    def done(self, data: str) -> bool:
        """Whether ``data`` is the event that ends the stream."""

    @abstractmethod
    def result(self) -> LMResponse:
        """The whole reply, once the stream has ended."""


class Provider(ABC):
    """One wire protocol (e.g. OpenAI chat completions)."""

    name: str = ""
    """The prefix in ``LM("<name>/<model>")``."""

    default_api_base: str = ""
    """The endpoint used when the LM gives no ``api_base``."""

    api_key_env: str | None = None
    """The environment variable read when the LM gives no ``api_key``."""

    @abstractmethod
    def url(self, api_base: str) -> str:
        """The full URL a request is POSTed to."""

    @abstractmethod
    def headers(self, api_key: str | None) -> dict[str, str]:
        """HTTP headers, including authentication when a key is given."""

    @abstractmethod
    def body(self, model_name: str, request: LMRequest) -> dict[str, Any]:
        """The JSON body of one call."""

    @abstractmethod
    def parse(self, payload: Any, *, model: str, endpoint: str) -> LMResponse:
        """Turn a decoded JSON reply into an LMResponse.

        Raises :class:`~dspex_actors.MalformedResponseError` naming ``model`` and
        ``endpoint`` when the reply does not have the expected shape.
        """

    def stream_body(self, model_name: str, request: LMRequest) -> dict[str, Any]:
        """The JSON body of a streamed call (the protocol's streaming flag set)."""
        raise NotImplementedError(f"the {self.name} provider does not stream")

    def stream_decoder(self, *, model: str, endpoint: str) -> StreamDecoder:
        """A decoder for one streamed reply."""
        raise NotImplementedError(f"the {self.name} provider does not stream")
