"""HostileServer: an OpenAI-compatible chat-completions endpoint that misbehaves on purpose.

For tests of an LM HTTP client's defences. Each behaviour is one way a real provider,
or a proxy in front of it, goes wrong: a reply that trickles, never ends, is huge, is a
gzip bomb, arrives unasked (a stale reply a pooled connection would hand to the next
request), redirects elsewhere, or stops after its headers. A normal reply's content is
``"reply to: "`` + the last message's content, so a test can tell whose reply it got.

One asyncio loop on one thread serves every connection, plain or TLS: stop() cancels
replies mid-write (even to a client that stopped reading), closes every connection and
joins the thread within two seconds. Every wait is bounded; big bodies are generated
piece by piece, so memory stays small whatever the reply's size.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import logging
import socket
import ssl
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from http import HTTPStatus
from types import TracebackType
from typing import Any, NamedTuple

__all__ = ["HOSTILE_BEHAVIOURS", "STALE_REPLY_CONTENT", "HostileServer"]

logger = logging.getLogger(__name__)

_MIB = 1 << 20
_CHUNK = 64 * 1024
_MAX_HEAD = 64 * 1024
_MAX_BODY = 16 * _MIB
_IDLE_TIMEOUT = 60.0  # a keep-alive connection idle this long is closed
_IO_TIMEOUT = 30.0  # a request body or a write stalled this long drops the connection
_HANDSHAKE_TIMEOUT = 10.0
_CLOSE_TIMEOUT = 1.0  # a graceful close (TLS close_notify) waits no longer, then aborts
_CANCEL_TIMEOUT = 1.0
_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 2.0
_ACCEPTS_PER_CALL = 64
_CHAT_PATHS = frozenset({"/v1/chat/completions", "/chat/completions"})
_SERVER_NAME = "dspex-hostile/1.0"
_MODEL = "hostile-model"
_REDIRECT_TO = "http://127.0.0.1:1/elsewhere"

STALE_REPLY_CONTENT = "STALE unsolicited reply"
"""The content of the unsolicited replies of the ``extra_reply_*`` behaviours."""

_DEFAULT_OPTIONS: dict[str, dict[str, float]] = {
    "normal": {},
    "trickle": {"interval": 1.0},
    "endless": {},
    "oversized": {"size": 200 * _MIB},
    "gzip_bomb": {"decoded_size": 632 * _MIB},
    "extra_reply_same_read": {},
    "extra_reply_later": {"delay": 0.05},
    "redirect": {},
    "close_after_headers": {},
    "empty_stream_then_close": {},
}
_INTEGER_OPTIONS = frozenset({"size", "decoded_size"})

HOSTILE_BEHAVIOURS: tuple[str, ...] = tuple(_DEFAULT_OPTIONS)
"""Every behaviour :class:`HostileServer` knows, in a stable order."""


def _completion(ident: str, content: str) -> dict[str, Any]:
    return {
        "id": ident,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": _MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


def _document_ends() -> tuple[bytes, bytes]:
    """The bytes of a completion before and after its content's characters."""
    marker = "@@FILL@@"
    text = json.dumps(_completion("chatcmpl-hostile-big", marker))
    prefix, suffix = text.split(marker)
    return prefix.encode("ascii"), suffix.encode("ascii")


_BIG_PREFIX, _BIG_SUFFIX = _document_ends()
_FILLER = b" " * _CHUNK


def _padded_document(size: int) -> Iterator[bytes]:
    """``size`` bytes, in pieces of at most 64 KiB: a completion whose content is spaces.

    Valid JSON when ``size`` leaves room for the completion's own bytes, else its start.
    """
    head = _BIG_PREFIX[:size]
    yield head
    remaining = size - len(head)
    padding = max(0, remaining - len(_BIG_SUFFIX))
    remaining -= padding
    while padding > 0:
        piece = _FILLER[: min(padding, _CHUNK)]
        padding -= len(piece)
        yield piece
    if remaining > 0:
        yield _BIG_SUFFIX[:remaining]


# --- gzip bomb ---------------------------------------------------------------------

_BOMB_SEGMENT = _MIB
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"  # deflate, no name, mtime 0
_bomb_cache: dict[int, bytes] = {}
_bomb_lock = threading.Lock()


