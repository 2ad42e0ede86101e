"""examples/embedded_service.py --serve: SIGTERM drains (requests in flight are answered,
new ones are not taken) and the listen backlog fits the service's concurrency."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from dspex_actors.testing import LocalLMServer
from tests._support import LineReader

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "examples" / "embedded_service.py"
WAIT = 60.0
IN_FLIGHT = 8


def _predict(base: str, question: str) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{base}/predict", data=json.dumps({"question": question}).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=WAIT) as response:
        result: dict[str, Any] = json.loads(response.read())
        return result


def _listen_backlog(port: int) -> int:
    """The backlog of the listening socket on ``port`` (ss shows it as Send-Q)."""
    out = subprocess.run(
        ["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=True
    ).stdout
    return int(out.split()[2])


def test_sigterm_drains_and_the_backlog_fits_the_concurrency(
    make_lm_server: Callable[..., LocalLMServer],
) -> None:
    server = make_lm_server(latency=1.0)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    env.pop("OPENAI_API_KEY", None)
    child = subprocess.Popen(
        [
            sys.executable,
            str(SCRIPT),
            "--serve",
            "--model",
            "openai/local-model",
            "--api-base",
            server.url,
            "--concurrency",
            "64",
            "--grace",
            str(WAIT),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert child.stdout is not None
        lines = LineReader(child.stdout)
        serving = lines.wait_for("serving on ")
        base = serving.split()[2]
        assert serving.endswith("(listen backlog 64)")
        assert _listen_backlog(int(base.rsplit(":", 1)[1])) == 64
        lines.wait_for("try: ")

        with ThreadPoolExecutor(IN_FLIGHT) as pool:
            calls = [pool.submit(_predict, base, f"What is {n} times 7?") for n in range(IN_FLIGHT)]
            server.wait_for_stats(lambda s: s.in_flight == IN_FLIGHT, WAIT)
            child.send_signal(signal.SIGTERM)
            lines.wait_for("draining: ")
            with pytest.raises(urllib.error.URLError, match="Connection refused"):
                _predict(base, "What is 1 times 7?")  # the listening socket is closed
            answers = [call.result(WAIT)["answer"] for call in calls]
        lines.wait_for("stopped cleanly: 0 actors left")
        assert child.wait(WAIT) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(WAIT)

    assert answers == [str(n * 7) for n in range(IN_FLIGHT)]
    assert server.stats().requests_total == IN_FLIGHT
