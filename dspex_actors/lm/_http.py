"""One LM endpoint's HTTP on the I/O loop: an aiohttp session, attempts as tasks.

An :class:`HTTPEndpoint` belongs to one Client actor but is used only on the system's
I/O loop thread: the actor hands it :class:`Attempt` values with ``IOLoop.call_soon`` and
hears of each outcome through the ``report`` callback it gave at construction (which
tells the actor a message). What an attempt guarantees:

- ``timeout`` bounds the whole attempt: connecting (through the proxy, TLS included),
  sending, and every byte of the reply; a trickled reply times out like a silent one.
- The decoded body is read incrementally and capped at ``max_response_bytes`` (aiohttp
  inflates gzip in bounded steps), so an endless, huge or gzip-bomb reply is a
  :class:`MalformedResponseError` with bounded memory.
- A connection is reused only after a complete, well-formed reply; one that failed or
  got bytes nobody asked for is closed (see ``_connector.py``).
- Redirects are not followed: a 3xx is an :class:`LMHTTPStatusError` naming the target.
- ``cancel``/``close`` cancel attempts in flight; their connections close.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import ssl
from collections.abc import Callable
from typing import NamedTuple

import aiohttp
import yarl

from dspex_actors._errors import (
    ConfigurationError,
    LMConnectionError,
    LMError,
    LMHTTPStatusError,
    LMTimeoutError,
    LMTLSError,
    MalformedResponseError,
)
from dspex_actors._loop import IOLoop
from dspex_actors._types import ChunkSink, LMResponse, StreamChunk
from dspex_actors._version import __version__
from dspex_actors.lm._connector import StrictReuseConnector, retire
from dspex_actors.lm._lm import LM
from dspex_actors.lm._proxy import ProxyRoute, resolve_proxy
from dspex_actors.lm._redact import redact_text, redact_url, strip_userinfo
from dspex_actors.lm._retry import parse_retry_after

__all__ = ["Attempt", "AttemptOutcome", "HTTPEndpoint", "ssl_context_for"]

logger = logging.getLogger(__name__)

USER_AGENT = f"dspex-actors/{__version__}"
BODY_EXCERPT_BYTES = 4096
"""How much of an error reply is read for the error message."""
BODY_EXCERPT_CHARS = 300
KEEPALIVE_SECONDS = 30.0
"""Idle kept-alive connections are closed after this long."""


class Attempt(NamedTuple):
    """One HTTP attempt of a call: the JSON body, already encoded, and its time budget.

    With a ``sink`` the body asks for a streamed reply, and its pieces go to the sink as
    :class:`StreamChunk` values numbered with ``number`` (the call's attempt count).
    """

    call_id: int
    permit: int
    body: bytes
    timeout: float
    sink: ChunkSink | None = None
    number: int = 1


class AttemptOutcome(NamedTuple):
    """What became of an :class:`Attempt` (reported from the loop thread)."""

    call_id: int
    permit: int
    outcome: LMResponse | LMError
    streamed: bool = False
    """Whether pieces of this attempt's reply reached the sink (it is not retried then)."""


def ssl_context_for(verify: bool | str) -> ssl.SSLContext | bool:
    """aiohttp's ``ssl=`` for an LM's ``verify``: system CAs, none, or a CA bundle/dir."""
    if verify is False:
        return False
    if verify is True:
        return ssl.create_default_context()
    try:
        if os.path.isdir(verify):
            return ssl.create_default_context(capath=verify)
        return ssl.create_default_context(cafile=verify)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(
            f"LM verify={verify!r}: cannot load CA certificates: {exc}"
        ) from None


class _TooLarge(Exception):
    pass


class HTTPEndpoint:
    """The session, proxy and TLS settings of one LM, and its attempts in flight.

    Construct anywhere; every other method runs on the I/O loop's thread.
    """

    def __init__(
        self,
        lm: LM,
        io: IOLoop,
        report: Callable[[AttemptOutcome], None],
        *,
        limit: int,
    ) -> None:
        self.lm = lm
        self.url = lm.endpoint
        self._io = io
        self._report = report
        self._limit = limit
        self._https = self.url.startswith("https://")
        self._ssl = ssl_context_for(lm.verify) if self._https else True
        request_url, userinfo = strip_userinfo(lm.request_url())
        self._url = yarl.URL(request_url)
        self._stream_url = yarl.URL(strip_userinfo(lm.request_url(stream=True))[0])
        self._proxy: ProxyRoute | None = resolve_proxy(self.url, lm.proxy)
        self._proxy_url = None if self._proxy is None else yarl.URL(self._proxy.url)

        self._headers = {
            "User-Agent": USER_AGENT,
            "Accept-Encoding": "gzip, deflate",
            **lm.provider_impl.headers(lm.api_key),
        }
        self._secrets = [*lm.secrets]
        if userinfo is not None and "Authorization" not in self._headers:  # user:password@
            basic = base64.b64encode(":".join(userinfo).encode("utf-8")).decode("ascii")
            self._headers["Authorization"] = f"Basic {basic}"
            self._secrets.append(basic)
        # Proxy credentials: on the CONNECT for https; on the request itself for plain
        # http, which the proxy receives whole (aiohttp sends proxy_headers on CONNECT only).
        self._proxy_headers: dict[str, str] | None = None
        if self._proxy is not None and self._proxy.authorization is not None:
            if self._https:
                self._proxy_headers = {"Proxy-Authorization": self._proxy.authorization}
            else:
                self._headers["Proxy-Authorization"] = self._proxy.authorization
        self._session: aiohttp.ClientSession | None = None
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._streamed: set[int] = set()
        self._closed = False

    @property
    def proxy_url(self) -> str | None:
        """The proxy in use (credentials hidden), or None."""
        return None if self._proxy is None else redact_url(self._proxy.url)

    # -- loop thread -------------------------------------------------------------

    def _open_session(self) -> aiohttp.ClientSession:
        connector = StrictReuseConnector(
            limit=self._limit,
            limit_per_host=0,
            ssl=self._ssl,
            keepalive_timeout=KEEPALIVE_SECONDS,
        )
        return aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None),  # each attempt has its own deadline
            auto_decompress=True,
            trust_env=False,  # the proxy was resolved once, in resolve_proxy
            cookie_jar=aiohttp.DummyCookieJar(),  # an LM API sets no cookies worth keeping
        )

    def start(self, attempt: Attempt) -> None:
        """Start ``attempt`` as a task; its outcome goes to ``report``."""
        if self._closed:
            self._report(
                AttemptOutcome(
                    attempt.call_id, attempt.permit, self._connection_error("the Client stopped")
                )
            )
            return
        if self._session is None:
            self._session = self._open_session()
        task = asyncio.get_running_loop().create_task(self._run(attempt))
        self._tasks[attempt.call_id] = task

    def cancel(self, call_id: int) -> None:
        """Cancel the attempt of ``call_id`` if it is in flight (its outcome is not reported)."""
        task = self._tasks.pop(call_id, None)
        if task is not None:
            task.cancel()

    def close(self) -> None:
        """Cancel every attempt and close the session (the loop's stop waits for it)."""
        self._closed = True
        tasks, self._tasks = self._tasks, {}
        for task in tasks.values():
            task.cancel()
        session, self._session = self._session, None
        if session is not None:
            self._io.closing(self._close_session(session, list(tasks.values())))

    @staticmethod
    async def _close_session(
        session: aiohttp.ClientSession, tasks: list[asyncio.Task[None]]
    ) -> None:
        if tasks:
            await asyncio.wait(tasks)
        await session.close()

    async def _run(self, attempt: Attempt) -> None:
        try:
            outcome = await self._attempt(attempt)
        except asyncio.CancelledError:
            return
        except Exception as exc:  # a bug must still complete the call
            logger.exception("unexpected error calling %s at %s", self.lm.model, self.url)
            outcome = LMError(
                f"unexpected {type(exc).__name__} calling {self.lm.model} at {self.url}",
                model=self.lm.model,
                endpoint=self.url,
            )
        finally:
            streamed = attempt.call_id in self._streamed
            self._streamed.discard(attempt.call_id)  # a cancelled attempt's mark goes too
        if self._tasks.pop(attempt.call_id, None) is None:
            return  # cancelled after it finished
        self._report(AttemptOutcome(attempt.call_id, attempt.permit, outcome, streamed))

    async def _attempt(self, attempt: Attempt) -> LMResponse | LMError:
        session = self._session
        assert session is not None
        try:
            async with asyncio.timeout(attempt.timeout):
                response = await session.post(
                    self._url if attempt.sink is None else self._stream_url,
                    data=attempt.body,
                    headers=self._headers,
                    allow_redirects=False,
                    proxy=self._proxy_url,
                    proxy_headers=self._proxy_headers,
                )
                try:
                    outcome = await self._read(response, attempt)
                except BaseException:
                    response.close()  # never back to the pool half-read
                    raise
                if not isinstance(outcome, LMResponse):
                    response.close()  # a connection is reused only after a good reply,
                    if not isinstance(outcome, LMHTTPStatusError):  # or a whole HTTP error
                        retire(response)  # also when aiohttp pooled it as the body ended
                return outcome
        except TimeoutError:
            return LMTimeoutError(
                f"{self.lm.model} at {self.url} did not answer within {attempt.timeout:g}s",
                model=self.lm.model,
                endpoint=self.url,
            )
        except (aiohttp.ClientConnectorCertificateError, aiohttp.ClientSSLError) as exc:
            return LMTLSError(
                f"TLS to {self.url} for {self.lm.model} failed: {self._redact(str(exc))}; "
                "pass LM(verify='/path/to/ca.pem') for a private CA",
                model=self.lm.model,
                endpoint=self.url,
            )
        except aiohttp.ClientHttpProxyError as exc:
            return self._connection_error(
                f"the proxy {self.proxy_url} refused the request: HTTP {exc.status} {exc.message}"
            )
        except aiohttp.ClientProxyConnectionError as exc:
            return self._connection_error(
                f"cannot reach the proxy {self.proxy_url}: {exc.os_error}"
            )
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            return self._connection_error(f"{type(exc).__name__}: {exc}")

    async def _read(
        self, response: aiohttp.ClientResponse, attempt: Attempt
    ) -> LMResponse | LMError:
        lm, status = self.lm, response.status
        if status >= 300:
            excerpt_bytes = await self._read_capped(response, BODY_EXCERPT_BYTES, truncate=True)
            text = excerpt_bytes.decode("utf-8", "replace")
            excerpt = self._redact(text[:BODY_EXCERPT_CHARS])
            detail = self._provider_message(text) or excerpt
            if 300 <= status < 400:
                target = response.headers.get("Location", "")
                detail = f"redirect to {self._redact(target)!r}, not followed"
            return LMHTTPStatusError(
                f"{self.url} answered HTTP {status} for {lm.model}: {detail}",
                status_code=status,
                body_excerpt=excerpt,
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
                model=lm.model,
                endpoint=self.url,
            )
        if attempt.sink is not None and response.content_type == "text/event-stream":
            return await self._read_stream(response, attempt)
        try:
            body = await self._read_capped(response, lm.max_response_bytes)
        except _TooLarge:
            return self._too_large()
        try:
            payload = json.loads(body)
        except ValueError:
            excerpt = self._redact(body[:BODY_EXCERPT_CHARS].decode("utf-8", "replace"))
            return MalformedResponseError(
                f"malformed reply from {self.url} for {lm.model}: not JSON: {excerpt!r}",
                model=lm.model,
                endpoint=self.url,
            )
        try:
            return lm.provider_impl.parse(payload, model=lm.model, endpoint=self.url)
        except LMError as exc:  # malformed, or the content was blocked
            return exc

    def _provider_message(self, text: str) -> str | None:
        """The provider's own words in an error body (redacted, shortened), if it has any."""
        try:
            message = self.lm.provider_impl.error_message(json.loads(text))
        except ValueError:
            return None
        return None if message is None else self._redact(message[:BODY_EXCERPT_CHARS])

    async def _read_stream(
        self, response: aiohttp.ClientResponse, attempt: Attempt
    ) -> LMResponse | LMError:
        """Read Server-Sent Events, handing each piece of text to the sink as it arrives."""
        sink, number = attempt.sink, attempt.number
        assert sink is not None
        decoder = self.lm.provider_impl.stream_decoder(model=self.lm.model, endpoint=self.url)
        cap, size = self.lm.max_response_bytes, 0
        data: list[str] = []
        try:
            async for raw in response.content:  # one line at a time
                size += len(raw)
                if size > cap:
                    return self._too_large()
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if line:
                    field, _, value = line.partition(":")
                    if field == "data":
                        data.append(value.removeprefix(" "))
                    continue  # comments (":..."), event names, ids, retry hints
                if not data:
                    continue
                event, data = "\n".join(data), []
                if decoder.done(event):
                    return decoder.result()
                for choice, text in decoder.feed(event):
                    self._streamed.add(attempt.call_id)
                    sink.put(StreamChunk(choice, text, number))
            final = decoder.at_end()
        except LMError as exc:  # malformed, blocked, or an error event
            return exc
        if final is not None:
            return final
        return self._connection_error("the stream ended before its final event")

    def _too_large(self) -> MalformedResponseError:
        return MalformedResponseError(
            f"reply from {self.url} for {self.lm.model} is larger than "
            f"max_response_bytes={self.lm.max_response_bytes} (decoded)",
            model=self.lm.model,
            endpoint=self.url,
        )

    @staticmethod
    async def _read_capped(
        response: aiohttp.ClientResponse, cap: int, *, truncate: bool = False
    ) -> bytes:
        """The decoded body, at most ``cap`` bytes (_TooLarge past it, unless ``truncate``)."""
        length = response.content_length
        if length is not None and length > cap and not truncate and (
            "Content-Encoding" not in response.headers
        ):
            raise _TooLarge
        chunks: list[bytes] = []
        size = 0
        content = response.content
        while True:
            chunk = await content.readany()
            if not chunk:
                break
            size += len(chunk)
            if size > cap:
                if truncate:
                    chunks.append(chunk[: len(chunk) - (size - cap)])
                    break
                raise _TooLarge
            chunks.append(chunk)
        return b"".join(chunks)

    def _connection_error(self, detail: str) -> LMConnectionError:
        return LMConnectionError(
            f"connection to {self.url} for {self.lm.model} failed: {self._redact(detail)}",
            model=self.lm.model,
            endpoint=self.url,
        )

    def _redact(self, text: str) -> str:
        proxy = self._proxy
        proxy_auth = proxy.authorization if proxy is not None else None
        return redact_text(text, [*self._secrets, proxy_auth])
