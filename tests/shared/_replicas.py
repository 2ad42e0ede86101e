"""Drive replica processes (``replica_main.py``) from a test: commands in, JSON lines out."""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
from pathlib import Path
from types import TracebackType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("replica_main.py")
REPLY_TIMEOUT = 60.0


class Replica:
    """One replica process; :meth:`send` a command, :meth:`receive` its reply (bounded)."""

    def __init__(self, lm: dict[str, Any], **system: Any) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        config = json.dumps({"lm": lm, "system": system})
        self.proc = subprocess.Popen(
            [sys.executable, str(SCRIPT), config],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self._ready = False

    def wait_ready(self) -> Replica:
        if not self._ready:
            assert self.receive().get("ready"), "the replica did not start"
            self._ready = True
        return self

    def send(self, op: str, **args: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.proc.stdin.flush()

    def receive(self, timeout: float = REPLY_TIMEOUT) -> dict[str, Any]:
        assert self.proc.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.proc.stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                raise TimeoutError(f"replica {self.proc.pid} gave no reply within {timeout}s")
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"replica {self.proc.pid} exited with {self.proc.wait(10)}")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def command(self, op: str, **args: Any) -> dict[str, Any]:
        self.send(op, **args)
        return self.receive()

    def close(self, timeout: float = 30.0) -> int:
        """Ask it to exit (its system stops); kill it if it does not."""
        if self.proc.poll() is None:
            try:
                self.send("exit")
                return self.proc.wait(timeout)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.proc.kill()
        return self.proc.wait(timeout)

    def kill(self) -> None:
        """SIGKILL: a crash (no stop, no clean-up)."""
        self.proc.kill()
        self.proc.wait(10)

    def __enter__(self) -> Replica:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()
