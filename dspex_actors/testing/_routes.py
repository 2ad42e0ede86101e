"""Which provider protocol a chat request's URL asks for (beyond OpenAI's own paths).

``/v1/messages`` is Anthropic's, ``/v1beta/models/{model}:generateContent`` (and
``:streamGenerateContent?alt=sse``) Gemini's, and
``/openai/deployments/{deployment}/chat/completions?api-version=...`` Azure OpenAI's
(OpenAI bodies, its own key header and URL).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass

from dspex_actors.testing._anthropic import AnthropicWire
from dspex_actors.testing._gemini import GeminiWire
from dspex_actors.testing._wire import WireError, WireProtocol

__all__ = ["Route", "route_for"]

logger = logging.getLogger(__name__)

_ANTHROPIC = AnthropicWire()
_GEMINI = GeminiWire()
_GEMINI_PATH = re.compile(
    r"^/v1(?:beta|alpha)?/models/([^/:]+):(generateContent|streamGenerateContent)$"
)
_AZURE_PATH = re.compile(r"^/openai/deployments/([^/]+)/chat/completions$")


@dataclass(frozen=True)
class Route:
    """A chat request's protocol: ``wire`` (None: OpenAI bodies), the model in the URL,
    whether the URL asks for a stream, and what the URL itself lacks (``problem``)."""

    wire: WireProtocol | None
    model: str | None = None
    stream: bool = False
    azure: bool = False
    problem: tuple[int, str] | None = None

    def check(self, headers: Mapping[str, str]) -> None:
        """Refuse, as the real service would, a request its URL or headers make invalid."""
        if self.problem is not None:
            raise WireError(*self.problem)
        if self.azure and not (headers.get("api-key") or headers.get("authorization")):
            raise WireError(
                401,
                "Access denied due to missing subscription key. Make sure to include "
                "subscription key when making requests to an API.",
            )

    def error_body(self, status: int, message: str) -> bytes:
        """The error JSON of this protocol."""
        if self.wire is not None:
            return self.wire.error_body(status, message)
        return json.dumps({"error": {"code": str(status), "message": message}}).encode()


def route_for(path: str, query: Mapping[str, list[str]]) -> Route | None:
    """The Route of a POST to ``path``, or None when it is no provider's chat URL."""
    if path == "/v1/messages":
        return Route(_ANTHROPIC)
    match = _GEMINI_PATH.match(path)
    if match is not None:
        stream = match.group(2) == "streamGenerateContent"
        problem = None
        if stream and query.get("alt", [""])[0] != "sse":
            problem = (400, "the local server streams with alt=sse only")
        return Route(_GEMINI, match.group(1), stream, problem=problem)
    match = _AZURE_PATH.match(path)
    if match is not None:
        problem = None
        if not query.get("api-version", [""])[0]:
            problem = (404, "Resource not found")
        return Route(None, match.group(1), azure=True, problem=problem)
    return None
