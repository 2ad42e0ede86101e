"""Azure OpenAI: chat completions at a deployment, with an ``api-key`` header.

``azure/<deployment>`` posts to
``{api_base}/openai/deployments/{deployment}/chat/completions?api-version=...``; the body
and replies are OpenAI's, so everything but the URL and the key header is inherited.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

from dspex_actors.lm.providers._openai import OpenAIProvider

__all__ = ["AzureOpenAIProvider"]

logger = logging.getLogger(__name__)


class AzureOpenAIProvider(OpenAIProvider):
    """``azure/<deployment>``: an Azure OpenAI resource (``api_base`` is its endpoint)."""

    name = "azure"
    default_api_base = ""
    api_base_env = "AZURE_OPENAI_ENDPOINT"
    api_key_envs = ("AZURE_OPENAI_API_KEY",)
    api_version_env = "AZURE_OPENAI_API_VERSION"
    default_api_version = "2024-10-21"

    def needs_key(self, api_base: str) -> bool:
        return True

    def url(
        self,
        api_base: str,
        model_name: str,
        *,
        stream: bool = False,
        api_version: str | None = None,
    ) -> str:
        version = quote(api_version or self.default_api_version or "", safe="")
        deployment = quote(model_name, safe="")
        return (
            f"{api_base.rstrip('/')}/openai/deployments/{deployment}/chat/completions"
            f"?api-version={version}"
        )

    def headers(self, api_key: str | None) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if api_key:
            headers["api-key"] = api_key
        return headers
