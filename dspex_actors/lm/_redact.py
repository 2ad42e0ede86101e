"""Keeping credentials out of text: URLs that carry them, and messages that might echo them.

An ``api_base`` (or proxy URL) may embed a ``user:password@`` or a key in its query
(``?key=...``, ``?api-key=...``): :func:`redact_url` gives the form shown in ``repr``,
errors, logs and stats, and :func:`url_secrets` the values to scrub from any text that
might quote the real URL. :func:`redact_text` scrubs secrets without mangling a message
for a very short key (a 1-letter key must not turn every ``k`` into ``***``).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

__all__ = ["is_loopback", "redact_text", "redact_url", "strip_userinfo", "url_secrets"]

HIDDEN = "***"

_SECRET_PARAM = re.compile(r"key|token|secret|password|passwd|auth|sig|credential", re.I)
"""Query parameters whose value is a credential (``key``, ``api-key``, ``access_token``...)."""

_LONG_SECRET = 8
"""A secret at least this long is scrubbed wherever it appears; a shorter one only where it
stands alone (not inside a word, a model name or a URL path)."""


def _netloc(host: str, port: int | None, userinfo: str = "") -> str:
    if ":" in host:
        host = f"[{host}]"
    return userinfo + host + (f":{port}" if port else "")


def _secret_query(query: str) -> bool:
    return any(_SECRET_PARAM.search(name) for name, _ in parse_qsl(query, keep_blank_values=True))


def redact_url(url: str) -> str:
    """``url`` with its user/password and the values of credential query parameters
    replaced by ``***`` (the URL itself is unchanged when it carries none)."""
    parts = urlsplit(url)
    has_userinfo = parts.username is not None or parts.password is not None
    if not has_userinfo and not _secret_query(parts.query):
        return url
    netloc = parts.netloc
    if has_userinfo:
        netloc = _netloc(parts.hostname or "", parts.port, f"{HIDDEN}@")
    query = urlencode(
        [
            (name, HIDDEN if _SECRET_PARAM.search(name) else value)
            for name, value in parse_qsl(parts.query, keep_blank_values=True)
        ],
        safe="*",
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def strip_userinfo(url: str) -> tuple[str, tuple[str, str] | None]:
    """``url`` without ``user:password@``, and the (unquoted) user and password if any."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None
    netloc = _netloc(parts.hostname or "", parts.port)
    bare = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return bare, (unquote(parts.username or ""), unquote(parts.password or ""))


def url_secrets(url: str) -> list[str]:
    """The credential values a URL carries (password, user, credential query values),
    raw and percent-encoded, for :func:`redact_text`."""
    parts = urlsplit(url)
    found = [parts.password or "", parts.username or ""]
    found += [
        v for n, v in parse_qsl(parts.query, keep_blank_values=True) if _SECRET_PARAM.search(n)
    ]
    found += [unquote(v) for v in found]
    return sorted({v for v in found if v}, key=len, reverse=True)


def redact_text(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every secret replaced by ``***``; a short secret only where it is a
    whole token, so short keys never mangle the rest of the message."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        if len(secret) >= _LONG_SECRET:
            text = text.replace(secret, HIDDEN)
        else:
            token = rf"(?<![\w\-./]){re.escape(secret)}(?![\w\-./])"
            text = re.sub(token, HIDDEN, text)
    return text


def is_loopback(url: str) -> bool:
    """Whether ``url``'s host is this machine (``localhost``, 127.0.0.0/8, ``::1``)."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
