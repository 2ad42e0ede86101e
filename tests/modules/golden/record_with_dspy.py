"""Record the module golden files from DSPy 3.4.1 itself (not part of the test run).

Run with a throwaway virtualenv that has ``dspy==3.4.1`` (never the project's environment):

    /tmp/dspy-venv/bin/python tests/modules/golden/record_with_dspy.py

For each case of ``_golden_modules.py`` it runs the program on a scripted LM and writes
``<case>.json``: every LM call's messages and reply text, the tool calls, and the outputs;
and ``tools.json``: how ``dspy.Tool`` describes each function of ``tool_functions()``.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

warnings.filterwarnings("ignore")

import dspy  # noqa: E402
from _golden_modules import TOOL_CALLS, build_cases, tool_functions  # noqa: E402
from dspy.clients.base_lm import BaseLM  # noqa: E402


class ScriptedLM(BaseLM):
    """Replies with the scripted field dicts in turn, in the chat format; records each call."""

    def __init__(self, replies: list[dict[str, Any]]) -> None:
        super().__init__("openai/scripted", "chat", 0.0, 1000, False)
        self.replies = list(replies)
        self.calls: list[dict[str, Any]] = []

    def copy(self, **kwargs: Any) -> ScriptedLM:
        """Refine and BestOfN copy the LM per attempt: the copies share the script."""
        return self

    def __call__(self, prompt: Any = None, messages: Any = None, **kwargs: Any) -> list[str]:
        reply = self.replies[len(self.calls)]
        text = "\n\n".join(f"[[ ## {k} ## ]]\n{_text(v)}" for k, v in reply.items())
        text += "\n\n[[ ## completed ## ]]"
        params = {k: v for k, v in kwargs.items() if k in ("temperature", "n")}
        self.calls.append({"messages": messages, "reply": text, "params": params})
        return [text]

    async def acall(self, prompt: Any = None, messages: Any = None, **kwargs: Any) -> list[str]:
        return self(prompt, messages, **kwargs)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def main() -> None:
    assert dspy.__version__ == "3.4.1", dspy.__version__
    for name, program, kwargs, replies in build_cases(dspy):
        lm = ScriptedLM(replies)
        TOOL_CALLS.clear()
        with dspy.context(lm=lm):
            pred = program(**kwargs)
        outputs = dict(pred.items())
        record = {
            "dspy_version": dspy.__version__,
            "calls": lm.calls,
            "tool_calls": [list(call) for call in TOOL_CALLS],
            "outputs": outputs,
        }
        (HERE / f"{name}.json").write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    tools = [str(dspy.Tool(fn)) for fn in tool_functions()]
    record = {"dspy_version": dspy.__version__, "tools": tools}
    (HERE / "tools.json").write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
