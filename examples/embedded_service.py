"""A long-running prediction service that embeds one ActorSystem.

The service (stdlib ``http.server``, on 127.0.0.1) starts an ActorSystem once and serves

    POST /predict            {"question": "..."} -> {"answer": "..."}
    GET  /health             status, cache counters, actor restarts
    GET  /metrics            Prometheus text: the library's OpenTelemetry metrics (LM call
                             durations, tokens, in flight, retries, breaker state, cache)
    POST /admin/kill-client  stop the LM Client actor, to watch the supervisor restart it

Requests run concurrently on the server's threads (its listen backlog sized for
``--concurrency`` clients connecting at once, not http.server's 5) and share the system's
Client and Cache actors. When the Client actor dies, the supervisor starts a new one and
the next request is served as usual. On SIGTERM (or Ctrl-C) the service drains: it stops
accepting connections, lets the requests in flight finish (``ActorSystem.stop(grace=...)``
refuses new LM calls meanwhile), then stops every actor.

By default the example runs a short scripted self-check against itself (offline, with a
local test LM) and exits 0. ``--serve`` keeps it running until Ctrl-C:

    python examples/embedded_service.py --serve --port 8080
    curl -s localhost:8080/predict -d '{"question": "What is 6 times 7?"}'
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import signal
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import prometheus_client
import pykka

import dspex_actors as dx
from dspex_actors.testing import LocalLMServer

logger = logging.getLogger("embedded_service")


DEFAULT_CONCURRENCY = 128
DEFAULT_GRACE = 20.0


class _Server(ThreadingHTTPServer):
    """Handler threads are tracked (not daemons), so closing the server waits for the
    replies being written."""

    daemon_threads = False


class PredictionService:
    """One ActorSystem + one HTTP server, both running inside ``with PredictionService(...)``."""

    def __init__(
        self,
        lm: dx.LM,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> None:
        self.system = dx.ActorSystem(lm=lm)
        self.program = dx.Predict("question -> answer")
        self.httpd = _Server((host, port), _Handler, bind_and_activate=False)
        self.httpd.request_queue_size = concurrency  # the listen backlog
        try:
            self.httpd.server_bind()
            self.httpd.server_activate()
        except OSError:
            self.httpd.server_close()
            raise
        self.httpd.service = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="http")
        self._stack = contextlib.ExitStack()

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> PredictionService:
        # Entering the system on this thread makes it the one that calls from the HTTP
        # server's threads use (the most recently entered running system).
        self._stack.enter_context(self.system)
        self._stack.callback(self._stop_http)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stack.close()  # stop HTTP first, then every actor of the system

    def _stop_http(self) -> None:
        if self._thread.is_alive():
            self.httpd.shutdown()  # stop accepting; serve_forever returns
        self.httpd.server_close()  # also waits for the handler threads
        self._thread.join(timeout=10)

    def drain(self, grace: float = DEFAULT_GRACE) -> None:
        """Stop taking connections, give the requests in flight ``grace`` seconds to finish
        (new LM calls are refused), then stop the actors."""
        if self._thread.is_alive():
            self.httpd.shutdown()
        self.httpd.socket.close()  # connections now get refused instead of queued
        print(f"draining: up to {grace:g}s for the requests in flight", flush=True)
        self.system.stop(grace=grace)
        self._stop_http()

    # -- what the handlers call (on the HTTP server's threads) -----------------------

    def predict(self, question: str) -> dict[str, Any]:
        prediction = self.program(question=question)
        return {"answer": prediction.answer}

    def health(self) -> dict[str, Any]:
        stats = self.system.stats()
        cache = stats["cache"] or {}
        return {
            "status": "ok" if stats["running"] else "down",
            "cache": {key: cache.get(key) for key in ("hits", "misses", "size")},
            "restarts": stats["restarts"],
        }

    def kill_client(self) -> dict[str, Any]:
        """Stop the Client actor from outside, as a crash would; the supervisor restarts it."""
        handle = self.system.client_handle()
        ref = handle.ref(timeout=5)
        ref.stop(block=True, timeout=10)
        return {"killed": handle.child_id, "actor": ref.actor_urn}


class _Handler(BaseHTTPRequestHandler):
    server: ThreadingHTTPServer
    timeout = 30.0  # a client that stops sending cannot hold a thread (or a drain) forever

    @property
    def service(self) -> PredictionService:
        service: PredictionService = self.server.service  # type: ignore[attr-defined]
        return service

    def _reply(self, status: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/health":
            self._reply(HTTPStatus.OK, self.service.health())
        elif self.path == "/metrics":
            body = prometheus_client.generate_latest()
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", prometheus_client.CONTENT_TYPE_LATEST)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self._reply(HTTPStatus.NOT_FOUND, {"error": f"no route GET {self.path}"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.path == "/admin/kill-client":
            self._reply(HTTPStatus.OK, self.service.kill_client())
            return
        if self.path != "/predict":
            self._reply(HTTPStatus.NOT_FOUND, {"error": f"no route POST {self.path}"})
            return
        try:
            question = json.loads(raw)["question"]
            if not isinstance(question, str):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            self._reply(HTTPStatus.BAD_REQUEST, {"error": 'send {"question": "..."}'})
            return
        try:
            self._reply(HTTPStatus.OK, self.service.predict(question))
        except dx.LMError as exc:  # provider down, breaker open, ...: tell the caller
            self._reply(HTTPStatus.SERVICE_UNAVAILABLE, {"error": str(exc)})
        except Exception as exc:
            logger.exception("predict failed")
            self._reply(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": type(exc).__name__})

    def log_message(self, format: str, *args: Any) -> None:
        logger.info("%s " + format, self.address_string(), *args)


# -- the scripted self-check ----------------------------------------------------------


def _call(url: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
    body = None if data is None else json.dumps(data).encode()
    request = urllib.request.Request(url, data=body, method="GET" if body is None else "POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        result: dict[str, Any] = json.loads(response.read())
        return result


def self_check(service: PredictionService) -> bool:
    """Serve, kill the Client actor, serve again; True when every step went as expected."""
    base = service.url
    questions = [f"What is {n} times 7?" for n in range(2, 8)]
    with ThreadPoolExecutor(max_workers=len(questions)) as pool:
        answers = list(pool.map(lambda q: _call(f"{base}/predict", {"question": q}), questions))
    print(f"1. {len(questions)} concurrent requests: {[a['answer'] for a in answers]}")
    ok = [a["answer"] for a in answers] == [str(n * 7) for n in range(2, 8)]

    killed = _call(f"{base}/admin/kill-client", {})
    print(f"2. killed the Client actor {killed['killed']} ({killed['actor']})")

    after = _call(f"{base}/predict", {"question": "What is 9 times 9?"})
    health = _call(f"{base}/health")
    restarts = health["restarts"].get(killed["killed"], 0)
    print(f"3. after the kill: answer {after['answer']!r}; Client restarts: {restarts}")
    ok = ok and after["answer"] == "81" and restarts == 1

    try:
        _call(f"{base}/predict", {"oops": 1})
    except urllib.error.HTTPError as exc:
        print(f"4. a bad request gets HTTP {exc.code}; the service lives on")
        ok = ok and exc.code == 400
    with urllib.request.urlopen(f"{base}/metrics", timeout=30) as response:
        metrics = response.read().decode()
    calls = [
        line
        for line in metrics.splitlines()
        if line.startswith("gen_ai_client_operation_duration_seconds_count")
    ]
    total = sum(float(line.split()[-1]) for line in calls)
    print(f"5. /metrics: {len(calls)} LM call-duration series, {total:.0f} calls")
    ok = ok and bool(calls)
    print(f"   health: {health}")
    return ok


def install_metrics() -> None:
    """The application's part: an OpenTelemetry MeterProvider whose Prometheus reader feeds
    ``prometheus_client``'s registry (the library only uses the API; the ``[examples]``
    extra brings the SDK and the exporter)."""
    from opentelemetry import metrics
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.sdk.metrics import MeterProvider

    metrics.set_meter_provider(MeterProvider(metric_readers=[PrometheusMetricReader()]))


@contextlib.contextmanager
def language_model(args: argparse.Namespace) -> Iterator[dx.LM]:
    if args.model:
        yield dx.LM(args.model, api_base=args.api_base, max_concurrency=args.concurrency)
        return
    with LocalLMServer() as server:
        print(f"(offline: a local test model at {server.url} plays the LM)")
        yield dx.LM("openai/local-model", api_base=server.url, api_key="local")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help="keep serving until Ctrl-C")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--model", help="a real LM, e.g. openai/gpt-4o-mini")
    parser.add_argument("--api-base", help="its server's base URL")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=DEFAULT_CONCURRENCY,
        help="clients served at once: the listen backlog and the LM's calls in flight",
    )
    parser.add_argument(
        "--grace", type=float, default=DEFAULT_GRACE, help="seconds requests get on SIGTERM"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    install_metrics()

    with (
        language_model(args) as lm,
        PredictionService(lm, port=args.port, concurrency=args.concurrency) as service,
    ):
        print(f"serving on {service.url} (listen backlog {service.httpd.request_queue_size})")
        if args.serve:
            stop = threading.Event()
            signal.signal(signal.SIGTERM, lambda *_: stop.set())
            example = json.dumps({"question": "What is 6 times 7?"})
            print(f"try: curl -s {service.url}/predict -d '{example}'  (Ctrl-C stops)", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                stop.wait()
            service.drain(args.grace)
            ok = True
        else:
            ok = self_check(service)
    left = pykka.ActorRegistry.get_all()
    print(f"stopped cleanly: {len(left)} actors left")
    ok = ok and not left
    print("OK" if ok else "UNEXPECTED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
