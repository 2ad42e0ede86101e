"""Stable names for children: a handle that always reaches the current incarnation.

Each supervisor owns a :class:`Directory` (child id -> current ``ActorRef`` and state)
that only the supervisor's thread writes and that handles read under a condition
variable, so resolving a handle costs a lock, not a message round trip, and a handle
waiting for a restart wakes up as soon as the supervisor publishes the new incarnation.
"""

from __future__ import annotations

import threading
import time
import weakref
from typing import Any, Literal, overload

import pykka

from supervision._errors import (
    ChildNotFoundError,
    ChildNotRunningError,
    ChildRestartTimeoutError,
    SupervisorStoppedError,
)
from supervision._spec import ChildState

__all__ = ["DEFAULT_REF_TIMEOUT", "ChildHandle", "Directory", "directory_of"]

DEFAULT_REF_TIMEOUT = 5.0

_directories: weakref.WeakValueDictionary[str, Directory] = weakref.WeakValueDictionary()
_directories_lock = threading.Lock()


def directory_of(supervisor_urn: str) -> Directory | None:
    """The directory of a live supervisor actor, ``None`` once it is gone."""
    with _directories_lock:
        return _directories.get(supervisor_urn)


class Directory:
    """Child id -> (current ref, state) of one supervisor; written by its thread only."""

    def __init__(self, supervisor_urn: str, label: str) -> None:
        self.label = label
        self._cond = threading.Condition()
        self._slots: dict[str, tuple[pykka.ActorRef[Any] | None, ChildState]] = {}
        self._closed = False
        self._started = False
        self._startup_error: BaseException | None = None
        with _directories_lock:
            _directories[supervisor_urn] = self

    def publish(self, child_id: str, ref: pykka.ActorRef[Any] | None, state: ChildState) -> None:
        """Record the child's current incarnation and state; wake waiting handles."""
        with self._cond:
            self._slots[child_id] = (ref, state)
            self._cond.notify_all()

    def remove(self, child_id: str) -> None:
        """Forget a child; waiting handles get :class:`ChildNotFoundError`."""
        with self._cond:
            self._slots.pop(child_id, None)
            self._cond.notify_all()

    def close(self, reason: BaseException | None = None) -> None:
        """The supervisor is stopping: every lookup now fails with SupervisorStoppedError.

        If it had not finished starting, ``reason`` (or a SupervisorStoppedError) becomes
        the start-up error.
        """
        with self._cond:
            self._closed = True
            self._slots.clear()
            if not self._started:
                self._started = True
                self._startup_error = reason or SupervisorStoppedError(
                    f"supervisor {self.label} stopped while starting"
                )
            self._cond.notify_all()

    def mark_started(self, error: BaseException | None = None) -> None:
        """The initial children are up (or starting them failed with ``error``)."""
        with self._cond:
            if not self._started:
                self._started = True
                self._startup_error = error
            self._cond.notify_all()

    def wait_started(self, timeout: float) -> bool:
        """Wait until :meth:`mark_started`; re-raise a start-up error; ``False`` on timeout."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._started, timeout):
                return False
            if self._startup_error is not None:
                raise self._startup_error
            return True

    def lookup(self, child_id: str, timeout: float) -> pykka.ActorRef[Any]:
        """The child's live incarnation, waiting up to ``timeout`` s while it restarts."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if self._closed:
                    raise SupervisorStoppedError(f"supervisor {self.label} is stopped")
                slot = self._slots.get(child_id)
                if slot is None:
                    raise ChildNotFoundError(f"supervisor {self.label} has no child {child_id!r}")
                ref, state = slot
                if state == "stopped":
                    raise ChildNotRunningError(
                        f"child {child_id!r} of supervisor {self.label} is stopped "
                        "and will not be restarted"
                    )
                if ref is not None and ref.is_alive():
                    return ref
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ChildRestartTimeoutError(
                        f"child {child_id!r} of supervisor {self.label} is restarting; "
                        f"no live incarnation within {timeout} s"
                    )
                self._cond.wait(remaining)


