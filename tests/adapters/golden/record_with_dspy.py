"""Record the golden files from DSPy 3.4.1 itself (not part of the test run).

Run with a throwaway virtualenv that has ``dspy==3.4.1`` (never the project's environment):

    python3 -m venv /tmp/dspyvenv && /tmp/dspyvenv/bin/pip install dspy==3.4.1
    /tmp/dspyvenv/bin/python tests/adapters/golden/record_with_dspy.py

It writes ``<case>.json`` (the messages DSPy's ChatAdapter/JSONAdapter/XMLAdapter format),
``parse_cases.json`` (what DSPy's ChatAdapter.parse returns for each reply, or "error") and
``model_parse_cases.json`` (the same for the pydantic/dataclass/XML cases).
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
from _golden_cases import PARSE_CASES, build_cases  # noqa: E402
from _golden_type_cases import MODEL_PARSE_CASES, build_type_cases, plain  # noqa: E402

ADAPTERS = {"chat": "ChatAdapter", "json": "JSONAdapter", "xml": "XMLAdapter"}


def main() -> None:
    assert dspy.__version__ == "3.4.1", dspy.__version__
    type_cases = {case[0]: case for case in build_type_cases(dspy)}
    for name, kind, signature, demos, inputs in [*build_cases(dspy), *type_cases.values()]:
        adapter = getattr(dspy, ADAPTERS[kind])()
        messages = adapter.format(signature, demos, inputs)
        record = {"dspy_version": dspy.__version__, "adapter": kind, "messages": messages}
        (HERE / f"{name}.json").write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    parsed: dict[str, Any] = {}
    for name, signature_text, completion in PARSE_CASES:
        signature = dspy.Signature(signature_text)
        try:
            parsed[name] = {"ok": plain(dspy.ChatAdapter().parse(signature, completion))}
        except Exception as exc:
            parsed[name] = {"error": type(exc).__name__}
    (HERE / "parse_cases.json").write_text(json.dumps(parsed, indent=2, ensure_ascii=False) + "\n")
    parsed = {}
    for name, case, kind, completion in MODEL_PARSE_CASES:
        signature = type_cases[case][2]
        try:
            adapter = getattr(dspy, ADAPTERS[kind])()
            parsed[name] = {"ok": plain(adapter.parse(signature, completion))}
        except Exception as exc:
            parsed[name] = {"error": type(exc).__name__}
    text = json.dumps(parsed, indent=2, ensure_ascii=False) + "\n"
    (HERE / "model_parse_cases.json").write_text(text)


if __name__ == "__main__":
    main()
