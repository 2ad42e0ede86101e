"""The Client actor: one per LM configuration, many HTTP calls in flight at once.

The actor's mailbox does bookkeeping only (admission, concurrency cap, rate limit,
breaker, retries, deadlines, counters). Each HTTP attempt runs as a task on the system's
I/O loop (``_http.py``) and its outcome comes back as a message; the caller's reply is
completed by this actor, on its thread, when the call finally succeeds or fails (a
deferred reply), so a slow call never holds up the others. Retry backoffs and rate-limit
waits are ``call_at`` wake-ups on the loop, never sleeps.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import heapq
import itertools
import json
import logging
import time
from collections import deque
from typing import Any, NamedTuple

import pykka

from dspex_actors._errors import (
    CircuitOpenError,
    LMError,
    LMHTTPStatusError,
    LMTimeoutError,
    LMUnavailableError,
)
from dspex_actors._lifecycle import ShutdownOnExit
from dspex_actors._loop import IOLoop, IOLoopClosedError
from dspex_actors._reply import deliver
from dspex_actors._types import (
    AttemptRecord,
    CallEvent,
    CallRecord,
    Cancel,
    ChunkSink,
    LMRequest,
    LMResponse,
    Reply,
    Submit,
)
from dspex_actors.lm._breaker import EndpointBreaker
from dspex_actors.lm._http import Attempt, AttemptOutcome, HTTPEndpoint
from dspex_actors.lm._limits import RateLimiter
from dspex_actors.lm._lm import LM
from dspex_actors.lm._record import call_cost
from dspex_actors.lm._retry import backoff_delay, is_retryable
from dspex_actors.lm._wait import Watch, wait_reply
from dspex_actors.telemetry._client_metrics import ClientGauges
from supervision import SimpleQueueInbox, Supervised

__all__ = [
    "ClientActor",
    "ClientOptions",
    "GetClientStats",
    "Submit",
    "call_client",
    "client_unavailable",
    "client_watch",
]

logger = logging.getLogger(__name__)


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


class GetClientStats(NamedTuple):
    """Ask: a dict of counters, limits and breaker state."""


class _Wake(NamedTuple):
    pass


@dataclasses.dataclass
class _Call:
    """One caller's call; lives on the actor thread only."""

    id: int
    request: LMRequest
    reply: Reply
    sink: ChunkSink | None
    deadline: float | None
    attempts: int = 0
    last_error: LMError | None = None
    waited_for_circuit: bool = False
    attempt_started_ns: int = 0
    records: list[AttemptRecord] = dataclasses.field(default_factory=list)
    events: list[CallEvent] = dataclasses.field(default_factory=list)
    """What became of each attempt, and what else happened (for telemetry)."""