def _deflate_piece(data: bytes, *, final: bool) -> bytes:
    """Raw deflate of ``data`` with no back-reference before it, ending byte-aligned.

    Such pieces concatenate into one valid deflate stream (only the last is ``final``).
    """
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush(
        zlib.Z_FINISH if final else zlib.Z_FULL_FLUSH
    )


def _gzip_bomb(decoded_size: int) -> bytes:
    """A gzip body that decodes to ``decoded_size`` bytes: a completion whose content is spaces.

    Built without the decoded bytes in memory: one 1 MiB run of spaces is compressed
    once and its deflate piece repeated (about 1 KB per MiB: 632 MiB give ~650 KB); the
    CRC is computed over the repeated run. Cached per size for the process.
    """
    minimum = len(_BIG_PREFIX) + len(_BIG_SUFFIX)
    if decoded_size < minimum:
        raise ValueError(f"decoded_size must be at least {minimum} bytes, got {decoded_size}")
    with _bomb_lock:
        cached = _bomb_cache.get(decoded_size)
        if cached is not None:
            return cached
        segments, rest = divmod(decoded_size - minimum, _BOMB_SEGMENT)
        parts = [_GZIP_HEADER, _deflate_piece(_BIG_PREFIX, final=False)]
        crc = zlib.crc32(_BIG_PREFIX)
        if segments:
            run = b" " * _BOMB_SEGMENT
            parts.extend([_deflate_piece(run, final=False)] * segments)
            for _ in range(segments):
                crc = zlib.crc32(run, crc)
        tail = b" " * rest + _BIG_SUFFIX
        parts.append(_deflate_piece(tail, final=True))
        crc = zlib.crc32(tail, crc)
        parts.append(struct.pack("<II", crc, decoded_size & 0xFFFFFFFF))
        body = _bomb_cache[decoded_size] = b"".join(parts)
        return body


# --- HTTP wire format ------------------------------------------------------------------


class _Request(NamedTuple):
    method: str
    path: str
    body: bytes
    keep_alive: bool


class _BadRequest(Exception):
    """A request the server cannot read: answer 400 and close."""


class _Idle(Exception):
    """No request arrived within the idle wait."""


def _head(status: int, headers: list[tuple[str, str]], *, close: bool = False) -> bytes:
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}", f"Server: {_SERVER_NAME}"]
    lines.extend(f"{name}: {value}" for name, value in headers)
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _json_head(status: int, length: int, *, close: bool = False) -> bytes:
    headers = [("Content-Type", "application/json"), ("Content-Length", str(length))]
    return _head(status, headers, close=close)


def _response(status: int, body: bytes, *, close: bool = False) -> bytes:
    return _json_head(status, len(body), close=close) + body


def _error(status: int, message: str, *, close: bool = False) -> bytes:
    payload = {"error": {"message": message, "type": "invalid_request_error", "code": status}}
    return _response(status, json.dumps(payload).encode("utf-8"), close=close)


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode("ascii") + data + b"\r\n"


def _last_content(body: bytes) -> str:
    """The last message's content (non-strings as JSON); "" when there is none."""
    try:
        payload = json.loads(body)
    except ValueError:
        return ""
    messages = payload.get("messages") if isinstance(payload, dict) else None
    if not isinstance(messages, list) or not messages or not isinstance(messages[-1], dict):
        return ""
    content = messages[-1].get("content")
    if content is None:
        return ""
    return content if isinstance(content, str) else json.dumps(content)


async def _read_request(reader: asyncio.StreamReader, idle: float) -> _Request | None:
    """The next request; None when the client closed between requests.

    _Idle if no request head arrived within ``idle`` seconds (the head is consumed only
    when whole, so nothing is lost); _BadRequest for a request this server cannot read.
    """
    try:
        async with asyncio.timeout(idle):
            raw = await reader.readuntil(b"\r\n\r\n")
    except TimeoutError:
        raise _Idle from None
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise
    lines = raw.decode("latin-1").split("\r\n")
    parts = lines[0].split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        raise _BadRequest("malformed request line")
    method, target, version = parts
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name:
            headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        raise _BadRequest("chunked request bodies are not supported; send Content-Length")
    try:
        length = int(headers.get("content-length", "0"))
    except ValueError:
        raise _BadRequest("invalid Content-Length") from None
    if not 0 <= length <= _MAX_BODY:
        raise _BadRequest(f"Content-Length must be between 0 and {_MAX_BODY}")
    async with asyncio.timeout(_IO_TIMEOUT):
        body = await reader.readexactly(length)
    connection = headers.get("connection", "").lower()
    keep_alive = connection != "close" if version == "HTTP/1.1" else connection == "keep-alive"
    return _Request(method, target.partition("?")[0], body, keep_alive)


