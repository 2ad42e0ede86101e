"""The Client actor: one per LM configuration, many HTTP calls in flight at once.

The actor's mailbox does bookkeeping only (admission, concurrency cap, rate limit,
breaker, retries, counters). Each HTTP attempt runs on a worker thread of the actor's
own pool and reports back with a message; the caller's future is completed when the
call finally succeeds or fails (a deferred reply), so a slow call never holds up the
others. Retry backoffs and rate-limit waits are timer wake-ups, never sleeps.
"""

from __future__ import annotations

import contextlib
import dataclasses
import heapq
import itertools
import json
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import Any, NamedTuple

import httpx
import pykka

from dspex_actors._errors import (
    CircuitOpenError,
    LMConnectionError,
    LMError,
    LMHTTPStatusError,
    LMTimeoutError,
    LMUnavailableError,
    MalformedResponseError,
)
from dspex_actors._inbox import SimpleQueueInbox
from dspex_actors._lifecycle import ShutdownOnExit
from dspex_actors._version import __version__
from dspex_actors.lm._breaker import EndpointBreaker
from dspex_actors.lm._limits import TokenBucket
from dspex_actors.lm._lm import LM
from dspex_actors.lm._retry import backoff_delay, is_retryable, parse_retry_after
from dspex_actors.lm._timer import Timer
from dspex_actors.lm._transport import SocketTransport
from dspex_actors.lm._types import LMRequest, LMResponse
from dspex_actors.lm._wait import wait_reply
from dspex_actors.lm._workers import WorkerPool
from supervision import Supervised

__all__ = [
    "ClientActor",
    "ClientOptions",
    "GetClientStats",
    "Submit",
    "call_client",
    "client_unavailable",
]

logger = logging.getLogger(__name__)

BODY_EXCERPT_CHARS = 300
USER_AGENT = f"dspex-actors/{__version__}"
SHUTDOWN_JOIN_SECONDS = 0.5
"""How long a stopping Client waits for its HTTP threads; a thread stuck on a hung
server ends by itself within the LM timeout (it is a daemon thread)."""


@dataclasses.dataclass(frozen=True)
class ClientOptions:
    """Tuning shared by the Client actors of one ActorSystem."""

    breaker_fail_max: int = 5
    """Consecutive endpoint failures that open the circuit."""
    breaker_reset_timeout: float = 10.0
    """Seconds an open circuit waits before admitting one trial request."""
    retry_base_delay: float = 0.5
    """Backoff before the first retry (doubles each retry, with jitter)."""
    retry_max_delay: float = 20.0
    """Upper bound of the exponential backoff."""
    max_retry_after: float = 120.0
    """A ``Retry-After`` longer than this is not waited for: the call fails instead."""
    default_max_concurrency: int = 128
    """Requests in flight per LM when the LM sets no ``max_concurrency``."""


class Submit(NamedTuple):
    """Start a call. Told with ``reply_to``: the actor completes that future with the
    LMResponse (one message, no round trip); asked without it, the reply is a new future.
    """

    request: LMRequest
    reply_to: pykka.ThreadingFuture[LMResponse] | None = None


class GetClientStats(NamedTuple):
    """Ask: a dict of counters, limits and breaker state."""


class _AttemptDone(NamedTuple):
    call_id: int
    permit: int
    outcome: LMResponse | LMError


class _Wake(NamedTuple):
    pass


@dataclasses.dataclass
class _Call:
    """One caller's call; lives on the actor thread only."""

    id: int
    request: LMRequest
    future: pykka.ThreadingFuture[LMResponse]
    attempts: int = 0
    last_error: LMError | None = None


