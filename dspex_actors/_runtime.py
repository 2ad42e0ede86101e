"""How a direct LM call (``lm("...")``) finds the ActorSystem it runs on.

``LM`` must not import the system package (the system imports ``lm``). Instead the system
package installs its lookup here when it is imported, which ``import dspex_actors`` always
does, and ``LM.__call__`` asks this leaf module.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from dspex_actors._errors import ConfigurationError
from dspex_actors._types import ChunkSink, LMRequest, LMResponse

__all__ = ["Runtime", "current_runtime", "install_lookup"]


class Runtime(Protocol):
    """What an LM call needs of a system."""

    def request(self, request: LMRequest, lm: Any = None) -> LMResponse:
        """Make one LM call (``lm`` None: the system's default LM)."""

    async def arequest(
        self, request: LMRequest, lm: Any = None, *, sink: ChunkSink | None = None
    ) -> LMResponse:
        """The awaitable twin of :meth:`request`."""


class _Lookup:
    current: Callable[[], Runtime] | None = None


def install_lookup(lookup: Callable[[], Runtime]) -> None:
    """Set the function that returns the current system (called by ``dspex_actors.system``)."""
    _Lookup.current = lookup


def current_runtime() -> Runtime:
    """The system a call made here should use."""
    lookup = _Lookup.current
    if lookup is None:
        raise ConfigurationError("no ActorSystem available: import dspex_actors first")
    return lookup()
