"""LocalLMServer: a real OpenAI-compatible HTTP server on 127.0.0.1 for tests and demos.

One thread per connection (HTTP/1.1 keep-alive, a minimal hand-written parser), so a
slow reply never holds up the others. Latency waits and hangs wait on the server's stop
event, and stop() shuts down every open connection socket, so stop returns promptly
with no thread left.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import random
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterable
from http import HTTPStatus
from types import TracebackType
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlsplit

from dspex_actors.testing._faults import Fault, FaultPlan, FaultRates
from dspex_actors.testing._responders import ChatRequest, Responder, message_text, resolve_responder
from dspex_actors.testing._stats import ServerStats, StatsRecorder

__all__ = ["LocalLMServer"]

logger = logging.getLogger(__name__)

_CHAT_PATHS = frozenset({"/v1/chat/completions", "/chat/completions"})
_MODELS_PATHS = frozenset({"/v1/models", "/models"})
_CONTROL_PREFIX = "/_dspex/"
_POLL_INTERVAL = 0.05
_MAX_LINE = 65536
_MAX_HEADERS = 100
_SERVER_NAME = "dspex-local-lm/1.0"
_ERROR_TYPES = {
    400: "invalid_request_error",
    404: "not_found_error",
    429: "rate_limit_error",
}


def _count_tokens(text: str) -> int:
    return len(text.split())


def _error_body(status: int, message: str) -> bytes:
    error_type = _ERROR_TYPES.get(
        status, "server_error" if status >= 500 else "invalid_request_error"
    )
    payload = {"error": {"message": message, "type": error_type, "param": None, "code": status}}
    return json.dumps(payload).encode("utf-8")


def _format_retry_after(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else repr(float(seconds))


class _Outcome(NamedTuple):
    """A chat reply decided by the server, before it is written."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


class _BadRequest(Exception):
    """A request the server rejects with HTTP 400."""


