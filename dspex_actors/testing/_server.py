"""LocalLMServer: a real OpenAI-compatible HTTP server on 127.0.0.1 for tests and demos.

One asyncio event loop on one thread (``_server_loop.py``) serves every connection;
httptools reads the requests (``_connection.py``). Built-in responders answer on the
loop thread right away; replies timed for later (latency, jitter, hang faults) are
held as loop timers. Responders passed in as callables may block, so they run on
worker threads (``_workers.py``) and only their result comes back to the loop
(``call_soon_threadsafe``). A reply is computed when its request arrives and leaves
when due, so simultaneous replies leave together. A streamed reply (``"stream": true``,
Server-Sent Events over a chunked body, encoded by ``_sse.py``) is computed whole on
arrival too; with a stream interval its events go out one at a time, the rest of the
stream held by a timer between them. Reply bytes come from ``_http_replies.py``.
stop() abandons held replies and streams and closes every connection, so it returns
promptly with no thread, socket or loop left (workers stuck in a responder are joined
with a timeout). Raw-socket misbehaviour (trickling, desynchronised replies) is
``_hostile.py``'s.
"""

from __future__ import annotations

import itertools
import json
import logging
import random
import ssl
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from json.encoder import encode_basestring_ascii as _json_str
from types import TracebackType
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlsplit

from dspex_actors.testing._connection import Channel, ProtocolError, Request
from dspex_actors.testing._faults import ErrorReply, Fault, FaultPlan, FaultRates
from dspex_actors.testing._http_replies import LAST_CHUNK, body_chunk, reply_bytes, stream_head
from dspex_actors.testing._responders import (
    ChatRequest,
    Responder,
    resolve_responder,
    runs_inline,
)
from dspex_actors.testing._routes import Route, route_for
from dspex_actors.testing._server_loop import ServerLoop
from dspex_actors.testing._sse import DONE, chunk_payloads, sse_event
from dspex_actors.testing._stats import ServerStats, StatsRecorder
from dspex_actors.testing._tool_calls import ToolCallReply, openai_choice
from dspex_actors.testing._wire import WireError, WireProtocol, prompt_tokens
from dspex_actors.testing._workers import WorkerPool

__all__ = ["LocalLMServer"]

logger = logging.getLogger(__name__)

_CHAT_PATHS = frozenset({"/v1/chat/completions", "/chat/completions"})
_MODELS_PATHS = frozenset({"/v1/models", "/models"})
_CONTROL_PREFIX = "/_dspex/"
_ERROR_TYPES = {
    400: "invalid_request_error",
    404: "not_found_error",
    429: "rate_limit_error",
}


def _error_body(status: int, message: str) -> bytes:
    error_type = _ERROR_TYPES.get(
        status, "server_error" if status >= 500 else "invalid_request_error"
    )
    payload = {"error": {"message": message, "type": error_type, "param": None, "code": status}}
    return json.dumps(payload).encode("utf-8")


