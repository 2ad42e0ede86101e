"""The runtime: ``ActorSystem``, ``configure()`` and ``current_system()``."""

from dspex_actors.system._default import configure, current_system, shutdown_default
from dspex_actors.system._system import ActorSystem

__all__ = ["ActorSystem", "configure", "current_system", "shutdown_default"]