def _write(writer: asyncio.StreamWriter, data: bytes) -> None:
    """Hand ``data`` to the transport (which sends what the socket takes at once)."""
    if writer.is_closing():
        raise ConnectionResetError("the connection is closed")
    writer.write(data)


async def _flush(writer: asyncio.StreamWriter) -> None:
    """Wait (bounded) until the transport's buffer drains, then yield to the loop.

    The yield lets stop() in even while a fast reader keeps the buffers from filling.
    """
    async with asyncio.timeout(_IO_TIMEOUT):
        await writer.drain()
    await asyncio.sleep(0)


async def _send(writer: asyncio.StreamWriter, data: bytes) -> None:
    """Write ``data`` and wait until it is on its way."""
    _write(writer, data)
    await _flush(writer)


# --- the server ------------------------------------------------------------------------


class _Counters:
    """Counts shared with other threads, and waits on them."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self.connections = 0
        self.open = 0
        self.requests = 0
        self.extra = 0
        self.extra_written = 0

    def add(
        self,
        *,
        connections: int = 0,
        open_: int = 0,
        requests: int = 0,
        extra: int = 0,
        extra_written: int = 0,
    ) -> None:
        """Change the counts and wake every waiter."""
        with self._changed:
            self.connections += connections
            self.open += open_
            self.requests += requests
            self.extra += extra
            self.extra_written += extra_written
            self._changed.notify_all()

    def wait(self, predicate: Callable[[_Counters], bool], timeout: float) -> bool:
        """Block until ``predicate(self)`` holds; False after ``timeout`` seconds."""
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self), timeout)


class HostileServer:
    """An OpenAI-compatible chat endpoint on ``host`` that misbehaves as ``behaviour`` says.

    Behaviours (see :data:`HOSTILE_BEHAVIOURS`; options in brackets):

    - ``normal``: a valid completion per request, keep-alive.
    - ``trickle`` [``interval`` = 1.0 s]: a 200 with the right Content-Length, then the
      body one byte per interval.
    - ``endless``: a chunked 200 whose 64 KiB chunks (a completion's start, then spaces)
      never end, written as fast as the client reads.
    - ``oversized`` [``size`` = 200 MiB]: a 200 with ``Content-Length: size`` and that
      many bytes, generated piece by piece (a completion whose content is spaces).
    - ``gzip_bomb`` [``decoded_size`` = 632 MiB]: ``Content-Encoding: gzip`` and a body
      of ~650 KB decoding to ``decoded_size`` bytes (built once per size).
    - ``extra_reply_same_read``: the first reply on each connection is followed, in
      the same write, by a second complete 200 whose content is
      :data:`STALE_REPLY_CONTENT`.
    - ``extra_reply_later`` [``delay`` = 0.05 s]: the first reply on each connection is
      followed, once the connection has been idle ``delay`` seconds, by an unsolicited
      stale 200; :meth:`wait_extra_sent` waits until it is written.
    - ``redirect``: ``301 Moved Permanently`` to ``http://127.0.0.1:1/elsewhere``.
    - ``close_after_headers``: a 200's headers (with Content-Length), then the
      connection closes with no body.
    - ``empty_stream_then_close``: the first chat request gets a kept-alive 200
      ``text/event-stream`` whose chunked body ends at once, with no event and no
      ``data: [DONE]`` (llama-cpp-python's server when a prompt overflows its context);
      the next request on that connection is read and the connection closed unanswered
      (that server's close a moment later, made deterministic). Other requests get
      normal replies.

    Only ``POST {url}/chat/completions`` misbehaves; other paths get a plain 404. With
    ``ssl_context`` every behaviour is served over TLS. Use as a context manager or
    ``start()``/``stop()``; ``.url`` is the ``api_base`` (``http(s)://HOST:PORT/v1``).
    A keep-alive connection idle for 60 s is closed, and one whose request body or
    reply write stalls for 30 s is dropped, so nothing waits forever.
    """

    def __init__(
        self,
        behaviour: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
        **options: float,
    ) -> None:
        if behaviour not in _DEFAULT_OPTIONS:
            known = ", ".join(HOSTILE_BEHAVIOURS)
            raise ValueError(f"unknown behaviour {behaviour!r}; known behaviours: {known}")
        self.behaviour = behaviour
        self._options = self._resolve_options(behaviour, options)
        self._host = host
        self._requested_port = port
        self._ssl = ssl_context
        self._counters = _Counters()
        self._ids = itertools.count(1)
        self._bomb = b""
        self._emptied = False  # empty_stream_then_close: the empty stream was sent
        self._port = 0
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @staticmethod
    def _resolve_options(behaviour: str, options: dict[str, float]) -> dict[str, float]:
        """The behaviour's options with defaults filled in; TypeError/ValueError if bad."""
        resolved = dict(_DEFAULT_OPTIONS[behaviour])
        for name, value in options.items():
            if name not in resolved:
                accepted = ", ".join(resolved) or "none"
                raise TypeError(
                    f"behaviour {behaviour!r} takes no option {name!r} (its options: {accepted})"
                )
            integer = name in _INTEGER_OPTIONS
            if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
                kind = "an int" if integer else "a number"
                raise TypeError(f"option {name!r} must be {kind}, got {value!r}")
            if value < 0:
                raise ValueError(f"option {name!r} must be >= 0, got {value!r}")
            resolved[name] = value
        minimum = len(_BIG_PREFIX) + len(_BIG_SUFFIX)
        if resolved.get("decoded_size", minimum) < minimum:
            raise ValueError(f"option 'decoded_size' must be at least {minimum} bytes")
        return resolved

    # --- lifecycle -------------------------------------------------------------------

    def start(self) -> HostileServer:
        """Bind, then serve on a background thread; returns self."""
        if self._thread is not None:
            raise RuntimeError("HostileServer is already running")
        if self.behaviour == "gzip_bomb":
            self._bomb = _gzip_bomb(int(self._options["decoded_size"]))
        listener = socket.create_server((self._host, self._requested_port))
        listener.setblocking(False)
        self._port = listener.getsockname()[1]
        ready = threading.Event()
        thread = threading.Thread(
            target=self._run,
            args=(listener, ready),
            name=f"dspex-hostile-{self.behaviour}-{self._port}",
            daemon=True,
        )
        self._thread = thread
        thread.start()
        if not ready.wait(_START_TIMEOUT) or self._wake is None:
            self.stop()
            raise RuntimeError(f"HostileServer ({self.behaviour}) failed to start")
        logger.debug("hostile server (%s) listening on %s", self.behaviour, self.url)
        return self

    def stop(self, timeout: float = _STOP_TIMEOUT) -> None:
        """Close the listening socket and every connection, mid-reply or not; join the thread.

        TimeoutError if the thread did not end within ``timeout`` seconds.
        """
        thread, loop, wake = self._thread, self._loop, self._wake
        if thread is None:
            return
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                loop.call_soon_threadsafe(wake.set)
        thread.join(timeout)
        if thread.is_alive():
            raise TimeoutError(
                f"hostile server thread {thread.name} still alive after {timeout:g}s"
            )
        self._thread = self._loop = self._wake = None

    def __enter__(self) -> HostileServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """Whether the server is serving."""
        return self._thread is not None

    @property
    def host(self) -> str:
        """The bound host."""
        return self._host

    @property
    def port(self) -> int:
        """The bound port (raises if not started)."""
        if self._thread is None:
            raise RuntimeError("HostileServer is not running; call start() or use `with`")
        return self._port

    @property
    def url(self) -> str:
        """The OpenAI ``api_base``: ``http(s)://HOST:PORT/v1``."""
        scheme = "https" if self._ssl is not None else "http"
        return f"{scheme}://{self._host}:{self.port}/v1"

    def __repr__(self) -> str:
        where = self.url if self._thread is not None else "stopped"
        return f"HostileServer({self.behaviour!r}, {where})"

    # --- counters (any thread) -----------------------------------------------------------

    @property
    def connections(self) -> int:
        """Connections accepted so far."""
        return self._counters.connections

    @property
    def open_connections(self) -> int:
        """Connections accepted and not yet closed."""
        return self._counters.open

    @property
    def requests(self) -> int:
        """Requests read so far (whole: head and body)."""
        return self._counters.requests

    @property
    def extra_replies(self) -> int:
        """Unsolicited stale replies written so far (``extra_reply_*`` behaviours)."""
        return self._counters.extra

    def wait_extra_sent(self, timeout: float = 5.0, count: int = 1) -> bool:
        """Wait until ``count`` stale replies have been written; False on timeout.

        A stale reply counts as its write starts: a blocking read then gets it.
        """
        return self._counters.wait(lambda c: c.extra >= count, timeout)

    def wait_extra_written(self, timeout: float = 5.0, count: int = 1) -> bool:
        """Wait until ``count`` stale replies were handed to the socket (on loopback: they
        are in the client's receive buffer); False on timeout."""
        return self._counters.wait(lambda c: c.extra_written >= count, timeout)

    def wait_connections_closed(self, timeout: float = 5.0) -> bool:
        """Wait until no connection is open (e.g. the client closed its own); False on timeout."""
        return self._counters.wait(lambda c: c.open == 0, timeout)

    # --- the loop thread ---------------------------------------------------------------

    def _run(self, listener: socket.socket, ready: threading.Event) -> None:
        try:
            asyncio.run(self._serve(listener, ready))
        except Exception:
            logger.exception("hostile server (%s) loop failed", self.behaviour)
        finally:
            listener.close()
            ready.set()

    async def _serve(self, listener: socket.socket, ready: threading.Event) -> None:
        """Accept until stop() wakes the loop, then cancel every connection's task."""
        loop = self._loop = asyncio.get_running_loop()
        wake = self._wake = asyncio.Event()
        loop.add_reader(listener, self._accept, listener)
        ready.set()
        try:
            await wake.wait()
        finally:
            loop.remove_reader(listener)
            listener.close()
            # Let connections accepted last reach their transport's connection_made: a
            # TLS transport cancelled before it would never close its socket.
            for _ in range(3):
                await asyncio.sleep(0)
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks, timeout=_CANCEL_TIMEOUT)

    def _accept(self, listener: socket.socket) -> None:
        """Accept every waiting connection (a reader callback: no await, nothing lost)."""
        for _ in range(_ACCEPTS_PER_CALL):
            try:
                conn, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. out of file descriptors: try again later
                logger.debug("hostile server (%s): accept failed: %r", self.behaviour, exc)
                return
            conn.setblocking(False)
            self._counters.add(connections=1, open_=1)
            task = asyncio.get_running_loop().create_task(self._connection(conn))
            self._tasks.add(task)
            task.add_done_callback(functools.partial(self._finished, conn=conn))

    def _finished(self, task: asyncio.Task[None], *, conn: socket.socket) -> None:
        """A connection's task ended: close its socket even if the task never ran."""
        self._tasks.discard(task)
        conn.close()
        self._counters.add(open_=-1)

    async def _connection(self, conn: socket.socket) -> None:
        """Serve one connection (TLS handshake first, if any) until it closes."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=_MAX_HEAD)
        protocol = asyncio.StreamReaderProtocol(reader)
        transport: asyncio.Transport | None = None
        try:
            if self._ssl is None:
                transport, _ = await loop.connect_accepted_socket(lambda: protocol, conn)
            else:
                transport, _ = await loop.connect_accepted_socket(
                    lambda: protocol,
                    conn,
                    ssl=self._ssl,
                    ssl_handshake_timeout=_HANDSHAKE_TIMEOUT,
                    ssl_shutdown_timeout=_CLOSE_TIMEOUT,
                )
            writer = asyncio.StreamWriter(transport, protocol, reader, loop)
            await self._converse(reader, writer)
        except (OSError, EOFError, asyncio.LimitOverrunError) as exc:
            # the client closed or reset, a TLS handshake failed, a read or write stalled
            logger.debug("hostile server (%s): connection ended: %r", self.behaviour, exc)
        finally:
            if transport is not None:
                transport.abort()

    async def _converse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Read requests and answer them until the client or the behaviour closes."""
        first = True
        stale_due = False
        emptied = False
        while True:
            try:
                request = await _read_request(
                    reader, self._options["delay"] if stale_due else _IDLE_TIMEOUT
                )
            except _Idle:
                if not stale_due:
                    break
                self._counters.add(extra=1)  # first: a reader may see the bytes at once
                _write(writer, self._completion_response(STALE_REPLY_CONTENT))
                stale_due = False
                await _flush(writer)
                self._counters.add(extra_written=1)
                continue
            except _BadRequest as exc:
                await _send(writer, _error(400, str(exc), close=True))
                break
            if request is None:
                break
            self._counters.add(requests=1)
            if request.method != "POST" or request.path not in _CHAT_PATHS:
                message = f"no route for {request.method} {request.path}"
                await _send(writer, _error(404, message, close=not request.keep_alive))
                keep_open = request.keep_alive
            elif emptied:
                break  # empty_stream_then_close: the request that reused the connection
            else:
                was_emptied = self._emptied
                keep_open = await self._misbehave(request, writer, first=first)
                stale_due = stale_due or (first and self.behaviour == "extra_reply_later")
                emptied = self._emptied and not was_emptied  # this request got the empty stream
                first = False
            if not keep_open:
                break
        writer.close()
        async with asyncio.timeout(_CLOSE_TIMEOUT):
            await writer.wait_closed()

    def _completion_response(self, content: str, *, close: bool = False) -> bytes:
        body = json.dumps(_completion(f"chatcmpl-hostile-{next(self._ids)}", content))
        return _response(200, body.encode("utf-8"), close=close)

    async def _misbehave(
        self, request: _Request, writer: asyncio.StreamWriter, *, first: bool
    ) -> bool:
        """Answer one chat request as the behaviour says; whether the connection stays open."""
        behaviour = self.behaviour
        close = not request.keep_alive
        content = "reply to: " + _last_content(request.body)
        if behaviour == "trickle":
            body = json.dumps(_completion(f"chatcmpl-hostile-{next(self._ids)}", content))
            data = body.encode("utf-8")
            await _send(writer, _json_head(200, len(data), close=close))
            for index in range(len(data)):
                await asyncio.sleep(self._options["interval"])
                await _send(writer, data[index : index + 1])
        elif behaviour == "endless":
            headers = [("Content-Type", "application/json"), ("Transfer-Encoding", "chunked")]
            await _send(writer, _head(200, headers) + _chunk(_BIG_PREFIX))
            chunk = _chunk(_FILLER)
            while True:
                await _send(writer, chunk)
        elif behaviour == "oversized":
            size = int(self._options["size"])
            await _send(writer, _json_head(200, size, close=close))
            for piece in _padded_document(size):
                await _send(writer, piece)
        elif behaviour == "gzip_bomb":
            headers = [
                ("Content-Type", "application/json"),
                ("Content-Encoding", "gzip"),
                ("Content-Length", str(len(self._bomb))),
            ]
            await _send(writer, _head(200, headers, close=close) + self._bomb)
        elif behaviour == "redirect":
            html = b"<html><body><h1>Moved Permanently</h1></body></html>\n"
            headers = [
                ("Location", _REDIRECT_TO),
                ("Content-Type", "text/html"),
                ("Content-Length", str(len(html))),
            ]
            await _send(writer, _head(301, headers, close=close) + html)
        elif behaviour == "empty_stream_then_close" and not self._emptied:  # once a server
            self._emptied = True
            headers = [("Content-Type", "text/event-stream"), ("Transfer-Encoding", "chunked")]
            await _send(writer, _head(200, headers) + b"0\r\n\r\n")
            return True  # _converse closes it when its next request comes
        elif behaviour == "close_after_headers":
            body = json.dumps(_completion(f"chatcmpl-hostile-{next(self._ids)}", content))
            await _send(writer, _json_head(200, len(body.encode("utf-8"))))
            return False
        else:  # normal, extra_reply_*
            data = self._completion_response(content, close=close)
            if first and behaviour == "extra_reply_same_read":
                self._counters.add(extra=1)
                _write(writer, data + self._completion_response(STALE_REPLY_CONTENT))
                await _flush(writer)
            else:
                await _send(writer, data)
        return not close