def _format_retry_after(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else repr(float(seconds))


class _BadRequest(Exception):
    """A request the server rejects with HTTP 400."""


class _Reply(NamedTuple):
    """A chat reply's status, body and the usage it adds to the counters."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()
    prompt_tokens: int = 0
    completion_tokens: int = 0


class _StreamReply(NamedTuple):
    """A streamed chat reply: its SSE events and how many of them are already written."""

    events: tuple[bytes, ...]
    """Every event to write, ``data: [DONE]`` last unless the stream is cut."""
    interval: float
    prompt_tokens: int
    completion_tokens: int
    cut: bool = False
    """Close the connection after the events without ending the body (``stream_cut``)."""
    sent: int = 0


class _CutReply(NamedTuple):
    """A reply that is not streamed, to be cut half-way through its body (``stream_cut``)."""

    reply: _Reply


_Answer = _Reply | _StreamReply | _CutReply


class _Job(NamedTuple):
    """A chat request that gets a model answer (possibly faulted), due ``delay`` after arrival."""

    request: ChatRequest
    responder: Responder
    fault: Fault | None
    delay: float
    route: Route | None = None
    """The provider protocol, for a request that is not OpenAI chat completions."""


class _Exchange(NamedTuple):
    """Where a chat reply goes: the channel, whether to close after it, when it is due."""

    channel: Channel
    close: bool
    due: float
    chunked: bool = True
    """Whether the client reads chunked bodies (HTTP/1.1); else a stream ends with a close."""


class _Held(NamedTuple):
    """A reply (or the rest of a stream, its next event due) held by a loop timer."""

    exchange: _Exchange
    reply: _Answer


class LocalLMServer:
    """A real OpenAI-compatible chat-completions server on 127.0.0.1, for tests.

    ``responder`` is a callable ``(ChatRequest) -> str | list[str]`` or a name
    (``"default"``, ``"weak"``, ``"echo"``); None means the default model. A callable
    may block (it runs on a worker thread); the built-in ones run on the I/O thread.
    Every reply to a normal request leaves ``latency + uniform(0, jitter)`` seconds
    (seeded) after the request arrived, or when the responder returns if that is later
    (the responder runs on arrival), without blocking other requests. Use as a context
    manager or ``start()``/``stop()``; ``.url`` is the ``api_base``
    (``http://127.0.0.1:PORT/v1``). ``stop()`` abandons requests still waiting (latency
    or hang): their connections close without a reply.

    A request with ``"stream": true`` gets the same content as a Server-Sent Events
    stream of ``chat.completion.chunk`` objects, cut every ``stream_chunk_chars``
    characters, with ``stream_interval`` seconds between events (0: all in one write).

    At ``root_url`` the same responders, faults and counters also answer the Anthropic
    Messages API (``/v1/messages``), Gemini (``/v1beta/models/{model}:generateContent``,
    ``:streamGenerateContent?alt=sse``) and Azure OpenAI deployment URLs, each validated
    and answered in its own shapes (``_routes.py``).

    With ``ssl_context`` (e.g. :func:`server_ssl_context` of a
    :func:`self_signed_certificate`) it serves HTTPS, and its URLs say ``https``.
    """

    def __init__(
        self,
        responder: Responder | str | None = None,
        *,
        latency: float = 0.0,
        jitter: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
        model: str = "local-model",
        seed: int = 0,
        max_logged_requests: int = 10_000,
        stream_chunk_chars: int = 8,
        stream_interval: float = 0.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._responder = resolve_responder(responder)
        self._ssl = ssl_context
        self._check_latency(latency, jitter)
        self._latency = latency
        self._jitter = jitter
        self._check_stream_pacing(stream_chunk_chars, stream_interval)
        self._stream_chunk_chars = stream_chunk_chars
        self._stream_interval = stream_interval
        self._host = host
        self._requested_port = port
        self.model = model
        self._latency_rng = random.Random(seed)
        self._rng_lock = threading.Lock()
        self._faults = FaultPlan(seed)
        self._stats = StatsRecorder(max_logged_requests)
        self._stopping = threading.Event()
        self._loop: ServerLoop[_Held] | None = None
        self._workers: WorkerPool | None = None
        self._port = 0
        self._ids = itertools.count(1)

    # --- lifecycle ---------------------------------------------------------------

    def start(self) -> LocalLMServer:
        """Bind, then serve on a background thread; returns self."""
        if self._loop is not None:
            raise RuntimeError("LocalLMServer is already running")
        self._stopping.clear()
        loop: ServerLoop[_Held] = ServerLoop(
            (self._host, self._requested_port),
            name="dspex-lm-server",
            on_request=self._on_request,
            on_due=self._release,
            on_abandon=self._abandon,
            ssl_context=self._ssl,
        )
        self._port = loop.port
        self._workers = WorkerPool(f"dspex-lm-responder-{self._port}")
        self._loop = loop
        try:
            loop.start()
        except BaseException:
            self._loop = self._workers = None
            raise
        logger.info("local LM server listening on %s", self.url)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving, close every connection (idle, waiting or held) and join threads."""
        loop, workers = self._loop, self._workers
        if loop is None or workers is None:
            return
        self._stopping.set()
        loop_ended = loop.stop(timeout)
        stragglers = workers.stop(timeout)
        self._loop = None
        self._workers = None
        if stragglers or not loop_ended:
            logger.warning(
                "local LM server threads still alive after stop: %s (I/O thread ended: %s)",
                stragglers,
                loop_ended,
            )

    def __enter__(self) -> LocalLMServer:
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
        """Whether the server is accepting connections."""
        return self._loop is not None

    @property
    def port(self) -> int:
        """The bound port (raises if not started)."""
        self._require_loop()
        return self._port

    @property
    def host(self) -> str:
        """The bound host."""
        return self._host

    @property
    def root_url(self) -> str:
        """``http://HOST:PORT`` (``https`` with TLS; control endpoints live under ``/_dspex/``)."""
        scheme = "http" if self._ssl is None else "https"
        return f"{scheme}://{self._host}:{self.port}"

    @property
    def url(self) -> str:
        """The OpenAI ``api_base``: ``http://HOST:PORT/v1``."""
        return f"{self.root_url}/v1"

    def __repr__(self) -> str:
        where = self.url if self._loop is not None else "stopped"
        return f"LocalLMServer({where}, model={self.model!r}, latency={self._latency})"

    def close_connections(self, timeout: float = 10.0) -> None:
        """Close every open client connection now, idle keep-alive ones included.

        As a provider's idle timeout would: clients must reconnect. A request still
        being answered on a closed connection gets no reply. TimeoutError if the I/O
        thread did not close them within ``timeout`` seconds.
        """
        if self._require_loop().close_connections(timeout):
            raise TimeoutError(f"connections still open after {timeout:g}s")

    def _require_loop(self) -> ServerLoop[_Held]:
        """The I/O loop; raises when not running."""
        if self._loop is None:
            raise RuntimeError(
                "LocalLMServer is not running; call start() or use it as a context manager"
            )
        return self._loop

    # --- knobs -------------------------------------------------------------------

    @staticmethod
    def _check_latency(latency: float, jitter: float) -> None:
        if latency < 0 or jitter < 0:
            raise ValueError(f"latency and jitter must be >= 0, got {latency} and {jitter}")

    @property
    def latency(self) -> float:
        """The fixed delay before each normal reply, in seconds."""
        return self._latency

    @property
    def jitter(self) -> float:
        """The extra uniform(0, jitter) delay, in seconds."""
        return self._jitter

    def set_latency(self, latency: float, jitter: float | None = None) -> None:
        """Change the delay at run time (``jitter`` None keeps the current one)."""
        jitter = self._jitter if jitter is None else jitter
        self._check_latency(latency, jitter)
        self._latency, self._jitter = latency, jitter

    @staticmethod
    def _check_stream_pacing(chunk_chars: int, interval: float) -> None:
        if isinstance(chunk_chars, bool) or not isinstance(chunk_chars, int) or chunk_chars < 1:
            raise ValueError(f"stream_chunk_chars must be an int >= 1, got {chunk_chars!r}")
        if interval < 0:
            raise ValueError(f"stream_interval must be >= 0, got {interval}")

    @property
    def stream_chunk_chars(self) -> int:
        """How many characters of content each streamed delta carries (at most)."""
        return self._stream_chunk_chars

    @property
    def stream_interval(self) -> float:
        """Seconds between the events of a streamed reply (0: all in one write)."""
        return self._stream_interval

    def set_stream_pacing(
        self, chunk_chars: int | None = None, interval: float | None = None
    ) -> None:
        """Change how streamed replies are cut and spaced (None keeps the current value).

        Applies to streams whose request arrives afterwards.
        """
        chunk_chars = self._stream_chunk_chars if chunk_chars is None else chunk_chars
        interval = self._stream_interval if interval is None else interval
        self._check_stream_pacing(chunk_chars, interval)
        self._stream_chunk_chars, self._stream_interval = chunk_chars, interval

    def set_responder(self, responder: Responder | str | None) -> None:
        """Swap the model at run time (a callable or a name)."""
        self._responder = resolve_responder(responder)

    def push_faults(self, *faults: Fault | None) -> None:
        """Script the next requests' outcomes, in order (None = answer normally)."""
        self._faults.push(faults)

    def set_fault_rates(self, rates: FaultRates, *, seed: int | None = None) -> None:
        """Inject faults at random: ``{Fault.http(503): 0.2, Fault.drop(): 0.1}`` (seeded)."""
        self._faults.set_rates(rates, seed=seed)

    def clear_faults(self) -> None:
        """Forget the fault script and rates."""
        self._faults.clear()

    @property
    def pending_faults(self) -> int:
        """Scripted faults not yet used."""
        return self._faults.pending

    def stats(self, *, include_requests: bool = True) -> ServerStats:
        """A snapshot of the counters."""
        return self._stats.snapshot(include_requests=include_requests)

    def wait_for_stats(
        self, predicate: Callable[[ServerStats], bool], timeout: float = 10.0
    ) -> ServerStats:
        """Block until ``predicate(stats)`` holds (re-checked on every counter change).

        TimeoutError after ``timeout`` seconds; e.g. ``server.wait_for_stats(lambda s:
        s.in_flight == 3)`` waits for three requests to be held at the server.
        """
        return self._stats.wait_for(predicate, timeout)

    def reset_stats(self) -> None:
        """Zero the counters and clear the request log."""
        self._stats.reset()

    # --- request handling (on the I/O thread unless noted) --------------------------

    def _on_request(
        self, channel: Channel, request: Request | ProtocolError, arrival: float
    ) -> None:
        if isinstance(request, ProtocolError):
            self._require_loop().send(
                channel,
                reply_bytes(request.status, _error_body(request.status, str(request)), close=True),
                close=True,
            )
            return
        method, target = request.method, request.target
        if target in _CHAT_PATHS:
            path, query = target, ""
        else:
            parts = urlsplit(target)
            path, query = parts.path.rstrip("/") or "/", parts.query
        try:
            if method == "POST" and path in _CHAT_PATHS:
                self._handle_chat(channel, request, arrival)
            elif method == "POST" and (route := route_for(path, parse_qs(query))) is not None:
                self._handle_chat(channel, request, arrival, route)
            elif method == "GET" and path in _MODELS_PATHS:
                self._stats.models_request()
                self._send_json(channel, request, self._models_payload())
            elif path.startswith(_CONTROL_PREFIX):
                self._handle_control(channel, request, path, parse_qs(query))
            else:
                message = f"no route for {method} {path}"
                self._send(channel, request, 404, _error_body(404, message))
        except _BadRequest as exc:
            self._send(channel, request, 400, _error_body(400, str(exc)))

    def _closes(self, request: Request) -> bool:
        return not request.keep_alive or self._stopping.is_set()

    def _send(self, channel: Channel, request: Request, status: int, body: bytes) -> None:
        close = self._closes(request)
        self._require_loop().send(channel, reply_bytes(status, body, close=close), close=close)

    def _send_json(self, channel: Channel, request: Request, payload: Any) -> None:
        self._send(channel, request, 200, json.dumps(payload).encode("utf-8"))

    def _models_payload(self) -> dict[str, Any]:
        return {
            "object": "list",
            "data": [
                {"id": self.model, "object": "model", "created": 0, "owned_by": "dspex-local"}
            ],
        }

    def _handle_chat(
        self, channel: Channel, request: Request, arrival: float, route: Route | None = None
    ) -> None:
        try:
            body: Any = json.loads(request.body)
        except ValueError as exc:
            body = _BadRequest(f"request body is not valid JSON: {exc}")
        logged = body if isinstance(body, dict) else None
        headers = request.headers
        outcome = self._begin_chat(body, headers, route)
        loop = self._require_loop()
        if isinstance(outcome, _Job) and not self._stopping.is_set():
            exchange = _Exchange(
                channel, not request.keep_alive, arrival + outcome.delay, request.http11
            )
            if not runs_inline(outcome.responder):
                self._stats.chat_started(logged, headers)
                self._answer_on_worker(exchange, outcome)
                return
            reply = self._answer(outcome)
            if exchange.due > time.monotonic():
                self._stats.chat_started(logged, headers)
                self._hold(exchange, reply)
                return
        elif isinstance(outcome, _Reply):  # answered at once, even while stopping
            reply = outcome
            exchange = _Exchange(channel, self._closes(request), arrival)
        else:  # a dropped connection, or a reply abandoned because the server stops
            self._stats.chat_started(logged, headers)
            self._stats.chats_finished()
            loop.drop(channel)
            return
        if not isinstance(reply, _Reply):  # a stream, or a reply to cut short
            self._stats.chat_started(logged, headers)
            self._write_in_parts(exchange, reply)
            return
        self._stats.chat_answered(
            logged, headers, reply.status, reply.prompt_tokens, reply.completion_tokens
        )
        data = reply_bytes(reply.status, reply.body, reply.headers, close=exchange.close)
        loop.send(channel, data, close=exchange.close)

    def _begin_chat(
        self, body: Any, headers: dict[str, str], route: Route | None = None
    ) -> _Reply | _Job | None:
        """An immediate reply, a job for the model, or None to drop the connection."""
        error = _error_body if route is None else route.error_body
        try:
            request = self._parse_chat(body, headers, route)
        except _BadRequest as exc:
            return _Reply(400, error(400, str(exc)))
        except WireError as exc:
            return _Reply(exc.status, error(exc.status, str(exc)))
        fault = self._faults.next_fault()
        delay = self._next_delay()
        if fault is not None:
            self._stats.fault(fault.label)
            logger.debug("injecting fault %s", fault.label)
            if fault.kind == "drop":
                return None
            if fault.kind == "http_error":
                extra = []
                if fault.retry_after is not None:
                    extra.append(("Retry-After", _format_retry_after(fault.retry_after)))
                message = f"injected fault: HTTP {fault.status} {_reason(fault.status)}"
                return _Reply(fault.status, error(fault.status, message), tuple(extra))
            if fault.kind == "hang":
                delay = fault.seconds
        return _Job(request, self._responder, fault, delay, route)

    def _answer_on_worker(self, exchange: _Exchange, job: _Job) -> None:
        """Run a responder that may block on a worker; its reply comes back to the loop."""
        loop = self._require_loop()
        workers = self._workers

        def work() -> None:  # on a worker thread
            reply = self._answer(job)
            if not loop.call_soon_threadsafe(lambda: self._deliver(exchange, reply)):
                self._stats.chats_finished()  # the server stopped meanwhile

        if workers is None or not workers.submit(work):
            self._stats.chats_finished()
            loop.drop(exchange.channel)

    def _deliver(self, exchange: _Exchange, reply: _Answer) -> None:
        """A worker's reply, back on the loop: write it if due, else hold it."""
        loop = self._require_loop()
        if self._stopping.is_set():
            self._stats.chats_finished()
            loop.drop(exchange.channel)
        elif exchange.due > time.monotonic():
            self._hold(exchange, reply)
        else:
            self._release([_Held(exchange, reply)])

    def _hold(self, exchange: _Exchange, reply: _Answer) -> None:
        self._require_loop().hold(exchange.due, _Held(exchange, reply))

    def _release(self, due: list[_Held]) -> None:
        """Write held replies and stream events whose time has come (abandon when stopping)."""
        loop = self._require_loop()
        if self._stopping.is_set():
            self._abandon(due)
            for held in due:
                loop.drop(held.exchange.channel)
            return
        self._stats.chats_replied(
            [(r.status, r.prompt_tokens, r.completion_tokens) for _, r in due if type(r) is _Reply]
        )
        for exchange, reply in due:
            if isinstance(reply, _Reply):
                data = reply_bytes(reply.status, reply.body, reply.headers, close=exchange.close)
                loop.send(exchange.channel, data, close=exchange.close)
            else:
                self._write_in_parts(exchange, reply)

    def _abandon(self, held: list[_Held]) -> None:
        """Held replies and streams never finished (the server stops): their connections close."""
        if held:
            self._stats.chats_finished(len(held))

    def _write_in_parts(self, exchange: _Exchange, reply: _StreamReply | _CutReply) -> None:
        """Write a reply that is not one plain write: a stream's next events, or a cut reply."""
        if isinstance(reply, _StreamReply):
            self._write_stream(exchange, reply)
            return
        loop = self._require_loop()
        plain = reply.reply
        self._stats.chats_replied([(plain.status, plain.prompt_tokens, plain.completion_tokens)])
        data = reply_bytes(plain.status, plain.body, plain.headers, close=exchange.close)
        kept = len(data) - len(plain.body) + len(plain.body) // 2  # the head, half the body
        loop.send(exchange.channel, data[:kept], close=True)

    def _write_stream(self, exchange: _Exchange, stream: _StreamReply) -> None:
        """Write a stream's next event (every event without an interval); hold the rest.

        The status and usage count with the first event; the request leaves ``in_flight``
        just before the last event is written. A client gone meanwhile ends the stream.
        """
        loop = self._require_loop()
        channel, chunked = exchange.channel, exchange.chunked
        if channel.closed:
            self._stats.chats_finished()
            return
        events, sent = stream.events, stream.sent
        end = sent + 1 if stream.interval > 0 else len(events)
        parts = []
        if sent == 0:
            self._stats.stream_started(stream.prompt_tokens, stream.completion_tokens)
            parts.append(stream_head(chunked=chunked, close=exchange.close or not chunked))
        pending = events[sent:end]
        parts.extend(map(body_chunk, pending) if chunked else pending)
        if end < len(events):
            loop.send_part(channel, b"".join(parts))
            due = max(exchange.due, time.monotonic()) + stream.interval
            loop.hold(due, _Held(exchange._replace(due=due), stream._replace(sent=end)))
            return
        if chunked and not stream.cut:
            parts.append(LAST_CHUNK)
        self._stats.chats_finished()
        close = exchange.close or not chunked or stream.cut
        loop.send(channel, b"".join(parts), close=close)

    def _answer(self, job: _Job) -> _Answer:
        """The model's reply to a job, with the job's fault applied (any thread)."""
        request, fault, route = job.request, job.fault, job.route
        kind = None if fault is None else fault.kind
        try:
            texts = self._run_responder(job.responder, request)
            if route is not None and route.wire is not None:
                return self._wire_answer(route.wire, request, texts, kind)
            if request.params.get("stream") is True:
                return self._stream_reply(request, texts, fault)
            body, prompt_tokens, completion_tokens = self._completion_body(
                request, texts, with_choices=kind != "no_choices", blocked=kind == "blocked"
            )
        except ErrorReply as exc:
            extra = []
            if exc.retry_after is not None:
                extra.append(("Retry-After", _format_retry_after(exc.retry_after)))
            error = _error_body if route is None else route.error_body
            return _Reply(exc.status, error(exc.status, exc.message), tuple(extra))
        except Exception as exc:
            logger.warning("responder %r failed", job.responder, exc_info=True)
            message = f"responder failed: {type(exc).__name__}: {exc}"
            error = _error_body if route is None else route.error_body
            return _Reply(500, error(500, message))
        reply = _Reply(200, body, (), prompt_tokens, completion_tokens)
        if fault is not None:
            if fault.kind == "malformed_json":
                return reply._replace(body=body[: max(1, len(body) // 2)])
            if fault.kind == "stream_cut":
                return _CutReply(reply)
        return reply

    def _wire_answer(
        self, wire: WireProtocol, request: ChatRequest, texts: list[str], fault: str | None
    ) -> _Answer:
        """A reply in a provider's own protocol (Anthropic, Gemini), the fault applied."""
        reply_id = f"{wire.name}-local-{self._port}-{next(self._ids)}"
        if request.params.get("stream") is True:
            stream = wire.stream(
                request, texts, reply_id=reply_id, chunk_chars=self._stream_chunk_chars, fault=fault
            )
            return _StreamReply(
                tuple(stream.events),
                self._stream_interval,
                stream.prompt_tokens,
                stream.completion_tokens,
                stream.cut,
            )
        body, prompt, completion = wire.reply(request, texts, reply_id=reply_id, fault=fault)
        reply = _Reply(200, body, (), prompt, completion)
        if fault == "malformed_json":
            return reply._replace(body=body[: max(1, len(body) // 2)])
        if fault == "stream_cut":
            return _CutReply(reply)
        return reply

    def _stream_reply(
        self, request: ChatRequest, texts: list[str], fault: Fault | None
    ) -> _StreamReply:
        """The non-streamed completion, cut into SSE events, with the fault applied.

        Built from the very completion a non-streamed request gets (same content, finish
        reasons, usage, id): decoding it again costs a streamed request a few
        microseconds, and the non-streamed path nothing.
        """
        kind = None if fault is None else fault.kind
        body, prompt_tokens, completion_tokens = self._completion_body(
            request, texts, blocked=kind == "blocked"
        )
        completion = json.loads(body)
        choices = [
            (c["message"]["content"] or "", c["finish_reason"]) for c in completion["choices"]
        ]
        calls = [c["message"].get("tool_calls") or [] for c in completion["choices"]]
        options = request.params.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        payloads = chunk_payloads(
            completion["id"],
            completion["created"],
            completion["model"],
            choices,
            chunk_chars=self._stream_chunk_chars,
            usage=(prompt_tokens, completion_tokens) if include_usage else None,
            with_choices=kind != "no_choices",
            tool_calls=calls if any(calls) else (),
        )
        if kind == "malformed_json":  # the first event after the role deltas
            first = payloads[len(choices)]
            payloads[len(choices)] = first[: max(1, len(first) // 2)]
        cut = kind == "stream_cut"
        if cut:
            del payloads[max(1, len(payloads) // 2) :]
        events = [sse_event(payload) for payload in payloads]
        if not cut:
            events.append(DONE)
        return _StreamReply(
            tuple(events), self._stream_interval, prompt_tokens, completion_tokens, cut
        )

    def _next_delay(self) -> float:
        if self._jitter <= 0:
            return self._latency
        with self._rng_lock:
            return self._latency + self._latency_rng.uniform(0.0, self._jitter)

    def _parse_chat(
        self, body: Any, headers: dict[str, str], route: Route | None = None
    ) -> ChatRequest:
        if isinstance(body, _BadRequest):
            raise body
        if route is not None:
            route.check(headers)
            if route.wire is not None:
                return route.wire.parse(
                    body, headers, model=route.model, stream=route.stream, default_model=self.model
                )
        if not isinstance(body, dict):
            raise _BadRequest("request body must be a JSON object")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _BadRequest("'messages' must be a non-empty list")
        for message in messages:
            if not isinstance(message, dict) or not isinstance(message.get("role"), str):
                raise _BadRequest("every message must be an object with a 'role'")
        n = body.get("n", 1)
        if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
            raise _BadRequest(f"'n' must be a positive integer, got {n!r}")
        stream = body.get("stream")
        if stream is not None and stream is not True and stream is not False:
            raise _BadRequest(f"'stream' must be a boolean, got {stream!r}")
        if "stream_options" in body:
            _check_stream_options(body["stream_options"], stream is True)
        model = body.get("model")
        params = {k: v for k, v in body.items() if k not in {"model", "messages"}}
        if route is not None and route.model:
            model = route.model  # Azure: the deployment in the URL
        return ChatRequest(
            model=model if isinstance(model, str) and model else self.model,
            messages=messages,
            params=params,
            headers=headers,
        )

    @staticmethod
    def _run_responder(responder: Responder, request: ChatRequest) -> list[str]:
        result = responder(request)
        if isinstance(result, str):
            return [result] * request.n
        texts = list(result)
        if not texts or not all(isinstance(t, str) for t in texts):
            raise TypeError("a responder must return a str or a non-empty list of str")
        return texts

    def _completion_body(
        self,
        request: ChatRequest,
        texts: list[str],
        *,
        with_choices: bool = True,
        blocked: bool = False,
    ) -> tuple[bytes, int, int]:
        """The completion's JSON, its prompt tokens and its completion tokens.

        Written from a template (byte for byte what ``json.dumps`` gives for the same
        object): the server's CPU per request is what the benchmarks see of it.
        """
        limit = request.params.get("max_tokens") or request.params.get("max_completion_tokens")
        max_tokens = limit if isinstance(limit, int) and limit > 0 else None
        choices = []
        completion_tokens = 0
        for index, text in enumerate(texts):
            if isinstance(text, ToolCallReply):
                call_prefix = f"call-local-{self._port}-{next(self._ids)}"
                choices.append(openai_choice(index, text, call_prefix))
                continue
            tokens = text.split()
            finish_reason = "stop"
            content = text
            if max_tokens is not None and len(tokens) > max_tokens:
                tokens = tokens[:max_tokens]
                content = " ".join(tokens)
                finish_reason = "length"
            completion_tokens += len(tokens)
            choices.append(
                f'{{"index": {index}, "message": {{"role": "assistant", "content": '
                f'{_json_str(content)}}}, "finish_reason": "{finish_reason}", "logprobs": null}}'
            )
        if blocked:  # the content filter: no content, finish_reason content_filter
            completion_tokens = 0
            choices = [
                f'{{"index": {index}, "message": {{"role": "assistant", "content": null}}, '
                f'"finish_reason": "content_filter", "logprobs": null}}'
                for index in range(len(texts))
            ]
        prompt = prompt_tokens(request)
        listed = f'"choices": [{", ".join(choices)}], ' if with_choices else ""
        body = (
            f'{{"id": "chatcmpl-local-{self._port}-{next(self._ids)}", '
            f'"object": "chat.completion", "created": {int(time.time())}, '
            f'"model": {_json_str(request.model)}, "system_fingerprint": "dspex-local", '
            f'{listed}"usage": {{"prompt_tokens": {prompt}, '
            f'"completion_tokens": {completion_tokens}, '
            f'"total_tokens": {prompt + completion_tokens}}}}}'
        )
        return body.encode("ascii"), prompt, completion_tokens

    # --- control endpoints -------------------------------------------------------

    def _handle_control(
        self, channel: Channel, request: Request, path: str, query: dict[str, list[str]]
    ) -> None:
        method, raw = request.method, request.body
        try:
            data = json.loads(raw) if raw else {}
        except ValueError:
            raise _BadRequest("control request body is not valid JSON") from None
        if not isinstance(data, dict):
            raise _BadRequest("control request body must be a JSON object")
        action = path[len(_CONTROL_PREFIX) :]
        try:
            if method == "GET" and action == "stats":
                include = query.get("requests", ["1"])[0] not in {"0", "false"}
                self._send_json(channel, request, self.stats(include_requests=include).to_dict())
            elif method == "POST" and action == "reset":
                self.reset_stats()
                self._send_json(channel, request, {"ok": True})
            elif method == "POST" and action == "faults":
                self._control_faults(data)
                self._send_json(channel, request, {"ok": True, "pending": self.pending_faults})
            elif method == "POST" and action == "latency":
                self.set_latency(float(data["latency"]), _optional_float(data.get("jitter")))
                self._send_json(channel, request, {"ok": True})
            elif method == "POST" and action == "stream":
                interval = _optional_float(data.get("interval"))
                self.set_stream_pacing(data.get("chunk_chars"), interval)
                self._send_json(channel, request, {"ok": True})
            elif method == "POST" and action == "responder":
                self.set_responder(str(data["name"]))
                self._send_json(channel, request, {"ok": True})
            else:
                message = f"no control route {method} {path}"
                self._send(channel, request, 404, _error_body(404, message))
        except (KeyError, TypeError, ValueError) as exc:
            raise _BadRequest(f"bad control request {action}: {exc!r}") from None

    def _control_faults(self, data: dict[str, Any]) -> None:
        if data.get("clear"):
            self.clear_faults()
        if "rates" in data:
            rates = [(Fault.from_dict(f), float(p)) for f, p in data["rates"]]
            self.set_fault_rates(rates, seed=data.get("seed"))
        if "script" in data:
            self.push_faults(*(None if f is None else Fault.from_dict(f) for f in data["script"]))


def _check_stream_options(options: Any, streamed: bool) -> None:
    """Reject ``stream_options`` as the OpenAI API does (only with ``"stream": true``)."""
    if options is None:
        return
    if not streamed:
        raise _BadRequest(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled."
        )
    if not isinstance(options, dict):
        raise _BadRequest(f"'stream_options' must be an object, got {options!r}")
    include_usage = options.get("include_usage")
    if include_usage is not None and not isinstance(include_usage, bool):
        raise _BadRequest(
            f"'stream_options.include_usage' must be a boolean, got {include_usage!r}"
        )


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
