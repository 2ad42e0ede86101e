"""Status messages in a stream, as DSPy's ``StatusMessageProvider`` gives them.

``streamify`` installs a :class:`StatusCallback` in the context of the run it streams (only
there: other calls of the process never see it). On the callbacks' tool, LM and module
hooks it asks the provider for a message; a message (a non-empty string) goes into the
stream as a :class:`StatusMessage`, in order with the listened fields' pieces. The default
provider, as DSPy's, speaks of tool calls only (not of the ReAct ``finish`` tool).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dspex_actors.telemetry import BaseCallback

if TYPE_CHECKING:
    from dspex_actors.streaming._session import StreamSession

__all__ = ["StatusCallback", "StatusMessage", "StatusMessageProvider"]


@dataclass(frozen=True)
class StatusMessage:
    """A status line of a streamed run (DSPy's ``StatusMessage``)."""

    message: str


class StatusMessageProvider:
    """What a streamed run says about its steps; override the methods you want.

    Each returns the message (a string) or None for none, with DSPy's defaults.
    """

    def tool_start_status_message(self, instance: Any, inputs: dict[str, Any]) -> str | None:
        """Before a ``dx.Tool`` runs."""
        return f"Calling tool {instance.name}..."

    def tool_end_status_message(self, outputs: Any) -> str | None:
        """After a ``dx.Tool`` ran."""
        return "Tool calling finished! Querying the LLM with tool calling results..."

    def module_start_status_message(self, instance: Any, inputs: dict[str, Any]) -> str | None:
        """Before a Module (a Predict included) runs."""
        return None

    def module_end_status_message(self, outputs: Any) -> str | None:
        """After a Module ran."""
        return None

    def lm_start_status_message(self, instance: Any, inputs: dict[str, Any]) -> str | None:
        """Before an LM call."""
        return None

    def lm_end_status_message(self, outputs: Any) -> str | None:
        """After an LM call."""
        return None


class StatusCallback(BaseCallback):
    """Puts the provider's messages into one streamed run's session."""

    def __init__(self, provider: StatusMessageProvider, session: StreamSession) -> None:
        self._provider = provider
        self._session = session

    def _post(self, message: str | None) -> None:
        if message:
            self._session.post(StatusMessage(message))

    def on_tool_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        if getattr(instance, "name", None) != "finish":  # ReAct's last step is no tool call
            self._post(self._provider.tool_start_status_message(instance, inputs))

    def on_tool_end(
        self, call_id: str, outputs: Any, exception: BaseException | None = None
    ) -> None:
        if outputs != "Completed.":  # what ReAct's finish tool returns
            self._post(self._provider.tool_end_status_message(outputs))

    def on_module_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        self._post(self._provider.module_start_status_message(instance, inputs))

    def on_module_end(
        self, call_id: str, outputs: Any, exception: BaseException | None = None
    ) -> None:
        self._post(self._provider.module_end_status_message(outputs))

    def on_lm_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        self._post(self._provider.lm_start_status_message(instance, inputs))

    def on_lm_end(
        self, call_id: str, outputs: Any, exception: BaseException | None = None
    ) -> None:
        self._post(self._provider.lm_end_status_message(outputs))
