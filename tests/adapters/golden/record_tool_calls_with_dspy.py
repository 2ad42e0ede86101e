"""Record the native function calling goldens from DSPy 3.4.1 (not part of the test run).

    /tmp/dspyvenv/bin/python tests/adapters/golden/record_tool_calls_with_dspy.py

Each case of ``_golden_tool_cases.py`` is sent by DSPy to a recording server on loopback
that answers with ``REPLY_CALLS``; ``tool_calls.json`` keeps, per case, the request's
messages and tool parameters and the prediction DSPy made of the reply.
"""

from __future__ import annotations

import json
import sys
import threading
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

warnings.filterwarnings("ignore")

import dspy  # noqa: E402
from _golden_tool_cases import REPLY_CALLS, build_tool_cases  # noqa: E402

TOOL_KEYS = ("tools", "tool_choice", "parallel_tool_calls")
BODIES: list[dict[str, Any]] = []


class _Recorder(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        BODIES.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        message = {"role": "assistant", "content": None, "tool_calls": REPLY_CALLS}
        payload = {
            "id": "x",
            "object": "chat.completion",
            "created": 0,
            "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


def main() -> None:
    assert dspy.__version__ == "3.4.1", dspy.__version__
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    # gpt-4o-mini: a model DSPy's catalog says supports function calling
    lm = dspy.LM(
        "openai/gpt-4o-mini",
        api_base=f"http://127.0.0.1:{server.server_port}/v1",
        api_key="unused",
        cache=False,
    )
    record: dict[str, Any] = {"dspy_version": dspy.__version__}
    for name, adapter_name, kwargs, signature, inputs in build_tool_cases(dspy):
        adapter = getattr(dspy, adapter_name)(**kwargs)
        with dspy.context(lm=lm, adapter=adapter):
            prediction = dspy.Predict(signature)(**inputs)
        body = BODIES[-1]
        calls = prediction.calls
        record[name] = {
            "messages": body["messages"],
            "params": {key: body[key] for key in TOOL_KEYS if key in body},
            "prediction": {
                key: (
                    [{"name": c.name, "args": c.args} for c in value.tool_calls]
                    if value is calls and value is not None
                    else value
                )
                for key, value in prediction.items()
            },
        }
    server.shutdown()
    (HERE / "tool_calls.json").write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
