"""The server in a subprocess (and so the command line), driven over its control endpoints."""

from __future__ import annotations

import httpx
import pytest
from _lmserver_helpers import body, chat_messages

from dspex_actors.testing import Fault, ServerProcess, arithmetic_dataset, weak_model_is_wrong


def test_server_process_serves_and_is_controlled_over_http() -> None:
    with ServerProcess("default", latency=0.01) as proc, httpx.Client(base_url=proc.url) as http:
        assert proc.url == f"http://127.0.0.1:{proc.port}/v1"
        reply = http.post("/chat/completions", json=body(chat_messages("What is 3 + 4?")))
        assert "[[ ## answer ## ]]\n7" in reply.json()["choices"][0]["message"]["content"]

        proc.push_faults(Fault.http(429, retry_after=1), Fault.drop())
        limited = http.post("/chat/completions", json=body(chat_messages("x")))
        assert (limited.status_code, limited.headers["Retry-After"]) == (429, "1")
        with pytest.raises(httpx.RemoteProtocolError):
            http.post("/chat/completions", json=body(chat_messages("x")))

        stats = proc.stats()
        assert stats.requests_total == 3
        assert stats.status_counts == {200: 1, 429: 1}
        assert stats.faults == {"http_429": 1, "drop": 1}
        assert stats.requests[0]["messages"][-1]["content"].startswith("[[ ## question ## ]]")

        proc.reset_stats()
        assert proc.stats().requests_total == 0
        proc.set_responder("echo")
        echoed = http.post("/chat/completions", json=body([{"role": "user", "content": "hi"}]))
        assert echoed.json()["choices"][0]["message"]["content"] == "hi"
    assert proc.pid is None


def test_server_process_weak_model_and_cli_fault_rates() -> None:
    row = next(r for r in arithmetic_dataset(40) if weak_model_is_wrong(r["question"]))
    question = row["question"]
    with (
        ServerProcess("weak", seed=1, extra_args=["--fault-rate", "503=1.0"]) as proc,
        httpx.Client(base_url=proc.url) as http,
    ):
        assert http.post("/chat/completions", json=body(chat_messages(question))).status_code == 503
        proc.clear_faults()
        proc.set_fault_rates({Fault.malformed_json(): 0.0}, seed=3)
        reply = http.post("/chat/completions", json=body(chat_messages(question)))
        assert reply.status_code == 200
        content = reply.json()["choices"][0]["message"]["content"]
        assert f"[[ ## answer ## ]]\n{int(row['answer']) + 1}\n" in content
        assert proc.stats().faults == {"http_503": 1}


def test_server_process_reports_startup_failure() -> None:
    proc = ServerProcess("default", extra_args=["--latency", "not-a-number"], startup_timeout=30)
    with pytest.raises(RuntimeError, match="exited with code 2"):
        proc.start()
    assert proc.pid is None
