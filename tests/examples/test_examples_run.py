"""Every example runs offline as a script: exit code 0 and its key output lines."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = REPO_ROOT / "examples"
TIMEOUT = 120.0

EXPECTED: dict[str, list[str]] = {
    "agent_tools.py": ["ReAct answer:  'Fredville'", "'lookup_capital', 'finish'", "majority:"],
    "qa_predict.py": ["Predict(QA):", "ChainOfThought:", "reasoning=", "8 concurrent calls:"],
    "evaluate_parallel.py": ["16 workers:", "failed: 0", "retried after 503"],
    "bootstrap_fewshot.py": ["SIMULATED", "before:", "after:  100.0%", "reloaded: 100.0%"],
    "embedded_service.py": [
        "6 concurrent requests",
        "killed the Client actor",
        "Client restarts: 1",
        "5. /metrics: 1 LM call-duration series, 7 calls",
        "stopped cleanly: 0 actors left",
    ],
}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.pop("OPENAI_API_KEY", None)  # examples must not need (or use) a real key
    return env


SERVICES = {"fastapi_service.py"}
"""Examples that serve until stopped: each has a test of its own that drives it."""

NEEDS_A_SERVER = {"openai_compatible_server.py"}
"""Examples that take a server's URL: each has a test of its own that gives it one."""


def test_every_example_is_covered() -> None:
    covered = [*EXPECTED, *SERVICES, *NEEDS_A_SERVER]
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(covered)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs_offline(name: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=_env(),
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    lines = result.stdout.splitlines()
    assert lines and lines[-1] == "OK", result.stdout
    for expected in EXPECTED[name]:
        assert expected in result.stdout, f"{expected!r} missing from:\n{result.stdout}"
    assert "Traceback" not in result.stderr, result.stderr
    assert list(tmp_path.iterdir()) == []  # the examples leave no files behind
