"""The core needs only its runtime dependencies: every extra's package may be missing.

The README's demo command installs ``pip install -e .`` alone; this runs a Predict and an
Evaluate in a subprocess where every optional package (and every dev-only one) fails to
import, as on such a machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

OPTIONAL = (
    "redis", "ray", "optuna", "cloudpickle", "opentelemetry", "prometheus_client",
    "fastapi", "uvicorn", "anthropic", "openai", "google", "gunicorn", "httpx",
)  # fmt: skip

SCRIPT = f"""
import sys
for name in {OPTIONAL!r}:
    sys.modules[name] = None  # "import name" now raises ImportError
import dspex_actors as dx
from dspex_actors.testing import LocalLMServer
with LocalLMServer() as server:
    with dx.ActorSystem(lm=dx.LM("openai/local-model", api_base=server.url)):
        qa = dx.Predict("question -> answer")
        print(qa(question="What is 2 + 3?").answer)
        devset = [dx.Example(question="What is 1 + 1?", answer="2").with_inputs("question")]
        print(dx.Evaluate(devset=devset, metric=dx.answer_exact_match)(qa).score)
"""


def test_the_core_runs_without_any_extra() -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["5", "100.0"]
