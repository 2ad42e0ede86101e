"""``ReAct``: an agent that interleaves thoughts and tool calls, then extracts the outputs.

Prompts are DSPy 3.4.1's, byte for byte: the ``react`` predictor sees the inputs and the
trajectory so far and picks ``next_thought``, ``next_tool_name`` (one of the tools or
``finish``) and ``next_tool_args``; the trajectory is ``thought_i``/``tool_name_i``/
``tool_args_i``/``observation_i`` sections. When the agent calls ``finish``, runs out of
``max_iters`` or picks a tool that does not exist, the ``extract`` step (a ChainOfThought over
the inputs and the trajectory) produces the signature's outputs. A tool that raises puts the
error into its observation; the agent carries on.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterable
from typing import Any, Literal

from dspex_actors._errors import AdapterParseError, ConfigurationError
from dspex_actors.adapters import ChatAdapter
from dspex_actors.predict import ChainOfThought, Predict
from dspex_actors.primitives import Module, Prediction
from dspex_actors.signatures import InputField, OutputField, ensure_signature, make_signature
from dspex_actors.tools import Tool, describe_callable

__all__ = ["ReAct", "format_error_for_lm"]

logger = logging.getLogger(__name__)

DEFAULT_MAX_ITERS = 20
"""DSPy 3.4.1's default."""

FINISH = "finish"
_TRACEBACK_FRAMES = 5


def format_error_for_lm(error: BaseException, *, traceback_frames: int = 0) -> str:
    """An exception as text for an LM: ``str(error)``, or a newline and a short traceback."""
    if traceback_frames <= 0:
        return str(error)
    lines = traceback.format_exception(
        type(error), error, error.__traceback__, limit=traceback_frames
    )
    return "\n" + "".join(lines).strip()


def _completed() -> str:
    return "Completed."