class ClientActor(SimpleQueueInbox, ShutdownOnExit, Supervised, pykka.ThreadingActor):
    """Owns an LM's HTTP endpoint, breaker, concurrency cap, rate limit and counters.

    Its thread is a daemon thread and the ActorSystem stops it from an atexit hook, so a
    script never hangs at exit waiting for it.
    """

    use_daemon_thread = True

    def __init__(
        self,
        lm: LM,
        breaker: EndpointBreaker,
        bucket: RateLimiter | None,
        options: ClientOptions,
        io: IOLoop,
    ) -> None:
        super().__init__()
        self.lm = lm
        self.breaker = breaker
        self.options = options
        self.endpoint = lm.endpoint
        self.cap = lm.max_concurrency or options.default_max_concurrency
        self._io = io
        self._provider = lm.provider_impl
        ref = self.actor_ref
        self._http = HTTPEndpoint(lm, io, lambda done: _report(ref, breaker, done), limit=self.cap)
        self._bucket = bucket
        self._gauges = ClientGauges(lm)
        self._wake_on_breaker = functools.partial(_tell_quietly, ref, _Wake())
        breaker.subscribe(self._wake_on_breaker)
        if bucket is not None:
            bucket.subscribe(self._wake_on_breaker)
        self._ids = itertools.count(1)
        self._calls: dict[int, _Call] = {}
        self._by_reply: dict[Reply, int] = {}
        self._ready: deque[int] = deque()
        self._delayed: list[tuple[float, int]] = []
        self._parked: list[int] = []
        """Calls waiting for the circuit's half-open trial (see ``_circuit_refused``)."""
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
            "circuit_waits": 0,
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "total_tokens": 0,
            "max_in_flight": 0,
            "cancelled": 0,
        }

    # -- mailbox -----------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Submit):
            return self._submit(message)
        if isinstance(message, AttemptOutcome):
            self._attempt_done(message)
            return None
        if isinstance(message, Cancel):
            self._cancel(message.reply)
            return None
        if isinstance(message, _Wake):
            self._wake_at = None
            self._dispatch()
            return None
        if isinstance(message, GetClientStats):
            return self.stats()
        raise TypeError(f"ClientActor got an unexpected message: {type(message).__name__}")

    def _submit(self, submit: Submit) -> pykka.ThreadingFuture[LMResponse] | None:
        future = None
        reply = submit.reply_to
        if reply is None:
            reply = future = pykka.ThreadingFuture[LMResponse]()
        deadline = None if self.lm.deadline is None else time.monotonic() + self.lm.deadline
        call = _Call(next(self._ids), submit.request, reply, submit.sink, deadline)
        self.counters["requests"] += 1
        self._calls[call.id] = call
        self._by_reply[reply] = call.id
        self._ready.append(call.id)
        self._dispatch()
        return future

    def _dispatch(self) -> None:
        """Start ready calls while a slot and a rate-limit token are free."""
        now = time.monotonic()
        while self._delayed and self._delayed[0][0] <= now:
            _, call_id = heapq.heappop(self._delayed)
            self._ready.appendleft(call_id)
        if self._parked and self.breaker.retry_in() == 0.0:
            self._ready.extendleft(reversed(self._parked))  # the trial may be one of theirs
            self._parked.clear()
        next_wake = self._delayed[0][0] if self._delayed else None
        while self._ready and len(self._in_flight) < self.cap:
            call = self._calls.get(self._ready[0])
            if call is None:
                self._ready.popleft()
                continue
            if call.deadline is not None and now >= call.deadline:
                self._ready.popleft()
                self._finish(call, self._deadline_error(call, "before it could be sent"))
                continue
            if self._bucket is not None:
                wait = self._bucket.try_take(now)
                if wait > 0:
                    if not any(e.name == _RATE_LIMIT_WAIT for e in call.events):
                        call.events.append(_event(_RATE_LIMIT_WAIT, ("dspex.wait_s", wait)))
                    deadline = now + wait
                    next_wake = deadline if next_wake is None else min(next_wake, deadline)
                    break
            self._ready.popleft()
            permit = self.breaker.admit()
            if permit is None:
                self._circuit_refused(call, now)
                continue
            self._start_attempt(call, permit, now)
        if self._parked:
            retry_in = self.breaker.retry_in()
            if retry_in > 0:  # else a trial is out: its outcome wakes us (subscribe)
                when = now + retry_in
                next_wake = when if next_wake is None else min(next_wake, when)
        if next_wake is not None:
            self._schedule_wake(next_wake)
        self._gauges.update(len(self._in_flight), self._queued())

    def _queued(self) -> int:
        return len(self._ready) + len(self._delayed) + len(self._parked)

    def _circuit_refused(self, call: _Call, now: float) -> None:
        """The circuit refused ``call``: park it for the half-open trial, or fail it.

        A call parks when its policy is "wait" and it has retries left: once while the
        circuit is open (until it half-opens), and again only while a half-open trial is
        out (until its outcome). Once a trial has failed, the endpoint counts as down:
        the calls that waited fail, and so do new ones until a trial succeeds, so a dead
        endpoint fails a batch in about one reset timeout.
        """
        retry_in = self.breaker.retry_in()
        half_open = retry_in == 0.0
        waits = (
            self._policy(call) == "wait"
            and not self.breaker.trial_failed
            and self.lm.num_retries > 0
            and call.attempts <= self.lm.num_retries
            and (call.deadline is None or now + retry_in < call.deadline)
        )
        if waits and (half_open or not call.waited_for_circuit):
            if not call.waited_for_circuit:
                call.waited_for_circuit = True
                self.counters["circuit_waits"] += 1
                call.events.append(_event("dspex.circuit.wait", ("dspex.wait_s", retry_in)))
            self._parked.append(call.id)
            return
        self.counters["circuit_rejections"] += 1
        self._finish(call, self._circuit_open_error(call))

    def _policy(self, call: _Call) -> str:
        """What ``call`` does on an open circuit: the LM's setting, else the caller's."""
        return self.lm.on_circuit_open or call.request.on_circuit_open or "fail"

    def _schedule_wake(self, when: float) -> None:
        if self._wake_at is not None and self._wake_at <= when:
            return
        self._wake_at = when
        with contextlib.suppress(IOLoopClosedError):
            self._io.call_at(when, _tell_quietly, self.actor_ref, _Wake())

    def _start_attempt(self, call: _Call, permit: int, now: float) -> None:
        call.attempts += 1
        call.attempt_started_ns = time.time_ns()
        self.counters["attempts"] += 1
        self._in_flight[call.id] = permit
        self.counters["max_in_flight"] = max(self.counters["max_in_flight"], len(self._in_flight))
        make_body = self._provider.body if call.sink is None else self._provider.stream_body
        body = json.dumps(
            make_body(self.lm.model_name, call.request),
            ensure_ascii=False,
            separators=(",", ":"),
            allow_nan=False,
        ).encode("utf-8")
        timeout = self.lm.timeout
        if call.deadline is not None:
            timeout = min(timeout, call.deadline - now)
        attempt = Attempt(call.id, permit, body, timeout, call.sink, call.attempts)
        try:
            self._io.call_soon(self._http.start, attempt)
        except IOLoopClosedError:
            del self._in_flight[call.id]
            self.breaker.release(permit)
            self._finish(call, client_unavailable(self.lm.model, self.endpoint, "is shutting down"))

    def _attempt_done(self, done: AttemptOutcome) -> None:
        if self._in_flight.pop(done.call_id, None) is None:
            return
        error = done.outcome if isinstance(done.outcome, LMError) else None
        state = self.breaker.state
        self.breaker.record(done.permit, error)
        call = self._calls.get(done.call_id)
        if call is not None:
            call.records.append(_attempt_record(call.attempt_started_ns, done.outcome))
            if self.breaker.state != state:
                changed = (("dspex.breaker.from", state), ("dspex.breaker.to", self.breaker.state))
                call.events.append(_event("dspex.breaker.state_change", *changed))
            if isinstance(done.outcome, LMResponse):
                for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
                    self.counters[key] += done.outcome.usage.get(key, 0)
                if self._bucket is not None:
                    self._bucket.spent(time.monotonic(), done.outcome.usage.get("total_tokens", 0))
                self._finish(call, done.outcome)
            else:
                self._after_failure(call, done.outcome, streamed=done.streamed)
        self._dispatch()

    def _after_failure(self, call: _Call, error: LMError, *, streamed: bool = False) -> None:
        """Retry ``call`` later, or fail it (a reply already partly streamed is not retried:
        its consumer has seen the pieces)."""
        call.last_error = error
        retry = call.attempts
        if self._stopping or streamed or retry > self.lm.num_retries or not is_retryable(error):
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
        now = time.monotonic()
        if call.deadline is not None and now + delay >= call.deadline:
            when = f"before the next retry (in {delay:.2f}s)"
            self._finish(call, self._deadline_error(call, when))
            return
        self.counters["retries"] += 1
        self._gauges.retried()
        logger.info(
            "retrying %s at %s in %.2fs (retry %d of %d) after: %s",
            self.lm.model,
            self.endpoint,
            delay,
            retry,
            self.lm.num_retries,
            error,
        )
        heapq.heappush(self._delayed, (now + delay, call.id))

    def _cancel(self, reply: Reply) -> None:
        """Drop the call answering ``reply``: cancel its attempt, free its slot."""
        call_id = self._by_reply.pop(reply, None)
        if call_id is None or self._calls.pop(call_id, None) is None:
            return
        self.counters["cancelled"] += 1
        permit = self._in_flight.pop(call_id, None)
        if permit is not None:
            self.breaker.release(permit)
            with contextlib.suppress(IOLoopClosedError):
                self._io.call_soon(self._http.cancel, call_id)
        self._dispatch()  # queued calls skip a cancelled one; a freed slot starts the next

    def _finish(self, call: _Call, outcome: LMResponse | BaseException) -> None:
        self._calls.pop(call.id, None)
        self._by_reply.pop(call.reply, None)
        record = CallRecord(tuple(call.records), tuple(call.events))
        if isinstance(outcome, LMResponse):
            self.counters["successes"] += 1
            outcome = dataclasses.replace(outcome, record=record)
        else:
            self.counters["failures"] += 1
            if isinstance(outcome, LMError):
                outcome.record = record
        deliver(call.reply, outcome)

    def _deadline_error(self, call: _Call, when: str) -> LMTimeoutError:
        message = f"the deadline of {self.lm.deadline:g}s for {self.lm.model} at {self.endpoint} "
        message += f"would pass {when}" if "retry" in when else f"passed {when}"
        if call.last_error is not None:
            message += f"; last error: {call.last_error}"
        error = LMTimeoutError(message, model=self.lm.model, endpoint=self.endpoint)
        error.__cause__ = call.last_error
        return error

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

    # -- lifecycle -------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Counters, limits and breaker state."""
        return {
            "model": self.lm.model,
            "endpoint": self.endpoint,
            **self.counters,
            "in_flight": len(self._in_flight),
            "queued": len(self._ready) + len(self._delayed) + len(self._parked),
            "max_concurrency": self.cap,
            "rpm": self.lm.rpm,
            "tpm": self.lm.tpm,
            "proxy": self._http.proxy_url,
            "breaker": self.breaker.snapshot(),
            "cost": call_cost(self.lm, self.counters),
        }

    def _shutdown(self, how: str) -> None:
        """Fail every pending call promptly; cancel attempts in flight, close connections."""
        self._stopping = True
        self._gauges.update(0, 0)
        self.breaker.unsubscribe(self._wake_on_breaker)
        if self._bucket is not None:
            self._bucket.unsubscribe(self._wake_on_breaker)
        self._parked.clear()
        calls, self._calls = self._calls, {}
        self._by_reply.clear()
        for call in calls.values():
            deliver(
                call.reply,
                client_unavailable(self.lm.model, self.endpoint, f"{how} before the call finished"),
            )
        for permit in self._in_flight.values():
            self.breaker.release(permit)
        self._in_flight.clear()
        with contextlib.suppress(IOLoopClosedError):
            self._io.call_soon(self._http.close)


