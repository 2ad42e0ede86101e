"""Tools: Python functions an agent (:class:`~dspex_actors.ReAct`) may call."""

from dspex_actors.tools._schema import arg_schema
from dspex_actors.tools._tool import Tool, describe_callable

__all__ = ["Tool", "arg_schema", "describe_callable"]
