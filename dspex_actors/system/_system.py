"""``ActorSystem``: a supervisor with the Cache actor and one Client actor per LM config.

Callers (any thread) talk to the actors through stable ChildHandles, so a Client or
Cache restarted by the supervisor is found by the next call. The cache is an
optimisation: when the Cache actor is down, calls go straight to the Client.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import contextlib
import contextvars
import dataclasses
import functools
import logging
import os
import threading
import time
import weakref
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import pykka

from dspex_actors._batch import in_batch
from dspex_actors._errors import (
    CacheError,
    ConfigurationError,
    LMError,
    LMUnavailableError,
    SystemStoppingError,
)
from dspex_actors._loop import IOLoop
from dspex_actors._types import (
    AsyncReply,
    Cancel,
    ChunkSink,
    LMRequest,
    LMResponse,
    Reply,
    Submit,
)
from dspex_actors._validate import check_number
from dspex_actors.cache._actor import (
    CacheActor,
    CacheOptions,
    ClientGone,
    Fetch,
    GetCacheStats,
    Withdraw,
)
from dspex_actors.cache._key import cache_key
from dspex_actors.cache._sqlite import SQLiteTier
from dspex_actors.lm._breaker import EndpointBreaker
from dspex_actors.lm._client import (
    ClientActor,
    ClientOptions,
    GetClientStats,
    client_unavailable,
    client_watch,
)
from dspex_actors.lm._limits import RateLimiter, RequestLimits, TokenBucket
from dspex_actors.lm._lm import LM
from dspex_actors.lm._record import record_call
from dspex_actors.lm._wait import Watch, await_reply, wait_reply
from dspex_actors.system._settings import context_lm
from dspex_actors.telemetry._otel import observe_restarts
from dspex_actors.telemetry._spans import LMCallObserver, observe_lm_call
from supervision import (
    ChildHandle,
    ChildSpec,
    ChildUnavailableError,
    SupervisionError,
    Supervisor,
)

if TYPE_CHECKING:
    from dspex_actors.shared import SharedState

__all__ = ["ActorSystem"]

logger = logging.getLogger(__name__)

CACHE_CHILD_ID = "cache"
CHILD_REF_TIMEOUT = 10.0
"""How long a call waits for a restarting Cache/Client before giving up."""
ASK_TIMEOUT = 30.0
"""Bound on bookkeeping round trips (lookup, store, stats, start_child)."""

_current: contextvars.ContextVar[ActorSystem | None] = contextvars.ContextVar(
    "dspex_actors_current_system", default=None
)
_registry_lock = threading.RLock()
_entered: list[ActorSystem] = []
"""Systems whose ``with`` block is open, most recently entered last."""
_running: weakref.WeakSet[ActorSystem] = weakref.WeakSet()
_exit_hook = {"installed": False}


class _SystemSupervisor(Supervisor):
    """The system's supervisor, on a daemon thread like its children (see _stop_all_at_exit)."""

    use_daemon_thread = True


def _stop_all_at_exit() -> None:
    """atexit hook: stop every system still running.

    Actor threads are daemon threads, so the interpreter does not wait for them before
    running atexit hooks (Python joins non-daemon threads *before* atexit); user threads
    that still make calls have been joined by then.
    """
    with _registry_lock:
        systems = list(_running)
    for system in systems:
        try:
            system.stop()
        except Exception:
            logger.warning("stopping %r at exit failed", system, exc_info=True)


def _install_exit_hook() -> None:
    with _registry_lock:
        if not _exit_hook["installed"]:
            atexit.register(_stop_all_at_exit)
            _exit_hook["installed"] = True


