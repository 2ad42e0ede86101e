"""OpenAI chat completions: OpenAI itself and every compatible server.

vLLM, Ollama, llama.cpp, LM Studio and the local test server all speak it.
"""

from __future__ import annotations

import logging
from typing import Any

from dspex_actors._errors import MalformedResponseError
from dspex_actors._types import LMRequest, LMResponse
from dspex_actors.lm.providers._base import Provider

__all__ = ["OpenAIProvider"]

logger = logging.getLogger(__name__)


class OpenAIProvider(Provider):
    """``POST {api_base}/chat/completions`` with a bearer key."""

    name = "openai"
    default_api_base = "https://api.openai.com/v1"
    api_key_env = "OPENAI_API_KEY"

    def url(self, api_base: str) -> str:
        return api_base.rstrip("/") + "/chat/completions"

    def headers(self, api_key: str | None) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        return headers

    def body(self, model_name: str, request: LMRequest) -> dict[str, Any]:
        body: dict[str, Any] = dict(request.params)
        body["model"] = model_name
        body["messages"] = [dict(message) for message in request.messages]
        return body

    def parse(self, payload: Any, *, model: str, endpoint: str) -> LMResponse:
        def malformed(problem: str) -> MalformedResponseError:
            return MalformedResponseError(
                f"malformed reply from {endpoint} for {model}: {problem}",
                model=model,
                endpoint=endpoint,
            )

        if not isinstance(payload, dict):
            raise malformed(f"expected a JSON object, got {type(payload).__name__}")
        choices = payload.get("choices")
        if not isinstance(choices, list) or not choices:
            raise malformed("no 'choices' list")
        texts: list[str] = []
        reasons: list[str | None] = []
        for index, choice in enumerate(choices):
            message = choice.get("message") if isinstance(choice, dict) else None
            if not isinstance(message, dict):
                raise malformed(f"choice {index} has no 'message' object")
            content = message.get("content")
            if content is None:
                content = ""
            if not isinstance(content, str):
                raise malformed(f"choice {index} content is not a string")
            texts.append(content)
            reason = choice.get("finish_reason")
            reasons.append(reason if isinstance(reason, str) else None)
        usage_raw = payload.get("usage")
        usage: dict[str, int] = {}
        if isinstance(usage_raw, dict):
            for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
                value = usage_raw.get(key)
                if isinstance(value, int) and not isinstance(value, bool):
                    usage[key] = value
        served_by = payload.get("model")
        return LMResponse(
            texts=tuple(texts),
            usage=usage,
            model=served_by if isinstance(served_by, str) else "",
            finish_reasons=tuple(reasons),
        )
