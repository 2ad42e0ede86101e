"""Drive a local LM server over HTTP, and run one in a subprocess (outside the client's GIL)."""

from __future__ import annotations

import http.client
import json
import logging
import os
import re
import selectors
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any
from urllib.parse import urlsplit

from dspex_actors.testing._cli import READY_PREFIX
from dspex_actors.testing._faults import Fault, FaultRates
from dspex_actors.testing._stats import ServerStats

__all__ = ["ServerControl", "ServerProcess"]

logger = logging.getLogger(__name__)

_URL = re.compile(re.escape(READY_PREFIX) + r"(http://\S+/v1)")


class ServerControl:
    """The ``/_dspex/`` control endpoints of a running server, with LocalLMServer's method names.

    Works against an in-process :class:`LocalLMServer` (``ServerControl(server.root_url)``)
    and a :class:`ServerProcess` alike.
    """

    def __init__(self, root_url: str, *, timeout: float = 10.0) -> None:
        self.root_url = root_url.rstrip("/")
        parts = urlsplit(self.root_url)
        self._address = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._timeout = timeout
        self._lock = threading.Lock()
        self._connection: http.client.HTTPConnection | None = None

    def close(self) -> None:
        """Close the kept-alive control connection."""
        with self._lock:
            connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    def _exchange(self, method: str, path: str, body: bytes | None = None) -> Any:
        """One control request on the kept-alive connection (reopened once if stale).

        A request the server rejects (HTTP 400) is a ValueError, any other error status a
        RuntimeError; both name the endpoint and quote the server's message.
        """
        headers = {"Content-Type": "application/json"} if body is not None else {}
        with self._lock:
            for attempt in (1, 2):
                if self._connection is None:
                    host, port = self._address
                    self._connection = http.client.HTTPConnection(host, port, timeout=self._timeout)
                try:
                    self._connection.request(method, path, body=body, headers=headers)
                    response = self._connection.getresponse()
                    data = response.read()
                    break
                except (http.client.HTTPException, ConnectionError):
                    self._connection.close()
                    self._connection = None
                    if attempt == 2:
                        raise
        if response.status >= 400:
            excerpt = data[:300].decode("utf-8", "replace")
            problem = f"{method} {self.root_url}{path}: HTTP {response.status}: {excerpt}"
            raise (ValueError if response.status == 400 else RuntimeError)(problem)
        return json.loads(data)

    def _post(self, action: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self._exchange(
            "POST", f"/_dspex/{action}", json.dumps(dict(payload)).encode("utf-8")
        )
        return result

    def stats(self, *, include_requests: bool = True) -> ServerStats:
        """A snapshot of the server's counters."""
        query = "" if include_requests else "?requests=0"
        return ServerStats.from_dict(self._exchange("GET", f"/_dspex/stats{query}"))

    def reset_stats(self) -> None:
        """Zero the counters and clear the request log."""
        self._post("reset", {})

    def push_faults(self, *faults: Fault | None) -> None:
        """Script the next requests' outcomes (None = answer normally)."""
        self._post("faults", {"script": [None if f is None else f.to_dict() for f in faults]})

    def set_fault_rates(self, rates: FaultRates, *, seed: int | None = None) -> None:
        """Replace the random fault rates (seeded at the server)."""
        pairs = list(rates.items()) if isinstance(rates, Mapping) else list(rates)
        payload: dict[str, Any] = {"rates": [[f.to_dict(), p] for f, p in pairs]}
        if seed is not None:
            payload["seed"] = seed
        self._post("faults", payload)

    def clear_faults(self) -> None:
        """Forget the fault script and rates."""
        self._post("faults", {"clear": True})

    def set_latency(self, latency: float, jitter: float | None = None) -> None:
        """Change the reply delay."""
        self._post("latency", {"latency": latency, "jitter": jitter})

    def set_stream_pacing(
        self, chunk_chars: int | None = None, interval: float | None = None
    ) -> None:
        """Change how streamed replies are cut and spaced (None keeps the current value)."""
        self._post("stream", {"chunk_chars": chunk_chars, "interval": interval})

    def set_responder(self, name: str) -> None:
        """Switch the model by name (``"default"``, ``"weak"``, ``"echo"``)."""
        self._post("responder", {"name": name})


class ServerProcess(ServerControl):
    """A LocalLMServer in a child Python process, as a context manager.

    ``responder`` is a name (``"default"``, ``"weak"``, ``"echo"``). ``.url`` is the
    api_base; stats, faults and latency go through the control endpoints (the methods
    are those of :class:`ServerControl`).
    """

    def __init__(
        self,
        responder: str = "default",
        *,
        latency: float = 0.0,
        jitter: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
        model: str = "local-model",
        seed: int = 0,
        stream_chunk_chars: int = 8,
        stream_interval: float = 0.0,
        startup_timeout: float = 30.0,
        extra_args: Sequence[str] = (),
    ) -> None:
        self._args = [
            "--host", host,
            "--port", str(port),
            "--latency", str(latency),
            "--jitter", str(jitter),
            "--model", model,
            "--seed", str(seed),
            "--stream-chunk-chars", str(stream_chunk_chars),
            "--stream-interval", str(stream_interval),
            "--responder", responder,
            *extra_args,
        ]  # fmt: skip
        self._startup_timeout = startup_timeout
        self._proc: subprocess.Popen[str] | None = None
        self._stderr: IO[bytes] | None = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        """The api_base, ``http://HOST:PORT/v1``."""
        if self._url is None:
            raise RuntimeError("ServerProcess is not running; call start() or use `with`")
        return self._url

    @property
    def port(self) -> int:
        """The port the child bound."""
        return int(self.url.rsplit(":", 1)[1].split("/", 1)[0])

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs."""
        return self._proc.pid if self._proc is not None else None

    def start(self) -> ServerProcess:
        """Launch the child and wait (bounded) until it prints its URL."""
        if self._proc is not None:
            raise RuntimeError("ServerProcess is already running")
        env = dict(os.environ)
        package_root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the child
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "dspex_actors.testing", *self._args],
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        try:
            self._url = self._read_url(self._proc)
        except BaseException:
            self.stop()
            raise
        super().__init__(self._url.removesuffix("/v1"))
        logger.info("local LM server process %d on %s", self._proc.pid, self._url)
        return self

    def _read_url(self, proc: subprocess.Popen[str]) -> str:
        assert proc.stdout is not None
        deadline = time.monotonic() + self._startup_timeout
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ)
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"local LM server process did not start within {self._startup_timeout}s"
                        f"{self._stderr_excerpt()}"
                    )
                if selector.select(remaining):
                    line = proc.stdout.readline()
                    if not line:
                        raise RuntimeError(
                            f"local LM server process exited with code {proc.wait(5)}"
                            f"{self._stderr_excerpt()}"
                        )
                    match = _URL.search(line)
                    if match:
                        return match.group(1)

    def _stderr_excerpt(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        text = self._stderr.read()[-2000:].decode("utf-8", "replace").strip()
        return f"; stderr: {text}" if text else ""

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate the child (SIGTERM, then kill) and wait for it."""
        proc, self._proc = self._proc, None
        if self._url is not None:
            self.close()
            self._url = None
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    logger.warning("local LM server process %d ignored SIGTERM; killing", proc.pid)
                    proc.kill()
                    proc.wait(timeout)
            if proc.stdout is not None:
                proc.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"ServerProcess({self._url or 'stopped'}, pid={self.pid})"
