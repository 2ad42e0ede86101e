"""examples/fastapi_service.py under a real uvicorn on loopback, driven with httpx."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest
import uvicorn

import dspex_actors as dx
from dspex_actors.testing import LocalLMServer
from tests._otel import install_sdk

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fastapi_service.py"
WAIT = 30.0


def _load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fastapi_service", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def service() -> Iterator[tuple[str, LocalLMServer]]:
    """The example app under uvicorn on a free loopback port, and its LM server."""
    with LocalLMServer(latency=0.2, stream_chunk_chars=2, stream_interval=0.02) as lm_server:
        lm = dx.LM("openai/local-model", api_base=lm_server.url, max_concurrency=512, cache=False)
        config = uvicorn.Config(
            _load_example().create_app(lm), host="127.0.0.1", port=0, log_level="warning"
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name="uvicorn")
        thread.start()
        deadline = time.monotonic() + WAIT
        while not server.started and thread.is_alive() and time.monotonic() < deadline:
            thread.join(0.01)  # uvicorn offers no event to wait on: a bounded poll
        assert server.started, "uvicorn did not start"
        port = server.servers[0].sockets[0].getsockname()[1]
        try:
            yield f"http://127.0.0.1:{port}", lm_server
        finally:
            server.should_exit = True
            thread.join(WAIT)
            assert not thread.is_alive()


def test_200_concurrent_requests(service: tuple[str, LocalLMServer]) -> None:
    url, lm_server = service

    async def main() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=200)
        async with httpx.AsyncClient(base_url=url, timeout=WAIT, limits=limits) as client:
            return await asyncio.gather(
                *(
                    client.post("/answer", json={"question": f"What is {i} + 2?"})
                    for i in range(200)
                )
            )

    responses = asyncio.run(main())
    assert [r.status_code for r in responses] == [200] * 200
    assert [r.json()["answer"] for r in responses] == [str(i + 2) for i in range(200)]
    assert lm_server.stats().max_in_flight >= 100  # handled concurrently, not one by one


def test_the_streaming_endpoint_sends_pieces_then_the_prediction(
    service: tuple[str, LocalLMServer],
) -> None:
    url, _ = service
    events = []
    with (
        httpx.Client(base_url=url, timeout=WAIT) as client,
        client.stream("POST", "/answer/stream", json={"question": "What is 20 + 22?"}) as reply,
    ):
        assert reply.headers["content-type"].startswith("text/event-stream")
        for line in reply.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line.removeprefix("data: ")))
    pieces = [e["chunk"] for e in events if "chunk" in e]
    assert events[-1] == {"prediction": {"answer": "42"}}
    assert "".join(pieces) == "42"


def test_metrics_endpoint_serves_prometheus_text(service: tuple[str, LocalLMServer]) -> None:
    url, lm_server = service
    install_sdk()  # the application's part (main() installs a Prometheus reader alone)
    with httpx.Client(base_url=url, timeout=WAIT) as client:
        for i in range(3):
            assert client.post("/answer", json={"question": f"What is {i} + 5?"}).status_code == 200
        text = client.get("/metrics").text
    assert "# TYPE gen_ai_client_operation_duration_seconds histogram" in text
    port = lm_server.url.split(":")[2].split("/")[0]
    counts = [
        line
        for line in text.splitlines()
        if line.startswith("gen_ai_client_operation_duration_seconds_count")
        and f'server_port="{port}"' in line
    ]
    assert counts and float(counts[0].rsplit(" ", 1)[1]) == 3
    assert "dspex_lm_in_flight" in text and "Bearer" not in text
