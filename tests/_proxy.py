"""TinyProxy: a real forward HTTP proxy (Debian's ``tinyproxy``) run as a subprocess for tests.

The proxy tests need a genuine proxy, not a mock: one that takes absolute-URI requests
and CONNECT, forwards them and logs what it forwarded. tinyproxy is small, starts in
milliseconds and logs each request line synchronously, before it answers the client.

Found with tinyproxy 1.11.1: ``Port 0`` is refused ("You MUST set a Port"), so the port
is picked by binding port 0 and closing, and a lost race (tinyproxy exits 71, "Could not
create listening sockets") is retried on a new port. No ``User``/``Group`` lines: as
root it then only warns and keeps running as root, and it works unchanged for a
non-root user; ``User nobody`` with a private (0700) directory silently runs with no
log at all. No ``ConnectPort`` lines means CONNECT may reach any port.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO

__all__ = ["TinyProxy", "TinyProxyError"]

DEBIAN_PACKAGE = "tinyproxy"
_READY_MARKER = "Accepting connections"  # INFO: "Starting main loop. Accepting connections."
_BIND_FAILED = "Could not create listening sockets"
_REQUEST_LINE = re.compile(r"\]: Request \(file descriptor \d+\): (?P<line>.+?)\s*$")
_POLL_INTERVAL = 0.01


class TinyProxyError(RuntimeError):
    """tinyproxy is missing, failed to start, or did not become ready in time."""


def _free_port(host: str) -> int:
    """A port that was free a moment ago (tinyproxy cannot pick one itself)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _config(host: str, port: int, log_path: Path, max_clients: int) -> str:
    return "\n".join(
        [
            "# written by tests/_proxy.py",
            f"Listen {host}",
            f"Port {port}",
            "Timeout 60",
            f'LogFile "{log_path}"',
            "LogLevel Info",  # Connect level would hide the readiness line
            f"MaxClients {max_clients}",
            "Allow 127.0.0.0/8",
            'ViaProxyName "tinyproxy"',  # upstream sees "Via: 1.1 tinyproxy (tinyproxy/1.11.1)"
            "",
        ]
    )