class _ThreadConnections:
    """One ``SocketTransport`` (one keep-alive connection) per pool thread.

    Attempts go straight to the transport with a prebuilt ``httpx.Request``, not through
    ``httpx.Client``: its URL merging, cookie jar, auth and redirect machinery cost
    about 0.12 ms of CPU per call and an LM call needs none of them.

    A single shared pool serialises its 64 callers on the pool's lock and its
    per-request bookkeeping (measured with httpx: about 2x slower at 64 calls in flight
    than one connection per thread); the pool threads never share a connection anyway,
    since each runs one attempt at a time.

    ``close()`` closes idle transports at once; a transport in use is closed by its own
    thread when its attempt ends. Closing a socket another thread is blocked on is
    unsafe: its file descriptor can be reused by a new connection while the blocked
    ``recv`` has not started yet, and that thread then reads someone else's socket
    (seen: a thread stuck for good after a Client crash).
    """

    def __init__(self, *, https: bool) -> None:
        # CA certificates load once (about 30 ms), not per thread, and only for https.
        self._ssl = httpx.create_ssl_context() if https else None
        self._local = threading.local()
        self._lock = threading.Lock()
        self._idle: set[SocketTransport] = set()
        self._closed = False

    @contextlib.contextmanager
    def use(self) -> Iterator[SocketTransport]:
        """This thread's transport for one attempt (RuntimeError once closed)."""
        transport: SocketTransport | None = getattr(self._local, "transport", None)
        with self._lock:
            if self._closed:
                raise RuntimeError("the Client actor's connections are closed")
            if transport is None:
                transport = SocketTransport(self._ssl)
                self._local.transport = transport
            self._idle.discard(transport)
        try:
            yield transport
        finally:
            self._release(transport)

    def _release(self, transport: SocketTransport) -> None:
        with self._lock:
            closed = self._closed
            if not closed:
                self._idle.add(transport)
        if closed:
            transport.close()

    def close(self) -> None:
        """Close the idle transports now; those in use close when their attempt ends."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, set()
        for transport in idle:
            transport.close()


def _fail(future: pykka.ThreadingFuture[Any], error: BaseException) -> None:
    with contextlib.suppress(queue.Full):  # already settled by the other side
        future.set_exception(exc_info=(type(error), error, error.__traceback__))


def _succeed(future: pykka.ThreadingFuture[LMResponse], response: LMResponse) -> None:
    """Complete ``future``; the pool thread and the actor both try, the first one wins."""
    with contextlib.suppress(queue.Full):
        future.set(response)


class ClientActor(SimpleQueueInbox, ShutdownOnExit, Supervised, pykka.ThreadingActor):
    """Owns an LM's connection pool, breaker, concurrency cap, rate limit and counters.

    Its threads are daemon threads and the ActorSystem stops it from an atexit hook,
    so a script never hangs at exit waiting for it.
    """

    use_daemon_thread = True

    def __init__(self, lm: LM, breaker: EndpointBreaker, options: ClientOptions) -> None:
        super().__init__()
        self.lm = lm
        self.breaker = breaker
        self.options = options
        self.endpoint = lm.endpoint
        self.cap = lm.max_concurrency or options.default_max_concurrency
        self._provider = lm.provider_impl
        self._headers = {"User-Agent": USER_AGENT, **self._provider.headers(lm.api_key)}
        self._url = httpx.URL(self.endpoint)
        self._timeouts = {"timeout": httpx.Timeout(lm.timeout).as_dict()}
        self._http = _ThreadConnections(https=self._url.scheme == "https")
        self._pool = WorkerPool(f"dspex-client-{lm.model_name}", self.cap, daemon=True)
        self._timer = Timer(f"dspex-client-timer-{lm.model_name}")
        self._bucket = TokenBucket(lm.rpm, time.monotonic()) if lm.rpm else None
        self._ids = itertools.count(1)
        self._calls: dict[int, _Call] = {}
        self._ready: deque[int] = deque()
        self._delayed: list[tuple[float, int]] = []
        self._in_flight: dict[int, int] = {}
        self._wake_at: float | None = None
        self._stopping = False
        self.counters = {
            "requests": 0,
            "attempts": 0,
            "retries": 0,
            "successes": 0,
            "failures": 0,
            "circuit_rejections": 0,
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "total_tokens": 0,
            "max_in_flight": 0,
        }

    # -- mailbox -----------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Submit):
            return self._submit(message.request, message.reply_to)
        if isinstance(message, _AttemptDone):
            self._attempt_done(message)
            return None
        if isinstance(message, _Wake):
            self._wake_at = None
            self._dispatch()
            return None
        if isinstance(message, GetClientStats):
            return self.stats()
        raise TypeError(f"ClientActor got an unexpected message: {type(message).__name__}")

    def _submit(
        self, request: LMRequest, reply_to: pykka.ThreadingFuture[LMResponse] | None
    ) -> pykka.ThreadingFuture[LMResponse]:
        future = reply_to if reply_to is not None else pykka.ThreadingFuture[LMResponse]()
        call = _Call(next(self._ids), request, future)
        self.counters["requests"] += 1
        self._calls[call.id] = call
        self._ready.append(call.id)
        self._dispatch()
        return future

    def _dispatch(self) -> None:
        """Start ready calls while a slot and a rate-limit token are free."""
        now = time.monotonic()
        while self._delayed and self._delayed[0][0] <= now:
            _, call_id = heapq.heappop(self._delayed)
            self._ready.appendleft(call_id)
        next_wake = self._delayed[0][0] if self._delayed else None
        while self._ready and len(self._in_flight) < self.cap:
            if self._bucket is not None:
                wait = self._bucket.wait_time(now)
                if wait > 0:
                    deadline = now + wait
                    next_wake = deadline if next_wake is None else min(next_wake, deadline)
                    break
            call = self._calls[self._ready.popleft()]
            permit = self.breaker.admit()
            if permit is None:
                self.counters["circuit_rejections"] += 1
                self._finish(call, self._circuit_open_error(call))
                continue
            if self._bucket is not None:
                self._bucket.take(now)
            self._start_attempt(call, permit)
        if next_wake is not None:
            self._schedule_wake(next_wake)

    def _schedule_wake(self, deadline: float) -> None:
        if self._wake_at is not None and self._wake_at <= deadline:
            return
        self._wake_at = deadline
        ref = self.actor_ref

        def wake() -> None:
            with contextlib.suppress(pykka.ActorDeadError):
                ref.tell(_Wake())

        self._timer.call_at(deadline, wake)

    def _start_attempt(self, call: _Call, permit: int) -> None:
        call.attempts += 1
        self.counters["attempts"] += 1
        self._in_flight[call.id] = permit
        self.counters["max_in_flight"] = max(self.counters["max_in_flight"], len(self._in_flight))
        body = self._provider.body(self.lm.model_name, call.request)
        try:
            self._pool.submit(self._send, call.id, permit, body, call.future, self.actor_ref)
        except RuntimeError:
            del self._in_flight[call.id]
            self.breaker.release(permit)
            self._finish(
                call,
                LMUnavailableError(
                    f"the Client actor for {self.lm.model} at {self.endpoint} is shutting down",
                    model=self.lm.model,
                    endpoint=self.endpoint,
                ),
            )

    def _attempt_done(self, done: _AttemptDone) -> None:
        if self._in_flight.pop(done.call_id, None) is None:
            return
        error = done.outcome if isinstance(done.outcome, LMError) else None
        self.breaker.record(done.permit, error)
        call = self._calls.get(done.call_id)
        if call is not None:
            if isinstance(done.outcome, LMResponse):
                for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
                    self.counters[key] += done.outcome.usage.get(key, 0)
                self._finish(call, done.outcome)
            else:
                self._after_failure(call, done.outcome)
        self._dispatch()

    def _after_failure(self, call: _Call, error: LMError) -> None:
        call.last_error = error
        retry = call.attempts
        if self._stopping or retry > self.lm.num_retries or not is_retryable(error):
            self._finish(call, error)
            return
        retry_after = error.retry_after if isinstance(error, LMHTTPStatusError) else None
        if retry_after is not None and retry_after > self.options.max_retry_after:
            self._finish(call, error)
            return
        delay = backoff_delay(
            retry,
            base=self.options.retry_base_delay,
            maximum=self.options.retry_max_delay,
            retry_after=retry_after,
        )
        self.counters["retries"] += 1
        logger.info(
            "retrying %s at %s in %.2fs (retry %d of %d) after: %s",
            self.lm.model,
            self.endpoint,
            delay,
            retry,
            self.lm.num_retries,
            error,
        )
        heapq.heappush(self._delayed, (time.monotonic() + delay, call.id))

    def _finish(self, call: _Call, outcome: LMResponse | BaseException) -> None:
        self._calls.pop(call.id, None)
        if isinstance(outcome, LMResponse):
            self.counters["successes"] += 1
            _succeed(call.future, outcome)
        else:
            self.counters["failures"] += 1
            _fail(call.future, outcome)

    def _circuit_open_error(self, call: _Call) -> CircuitOpenError:
        message = (
            f"circuit breaker open for {self.endpoint} ({self.lm.model}); "
            f"no request sent, retry in {self.breaker.retry_in():.1f}s"
        )
        if call.last_error is not None:
            message += f"; last error: {call.last_error}"
        error = CircuitOpenError(message, model=self.lm.model, endpoint=self.endpoint)
        error.__cause__ = call.last_error
        return error

    # -- worker threads ------------------------------------------------------------

    def _send(
        self,
        call_id: int,
        permit: int,
        body: dict[str, Any],
        future: pykka.ThreadingFuture[LMResponse],
        ref: pykka.ActorRef[Any],
    ) -> None:
        """One HTTP attempt on a pool thread; the outcome goes back as a message.

        A success also completes the caller's future from here, right after the message
        is queued: the caller does not wait its turn in the actor's mailbox (64 replies
        landing together would otherwise queue behind one thread), and any question it
        asks the actor next is queued behind this attempt's bookkeeping.
        """
        try:
            outcome: LMResponse | LMError = self._http_attempt(body)
        except Exception as exc:  # a bug must still complete the call
            logger.exception("unexpected error calling %s at %s", self.lm.model, self.endpoint)
            outcome = LMError(
                f"unexpected {type(exc).__name__} calling {self.lm.model} at {self.endpoint}",
                model=self.lm.model,
                endpoint=self.endpoint,
            )
        try:
            ref.tell(_AttemptDone(call_id, permit, outcome))
        except pykka.ActorDeadError:
            self.breaker.release(permit)
        if isinstance(outcome, LMResponse):
            _succeed(future, outcome)

    def _http_attempt(self, body: dict[str, Any]) -> LMResponse | LMError:
        model, endpoint = self.lm.model, self.endpoint
        content = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        request = httpx.Request(
            "POST",
            self._url,
            headers=self._headers,
            content=content.encode("utf-8"),
            extensions=self._timeouts,
        )
        try:
            with self._http.use() as transport:
                response = transport.handle_request(request)
                response.read()
        except httpx.TimeoutException as exc:
            return LMTimeoutError(
                f"{model} at {endpoint} did not answer within {self.lm.timeout:g}s "
                f"({type(exc).__name__})",
                model=model,
                endpoint=endpoint,
            )
        except (httpx.TransportError, RuntimeError) as exc:
            return LMConnectionError(
                f"connection to {endpoint} for {model} failed: {type(exc).__name__}: "
                f"{self._redact(str(exc))}",
                model=model,
                endpoint=endpoint,
            )
        if response.status_code >= 400:
            excerpt = self._redact(response.text[:BODY_EXCERPT_CHARS])
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            return LMHTTPStatusError(
                f"{endpoint} answered HTTP {response.status_code} for {model}: {excerpt}",
                status_code=response.status_code,
                body_excerpt=excerpt,
                retry_after=retry_after,
                model=model,
                endpoint=endpoint,
            )
        try:
            payload = json.loads(response.content)
        except ValueError:
            excerpt = self._redact(response.text[:BODY_EXCERPT_CHARS])
            return MalformedResponseError(
                f"malformed reply from {endpoint} for {model}: not JSON: {excerpt!r}",
                model=model,
                endpoint=endpoint,
            )
        try:
            return self._provider.parse(payload, model=model, endpoint=endpoint)
        except MalformedResponseError as exc:
            return exc

    def _redact(self, text: str) -> str:
        key = self.lm.api_key
        return text.replace(key, "***") if key else text

    # -- lifecycle -------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Counters, limits and breaker state."""
        return {
            "model": self.lm.model,
            "endpoint": self.endpoint,
            **self.counters,
            "in_flight": len(self._in_flight),
            "queued": len(self._ready) + len(self._delayed),
            "max_concurrency": self.cap,
            "rpm": self.lm.rpm,
            "breaker": self.breaker.snapshot(),
        }

    def _shutdown(self, how: str) -> None:
        """Fail every pending call promptly, then release threads and connections."""
        self._stopping = True
        calls, self._calls = self._calls, {}
        for call in calls.values():
            error = LMUnavailableError(
                f"the Client actor for {self.lm.model} at {self.endpoint} {how} "
                "before the call finished",
                model=self.lm.model,
                endpoint=self.endpoint,
            )
            _fail(call.future, error)
        for permit in self._in_flight.values():
            self.breaker.release(permit)
        self._in_flight.clear()
        self._timer.stop()
        self._http.close()
        self._pool.shutdown(timeout=SHUTDOWN_JOIN_SECONDS)


def client_unavailable(model: str, endpoint: str, detail: str) -> LMUnavailableError:
    """The error of a call its Client actor dropped: ``detail`` says when (stopped ...)."""
    return LMUnavailableError(
        f"the Client actor for {model} at {endpoint} {detail}", model=model, endpoint=endpoint
    )


def call_client(
    ref: pykka.ActorRef[Any],
    request: LMRequest,
    *,
    model: str,
    endpoint: str,
) -> LMResponse:
    """Send ``request`` to the Client actor ``ref`` and wait for its response.

    Never hangs on a dead actor: a stop or crash before or during the call becomes
    :class:`LMUnavailableError`.
    """
    reply = pykka.ThreadingFuture[LMResponse]()
    try:
        ref.tell(Submit(request, reply))
    except pykka.ActorDeadError:
        raise client_unavailable(model, endpoint, "stopped before taking the call") from None
    return wait_reply(
        reply,
        ref,
        lambda: client_unavailable(model, endpoint, "stopped while the call was in flight"),
    )
