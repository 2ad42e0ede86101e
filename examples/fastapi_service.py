"""An asyncio service on dspex_actors: FastAPI + uvicorn, one ActorSystem for the app's life.

- ``POST /answer`` ``{"question": "..."}`` → ``{"answer": "..."}`` (``await predict.acall``);
- ``POST /answer/stream`` → Server-Sent Events: the answer's pieces as the LM writes them
  (``dx.streamify``), then the whole prediction;
- ``GET /metrics`` → Prometheus text: the library's OpenTelemetry metrics (LM call
  durations, tokens, in-flight and queued calls, retries, breaker state, cache hits),
  through the OpenTelemetry SDK's Prometheus reader that ``main()`` installs.

The system starts in the app's lifespan and stops at shutdown; handlers never block the
event loop, and a thousand requests in flight are a thousand tasks, not threads.

Run offline (a local simulated LM): ``python examples/fastapi_service.py [--port 8000]``,
then ``curl -X POST localhost:8000/answer -H 'content-type: application/json'
-d '{"question": "What is 2 + 3?"}'``. Needs the ``[examples]`` extra (fastapi, uvicorn,
the OpenTelemetry SDK and its Prometheus exporter).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import prometheus_client
from fastapi import FastAPI
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel

import dspex_actors as dx


class Question(BaseModel):
    question: str


def create_app(lm: dx.LM) -> FastAPI:
    """The app, with its ActorSystem tied to its lifespan."""
    qa = dx.Predict("question -> answer")
    streamed_qa = dx.streamify(qa, stream_listeners=[dx.StreamListener("answer")])

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        with dx.ActorSystem(lm=lm, name="fastapi-service") as system:
            app.state.system = system
            yield

    app = FastAPI(lifespan=lifespan)

    @app.post("/answer")
    async def answer(body: Question) -> dict[str, Any]:
        prediction = await qa.acall(question=body.question)
        return {"answer": prediction.answer}

    @app.post("/answer/stream")
    async def answer_stream(body: Question) -> StreamingResponse:
        async def events() -> AsyncIterator[str]:
            async for item in streamed_qa(question=body.question):
                data: dict[str, Any]
                if isinstance(item, dx.StreamResponse):
                    data = {"field": item.signature_field_name, "chunk": item.chunk}
                else:
                    data = {"prediction": dict(item.items())}
                yield f"data: {json.dumps(data)}\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(
            prometheus_client.generate_latest(), media_type=prometheus_client.CONTENT_TYPE_LATEST
        )

    return app


def install_metrics() -> None:
    """The application's part: an OpenTelemetry MeterProvider whose Prometheus reader
    feeds ``prometheus_client``'s registry (the library never installs one itself)."""
    from opentelemetry import metrics
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.sdk.metrics import MeterProvider

    metrics.set_meter_provider(MeterProvider(metric_readers=[PrometheusMetricReader()]))


def main() -> None:
    import uvicorn

    from dspex_actors.testing import LocalLMServer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    install_metrics()
    with LocalLMServer(latency=0.05, stream_chunk_chars=2, stream_interval=0.02) as server:
        lm = dx.LM("openai/local-model", api_base=server.url, max_concurrency=512)
        uvicorn.run(create_app(lm), host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