class ChildHandle:
    """Reaches the *current* incarnation of child ``child_id`` of a supervisor.

    Never keep the ``ActorRef`` it returns for long: keep the handle. While the child is
    being restarted (its last incarnation is dead and no new one is published yet),
    :meth:`ref` waits up to ``timeout`` seconds, then raises
    :class:`ChildRestartTimeoutError`. Other failures: :class:`ChildNotFoundError`
    (unknown or removed id), :class:`ChildNotRunningError` (stopped for good),
    :class:`SupervisorStoppedError`. A message already sent to an incarnation that dies
    before handling it fails with pykka's :class:`pykka.ActorDeadError` (not retried:
    the handle cannot know whether the message had an effect).
    """

    __slots__ = ("_child_id", "_directory", "_proxy", "_supervisor")

    def __init__(self, supervisor: pykka.ActorRef[Any], child_id: str) -> None:
        from supervision._supervisor import Supervisor

        if not isinstance(supervisor, pykka.ActorRef) or not issubclass(
            supervisor.actor_class, Supervisor
        ):
            msg = f"ChildHandle needs the ActorRef of a Supervisor, got {supervisor!r}"
            raise TypeError(msg)
        if not isinstance(child_id, str) or not child_id:
            msg = f"ChildHandle needs a non-empty child id string, got {child_id!r}"
            raise TypeError(msg)
        self._supervisor = supervisor
        self._child_id = child_id
        self._directory: Directory | None = None
        self._proxy: tuple[str, pykka.ActorProxy[Any]] | None = None

    @property
    def child_id(self) -> str:
        """The child's id in its supervisor."""
        return self._child_id

    @property
    def supervisor(self) -> pykka.ActorRef[Any]:
        """The supervisor's ref."""
        return self._supervisor

    def __repr__(self) -> str:
        return f"<ChildHandle {self._child_id!r} of {self._supervisor}>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ChildHandle):
            return NotImplemented
        return (self._supervisor.actor_urn, self._child_id) == (
            other._supervisor.actor_urn,
            other._child_id,
        )

    def __hash__(self) -> int:
        return hash((self._supervisor.actor_urn, self._child_id))

    def ref(self, timeout: float = DEFAULT_REF_TIMEOUT) -> pykka.ActorRef[Any]:
        """The live incarnation's ref; waits up to ``timeout`` s while the child restarts."""
        directory = self._directory
        if directory is None:
            directory = directory_of(self._supervisor.actor_urn)
            if directory is None:
                msg = f"supervisor {self._supervisor} is stopped"
                raise SupervisorStoppedError(msg)
            self._directory = directory
        return directory.lookup(self._child_id, timeout)

    def proxy(self, timeout: float = DEFAULT_REF_TIMEOUT) -> pykka.ActorProxy[Any]:
        """A proxy to the live incarnation (cached per incarnation)."""
        ref = self.ref(timeout)
        cached = self._proxy
        if cached is not None and cached[0] == ref.actor_urn:
            return cached[1]
        proxy = ref.proxy()
        self._proxy = (ref.actor_urn, proxy)
        return proxy

    def tell(self, message: Any, *, timeout: float = DEFAULT_REF_TIMEOUT) -> None:
        """Send ``message`` to the live incarnation (``timeout`` bounds finding it)."""
        self.ref(timeout).tell(message)

    @overload
    def ask(
        self,
        message: Any,
        *,
        block: Literal[True] = True,
        timeout: float | None = None,
        ref_timeout: float = DEFAULT_REF_TIMEOUT,
    ) -> Any: ...

    @overload
    def ask(
        self,
        message: Any,
        *,
        block: Literal[False],
        timeout: float | None = None,
        ref_timeout: float = DEFAULT_REF_TIMEOUT,
    ) -> pykka.Future[Any]: ...

    def ask(
        self,
        message: Any,
        *,
        block: bool = True,
        timeout: float | None = None,
        ref_timeout: float = DEFAULT_REF_TIMEOUT,
    ) -> Any:
        """Like ``ActorRef.ask`` on the live incarnation; ``ref_timeout`` bounds finding it."""
        return self.ref(ref_timeout).ask(message, block=block, timeout=timeout)
