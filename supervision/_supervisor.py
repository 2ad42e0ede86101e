"""The Supervisor actor: starts children, notices their exits, restarts them per strategy.

Exit detection is event-driven: ``Supervised`` children ``tell`` the supervisor a
``ChildExited`` notice as the last act of their thread (see ``_supervised``); a child
that is a plain pykka actor gets one small daemon thread blocked on its
``actor_stopped`` event instead (its exit reason is unknown and counts as abnormal).

Every decision happens on the supervisor's own thread, one message at a time. The only
blocking it does is calling ``spec.start()`` and stopping children, each stop bounded by
the child's ``shutdown_timeout``; it never ``ask``s a child.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Self, get_args

import pykka

from supervision._errors import (
    ChildNotFoundError,
    ChildSpecError,
    ChildStartError,
    RestartIntensityError,
    SpecError,
    SupervisionError,
    SupervisorStoppedError,
)
from supervision._handle import ChildHandle, Directory
from supervision._spec import ChildInfo, ChildSpec, ChildState
from supervision._supervised import Attachment, ChildExited, Supervised, attaching

__all__ = ["STRATEGIES", "ExitCallback", "Strategy", "Supervisor"]

logger = logging.getLogger(__name__)

Strategy = Literal["one_for_one", "one_for_all", "rest_for_one"]
STRATEGIES: frozenset[str] = frozenset(get_args(Strategy))

_constructing = threading.local()  # hands the new supervisor's Directory from __init__ to start()

ExitCallback = Callable[[BaseException | None], None]
"""Called once on the supervisor's thread when it exits, after all its children stopped:
``None`` for a requested stop, a :class:`RestartIntensityError` when it gave up, another
exception when it failed. It must not wait on the supervisor itself."""


@dataclass(slots=True)
class _Child:
    spec: ChildSpec
    ref: pykka.ActorRef[Any] | None = None
    attachment: Attachment | None = None
    watcher: threading.Thread | None = None
    state: ChildState = "stopped"
    restart_count: int = 0

    @property
    def urn(self) -> str | None:
        return None if self.ref is None else self.ref.actor_urn


class Supervisor(Supervised, pykka.ThreadingActor):
    """An OTP-style supervisor; itself a ``Supervised`` actor, so supervisors nest.

    Children start in list order and stop in reverse order. An exited child is restarted
    according to its restart type (``permanent`` always, ``transient`` after an abnormal
    exit, ``temporary`` never) and the strategy: ``one_for_one`` restarts just it,
    ``one_for_all`` stops the other running children (reverse order) and restarts all,
    ``rest_for_one`` does that for the children started after it. More than
    ``max_restarts`` restart events within ``max_seconds`` make the supervisor give up:
    it stops every child and itself with a :class:`RestartIntensityError` as its exit
    reason (an abnormal exit its own supervisor, if any, handles like any other).
    """

    def __init__(
        self,
        children: Iterable[ChildSpec] = (),
        *,
        strategy: Strategy = "one_for_one",
        max_restarts: int = 3,
        max_seconds: float = 5.0,
        name: str | None = None,
        on_exit: ExitCallback | None = None,
    ) -> None:
        super().__init__()
        if strategy not in STRATEGIES:
            msg = f"unknown strategy {strategy!r}; expected one of {sorted(STRATEGIES)}"
            raise SpecError(msg)
        if isinstance(max_restarts, bool) or not isinstance(max_restarts, int) or max_restarts < 0:
            msg = f"max_restarts must be an int >= 0, got {max_restarts!r}"
            raise SpecError(msg)
        if (
            isinstance(max_seconds, bool)
            or not isinstance(max_seconds, int | float)
            or not math.isfinite(max_seconds)
            or max_seconds <= 0
        ):
            msg = f"max_seconds must be a positive number, got {max_seconds!r}"
            raise SpecError(msg)
        name_value: object = name
        if name_value is not None and not isinstance(name_value, str):
            msg = f"name must be a string or None, got {name!r}"
            raise SpecError(msg)
        on_exit_value: object = on_exit
        if on_exit_value is not None and not callable(on_exit_value):
            msg = f"on_exit must be callable, got {on_exit!r}"
            raise SpecError(msg)
        specs = list(children)
        seen: set[str] = set()
        for index, spec in enumerate(specs):
            if not isinstance(spec, ChildSpec):
                raise ChildSpecError(
                    f"#{index}", f"expected a ChildSpec, got a {type(spec).__name__}"
                )
            if spec.id in seen:
                raise ChildSpecError(spec.id, "duplicate child id")
            seen.add(spec.id)
        self._strategy: Strategy = strategy
        self._max_restarts = max_restarts
        self._max_seconds = float(max_seconds)
        self._name = name
        self._label = repr(name) if name else self.actor_urn
        self._on_exit = on_exit
        self._initial_specs = specs
        self._children: dict[str, _Child] = {}
        self._restart_times: deque[float] = deque()
        self._total_restarts = 0
        self._stopping = False
        self._directory = Directory(self.actor_urn, self._label)
        _constructing.directory = self._directory

    @classmethod
    def start(
        cls,
        children: Iterable[ChildSpec] = (),
        *,
        strategy: Strategy = "one_for_one",
        max_restarts: int = 3,
        max_seconds: float = 5.0,
        name: str | None = None,
        on_exit: ExitCallback | None = None,
        start_timeout: float = 30.0,
    ) -> pykka.ActorRef[Self]:
        """Start the supervisor and wait until every initial child's ``start()`` returned.

        Bad arguments raise :class:`SpecError`/:class:`ChildSpecError` before any thread
        starts; a child whose ``start()`` fails makes the supervisor stop the children
        already started and this call raise :class:`ChildStartError` or
        :class:`ChildSpecError` naming the child. (A child that dies later, e.g. in its
        own ``on_start``, is handled as a crash.)
        """
        ref = super().start(
            children,
            strategy=strategy,
            max_restarts=max_restarts,
            max_seconds=max_seconds,
            name=name,
            on_exit=on_exit,
        )
        directory: Directory = _constructing.directory
        _constructing.directory = None
        try:
            started = directory.wait_started(start_timeout)
        except BaseException:
            ref.actor_stopped.wait(start_timeout)  # on_start failed: it is stopping itself
            raise
        if not started:
            ref.stop(block=False)
            msg = f"the initial children did not start within {start_timeout} s"
            raise ChildStartError(name or ref.actor_urn, msg)
        return ref

    # -- pykka hooks --------------------------------------------------------------------

    def on_start(self) -> None:
        try:
            for spec in self._initial_specs:
                child = _Child(spec)
                self._children[spec.id] = child
                self._start_child_process(child)
        except BaseException as exc:
            self._shutdown(exc)  # also hands exc to Supervisor.start() via the directory
            raise
        self._directory.mark_started()
        logger.debug("supervisor %s started %d children", self._label, len(self._children))

    def on_stop(self) -> None:
        self._shutdown(self._supervision_error)

    def on_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._shutdown(exception_value)

    def _on_supervised_exit(self) -> None:
        self._shutdown(self._supervision_error)

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, ChildExited):
            self._handle_exit(message)
            return None
        return super().on_receive(message)

    # -- public API (call through the proxy) ----------------------------------------------

    def start_child(self, spec: ChildSpec) -> ChildHandle:
        """Add and start a child at the end of the child list; return its handle."""
        self._check_running()
        if not isinstance(spec, ChildSpec):
            raise ChildSpecError(
                getattr(spec, "id", "?"), f"expected a ChildSpec, got a {type(spec).__name__}"
            )
        if spec.id in self._children:
            raise ChildSpecError(spec.id, "duplicate child id")
        child = _Child(spec)
        self._start_child_process(child)
        self._children[spec.id] = child
        return ChildHandle(self.actor_ref, spec.id)

    def terminate_child(self, child_id: str) -> None:
        """Stop a child without restarting it (a ``temporary`` child is also removed)."""
        self._check_running()
        child = self._get(child_id)
        if child.spec.restart == "temporary":
            self._forget(child)
        else:
            self._set_state(child, "stopped")
        self._stop_child_process(child)
        logger.info("supervisor %s: terminated child %r", self._label, child_id)

    def restart_child(self, child_id: str) -> ChildHandle:
        """Start a stopped child again (not counted as a restart)."""
        self._check_running()
        child = self._get(child_id)
        if child.state == "running":
            raise ChildSpecError(child_id, "child is already running")
        self._start_child_process(child)
        return ChildHandle(self.actor_ref, child_id)

    def remove_child(self, child_id: str) -> None:
        """Stop a child if needed and forget it; its handles get ChildNotFoundError."""
        self._check_running()
        child = self._get(child_id)
        self._forget(child)
        self._stop_child_process(child)
        logger.info("supervisor %s: removed child %r", self._label, child_id)

    def restart_count(self, child_id: str) -> int:
        """How many times this child was restarted after an exit."""
        return self._get(child_id).restart_count

    def total_restarts(self) -> int:
        """How many child restarts this supervisor performed (removed children included)."""
        return self._total_restarts

    def which_children(self) -> list[ChildInfo]:
        """A snapshot of the children, in start order."""
        return [
            ChildInfo(
                id=child.spec.id,
                ref=child.ref,
                alive=child.ref is not None and child.ref.is_alive(),
                state=child.state,
                restart=child.spec.restart,
                restart_count=child.restart_count,
            )
            for child in self._children.values()
        ]

    def handle(self, child_id: str) -> ChildHandle:
        """A handle on an existing child."""
        self._get(child_id)
        return ChildHandle(self.actor_ref, child_id)

    # -- internals -------------------------------------------------------------------------

    def _check_running(self) -> None:
        if self._stopping:
            msg = f"supervisor {self._label} is stopping"
            raise SupervisorStoppedError(msg)

    def _get(self, child_id: str) -> _Child:
        child = self._children.get(child_id)
        if child is None:
            msg = f"supervisor {self._label} has no child {child_id!r}"
            raise ChildNotFoundError(msg)
        return child

    def _set_state(self, child: _Child, state: ChildState) -> None:
        child.state = state
        ref = child.ref if state == "running" else None
        self._directory.publish(child.spec.id, ref, state)

    def _forget(self, child: _Child) -> None:
        self._children.pop(child.spec.id, None)
        self._directory.remove(child.spec.id)

    def _start_child_process(self, child: _Child) -> None:
        """Call ``spec.start()`` on this thread; raise ChildStartError/ChildSpecError."""
        spec = child.spec
        attachment = Attachment(self.actor_ref, spec.id)
        try:
            with attaching(attachment):
                result: object = spec.start()
        except Exception as exc:
            raise ChildStartError(spec.id, f"start() raised {exc!r}") from exc
        if not isinstance(result, pykka.ActorRef):
            stray = getattr(result, "actor_ref", None)
            if isinstance(stray, pykka.ActorRef):
                stray.stop(block=False)
            raise ChildSpecError(
                spec.id,
                "start() must return a pykka.ActorRef (e.g. MyActor.start()), "
                f"got a {type(result).__name__}",
            )
        child.ref = result
        child.attachment = attachment
        child.watcher = None
        if not attachment.claimed(result.actor_urn):
            child.watcher = self._watch(spec.id, result, attachment)
        self._set_state(child, "running")
        logger.debug("supervisor %s: started child %r (%s)", self._label, spec.id, result)

    def _watch(
        self, child_id: str, ref: pykka.ActorRef[Any], attachment: Attachment
    ) -> threading.Thread:
        """Fallback for a plain pykka actor: a thread blocked on its ``actor_stopped``."""
        error = SupervisionError(
            f"child {child_id!r} ({ref}) stopped; reason unknown (not a Supervised actor)"
        )

        def wait_for_exit() -> None:
            ref.actor_stopped.wait()
            attachment.notify_exit(ref.actor_urn, error)

        watcher = threading.Thread(
            target=wait_for_exit, name=f"supervision-watch-{child_id}", daemon=True
        )
        watcher.start()
        return watcher

    def _stop_child_process(self, child: _Child) -> None:
        """Stop the child's current incarnation, bounded by its ``shutdown_timeout``."""
        ref, attachment, watcher = child.ref, child.attachment, child.watcher
        child.ref = None
        child.attachment = None
        child.watcher = None
        if ref is None:
            return
        timeout = child.spec.shutdown_timeout
        deadline = time.monotonic() + timeout
        try:
            ref.stop(block=False).get(timeout=timeout)
        except pykka.Timeout:
            logger.warning(
                "supervisor %s: child %r did not stop within %s s; abandoning it",
                self._label,
                child.spec.id,
                timeout,
            )
            return
        thread = attachment.thread(ref.actor_urn) if attachment is not None else None
        for waiting in (thread, watcher):
            if waiting is not None and waiting is not threading.current_thread():
                waiting.join(max(0.0, deadline - time.monotonic()))

    def _handle_exit(self, notice: ChildExited) -> None:
        if self._stopping:
            return
        child = self._children.get(notice.child_id)
        if (
            child is None
            or child.state == "stopped"
            or notice.attachment is not child.attachment
            or notice.urn != child.urn
        ):
            return  # stale: an incarnation we stopped or replaced, or a helper actor
        spec = child.spec
        abnormal = notice.error is not None
        if abnormal:
            logger.warning(
                "supervisor %s: child %r exited abnormally: %r",
                self._label,
                spec.id,
                notice.error,
            )
        else:
            logger.info("supervisor %s: child %r exited normally", self._label, spec.id)
        restart = spec.restart == "permanent" or (spec.restart == "transient" and abnormal)
        if not restart:
            child.ref = None
            child.attachment = None
            if spec.restart == "temporary":
                self._forget(child)
            else:
                self._set_state(child, "stopped")
            return
        self._set_state(child, "restarting")
        if self._intensity_exceeded():
            self._give_up(spec.id, notice.error)
            return
        self._restart(child)

    def _intensity_exceeded(self) -> bool:
        now = time.monotonic()
        times = self._restart_times
        times.append(now)
        while times and now - times[0] > self._max_seconds:
            times.popleft()
        return len(times) > self._max_restarts

    def _restart(self, failed: _Child) -> None:
        """Apply the strategy to the exit of ``failed`` (already marked restarting)."""
        children = list(self._children.values())
        if self._strategy == "one_for_one":
            group = [failed]
        elif self._strategy == "one_for_all":
            group = children
        else:
            group = children[children.index(failed) :]
        to_start: list[_Child] = []
        for child in group:
            if child is failed or child.state == "restarting":
                to_start.append(child)
            elif child.state == "running" and child.spec.restart != "temporary":
                self._set_state(child, "restarting")
                to_start.append(child)
        for child in reversed(group):
            if child is failed:
                continue
            if child.state == "running":  # a temporary sibling: stopped and forgotten
                self._stop_child_process(child)
                self._forget(child)
            elif child in to_start:
                self._stop_child_process(child)
        for child in to_start:
            child.restart_count += 1
            self._total_restarts += 1
            logger.warning(
                "supervisor %s: restarting child %r (restart #%d)",
                self._label,
                child.spec.id,
                child.restart_count,
            )
            try:
                self._start_child_process(child)
            except SupervisionError as exc:
                logger.error(
                    "supervisor %s: restarting child %r failed: %s", self._label, child.spec.id, exc
                )
                attachment = Attachment(self.actor_ref, child.spec.id)
                child.ref = None
                child.attachment = attachment
                attachment.notify_exit(None, exc)

    def _give_up(self, child_id: str, error: BaseException | None) -> None:
        reason = RestartIntensityError(
            f"supervisor {self._label} gave up: more than {self._max_restarts} restarts "
            f"within {self._max_seconds} s (last exit: child {child_id!r}, {error!r})"
        )
        reason.__cause__ = error
        logger.error("%s; stopping all children and itself", reason)
        self._record_exit_error(reason)
        self._shutdown(reason)
        self.stop()

    def _shutdown(self, reason: BaseException | None) -> None:
        """Stop every child in reverse start order, close the directory, report the exit."""
        if self._stopping:
            return
        self._stopping = True
        for child in reversed(list(self._children.values())):
            try:
                self._stop_child_process(child)
            except Exception:
                logger.exception(
                    "supervisor %s: error stopping child %r", self._label, child.spec.id
                )
        self._directory.close(reason)
        logger.debug("supervisor %s stopped (reason: %r)", self._label, reason)
        if self._on_exit is not None:
            try:
                self._on_exit(reason)
            except Exception:
                logger.exception("supervisor %s: on_exit callback failed", self._label)
