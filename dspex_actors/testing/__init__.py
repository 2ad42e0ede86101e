"""A real local OpenAI-compatible LM server for tests, benchmarks and the offline demo.

``LocalLMServer`` serves ``POST /v1/chat/completions`` and ``GET /v1/models`` on
127.0.0.1 with a pluggable responder (the deterministic default "model" reads DSPy
chat-adapter prompts), latency, fault injection and counters. It also speaks Anthropic
(``POST /v1/messages``), Gemini (``/v1beta/models/{model}:generateContent``) and Azure
OpenAI (``/openai/deployments/{name}/chat/completions``) to the same responders, at
``root_url``; ``ServerProcess`` runs
the same server in a subprocess, driven over its ``/_dspex/`` control endpoints.
"""

from dspex_actors.testing._arithmetic import (
    WEAK_WRONG_RATE,
    WEAK_WRONG_RATE_WITH_DEMOS,
    arithmetic_dataset,
    solve_arithmetic,
    stable_fraction,
    weak_model_is_wrong,
)
from dspex_actors.testing._cli import main
from dspex_actors.testing._faults import ErrorReply, Fault, FaultKind
from dspex_actors.testing._hostile import HOSTILE_BEHAVIOURS, STALE_REPLY_CONTENT, HostileServer
from dspex_actors.testing._instructed import (
    INSTRUCTED_PHRASE,
    INSTRUCTION_POOL,
    InstructionSensitiveResponder,
)
from dspex_actors.testing._process import ServerControl, ServerProcess
from dspex_actors.testing._responders import (
    RESPONDERS,
    ChatRequest,
    DefaultResponder,
    DSPyPrompt,
    Responder,
    WeakResponder,
    echo_responder,
    fixed_responder,
    parse_dspy_prompt,
)
from dspex_actors.testing._server import LocalLMServer
from dspex_actors.testing._stats import ServerStats, secret_fingerprint
from dspex_actors.testing._tls import self_signed_certificate, server_ssl_context

RESPONDERS["instructed"] = InstructionSensitiveResponder

__all__ = [
    "HOSTILE_BEHAVIOURS",
    "INSTRUCTED_PHRASE",
    "INSTRUCTION_POOL",
    "RESPONDERS",
    "STALE_REPLY_CONTENT",
    "WEAK_WRONG_RATE",
    "WEAK_WRONG_RATE_WITH_DEMOS",
    "ChatRequest",
    "DSPyPrompt",
    "DefaultResponder",
    "ErrorReply",
    "Fault",
    "FaultKind",
    "HostileServer",
    "InstructionSensitiveResponder",
    "LocalLMServer",
    "Responder",
    "ServerControl",
    "ServerProcess",
    "ServerStats",
    "WeakResponder",
    "arithmetic_dataset",
    "echo_responder",
    "fixed_responder",
    "main",
    "parse_dspy_prompt",
    "secret_fingerprint",
    "self_signed_certificate",
    "server_ssl_context",
    "solve_arithmetic",
    "stable_fraction",
    "weak_model_is_wrong",
]
