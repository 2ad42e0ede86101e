"""OTP-style supervision for Pykka actors: supervisors, child specs, stable child handles.

Pykka has no links, monitors or supervisors; this package adds them. It is generic and
knows nothing about the rest of dspex_actors.

How exits are noticed (event-driven, no polling): the supervisor calls ``spec.start()`` on
its own thread; every ``Supervised`` actor started by that call captures the link to the
supervisor in ``_start_actor_loop`` (same thread, before the actor thread exists), and
the last thing its thread does is ``tell`` the supervisor it exited, whatever ended it.
A plain pykka actor (no mixin) is watched by a small daemon thread blocked on its
``actor_stopped`` event instead.

Normal vs abnormal exit: an exit is *abnormal* if the actor failed (an exception in
``on_start``, in a ``tell``/``on_receive``, in ``on_stop`` or ``on_failure``; a
``BaseException`` in a handler), called ``exit_abnormally(error)``, is a supervisor that
gave up, or is a plain pykka actor (reason unknown). It is *normal* when the actor was
stopped through pykka's ``stop()`` by someone other than its supervisor. Stops the
supervisor performs itself (terminate, remove, strategy restarts, shutdown) are not exits.
``permanent`` children are restarted after any exit, ``transient`` ones after an abnormal
exit only, ``temporary`` ones never (and are forgotten). An exception in an ``ask`` goes
back to the caller and is not an exit.

Handles: ``ChildHandle(sup_ref, id).ref(timeout)`` returns the live incarnation; while
the child is restarting it waits up to ``timeout`` seconds for the new one, then raises
``ChildRestartTimeoutError``. A message already sent to an incarnation that died gets
pykka's ``ActorDeadError`` (never retried).

Giving up: more than ``max_restarts`` restarts within ``max_seconds`` → the supervisor
logs an error, stops all children (reverse order) and itself, with a
``RestartIntensityError`` as exit reason: its parent supervisor sees an abnormal exit; a
root supervisor's owner learns it through ``on_exit(reason)`` (and ``actor_stopped``).
"""

from __future__ import annotations

from supervision._errors import (
    ChildNotFoundError,
    ChildNotRunningError,
    ChildRestartTimeoutError,
    ChildSpecError,
    ChildStartError,
    ChildUnavailableError,
    RestartIntensityError,
    SpecError,
    SupervisionError,
    SupervisorStoppedError,
)
from supervision._handle import DEFAULT_REF_TIMEOUT, ChildHandle
from supervision._pykka_hooks import SimpleQueueInbox, check_pykka_hooks
from supervision._spec import ChildInfo, ChildSpec, ChildState, RestartType
from supervision._supervised import Supervised
from supervision._supervisor import ExitCallback, Strategy, Supervisor

__all__ = [
    "DEFAULT_REF_TIMEOUT",
    "ChildHandle",
    "ChildInfo",
    "ChildNotFoundError",
    "ChildNotRunningError",
    "ChildRestartTimeoutError",
    "ChildSpec",
    "ChildSpecError",
    "ChildStartError",
    "ChildState",
    "ChildUnavailableError",
    "ExitCallback",
    "RestartIntensityError",
    "RestartType",
    "SimpleQueueInbox",
    "SpecError",
    "Strategy",
    "Supervised",
    "SupervisionError",
    "Supervisor",
    "SupervisorStoppedError",
    "check_pykka_hooks",
]
