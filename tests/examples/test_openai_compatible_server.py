"""examples/openai_compatible_server.py as a script, against the local server on loopback.

The example is meant for any OpenAI-compatible server (it was run by hand against
llama-cpp-python's); here the project's own server plays it, streaming slowly enough
that chunks visibly arrive before the Prediction.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dspex_actors.testing import LocalLMServer

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = REPO_ROOT / "examples" / "openai_compatible_server.py"
TIMEOUT = 120.0


def _run(server: LocalLMServer, adapter: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.pop("OPENAI_API_KEY", None)  # a loopback server needs no key
    command = [sys.executable, str(EXAMPLE), "--api-base", server.url]
    command += ["--model", "openai/local-model", "--adapter", adapter]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=TIMEOUT, env=env, cwd=cwd, check=False
    )


@pytest.mark.parametrize("adapter", ["json", "chat"])
def test_the_example_streams_and_awaits_against_an_openai_compatible_server(
    adapter: str, tmp_path: Path
) -> None:
    with LocalLMServer(stream_chunk_chars=2, stream_interval=0.02) as server:
        result = _run(server, adapter, tmp_path)
        requests = server.stats().requests
    out = result.stdout
    assert result.returncode == 0, f"stdout:\n{out}\nstderr:\n{result.stderr}"
    assert out.splitlines()[-1] == "OK", out
    assert "Traceback" not in result.stderr, result.stderr
    assert "Predict.acall:        answer='5'" in out
    assert "ChainOfThought.acall: reasoning='The question asks for 2 + 3" in out
    counts = dict(re.findall(r"   (reasoning|answer): (\d+) chunks", out))
    assert int(counts["reasoning"]) > 5 and int(counts["answer"]) >= 1, out
    assert out.count("joined == Prediction: True") == 2, out
    first = float(re.search(r"reasoning: \d+ chunks, first at ([\d.]+)s", out).group(1))  # type: ignore[union-attr]
    final = float(re.search(r"final Prediction at ([\d.]+)s", out).group(1))  # type: ignore[union-attr]
    assert first < final
    assert "streamed usage: {'openai/local-model': {'prompt_tokens'" in out
    assert "score: 100.0 (5.00 / 5)" in out and "failed: 0" in out
    streamed = [body for body in requests if body.get("stream") is True]
    assert len(streamed) == 1 and len(requests) == 8  # 2 acalls, 1 stream, 5 evaluated
    wants_json = [body.get("response_format") == {"type": "json_object"} for body in requests]
    assert all(wants_json) if adapter == "json" else not any(wants_json)
    assert list(tmp_path.iterdir()) == []
