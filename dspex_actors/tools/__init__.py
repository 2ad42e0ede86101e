"""Tools: Python functions an agent (:class:`~dspex_actors.ReAct`) may call, and the
:class:`ToolCalls` an LM asks for (native function calling)."""

from dspex_actors.tools._calls import ToolCalls, tool_calls_from_reply
from dspex_actors.tools._schema import arg_schema
from dspex_actors.tools._tool import Tool, describe_callable

__all__ = ["Tool", "ToolCalls", "arg_schema", "describe_callable", "tool_calls_from_reply"]