class ActorSystem:
    """The runtime: a supervisor ``"dspex"`` with a Cache actor and Client actors.

    ``lm`` is the default LM of calls that name none. ``cache_dir`` enables the SQLite
    tier (a file that cannot be used is logged and the cache stays in memory, unless
    ``cache_strict`` makes ``start()`` raise CacheError). ``max_restarts`` within
    ``max_seconds`` bounds the supervisor's restarts. The breaker and retry settings
    apply to every Client of this system.

    ``redis_url`` (``redis://host:port/db``; the ``[redis]`` extra) shares state with every
    other process using the same Redis and ``redis_prefix``: a cache tier under the memory
    tier (``cache_ttl`` applies; values in JSON), single flight across processes (a leader
    lock renewed while its call runs, taken over ``redis_lock_ttl`` seconds after its holder
    dies), the ``rpm``/``tpm`` buckets and circuit breaker state per endpoint and
    credential. Each Redis command is bounded by ``redis_timeout``; while Redis is down or
    slow the system logs it and uses its local state, never failing a call for it.

    Each LM configuration (model, endpoint, settings, key) has its own Client actor; past
    ``max_clients`` of them, starting one stops the least recently used Client that no call
    is using (its breaker and rate buckets stay with the system), so a service that makes
    an LM per tenant runs a bounded number of threads.

    Use ``with ActorSystem(lm=...) as system:`` (starts, makes it current, stops) or
    ``start()``/``stop()``; ``with`` on a system that is already started only makes it
    current.
    """

    def __init__(
        self,
        lm: LM | None = None,
        *,
        cache_dir: str | Path | None = None,
        cache_maxsize: int = 100_000,
        cache_ttl: float | None = None,
        cache_strict: bool = False,
        max_restarts: int = 3,
        max_seconds: float = 5.0,
        breaker_fail_max: int = 5,
        breaker_reset_timeout: float = 10.0,
        retry_base_delay: float = 0.5,
        retry_max_delay: float = 20.0,
        name: str | None = None,
        redis_url: str | None = None,
        redis_prefix: str = "dspex:",
        redis_timeout: float = 1.0,
        redis_lock_ttl: float = 10.0,
        max_clients: int = 64,
    ) -> None:
        if lm is not None and not isinstance(lm, LM):
            raise ConfigurationError(f"ActorSystem lm must be a dspex_actors.LM, got {lm!r}")
        if cache_dir is not None and not isinstance(cache_dir, (str, Path)):
            raise ConfigurationError(f"ActorSystem cache_dir must be a path, got {cache_dir!r}")
        check = functools.partial(check_number, "ActorSystem")
        check("cache_maxsize", cache_maxsize, minimum=0, strict=True, integer=True)
        if cache_ttl is not None:
            check("cache_ttl", cache_ttl, minimum=0, strict=True, integer=False)
        check("max_restarts", max_restarts, minimum=0, strict=False, integer=True)
        check("max_seconds", max_seconds, minimum=0, strict=True, integer=False)
        check("breaker_fail_max", breaker_fail_max, minimum=0, strict=True, integer=True)
        check("breaker_reset_timeout", breaker_reset_timeout, minimum=0, strict=True, integer=False)
        check("retry_base_delay", retry_base_delay, minimum=0, strict=False, integer=False)
        check("retry_max_delay", retry_max_delay, minimum=0, strict=False, integer=False)
        check("redis_timeout", redis_timeout, minimum=0, strict=True, integer=False)
        check("redis_lock_ttl", redis_lock_ttl, minimum=0, strict=True, integer=False)
        check("max_clients", max_clients, minimum=1, strict=False, integer=True)
        _check_redis_url(redis_url)
        if not isinstance(redis_prefix, str):
            raise ConfigurationError(
                f"ActorSystem redis_prefix must be a string, got {redis_prefix!r}"
            )
        self.redis_url = redis_url
        self.redis_prefix = redis_prefix
        self.redis_timeout = float(redis_timeout)
        self.redis_lock_ttl = float(redis_lock_ttl)
        self._shared: SharedState | None = None
        self._lm = lm
        self.name = name or "dspex"
        self.cache_options = CacheOptions(maxsize=cache_maxsize, ttl=cache_ttl, cache_dir=cache_dir)
        self.cache_strict = bool(cache_strict)
        self.max_restarts = max_restarts
        self.max_seconds = float(max_seconds)
        self.client_options = ClientOptions(
            breaker_fail_max=breaker_fail_max,
            breaker_reset_timeout=float(breaker_reset_timeout),
            retry_base_delay=float(retry_base_delay),
            retry_max_delay=float(retry_max_delay),
        )
        self._lock = threading.RLock()
        self._supervisor: pykka.ActorRef[Any] | None = None
        self._io: IOLoop | None = None
        self._pid: int | None = None
        """The process that started it: after os.fork() the child has none of its threads."""
        self._cache: ChildHandle | None = None
        self.max_clients = int(max_clients)
        self._clients: collections.OrderedDict[str, tuple[LM, ChildHandle]] = (
            collections.OrderedDict()
        )
        """Client actors by LM configuration, least recently used first."""
        self._client_users: dict[str, int] = {}
        """Calls using each Client actor now: one in use is never stopped to make room."""
        self._clients_lock = threading.Lock()
        self._breakers: dict[tuple[str, str], EndpointBreaker] = {}
        """Per (endpoint, credential): one tenant's failures never block another's."""
        self._buckets: dict[tuple[str, str, str, float], TokenBucket] = {}
        self._exit_reason: BaseException | None = None
        self._calls = _CallCount(self.name)
        self._enter_stacks = threading.local()
        """Per thread: the open ``with`` blocks (a token can only be reset in its own context)."""

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def lm(self) -> LM | None:
        """The default LM of this system (None: every call must name one)."""
        return self._lm

    @property
    def running(self) -> bool:
        """Whether the system is started (in this process) and its supervisor is alive."""
        sup = self._supervisor
        return sup is not None and not self.forked and sup.is_alive()

    @property
    def stopping(self) -> bool:
        """Whether ``stop(grace=...)`` is draining: new calls are refused meanwhile."""
        return self._calls.draining

    @property
    def forked(self) -> bool:
        """Whether this process is a fork of the one that started the system (its threads,
        actors and I/O loop exist only there)."""
        return self._pid is not None and self._pid != os.getpid()

    def _forked_error(self) -> LMUnavailableError:
        return LMUnavailableError(
            f"actor system {self.name!r} was started in process {self._pid}, and this process "
            f"({os.getpid()}) is a fork of it, where its threads do not exist: start an "
            "ActorSystem in the child (dx.configure()'s default system starts anew by itself)"
        )

    def start(self) -> Self:
        """Start the supervisor and the Cache actor (Clients start on first use)."""
        with self._lock:
            if self.running:
                return self
            if self.forked:
                self._forget()
            elif self._supervisor is not None:
                self._teardown()
            cache_dir = self.cache_options.cache_dir
            if self.cache_strict and cache_dir is not None:
                SQLiteTier.open(cache_dir).close()
            options = self.cache_options
            self._exit_reason = None
            self._io = IOLoop(f"{self.name}-io")
            self._pid = os.getpid()
            self._shared = self._start_shared(self._io)
            shared_cache = self._shared.cache if self._shared is not None else None
            self._supervisor = _SystemSupervisor.start(
                [
                    ChildSpec(
                        id=CACHE_CHILD_ID,
                        start=functools.partial(CacheActor.start, options, shared_cache),
                    )
                ],
                strategy="one_for_one",
                max_restarts=self.max_restarts,
                max_seconds=self.max_seconds,
                name=self.name,
                on_exit=self._on_supervisor_exit,
            )
            self._cache = ChildHandle(self._supervisor, CACHE_CHILD_ID)
            with _registry_lock:
                _running.add(self)
            _install_exit_hook()
            observe_restarts(_restart_counts)
            logger.debug("actor system %s started", self.name)
            return self

    def _start_shared(self, io: IOLoop) -> SharedState | None:
        """The Redis-shared state of ``redis_url`` (None without one)."""
        if self.redis_url is None:
            return None
        from dspex_actors.shared import SharedState

        return SharedState(
            self.redis_url,
            io,
            prefix=self.redis_prefix,
            timeout=self.redis_timeout,
            lock_ttl=self.redis_lock_ttl,
            cache_ttl=self.cache_options.ttl,
        )

    def _on_supervisor_exit(self, reason: BaseException | None) -> None:
        if reason is not None:
            self._exit_reason = reason
            logger.error("actor system %s stopped: %s", self.name, reason)

    def stop(self, timeout: float = 30.0, *, grace: float | None = None) -> None:
        """Stop every actor, then the I/O loop: calls in flight fail promptly, their HTTP
        attempts are cancelled and every connection is closed.

        ``grace`` (seconds) drains first: new calls are refused at once with
        :class:`SystemStoppingError` while the calls in flight get up to ``grace`` seconds
        to finish; whatever is still running then fails as above.
        """
        if grace is not None:
            check_number("ActorSystem.stop", "grace", grace, minimum=0, strict=False, integer=False)
            if self.running and not self._calls.drain(float(grace)):
                logger.warning(
                    "actor system %s: %d calls still in flight after a grace of %ss",
                    self.name,
                    self._calls.in_flight,
                    grace,
                )
        try:
            self._stop(timeout)
        finally:
            self._calls.reopen()

    def _stop(self, timeout: float) -> None:
        with self._lock:
            sup, io, shared = self._supervisor, self._io, self._shared
            if sup is None:
                return
            if self.forked:  # nothing of it runs here: let go of the parent's objects
                self._forget()
                return
            self._supervisor = None
            self._io = None
            self._shared = None
            self._cache = None
            self._clients.clear()
        with _registry_lock:
            _running.discard(self)
            while self in _entered:
                _entered.remove(self)
        try:
            sup.stop(block=True, timeout=timeout)
        except pykka.Timeout:
            logger.warning("actor system %s did not stop within %ss", self.name, timeout)
        if shared is not None:  # completed calls reach Redis before stop() returns
            shared.close()
        if io is not None and not io.stop():
            logger.warning("the I/O loop of actor system %s did not stop in time", self.name)
        logger.debug("actor system %s stopped", self.name)

    def _forget(self) -> None:
        """Drop what a forked child inherited, without touching it (no thread serves it)."""
        self._supervisor = None
        self._io = None
        self._shared = None
        self._pid = None
        self._cache = None
        self._clients.clear()
        self._breakers.clear()
        self._buckets.clear()

    def _teardown(self) -> None:
        """Forget a supervisor that died by itself (it gave up restarting)."""
        io, self._io = self._io, None
        shared, self._shared = self._shared, None
        if shared is not None:
            shared.close()
        if io is not None:
            io.stop()
        self._supervisor = None
        self._cache = None
        self._clients.clear()

    def __enter__(self) -> Self:
        with self._lock:
            started_here = not self.running
            self.start()
        token = _current.set(self)
        self._enter_stack().append((token, started_here))
        with _registry_lock:
            _entered.append(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        token, started_here = self._enter_stack().pop()
        _current.reset(token)
        with _registry_lock:
            for index in range(len(_entered) - 1, -1, -1):
                if _entered[index] is self:
                    del _entered[index]
                    break
        if started_here:
            self.stop()

    def _enter_stack(self) -> list[tuple[contextvars.Token[ActorSystem | None], bool]]:
        stack: list[tuple[contextvars.Token[ActorSystem | None], bool]] | None
        stack = getattr(self._enter_stacks, "stack", None)
        if stack is None:
            stack = self._enter_stacks.stack = []
        return stack

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<ActorSystem {self.name!r} {state} lm={self._lm!r}>"

    # -- calls -------------------------------------------------------------------------

    def _require_supervisor(self) -> pykka.ActorRef[Any]:
        if self.forked:
            raise self._forked_error()
        sup = self._supervisor
        if sup is None or not sup.is_alive():
            detail = f" ({self._exit_reason})" if self._exit_reason is not None else ""
            raise LMUnavailableError(
                f"actor system {self.name!r} is not running{detail}; "
                "use `with ActorSystem(...)` or call start()"
            )
        return sup

    def _client(self, lm: LM) -> ChildHandle:
        """The handle of ``lm``'s Client actor, started on first use."""
        child_id = _client_child_id(lm)
        entry = self._clients.get(child_id)
        if entry is not None:
            return entry[1]
        with self._lock:
            entry = self._clients.get(child_id)
            if entry is not None:
                return entry[1]
            sup = self._require_supervisor()
            breaker, bucket = self._breaker_for(lm), self._bucket_for(lm)
            assert self._io is not None
            spec = ChildSpec(
                id=child_id,
                start=functools.partial(
                    ClientActor.start, lm, breaker, bucket, self.client_options, self._io
                ),
            )
            try:
                handle: ChildHandle = sup.proxy().start_child(spec).get(timeout=ASK_TIMEOUT)
            except (pykka.ActorDeadError, pykka.Timeout, SupervisionError) as exc:
                raise LMUnavailableError(
                    f"could not start the Client actor for {lm.model} at {lm.endpoint}: {exc}",
                    model=lm.model,
                    endpoint=lm.endpoint,
                ) from None
            with self._clients_lock:
                self._clients[child_id] = (lm, handle)
                idle = self._idle_clients_over_the_cap(child_id)
            logger.debug("started the Client actor for %s at %s", lm.model, lm.endpoint)
            for idle_id in idle:
                self._stop_idle_client(sup, idle_id)
            return handle

    def _idle_clients_over_the_cap(self, keep: str) -> list[str]:
        """Under ``_clients_lock``: forget the least recently used Clients no call is using
        until at most ``max_clients`` are left (``keep`` stays); their ids."""
        over = len(self._clients) - self.max_clients
        idle = [
            child_id
            for child_id in self._clients
            if child_id != keep and not self._client_users.get(child_id)
        ][: max(0, over)]
        for child_id in idle:
            del self._clients[child_id]
        return idle

    def _stop_idle_client(self, sup: pykka.ActorRef[Any], child_id: str) -> None:
        try:
            sup.proxy().remove_child(child_id).get(timeout=ASK_TIMEOUT)
        except (pykka.ActorDeadError, pykka.Timeout, SupervisionError) as exc:
            logger.warning("could not stop the idle Client actor %s: %s", child_id, exc)
        else:
            logger.debug(
                "stopped the idle Client actor %s (max_clients=%d)", child_id, self.max_clients
            )

    def _use_client(self, lm: LM) -> str:
        """Count one call using ``lm``'s Client (started if needed) until
        :meth:`_done_with_client`; its child id."""
        child_id = _client_child_id(lm)
        while not self._try_use_client(child_id):
            self._client(lm)
        return child_id

    async def _ause_client(self, lm: LM) -> str:
        """:meth:`_use_client` without blocking the loop (a Client is started off it)."""
        child_id = _client_child_id(lm)
        while not self._try_use_client(child_id):
            await asyncio.to_thread(self._client, lm)
        return child_id

    def _try_use_client(self, child_id: str) -> bool:
        with self._clients_lock:
            if child_id not in self._clients:
                return False
            self._client_users[child_id] = self._client_users.get(child_id, 0) + 1
            self._clients.move_to_end(child_id)
            return True

    def _done_with_client(self, child_id: str) -> None:
        with self._clients_lock:
            users = self._client_users.get(child_id, 0) - 1
            if users > 0:
                self._client_users[child_id] = users
            else:
                self._client_users.pop(child_id, None)

    def _breaker_for(self, lm: LM) -> EndpointBreaker:
        """The breaker of ``lm``'s endpoint and credential (shared by its Client actors)."""
        key = (lm.endpoint, lm.credential_id)
        breaker = self._breakers.get(key)
        if breaker is None:
            name = lm.endpoint if lm.credential_id == "none" else (
                f"{lm.endpoint} (key {lm.credential_id[:8]})"
            )
            breaker = EndpointBreaker(
                lm.endpoint,
                fail_max=self.client_options.breaker_fail_max,
                reset_timeout=self.client_options.breaker_reset_timeout,
                name=name,
            )
            self._breakers[key] = breaker
        if self._shared is not None:  # once per system start
            self._shared.attach_breaker(lm, breaker)
        return breaker

    def _bucket_for(self, lm: LM) -> RateLimiter | None:
        """The ``rpm``/``tpm`` limits of ``lm``'s endpoint and credential (None: no limit);
        shared through Redis with a ``redis_url``."""
        if not lm.rpm and not lm.tpm:
            return None
        local = RequestLimits(self._local_bucket(lm, "rpm"), self._local_bucket(lm, "tpm"))
        if self._shared is not None:
            return self._shared.limits_for(lm, local)
        return local

    def _local_bucket(self, lm: LM, kind: str) -> TokenBucket | None:
        """This process's ``kind`` ("rpm"/"tpm") bucket of ``lm``'s key, or None."""
        per_minute = lm.rpm if kind == "rpm" else lm.tpm
        if not per_minute:
            return None
        key = (kind, lm.endpoint, lm.credential_id, per_minute)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(per_minute, time.monotonic())
        return bucket

    def _client_ref(self, lm: LM) -> pykka.ActorRef[Any]:
        """The current ref of ``lm``'s Client actor (waits for a restart in progress)."""
        try:
            return self._client(lm).ref(timeout=CHILD_REF_TIMEOUT)
        except ChildUnavailableError as exc:
            raise LMUnavailableError(
                f"the Client actor for {lm.model} at {lm.endpoint} is unavailable: {exc}",
                model=lm.model,
                endpoint=lm.endpoint,
            ) from None

    def request(self, request: LMRequest, lm: LM | None = None) -> LMResponse:
        """Make one LM call through the cache (unless opted out) and the LM's Client.

        A call cut off by a crash of its Client actor is made once more (the supervisor
        restarts the Client; the retry waits for it).
        """
        lm, request, cached, observer = self._begin_call(request, lm)
        try:
            response = self._call_once_more_after_a_crash(lm, request, cached)
        except BaseException as exc:
            if observer is not None:
                observer.failed(exc)
            raise
        if observer is not None:
            observer.done(response)
        return response

    def _begin_call(
        self, request: LMRequest, lm: LM | None
    ) -> tuple[LM, LMRequest, bool, LMCallObserver | None]:
        """A call's LM, its request with the caller's circuit policy, whether it goes
        through the cache, and its observer (None when nothing watches)."""
        lm = self._lm_for(request, lm)
        request = _with_caller_policy(request)
        cached = request.cache and lm.cache
        return lm, request, cached, observe_lm_call(lm, request, via_cache=cached)

    def _call_once_more_after_a_crash(
        self, lm: LM, request: LMRequest, cached: bool
    ) -> LMResponse:
        with self._calls:
            try:
                return record_call(lm, request, self._one_call(lm, request, cached=cached))
            except LMUnavailableError:
                if not self.running:
                    raise
                logger.warning(
                    "the Client actor for %s stopped during a call; retrying once", lm.model
                )
            return record_call(lm, request, self._one_call(lm, request, cached=cached))

    async def arequest(
        self, request: LMRequest, lm: LM | None = None, *, sink: ChunkSink | None = None
    ) -> LMResponse:
        """:meth:`request` for asyncio callers: the same cache, Clients and limits; the reply
        is scheduled onto the caller's loop, which never blocks.

        With ``sink`` the reply is streamed: its pieces go to the sink as they arrive (on
        the I/O loop's thread) when the call is sent; a cache hit sends no request and no
        pieces. A call cut off after pieces were streamed is not made again.
        """
        lm, request, cached, observer = self._begin_call(request, lm)
        try:
            response = await self._acall_once_more_after_a_crash(lm, request, cached, sink)
        except BaseException as exc:
            if observer is not None:
                observer.failed(exc)
            raise
        if observer is not None:
            observer.done(response)
        return response

    async def _acall_once_more_after_a_crash(
        self, lm: LM, request: LMRequest, cached: bool, sink: ChunkSink | None
    ) -> LMResponse:
        with self._calls:
            try:
                response = await self._aone_call(lm, request, cached=cached, sink=sink)
                return record_call(lm, request, response)
            except LMUnavailableError:
                if not self.running or sink is not None:
                    raise
                logger.warning(
                    "the Client actor for %s stopped during a call; retrying once", lm.model
                )
            return record_call(lm, request, await self._aone_call(lm, request, cached=cached))

    def _lm_for(self, request: LMRequest, lm: LM | None) -> LM:
        """The LM a call goes to (``lm`` or the system's), checking the arguments."""
        if not isinstance(request, LMRequest):
            raise ConfigurationError(f"request must be an LMRequest, got {type(request).__name__}")
        lm = self.effective_lm(lm)
        if lm is None:
            raise ConfigurationError(
                "no LM configured: pass lm=..., use ActorSystem(lm=...), dx.configure(lm=...) "
                "or dx.context(lm=...)"
            )
        if not isinstance(lm, LM):
            raise ConfigurationError(f"lm must be a dspex_actors.LM, got {lm!r}")
        self._require_supervisor()
        return lm

    def effective_lm(self, lm: LM | None = None) -> LM | None:
        """The LM a call goes to: ``lm``, else ``dx.context()``'s, else the system's."""
        if lm is not None:
            return lm
        return context_lm() or self._lm

    def _one_call(self, lm: LM, request: LMRequest, *, cached: bool) -> LMResponse:
        child_id = self._use_client(lm)
        try:
            client = self._client_ref(lm)
            cache = self._cache_ref() if cached else None
            reply = pykka.ThreadingFuture[LMResponse]()
            route = self._send(lm, request, client, cache, reply)
            try:
                return wait_reply(reply, route.watches)
            except CacheError:  # the Cache stopped while this call waited: go direct
                return self._one_call(lm, request, cached=False)
            except KeyboardInterrupt:
                route.withdraw()
                raise
        finally:
            self._done_with_client(child_id)

    async def _aone_call(
        self, lm: LM, request: LMRequest, *, cached: bool, sink: ChunkSink | None = None
    ) -> LMResponse:
        child_id = await self._ause_client(lm)
        try:
            client = await self._aclient_ref(lm)
            cache = await self._acache_ref() if cached else None
            loop = asyncio.get_running_loop()
            future: asyncio.Future[LMResponse] = loop.create_future()
            route = self._send(lm, request, client, cache, AsyncReply(loop, future), sink=sink)
            try:
                return await await_reply(future, route.watches)
            except CacheError:
                return await self._aone_call(lm, request, cached=False, sink=sink)
            except asyncio.CancelledError:
                route.withdraw()  # frees the Client's slot unless others wait for the same call
                raise
        finally:
            self._done_with_client(child_id)

    def _send(
        self,
        lm: LM,
        request: LMRequest,
        client: pykka.ActorRef[Any],
        cache: pykka.ActorRef[Any] | None,
        reply: Reply,
        *,
        sink: ChunkSink | None = None,
    ) -> _Route:
        """Tell the call to the Cache actor (single flight lives there) or, without a cache,
        straight to the Client.

        The cache is an optimisation, never a point of failure: when it is down the call
        goes to the Client directly.
        """
        if cache is not None:
            key = cache_key(lm.model, request, lm.endpoint)
            try:
                cache.tell(Fetch(key, request, client, reply, sink))
            except pykka.ActorDeadError:
                logger.warning(
                    "cache unavailable (the Cache actor stopped); calling the LM directly"
                )
            else:
                return _Route.via_cache(cache, client, key, reply)
        try:
            client.tell(Submit(request, reply, sink))
        except pykka.ActorDeadError:
            raise client_unavailable(
                lm.model, lm.endpoint, "stopped before taking the call"
            ) from None
        return _Route.direct(lm, client, reply)

    def _cache_ref(self) -> pykka.ActorRef[Any] | None:
        handle = self._cache
        if handle is None:
            return None
        try:
            return handle.ref(timeout=CHILD_REF_TIMEOUT)
        except ChildUnavailableError as exc:
            logger.warning("cache unavailable (%s); calling the LM directly", exc)
            return None

    async def _acache_ref(self) -> pykka.ActorRef[Any] | None:
        """:meth:`_cache_ref` without blocking the loop (a restart is waited for off it)."""
        handle = self._cache
        if handle is not None:
            with contextlib.suppress(ChildUnavailableError):
                return handle.ref(timeout=0.0)
        return await asyncio.to_thread(self._cache_ref)

    async def _aclient_ref(self, lm: LM) -> pykka.ActorRef[Any]:
        """:meth:`_client_ref` without blocking the loop (first use and restarts off it)."""
        entry = self._clients.get(_client_child_id(lm))
        if entry is not None:
            with contextlib.suppress(ChildUnavailableError):
                return entry[1].ref(timeout=0.0)
        return await asyncio.to_thread(self._client_ref, lm)

    # -- introspection -----------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Cache counters, per-client counters and breaker state, restarts."""
        result: dict[str, Any] = {"name": self.name, "running": self.running}
        sup = self._supervisor
        ref = self._cache_ref() if self.running else None
        try:
            result["cache"] = ref.ask(GetCacheStats(), timeout=ASK_TIMEOUT) if ref else None
        except (pykka.ActorDeadError, pykka.Timeout):
            result["cache"] = None
        clients: dict[str, Any] = {}
        for child_id, (lm, handle) in list(self._clients.items()):
            try:
                clients[child_id] = handle.ask(
                    GetClientStats(), timeout=ASK_TIMEOUT, ref_timeout=CHILD_REF_TIMEOUT
                )
            except (ChildUnavailableError, pykka.ActorDeadError, pykka.Timeout, LMError):
                clients[child_id] = {"model": lm.model, "endpoint": lm.endpoint, "alive": False}
        result["clients"] = clients
        result["breakers"] = {b.name: b.snapshot() for b in list(self._breakers.values())}
        shared = self._shared
        result["redis"] = shared.snapshot() if shared is not None else None
        restarts: dict[str, int] = {}
        if sup is not None and sup.is_alive():
            try:
                for info in sup.proxy().which_children().get(timeout=ASK_TIMEOUT):
                    restarts[info.id] = info.restart_count
            except (pykka.ActorDeadError, pykka.Timeout):
                pass
        result["restarts"] = restarts
        return result

    @property
    def supervisor(self) -> pykka.ActorRef[Any] | None:
        """The supervisor's ref while running (for tests and tooling)."""
        return self._supervisor

    def client_handle(self, lm: LM | None = None) -> ChildHandle:
        """The ChildHandle of an LM's Client actor (started if needed)."""
        lm = lm if lm is not None else self._lm
        if lm is None:
            raise ConfigurationError("no LM given and the system has no default LM")
        return self._client(lm)

    def cache_handle(self) -> ChildHandle:
        """The ChildHandle of the Cache actor."""
        self._require_supervisor()
        assert self._cache is not None
        return self._cache

    def _set_default_lm(self, lm: LM | None) -> None:
        """Used by ``configure()`` to change the default system's LM in place."""
        self._lm = lm


def _check_redis_url(url: str | None) -> None:
    """A Redis URL and the client library it needs, or a ConfigurationError saying why."""
    if url is None:
        return
    if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigurationError(
            "ActorSystem redis_url must be a redis://, rediss:// or unix:// URL, "
            f"got {type(url).__name__ if not isinstance(url, str) else 'a string without one'}"
        )
    try:
        import redis.asyncio  # noqa: F401
    except ImportError:
        raise ConfigurationError(
            "ActorSystem redis_url needs redis-py: pip install 'dspex-actors[redis]'"
        ) from None


class _CallCount:
    """The calls in flight through a system, and whether new ones are refused (draining).

    ``with calls:`` counts one call for the block's duration (SystemStoppingError while
    draining); a class, not a generator context manager: it wraps every LM call.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._changed = threading.Condition(threading.Lock())
        self.in_flight = 0
        self.draining = False

    def __enter__(self) -> None:
        with self._changed:
            if self.draining:
                raise SystemStoppingError(
                    f"actor system {self._name!r} is stopping: it finishes the calls in flight "
                    "and takes no new ones"
                )
            self.in_flight += 1

    def __exit__(self, *exc_info: object) -> None:
        with self._changed:
            self.in_flight -= 1
            if self.in_flight == 0:
                self._changed.notify_all()

    def drain(self, grace: float) -> bool:
        """Refuse new calls; wait up to ``grace`` seconds for the ones in flight to end."""
        with self._changed:
            self.draining = True
            return self._changed.wait_for(lambda: self.in_flight == 0, timeout=grace)

    def reopen(self) -> None:
        """Take calls again (the system may be started anew)."""
        with self._changed:
            self.draining = False


def current_from_context() -> ActorSystem | None:
    """The system of this context, else the most recently entered one still running."""
    system = _current.get()
    if system is not None and system.forked:
        raise system._forked_error()
    if system is not None and system.running:
        return system
    with _registry_lock:
        for candidate in reversed(_entered):
            if candidate.running:
                return candidate
    return None


def _restart_counts() -> list[tuple[str, int]]:
    """Each running system's total restarts (for the ``dspex.actor.restarts`` metric)."""
    with _registry_lock:
        systems = list(_running)
    counts = []
    for system in systems:
        sup = system._supervisor
        if sup is None:
            continue
        with contextlib.suppress(pykka.ActorDeadError, pykka.Timeout):
            counts.append((system.name, int(sup.proxy().total_restarts().get(timeout=1.0))))
    return counts


def _with_caller_policy(request: LMRequest) -> LMRequest:
    """A batch's call waits out an open circuit once (unless its LM says otherwise)."""
    if request.on_circuit_open is None and in_batch():
        return request.with_circuit_policy("wait")
    return request


def _client_child_id(lm: LM) -> str:
    """The supervisor child id of ``lm``'s Client actor (one per LM configuration)."""
    return f"client:{lm.config_id}"


def _after_fork_in_child() -> None:
    """In a forked child: no system of the parent runs here; forget them all (the atexit
    hook must not wait on their threads). Systems in use still say so when called."""
    global _registry_lock  # noqa: PLW0603 - a lock held by a vanished thread would never free
    _registry_lock = threading.RLock()
    _running.clear()
    _entered.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


@dataclasses.dataclass(frozen=True)
class _Route:
    """Where a call was sent: the actors its reply depends on, and how to withdraw it."""

    watches: list[Watch]
    actor: pykka.ActorRef[Any]
    withdrawal: Withdraw | Cancel

    @classmethod
    def via_cache(
        cls, cache: pykka.ActorRef[Any], client: pykka.ActorRef[Any], key: str, reply: Reply
    ) -> _Route:
        def client_gone() -> None:  # the Cache fails the call if it was on that Client
            with contextlib.suppress(pykka.ActorDeadError):
                cache.tell(ClientGone(key))

        watches: list[Watch] = [
            (cache, lambda: CacheError("the Cache actor stopped")),
            (client, client_gone),
        ]
        return cls(watches, cache, Withdraw(key, reply))

    @classmethod
    def direct(cls, lm: LM, client: pykka.ActorRef[Any], reply: Reply) -> _Route:
        return cls([client_watch(client, lm.model, lm.endpoint)], client, Cancel(reply))

    def withdraw(self) -> None:
        """Tell the actor the caller gave up (the Cache keeps the call for other waiters)."""
        with contextlib.suppress(pykka.ActorDeadError):
            self.actor.tell(self.withdrawal)
