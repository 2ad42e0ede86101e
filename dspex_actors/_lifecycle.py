"""One exit path for actors that must release what they hold however they end."""

from __future__ import annotations

from types import TracebackType

import pykka


class ShutdownOnExit(pykka.Actor):
    """Mixin (list it before ``pykka.ThreadingActor``): ``_shutdown(how)`` on stop or crash.

    ``how`` is "stopped" or "crashed", for the errors given to whoever still waits on the
    actor. The Cache and Client actors use it to fail pending futures and close files,
    threads and connections.
    """

    def _shutdown(self, how: str) -> None:
        raise NotImplementedError

    def on_stop(self) -> None:
        self._shutdown("stopped")
        super().on_stop()

    def on_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._shutdown("crashed")
        super().on_failure(exception_type, exception_value, traceback)
