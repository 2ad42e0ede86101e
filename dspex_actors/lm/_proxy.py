"""Which forward proxy an LM's requests go through, decided once per LM.

Like httpx, requests and the openai SDK: an explicit ``LM(proxy=...)`` wins; otherwise
``HTTPS_PROXY``/``HTTP_PROXY`` (by the endpoint's scheme, ``ALL_PROXY`` as fallback) unless
``NO_PROXY`` names the endpoint's host. Resolved when the Client starts rather than per
request (aiohttp's ``trust_env`` looks the environment up again on every request, off the
event loop). Credentials in a proxy URL become a ``Proxy-Authorization`` header (Basic) and never
appear in ``repr``, logs or errors: :func:`redact_url` hides them.
"""

from __future__ import annotations

import base64
import urllib.request
from collections.abc import Callable, Mapping
from typing import NamedTuple
from urllib.parse import unquote, urlsplit, urlunsplit

from dspex_actors._errors import ConfigurationError
from dspex_actors.lm._redact import redact_url

__all__ = ["ProxyRoute", "check_proxy_url", "redact_url", "resolve_proxy"]

_bypass: Callable[[str, Mapping[str, str]], bool] = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]  # not in typeshed
"""The stdlib's NO_PROXY matching (what requests and the openai SDK use too)."""


class ProxyRoute(NamedTuple):
    """A proxy URL without credentials, and the ``Proxy-Authorization`` value if it had any."""

    url: str
    authorization: str | None

    def __repr__(self) -> str:
        hidden = None if self.authorization is None else "***"
        return f"ProxyRoute(url={self.url!r}, authorization={hidden})"


def check_proxy_url(url: str, *, source: str) -> None:
    """ConfigurationError naming ``source`` unless ``url`` is an http(s) proxy URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            f"{source} must be an http:// or https:// proxy URL, got {redact_url(url)!r}"
        )


def _route(url: str, *, source: str) -> ProxyRoute:
    if "://" not in url:
        url = "http://" + url  # HTTP_PROXY=host:port is common and means http
    check_proxy_url(url, source=source)
    parts = urlsplit(url)
    authorization = None
    if parts.username is not None:
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        authorization = "Basic " + base64.b64encode(credentials.encode("utf-8")).decode("ascii")
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return ProxyRoute(urlunsplit((parts.scheme, netloc, "", "", "")), authorization)


def resolve_proxy(endpoint: str, proxy: str | bool | None) -> ProxyRoute | None:
    """The proxy for ``endpoint``: ``proxy`` if a URL, none if False, else the environment."""
    if proxy is False:
        return None
    if isinstance(proxy, str):
        return _route(proxy, source="LM proxy")
    parts = urlsplit(endpoint)
    proxies = urllib.request.getproxies_environment()
    chosen = proxies.get(parts.scheme) or proxies.get("all")
    if not chosen:
        return None
    host = parts.hostname or ""
    if parts.port:
        host_port = f"{host}:{parts.port}"
        if _bypass(host_port, proxies):
            return None
    if _bypass(host, proxies):
        return None
    return _route(chosen, source=f"the {parts.scheme.upper()}_PROXY environment variable")
