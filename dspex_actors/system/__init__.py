"""The runtime: ``ActorSystem``, ``configure()``, ``context()`` and ``current_system()``."""

from dspex_actors.system._default import configure, current_system, shutdown_default
from dspex_actors.system._settings import context, current_adapter
from dspex_actors.system._system import ActorSystem

__all__ = [
    "ActorSystem",
    "configure",
    "context",
    "current_adapter",
    "current_system",
    "shutdown_default",
]