class _Handler(socketserver.StreamRequestHandler):
    """A minimal HTTP/1.1 keep-alive handler that routes to the owning LocalLMServer.

    Hand-rolled instead of ``http.server``: its e-mail-based header parsing and
    two-write replies cost more CPU per request than the rest of the server together.
    """

    server: _HTTPServer
    method = ""
    path = ""
    headers: dict[str, str]
    close_connection = False

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.headers = {}

    def handle(self) -> None:
        while not self.close_connection and self._read_request_head():
            self.server.owner._dispatch(self, self.method)

    def _read_request_head(self) -> bool:
        """Read the request line and headers; False when the peer closed or sent garbage."""
        line = self.rfile.readline(_MAX_LINE + 1)
        if not line:
            return False
        parts = line.decode("latin-1").split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/") or len(line) > _MAX_LINE:
            self.close_connection = True
            self.send_bytes(400, _error_body(400, "malformed request line"))
            return False
        self.method, self.path, version = parts
        headers: dict[str, str] = {}
        while True:
            raw = self.rfile.readline(_MAX_LINE + 1)
            if not raw:
                return False
            if raw in (b"\r\n", b"\n"):
                break
            if len(headers) >= _MAX_HEADERS or len(raw) > _MAX_LINE:
                self.close_connection = True
                self.send_bytes(431, _error_body(431, "request headers too large"))
                return False
            name, _, value = raw.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        self.headers = headers
        connection = headers.get("connection", "").lower()
        if version == "HTTP/1.1":
            self.close_connection = connection == "close"
        else:
            self.close_connection = connection != "keep-alive"
        return True

    def read_body(self) -> bytes:
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            self.close_connection = True
            raise _BadRequest("chunked request bodies are not supported; send Content-Length")
        try:
            length = int(self.headers.get("content-length", "0"))
        except ValueError:
            self.close_connection = True
            raise _BadRequest("invalid Content-Length") from None
        return self.rfile.read(length) if length > 0 else b""

    def send_bytes(
        self,
        status: int,
        body: bytes,
        *,
        content_type: str = "application/json",
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        """Send the whole reply in one write (no Nagle/delayed-ACK stall)."""
        if self.server.owner._stopping.is_set():
            self.close_connection = True
        lines = [
            f"HTTP/1.1 {status} {_reason(status)}",
            f"Server: {_SERVER_NAME}",
            f"Content-Type: {content_type}",
            f"Content-Length: {len(body)}",
            *(f"{name}: {value}" for name, value in headers),
        ]
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.connection.sendall(head + body)

    def send_json(self, status: int, payload: Any) -> None:
        self.send_bytes(status, json.dumps(payload).encode("utf-8"))


class _HTTPServer(socketserver.TCPServer):
    """A TCP server that runs each connection on a tracked thread it can close and join."""

    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], owner: LocalLMServer) -> None:
        self.owner = owner
        self._conn_lock = threading.Lock()
        self._connections: dict[socket.socket, threading.Thread] = {}
        self._conn_ids = itertools.count(1)
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self._serve_connection,
            args=(request, client_address),
            name=f"dspex-lm-conn-{self.server_address[1]}-{next(self._conn_ids)}",
            daemon=True,
        )
        with self._conn_lock:
            self._connections[request] = thread
        thread.start()

    def _serve_connection(self, request: socket.socket, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            with self._conn_lock:
                self._connections.pop(request, None)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that time out or vanish mid-reply are normal here.
        logger.debug("connection from %s ended with an error", client_address, exc_info=True)

    def close_connections(self, timeout: float) -> list[threading.Thread]:
        """Shut every open connection socket down and join its thread; return stragglers."""
        with self._conn_lock:
            connections = list(self._connections.items())
        for sock, _ in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout
        for _, thread in connections:
            thread.join(max(0.0, deadline - time.monotonic()))
        return [thread for _, thread in connections if thread.is_alive()]


class LocalLMServer:
    """A real OpenAI-compatible chat-completions server on 127.0.0.1, for tests.

    ``responder`` is a callable ``(ChatRequest) -> str | list[str]`` or a name
    (``"default"``, ``"weak"``, ``"echo"``); None means the default model. Every reply
    to a normal request waits ``latency + uniform(0, jitter)`` seconds (seeded) without
    blocking other requests. Use as a context manager or ``start()``/``stop()``;
    ``.url`` is the ``api_base`` (``http://127.0.0.1:PORT/v1``). ``stop()`` abandons
    requests still waiting (latency or hang): their connections close without a reply.
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
    ) -> None:
        self._responder = resolve_responder(responder)
        self._check_latency(latency, jitter)
        self._latency = latency
        self._jitter = jitter
        self._host = host
        self._requested_port = port
        self.model = model
        self._latency_rng = random.Random(seed)
        self._rng_lock = threading.Lock()
        self._faults = FaultPlan(seed)
        self._stats = StatsRecorder(max_logged_requests)
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._serve_thread: threading.Thread | None = None
        self._ids = itertools.count(1)

    # --- lifecycle ---------------------------------------------------------------

    def start(self) -> LocalLMServer:
        """Bind and serve on a background thread; returns self."""
        if self._httpd is not None:
            raise RuntimeError("LocalLMServer is already running")
        self._stopping.clear()
        httpd = _HTTPServer((self._host, self._requested_port), self)
        self._httpd = httpd
        self._serve_thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": _POLL_INTERVAL},
            name=f"dspex-lm-server-{self.port}",
            daemon=True,
        )
        self._serve_thread.start()
        logger.info("local LM server listening on %s", self.url)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving, close every connection (idle, hanging or sleeping) and join threads."""
        httpd, thread = self._httpd, self._serve_thread
        if httpd is None or thread is None:
            return
        self._stopping.set()
        httpd.shutdown()
        thread.join(timeout)
        httpd.server_close()
        stragglers = httpd.close_connections(timeout)
        self._httpd = None
        self._serve_thread = None
        if stragglers or thread.is_alive():
            logger.warning("local LM server threads still alive after stop: %s", stragglers)

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
        return self._httpd is not None

    @property
    def port(self) -> int:
        """The bound port (raises if not started)."""
        return int(self._require_httpd().server_address[1])

    @property
    def host(self) -> str:
        """The bound host."""
        return self._host

    @property
    def root_url(self) -> str:
        """``http://HOST:PORT`` (control endpoints live under ``/_dspex/``)."""
        return f"http://{self._host}:{self.port}"

    @property
    def url(self) -> str:
        """The OpenAI ``api_base``: ``http://HOST:PORT/v1``."""
        return f"{self.root_url}/v1"

    def __repr__(self) -> str:
        where = self.url if self._httpd is not None else "stopped"
        return f"LocalLMServer({where}, model={self.model!r}, latency={self._latency})"

    def _require_httpd(self) -> _HTTPServer:
        if self._httpd is None:
            raise RuntimeError(
                "LocalLMServer is not running; call start() or use it as a context manager"
            )
        return self._httpd

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

    # --- request handling --------------------------------------------------------

    def _dispatch(self, handler: _Handler, method: str) -> None:
        parts = urlsplit(handler.path)
        path = parts.path.rstrip("/") or "/"
        try:
            if method == "POST" and path in _CHAT_PATHS:
                self._handle_chat(handler)
            elif method == "GET" and path in _MODELS_PATHS:
                handler.read_body()
                self._stats.models_request()
                handler.send_json(200, self._models_payload())
            elif path.startswith(_CONTROL_PREFIX):
                self._handle_control(handler, method, path, parse_qs(parts.query))
            else:
                handler.read_body()
                handler.send_bytes(404, _error_body(404, f"no route for {method} {path}"))
        except _BadRequest as exc:
            handler.send_bytes(400, _error_body(400, str(exc)))

    def _models_payload(self) -> dict[str, Any]:
        return {
            "object": "list",
            "data": [
                {"id": self.model, "object": "model", "created": 0, "owned_by": "dspex-local"}
            ],
        }

    def _handle_chat(self, handler: _Handler) -> None:
        raw = handler.read_body()
        headers = dict(handler.headers)
        try:
            logged: dict[str, Any] | None = json.loads(raw)
            if not isinstance(logged, dict):
                logged = None
        except ValueError:
            logged = None
        self._stats.chat_started(logged, headers)
        try:
            outcome = self._answer_chat(raw, headers)
        finally:
            # Counted done *before* the client can see the reply, so a client that
            # reads stats right after its call never sees its own request in flight.
            self._stats.chat_finished()
        if outcome is None:
            handler.close_connection = True
            with contextlib.suppress(OSError):
                handler.connection.shutdown(socket.SHUT_RDWR)
            return
        self._stats.replied(outcome.status)
        handler.send_bytes(outcome.status, outcome.body, headers=outcome.headers)

    def _answer_chat(self, raw: bytes, headers: dict[str, str]) -> _Outcome | None:
        """The reply to send, or None to close the connection without one."""
        try:
            request = self._parse_chat(raw, headers)
        except _BadRequest as exc:
            return _Outcome(400, _error_body(400, str(exc)))
        fault = self._faults.next_fault()
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
                return _Outcome(fault.status, _error_body(fault.status, message), tuple(extra))
            if fault.kind == "hang" and self._stopping.wait(fault.seconds):
                return None
        if (fault is None or fault.kind != "hang") and self._stopping.wait(self._next_delay()):
            return None
        try:
            texts = self._run_responder(request)
        except Exception as exc:
            logger.warning("responder %r failed", self._responder, exc_info=True)
            return _Outcome(500, _error_body(500, f"responder failed: {type(exc).__name__}: {exc}"))
        payload = self._completion_payload(request, texts)
        if fault is not None and fault.kind == "malformed_json":
            body = json.dumps(payload).encode("utf-8")
            return _Outcome(200, body[: max(1, len(body) // 2)])
        if fault is not None and fault.kind == "no_choices":
            del payload["choices"]
        return _Outcome(200, json.dumps(payload).encode("utf-8"))

    def _next_delay(self) -> float:
        if self._jitter <= 0:
            return self._latency
        with self._rng_lock:
            return self._latency + self._latency_rng.uniform(0.0, self._jitter)

    def _parse_chat(self, raw: bytes, headers: dict[str, str]) -> ChatRequest:
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise _BadRequest(f"request body is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise _BadRequest("request body must be a JSON object")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _BadRequest("'messages' must be a non-empty list")
        if not all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages):
            raise _BadRequest("every message must be an object with a 'role'")
        n = body.get("n", 1)
        if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
            raise _BadRequest(f"'n' must be a positive integer, got {n!r}")
        if body.get("stream"):
            raise _BadRequest("streaming is not supported by the local test server")
        model = body.get("model")
        params = {k: v for k, v in body.items() if k not in {"model", "messages"}}
        return ChatRequest(
            model=model if isinstance(model, str) and model else self.model,
            messages=messages,
            params=params,
            headers=headers,
        )

    def _run_responder(self, request: ChatRequest) -> list[str]:
        result = self._responder(request)
        if isinstance(result, str):
            return [result] * request.n
        texts = list(result)
        if not texts or not all(isinstance(t, str) for t in texts):
            raise TypeError("a responder must return a str or a non-empty list of str")
        return texts

    def _completion_payload(self, request: ChatRequest, texts: list[str]) -> dict[str, Any]:
        limit = request.params.get("max_tokens") or request.params.get("max_completion_tokens")
        max_tokens = limit if isinstance(limit, int) and limit > 0 else None
        choices = []
        completion_tokens = 0
        for index, text in enumerate(texts):
            tokens = text.split()
            finish_reason = "stop"
            content = text
            if max_tokens is not None and len(tokens) > max_tokens:
                tokens = tokens[:max_tokens]
                content = " ".join(tokens)
                finish_reason = "length"
            completion_tokens += len(tokens)
            choices.append(
                {
                    "index": index,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": finish_reason,
                    "logprobs": None,
                }
            )
        prompt_tokens = sum(_count_tokens(message_text(m)) for m in request.messages)
        self._stats.tokens(prompt_tokens, completion_tokens)
        return {
            "id": f"chatcmpl-local-{self.port}-{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request.model,
            "system_fingerprint": "dspex-local",
            "choices": choices,
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    # --- control endpoints -------------------------------------------------------

    def _handle_control(
        self, handler: _Handler, method: str, path: str, query: dict[str, list[str]]
    ) -> None:
        raw = handler.read_body()
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
                handler.send_json(200, self.stats(include_requests=include).to_dict())
            elif method == "POST" and action == "reset":
                self.reset_stats()
                handler.send_json(200, {"ok": True})
            elif method == "POST" and action == "faults":
                self._control_faults(data)
                handler.send_json(200, {"ok": True, "pending": self.pending_faults})
            elif method == "POST" and action == "latency":
                self.set_latency(float(data["latency"]), _optional_float(data.get("jitter")))
                handler.send_json(200, {"ok": True})
            elif method == "POST" and action == "responder":
                self.set_responder(str(data["name"]))
                handler.send_json(200, {"ok": True})
            else:
                handler.send_bytes(404, _error_body(404, f"no control route {method} {path}"))
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


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