class TinyProxy:
    """A running ``tinyproxy -d -c CONF`` on ``host``; ``.url`` is ``http://HOST:PORT``.

    ``directory`` holds the config, log and stderr (a temp dir removed at ``stop()`` if
    None; a given one is kept, e.g. pytest's ``tmp_path`` for post-mortems).
    ``forwarded()`` lists the request lines tinyproxy logged, still readable after stop.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        directory: Path | str | None = None,
        max_clients: int = 256,
        start_timeout: float = 10.0,
        bind_attempts: int = 5,
    ) -> None:
        self.host = host
        self._directory = Path(directory) if directory is not None else None
        self._max_clients = max_clients
        self._start_timeout = start_timeout
        self._bind_attempts = bind_attempts
        self._dir: Path | None = None
        self._owns_dir = False
        self._process: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._port = 0
        self._final_log: str | None = None

    # --- lifecycle ---------------------------------------------------------------

    def start(self) -> TinyProxy:
        """Start tinyproxy and wait until it accepts connections; returns self."""
        if self._process is not None:
            raise RuntimeError("TinyProxy is already running")
        executable = shutil.which("tinyproxy")
        if executable is None:
            raise TinyProxyError(
                "tinyproxy is not on PATH: install the Debian package "
                f"'{DEBIAN_PACKAGE}' (apt-get install -y {DEBIAN_PACKAGE}); "
                "the proxy tests need a real forward proxy"
            )
        if self._directory is not None:
            self._directory.mkdir(parents=True, exist_ok=True)
            self._dir, self._owns_dir = self._directory, False
        else:
            self._dir, self._owns_dir = Path(tempfile.mkdtemp(prefix="dspex-tinyproxy-")), True
        self._final_log = None
        try:
            self._launch(executable, self._dir)
        except BaseException:
            self._cleanup_dir()
            raise
        return self

    def _launch(self, executable: str, directory: Path) -> None:
        """Start on a fresh port; retry on a new one while the bind race is lost."""
        failures: list[str] = []
        for _ in range(self._bind_attempts):
            port = _free_port(self.host)
            self.log_path.unlink(missing_ok=True)
            self.config_path.write_text(
                _config(self.host, port, self.log_path, self._max_clients), encoding="utf-8"
            )
            stderr = (directory / "tinyproxy.stderr").open("wb")
            process = subprocess.Popen(
                [executable, "-d", "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
            self._process, self._stderr, self._port = process, stderr, port
            try:
                if self._wait_ready(process):
                    return
            except BaseException:
                self._terminate()
                raise
            failures.append(f"port {port}: {self._stderr_text().strip()}")
            self._terminate()
        raise TinyProxyError(
            f"tinyproxy could not bind after {self._bind_attempts} ports: {failures}"
        )

    def _wait_ready(self, process: subprocess.Popen[bytes]) -> bool:
        """True once the log says it accepts connections; False if it lost the bind race.

        A bounded poll: tinyproxy is an external process with no readiness signal but
        its log. The log line (not a TCP probe) proves it is *our* process listening.
        """
        deadline = time.monotonic() + self._start_timeout
        while True:
            if _READY_MARKER in self.log_text():
                return True
            code = process.poll()
            if code is not None:
                stderr = self._stderr_text()
                if _BIND_FAILED in stderr:
                    return False
                raise TinyProxyError(
                    f"tinyproxy exited with {code} at start; stderr: {stderr.strip()!r}; "
                    f"log: {self.log_text()[-2000:]!r}; config:\n{self.config_path.read_text()}"
                )
            if time.monotonic() >= deadline:
                raise TinyProxyError(
                    f"tinyproxy not ready after {self._start_timeout:g}s; "
                    f"stderr: {self._stderr_text().strip()!r}; log: {self.log_text()[-2000:]!r}"
                )
            time.sleep(_POLL_INTERVAL)

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate (SIGTERM, then SIGKILL after ``timeout``) and reap; idempotent."""
        if self._process is None:
            return
        self._terminate(timeout)
        self._final_log = self.log_text()
        self._cleanup_dir()

    def _terminate(self, timeout: float = 5.0) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def _cleanup_dir(self) -> None:
        if self._owns_dir and self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._owns_dir = False

    def __enter__(self) -> TinyProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- what tests read -----------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the tinyproxy process is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int:
        """The tinyproxy process id (raises if not started)."""
        if self._process is None:
            raise RuntimeError("TinyProxy is not running; call start()")
        return self._process.pid

    @property
    def port(self) -> int:
        """The listening port (raises if not started)."""
        if self._process is None:
            raise RuntimeError("TinyProxy is not running; call start()")
        return self._port

    @property
    def url(self) -> str:
        """The proxy URL for ``HTTP_PROXY`` or ``LM(proxy=...)``: ``http://HOST:PORT``."""
        return f"http://{self.host}:{self.port}"

    @property
    def config_path(self) -> Path:
        """The generated tinyproxy.conf."""
        return self._require_dir() / "tinyproxy.conf"

    @property
    def log_path(self) -> Path:
        """tinyproxy's log file (Info level)."""
        return self._require_dir() / "tinyproxy.log"

    def log_text(self) -> str:
        """The whole log so far (the last one once stopped)."""
        if self._final_log is not None and self._process is None:
            return self._final_log
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def forwarded(self) -> list[str]:
        """Request lines tinyproxy received, in order: ``"POST http://H:P/v1/... HTTP/1.1"``.

        CONNECT tunnels appear as ``"CONNECT H:P HTTP/1.0"``. A line is logged before
        the proxy answers, so it is here as soon as the client has its response.
        """
        lines = []
        for entry in self.log_text().splitlines():
            match = _REQUEST_LINE.search(entry)
            if match:
                lines.append(match.group("line"))
        return lines

    def forwarded_urls(self) -> list[str]:
        """Just the targets of :meth:`forwarded` (the absolute URI, or ``H:P`` for CONNECT)."""
        return [parts[1] for line in self.forwarded() if len(parts := line.split()) >= 2]

    def _stderr_text(self) -> str:
        if self._dir is None:
            return ""
        with contextlib.suppress(FileNotFoundError):
            return (self._dir / "tinyproxy.stderr").read_text(errors="replace")
        return ""

    def _require_dir(self) -> Path:
        if self._dir is None:
            raise RuntimeError("TinyProxy has not been started")
        return self._dir

    def __repr__(self) -> str:
        where = self.url if self._process is not None else "stopped"
        return f"TinyProxy({where})"
