"""gunicorn --preload: the master configures (and uses) the default system before it forks
2 workers; each worker starts its own system on first use and serves Predict calls."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from dspex_actors.testing import LocalLMServer
from tests._support import LineReader

REPO_ROOT = Path(__file__).resolve().parents[2]
WAIT = 60.0
REQUESTS = 50

APP = """
import os
import dspex_actors as dx

lm = dx.LM("openai/local-model", api_base=os.environ["LM_URL"], api_key="k", cache=False)
dx.configure(lm=lm)
qa = dx.Predict("question -> answer")
assert qa(question="What is 1 + 1?").answer == "2"  # the master's default system is running


def app(environ, start_response):
    n = int(environ["QUERY_STRING"])
    body = f"{qa(question=f'What is {n} + {n}?').answer} {os.getpid()}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
"""


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=WAIT) as reply:
        text: str = reply.read().decode()
        return text


def test_preloaded_app_serves_from_two_forked_workers(
    lm_server: LocalLMServer, tmp_path: Path
) -> None:
    (tmp_path / "wsgi_app.py").write_text(APP, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "LM_URL": lm_server.url}
    master = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--preload",
            "--workers",
            "2",
            "--bind",
            "127.0.0.1:0",
            "--chdir",
            str(tmp_path),
            "--graceful-timeout",
            "10",
            "wsgi_app:app",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert master.stderr is not None
        lines = LineReader(master.stderr)
        url = lines.wait_for("Listening at: ").split("Listening at: ")[1].split()[0]
        workers = {int(lines.wait_for("Booting worker with pid: ").rsplit(" ", 1)[1])}
        workers.add(int(lines.wait_for("Booting worker with pid: ").rsplit(" ", 1)[1]))

        with ThreadPoolExecutor(8) as pool:
            replies = list(pool.map(lambda n: _get(f"{url}/?{n}"), range(REQUESTS)))

        master.send_signal(signal.SIGTERM)
        assert master.wait(WAIT) == 0
        log = lines.rest()
    finally:
        if master.poll() is None:
            master.kill()
            master.wait(WAIT)

    answers = [reply.split() for reply in replies]
    assert [a for a, _ in answers] == [str(2 * n) for n in range(REQUESTS)]
    assert {int(pid) for _, pid in answers} <= workers
    assert lm_server.stats().requests_total == 1 + REQUESTS  # the master's call, then each once
    exited = [line for line in log if "Worker exiting (pid: " in line]
    assert len(exited) == 2, "\\n".join(log)
    assert not [line for line in log if "Traceback" in line or "[ERROR]" in line], "\\n".join(log)
