"""The provider seam: how one wire protocol turns an LMRequest into HTTP and back.

A provider knows the URL, headers and JSON body of a call and how to read the reply,
its error bodies and its streamed events. It does no I/O itself, so the Client actor's
transport, retries and breaker work the same for every protocol; adding a protocol means
adding one module with a Provider.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from dspex_actors._errors import ConfigurationError, MalformedResponseError
from dspex_actors._types import LMRequest, LMResponse, Message

__all__ = [
    "Provider",
    "StreamDecoder",
    "is_loopback_url",
    "json_event",
    "malformed",
    "merge_turns",
    "stop_list",
    "token_count",
]

logger = logging.getLogger(__name__)


class StreamDecoder(ABC):
    """Turns one streamed reply's events into text pieces, then into its LMResponse.

    One decoder per HTTP attempt; it keeps what the pieces add up to.
    """

    @abstractmethod
    def feed(self, data: str) -> list[tuple[int, str]]:
        """One event's ``data``: the ``(choice, text)`` pieces it adds (maybe none).

        Raises :class:`~dspex_actors.MalformedResponseError` for an event that is not
        what the protocol sends, or the protocol's error for an error event.
        """

    @abstractmethod
    def done(self, data: str) -> bool:
        """Whether ``data`` is the event that ends the stream."""

    @abstractmethod
    def result(self) -> LMResponse:
        """The whole reply, once the stream has ended."""

    def at_end(self) -> LMResponse | None:
        """The reply when the body ends without a final event (None: the stream was cut).

        For protocols whose streams simply stop after the last event (Gemini).
        """
        return None


class Provider(ABC):
    """One wire protocol (e.g. OpenAI chat completions)."""

    name: str = ""
    """The prefix in ``LM("<name>/<model>")``."""

    default_api_base: str = ""
    """The endpoint used when the LM gives no ``api_base`` ("" if there is none)."""

    api_base_env: str | None = None
    """The environment variable read when the LM gives no ``api_base``."""

    api_key_envs: tuple[str, ...] = ()
    """The environment variables read, in order, when the LM gives no ``api_key``."""

    api_version_env: str | None = None
    """The environment variable read when the LM gives no ``api_version``."""

    default_api_version: str | None = None
    """The API version used when neither the LM nor the environment gives one."""

    supports_n: bool = True
    """Whether one request can ask for several choices (``n``)."""

    @property
    def api_key_env(self) -> str | None:
        """The first of :attr:`api_key_envs` (the one named in messages)."""
        return self.api_key_envs[0] if self.api_key_envs else None

    def check_n(self, model: str, n: Any) -> None:
        """A ConfigurationError when ``n`` > 1 asks for choices this protocol cannot give."""
        if not self.supports_n and isinstance(n, int) and n > 1:
            raise ConfigurationError(
                f"{model}: the {self.name} API gives one choice per request, so n={n} "
                "cannot be honoured; make n separate calls (e.g. with distinct rollout_id)"
            )

    def needs_key(self, api_base: str) -> bool:
        """Whether a call to ``api_base`` needs an API key (checked at ``LM(...)``)."""
        return bool(self.api_key_envs)

    @abstractmethod
    def url(
        self,
        api_base: str,
        model_name: str,
        *,
        stream: bool = False,
        api_version: str | None = None,
    ) -> str:
        """The full URL a request is POSTed to (``stream``: that of a streamed call)."""

    @abstractmethod
    def headers(self, api_key: str | None) -> dict[str, str]:
        """HTTP headers, including authentication when a key is given."""

    @abstractmethod
    def body(self, model_name: str, request: LMRequest) -> dict[str, Any]:
        """The JSON body of one call."""

    @abstractmethod
    def parse(self, payload: Any, *, model: str, endpoint: str) -> LMResponse:
        """Turn a decoded JSON reply into an LMResponse.

        Raises :class:`~dspex_actors.MalformedResponseError` naming the provider, ``model``
        and ``endpoint`` when the reply does not have the expected shape or has no text,
        :class:`~dspex_actors.ContentBlockedError` when the provider refused the content.
        """

    def error_message(self, payload: Any) -> str | None:
        """The provider's own words in an error body, or None if it has none.

        OpenAI, Azure, Anthropic and Gemini all nest them as ``{"error": {"message": ...}}``
        with a ``type`` (or ``status``) beside it.
        """
        error = payload.get("error") if isinstance(payload, dict) else None
        if not isinstance(error, dict) or not isinstance(error.get("message"), str):
            return None
        kind = error.get("type") or error.get("status")
        message: str = error["message"]
        return f"{kind}: {message}" if isinstance(kind, str) and kind else message

    def stream_body(self, model_name: str, request: LMRequest) -> dict[str, Any]:
        """The JSON body of a streamed call (the protocol's streaming flag set)."""
        raise NotImplementedError(f"the {self.name} provider does not stream")

    def stream_decoder(self, *, model: str, endpoint: str) -> StreamDecoder:
        """A decoder for one streamed reply."""
        raise NotImplementedError(f"the {self.name} provider does not stream")


def is_loopback_url(url: str) -> bool:
    """Whether ``url`` names this machine (localhost, 127.0.0.0/8, ::1)."""
    host = urlsplit(url).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def malformed(provider: str, model: str, endpoint: str) -> Callable[[str], MalformedResponseError]:
    """A maker of MalformedResponseErrors naming the provider, model and endpoint."""

    def make(problem: str) -> MalformedResponseError:
        return MalformedResponseError(
            f"malformed {provider} reply from {endpoint} for {model}: {problem}",
            model=model,
            endpoint=endpoint,
        )

    return make


def json_event(data: str, bad: Callable[[str], MalformedResponseError]) -> dict[str, Any]:
    """A stream event's ``data`` decoded: a JSON object, else ``bad(...)`` raised."""
    try:
        event = json.loads(data)
    except ValueError:
        raise bad(f"a stream event is not JSON: {data[:100]!r}") from None
    if not isinstance(event, dict):
        raise bad(f"a stream event is not a JSON object: {data[:100]!r}")
    return event


def merge_turns(
    messages: Sequence[Message], assistant_role: str
) -> tuple[str | None, list[tuple[str, str]]]:
    """The system text and the user/assistant turns, consecutive same-role turns merged.

    For APIs that take the system prompt apart and want alternating turns; the
    assistant role is renamed ``assistant_role`` (Gemini: ``"model"``).
    """
    system: list[str] = []
    turns: list[tuple[str, str]] = []
    for message in messages:
        role, content = message.get("role", "user"), str(message.get("content", ""))
        if role in ("system", "developer"):
            system.append(content)
            continue
        role = assistant_role if role == "assistant" else "user"
        if turns and turns[-1][0] == role:
            turns[-1] = (role, turns[-1][1] + "\n\n" + content)
        else:
            turns.append((role, content))
    return ("\n\n".join(system) if system else None), turns


def stop_list(value: Any) -> list[str] | None:
    """An OpenAI ``stop`` (a string or a list of strings) as a list; None when unset."""
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    return [str(item) for item in value]


def token_count(raw: Mapping[str, Any], key: str) -> int:
    """``raw[key]`` when it is an int (not a bool), else 0."""
    value = raw.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