_RATE_LIMIT_WAIT = "dspex.rate_limit.wait"


def _event(name: str, *attributes: tuple[str, str | int | float | bool]) -> CallEvent:
    return CallEvent(name, time.time_ns(), attributes)


def _attempt_record(started_ns: int, outcome: LMResponse | LMError) -> AttemptRecord:
    """How an attempt ended: its HTTP status (if a reply came) and its error type."""
    if isinstance(outcome, LMResponse):
        return AttemptRecord(started_ns, time.time_ns(), 200, None)
    status = outcome.status_code if isinstance(outcome, LMHTTPStatusError) else None
    return AttemptRecord(started_ns, time.time_ns(), status, type(outcome).__name__)


def _tell_quietly(ref: pykka.ActorRef[Any], message: Any) -> None:
    """Tell ``ref`` ``message`` unless it has stopped (loop callbacks outlive actors)."""
    with contextlib.suppress(pykka.ActorDeadError):
        ref.tell(message)


def _report(ref: pykka.ActorRef[Any], breaker: EndpointBreaker, done: AttemptOutcome) -> None:
    """An attempt's outcome, from the loop to its Client (a permit is given back if it died)."""
    try:
        ref.tell(done)
    except pykka.ActorDeadError:
        breaker.release(done.permit)


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
    return wait_reply(reply, [client_watch(ref, model, endpoint)])


def client_watch(ref: pykka.ActorRef[Any], model: str, endpoint: str) -> Watch:
    """Waiting on a call of the Client ``ref``: its death becomes LMUnavailableError."""
    return ref, lambda: client_unavailable(model, endpoint, "stopped while the call was in flight")
