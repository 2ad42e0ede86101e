"""The ``Supervised`` mixin: how a child tells its supervisor that it exited.

Mechanism: the supervisor calls ``spec.start()`` inside :func:`attaching`, which puts an
:class:`Attachment` in a thread-local. ``Actor.start()`` runs ``_start_actor_loop()`` on
that same (supervisor's) thread, before the actor thread exists, so every ``Supervised``
actor started by ``spec.start()`` captures the attachment there, race free and without
relying on the user's ``__init__``. The actor's ``_actor_loop`` (the whole life of its
thread) is wrapped in ``try/finally``: whatever ends the loop, the last thing the thread
does is ``tell`` the supervisor a :class:`ChildExited` notice. No polling is involved.

Exit reason: the first exception pykka hands to ``Actor._handle_failure`` (a failing
``on_start``, an exception in a ``tell``/``on_receive``, in ``on_stop`` or ``on_failure``),
or a ``BaseException`` escaping a handler, or the error given to ``exit_abnormally()``.
No recorded error means a *normal* exit (the actor was stopped through pykka's
``stop()``). None of this depends on ``on_stop``/``on_failure``, so subclasses may
override those without calling ``super()``.

The pykka methods overridden here are private; ``_pykka_hooks.check_pykka_hooks()``
checks them against the installed pykka (the tests call it).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any, NamedTuple

import pykka

__all__ = ["Attachment", "ChildExited", "Supervised", "attaching"]

logger = logging.getLogger(__name__)

_local = threading.local()


class ChildExited(NamedTuple):
    """Notice sent to a supervisor when a child's thread ends (or its start failed).

    ``urn`` is ``None`` for a start attempt that raised; ``error`` is ``None`` for a
    normal exit. ``attachment`` identifies the start attempt, so stale notices are ignored.
    """

    child_id: str
    urn: str | None
    error: BaseException | None
    attachment: Attachment


class Attachment:
    """Links the actors started by one ``spec.start()`` call to their supervisor."""

    __slots__ = ("_lock", "_threads", "child_id", "supervisor")

    def __init__(self, supervisor: pykka.ActorRef[Any], child_id: str) -> None:
        self.supervisor = supervisor
        self.child_id = child_id
        self._lock = threading.Lock()
        self._threads: dict[str, threading.Thread | None] = {}

    def claim(self, urn: str) -> None:
        """Record that the actor ``urn`` reports its exit through this attachment."""
        with self._lock:
            self._threads.setdefault(urn, None)

    def claimed(self, urn: str) -> bool:
        """Whether the actor ``urn`` will report its exit (it is a ``Supervised`` actor)."""
        with self._lock:
            return urn in self._threads

    def record_thread(self, urn: str, thread: threading.Thread) -> None:
        """Remember the actor's thread so the supervisor can join it after stopping it."""
        with self._lock:
            self._threads[urn] = thread

    def thread(self, urn: str) -> threading.Thread | None:
        """The recorded thread of actor ``urn``, if it has started running."""
        with self._lock:
            return self._threads.get(urn)

    def notify_exit(self, urn: str | None, error: BaseException | None) -> None:
        """Tell the supervisor that actor ``urn`` exited; a dead supervisor is ignored."""
        try:
            self.supervisor.tell(ChildExited(self.child_id, urn, error, self))
        except pykka.ActorDeadError:
            logger.debug("supervisor of child %r already stopped; exit not reported", self.child_id)


@contextmanager
def attaching(attachment: Attachment) -> Iterator[None]:
    """Make ``Supervised`` actors started on this thread report to ``attachment``."""
    previous = getattr(_local, "attachment", None)
    _local.attachment = attachment
    try:
        yield
    finally:
        _local.attachment = previous


class Supervised(pykka.Actor):
    """Mixin that makes any pykka actor supervisable: ``class A(Supervised, pykka.ThreadingActor)``.

    Outside a supervisor it behaves like a plain pykka actor.
    """

    _supervision_attachment: Attachment | None = None
    _supervision_error: BaseException | None = None

    @property
    def exit_error(self) -> BaseException | None:
        """The error that makes this actor's exit abnormal so far (``None``: normal)."""
        return self._supervision_error

    def exit_abnormally(self, error: BaseException) -> None:
        """Stop this actor with an abnormal exit reason (``transient`` children restart)."""
        self._record_exit_error(error)
        self.stop()

    def _record_exit_error(self, error: BaseException | None) -> None:
        if self._supervision_error is None and error is not None:
            self._supervision_error = error

    def _on_supervised_exit(self) -> None:
        """Run on the actor's thread just before its supervisor is notified (no-op hook)."""

    def _start_actor_loop(self) -> None:
        attachment: Attachment | None = getattr(_local, "attachment", None)
        if attachment is not None:
            self._supervision_attachment = attachment
            attachment.claim(self.actor_urn)
        super()._start_actor_loop()

    def _actor_loop(self) -> None:
        attachment = self._supervision_attachment
        if attachment is not None:
            attachment.record_thread(self.actor_urn, threading.current_thread())
        try:
            super()._actor_loop()
        finally:
            try:
                self._on_supervised_exit()
            finally:
                if attachment is not None:
                    attachment.notify_exit(self.actor_urn, self._supervision_error)

    def _handle_receive(self, message: Any) -> Any:
        try:
            return super()._handle_receive(message)
        except BaseException as exc:
            if not isinstance(exc, Exception):
                self._record_exit_error(exc)
            raise

    def _handle_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exception_value is None:
            exception_value = RuntimeError(f"unhandled {exception_type!r}")
        self._record_exit_error(exception_value)
        super()._handle_failure(exception_type, exception_value, traceback)