class ReAct(Module):
    """Reasoning and acting: call ``tools`` until done, then produce the outputs.

    ``tools`` are functions, callables or :class:`~dspex_actors.Tool`\\ s; two with one name
    (or one named ``finish``) is a :class:`ConfigurationError`. ``max_iters`` bounds the tool
    calls per call of the module (a call may pass ``max_iters=`` too). The prediction holds
    the outputs, the extract step's ``reasoning`` and the whole ``trajectory`` dict.
    """

    signature: Any
    max_iters: int
    tools: dict[str, Tool]
    react: Predict
    extract: ChainOfThought

    def __init__(
        self,
        signature: Any,
        tools: Any,
        max_iters: int = DEFAULT_MAX_ITERS,
    ) -> None:
        super().__init__()
        self.signature = signature = ensure_signature(signature)
        self.max_iters = _check_max_iters(max_iters)
        if isinstance(tools, (str, bytes)) or not isinstance(tools, Iterable):
            raise ConfigurationError(
                f"ReAct tools= must be a list of functions or dx.Tool, got {type(tools).__name__}"
            )
        by_name: dict[str, Tool] = {}
        for item in tools:
            tool = item if isinstance(item, Tool) else Tool(item)
            if tool.name == FINISH:
                raise ConfigurationError(
                    f"ReAct: tool {describe_callable(tool.func)} is named 'finish', the name of "
                    "ReAct's own last step; give it another name with dx.Tool(fn, name=...)"
                )
            if tool.name in by_name:
                raise ConfigurationError(
                    f"ReAct: two tools are named {tool.name!r}: "
                    f"{describe_callable(by_name[tool.name].func)} and "
                    f"{describe_callable(tool.func)}; give one another name with "
                    "dx.Tool(fn, name=...)"
                )
            by_name[tool.name] = tool

        inputs = ", ".join(f"`{k}`" for k in signature.input_fields)
        outputs = ", ".join(f"`{k}`" for k in signature.output_fields)
        instr = [f"{signature.instructions}\n"] if signature.instructions else []
        instr.extend(
            [
                f"You are an Agent. In each episode, you will be given the fields {inputs} as "
                "input. And you can see your past trajectory so far.",
                "Your goal is to use one or more of the supplied tools to collect any necessary "
                f"information for producing {outputs}.\n",
                "To do this, you will interleave next_thought, next_tool_name, and next_tool_args "
                "in each turn, and also when finishing the task.",
                "After each tool call, you receive a resulting observation, which gets appended "
                "to your trajectory.\n",
                "When writing next_thought, you may reason about the current situation and plan "
                "for future steps.",
                "When selecting the next_tool_name and its next_tool_args, the tool must be one "
                "of:\n",
            ]
        )
        by_name[FINISH] = Tool(
            func=_completed,
            name=FINISH,
            desc="Marks the task as complete. That is, signals that all information for "
            f"producing the outputs, i.e. {outputs}, are now available to be extracted.",
            args={},
        )
        for idx, tool in enumerate(by_name.values()):
            instr.append(f"({idx + 1}) {tool}")
        instr.append(
            "When providing `next_tool_args`, the value inside the field must be in JSON format"
        )
        tool_names = Literal[tuple(by_name)]  # type: ignore[valid-type]
        react_signature = (
            make_signature(dict(signature.input_fields), "\n".join(instr))
            .append("trajectory", InputField(), type_=str)
            .append("next_thought", OutputField(), type_=str)
            .append("next_tool_name", OutputField(), type_=tool_names)
            .append("next_tool_args", OutputField(), type_=dict[str, Any])
        )
        fallback_signature = make_signature(
            {**signature.input_fields, **signature.output_fields}, signature.instructions
        ).append("trajectory", InputField(), type_=str)
        self.tools = by_name
        self.react = Predict(react_signature)
        self.extract = ChainOfThought(fallback_signature)

    # -- running -----------------------------------------------------------------------------

    def forward(self, **input_args: Any) -> Prediction:
        """Run the agent on ``input_args`` (the signature's inputs; ``max_iters=`` optional)."""
        trajectory: dict[str, Any] = {}
        max_iters = _check_max_iters(input_args.pop("max_iters", self.max_iters))
        for idx in range(max_iters):
            try:
                pred = self.react(**input_args, trajectory=self._format_trajectory(trajectory))
            except AdapterParseError as err:
                _log_invalid_step(err)
                break
            name = self._record_step(trajectory, idx, pred)
            try:
                trajectory[f"observation_{idx}"] = self.tools[name](**pred.next_tool_args)
            except Exception as err:
                trajectory[f"observation_{idx}"] = _error_observation(name, err)
            if name == FINISH:
                break
        extract = self.extract(**input_args, trajectory=self._format_trajectory(trajectory))
        return Prediction(trajectory=trajectory, **dict(extract.items()))

    async def aforward(self, **input_args: Any) -> Prediction:
        """:meth:`forward` for ``await react.acall(...)``: async tools are awaited, plain ones
        run on a worker thread."""
        trajectory: dict[str, Any] = {}
        max_iters = _check_max_iters(input_args.pop("max_iters", self.max_iters))
        for idx in range(max_iters):
            try:
                pred = await self.react.acall(
                    **input_args, trajectory=self._format_trajectory(trajectory)
                )
            except AdapterParseError as err:
                _log_invalid_step(err)
                break
            name = self._record_step(trajectory, idx, pred)
            try:
                observation = await self.tools[name].acall(**pred.next_tool_args)
            except Exception as err:
                observation = _error_observation(name, err)
            trajectory[f"observation_{idx}"] = observation
            if name == FINISH:
                break
        extract = await self.extract.acall(
            **input_args, trajectory=self._format_trajectory(trajectory)
        )
        return Prediction(trajectory=trajectory, **dict(extract.items()))

    @staticmethod
    def _record_step(trajectory: dict[str, Any], idx: int, pred: Prediction) -> str:
        name: str = pred.next_tool_name
        trajectory[f"thought_{idx}"] = pred.next_thought
        trajectory[f"tool_name_{idx}"] = name
        trajectory[f"tool_args_{idx}"] = pred.next_tool_args
        return name

    def _format_trajectory(self, trajectory: dict[str, Any]) -> str:
        """The trajectory as ``[[ ## key ## ]]`` sections (DSPy's user-message layout)."""
        if not trajectory:
            return ""
        fields: dict[str, Any] = {key: InputField() for key in trajectory}
        fields["x"] = OutputField()
        return ChatAdapter().format_user_message_content(make_signature(fields), trajectory)


def _check_max_iters(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigurationError(f"ReAct max_iters must be an int >= 0, got {value!r}")
    return value


def _error_observation(name: str, err: Exception) -> str:
    return (
        f"Execution error in {name}: {format_error_for_lm(err, traceback_frames=_TRACEBACK_FRAMES)}"
    )


def _log_invalid_step(err: AdapterParseError) -> None:
    logger.warning(
        "Ending the trajectory: Agent failed to select a valid tool: %s",
        format_error_for_lm(err, traceback_frames=_TRACEBACK_FRAMES),
    )
