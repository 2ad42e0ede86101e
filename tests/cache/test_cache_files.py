"""The cache file on disk: a corrupt one is caught when opened, a read-only one serves hits."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import dspex_actors as dx
from dspex_actors.cache._sqlite import CACHE_FILENAME, SQLiteTier
from dspex_actors.lm import LMResponse
from dspex_actors.testing import LocalLMServer

REPO_ROOT = Path(__file__).resolve().parents[2]
WAIT = 60.0

CHILD = """
import json, logging, sys
logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(message)s")
import dspex_actors as dx
url, cache_dir = sys.argv[1:3]
lm = dx.LM("openai/local-model", api_base=url)
with dx.ActorSystem(lm=lm, cache_dir=cache_dir) as system:
    old = lm("What is 2 + 3?")
    new = [lm("What is 4 + 4?") for _ in range(3)]
    stats = system.stats()["cache"]
print(json.dumps({"old": old, "new": new, "stats": stats}))
"""


@pytest.fixture
def cache_dir(tmp_path: Path) -> Iterator[Path]:
    """A cache directory whose permissions the test may take away (restored for clean-up)."""
    path = tmp_path / "cache"
    path.mkdir()
    try:
        yield path
    finally:
        for item in [path, *path.iterdir()]:
            item.chmod(0o755)


def _unprivileged() -> list[str]:
    """A command prefix under which permission bits bind: root normally bypasses them, so
    root's child runs without the capabilities that do that."""
    if os.geteuid() != 0:
        return []
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner"]


def test_a_malformed_file_is_detected_at_open_and_moved_aside(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tier = SQLiteTier.open(tmp_path)
    for i in range(300):
        tier.put(f"key-{i}", LMResponse(texts=(f"private answer {i} " * 20,)))
    tier.close()
    path = tmp_path / CACHE_FILENAME
    data = bytearray(path.read_bytes())
    data[4096 * 2 : 4096 * 6] = b"\xa5" * (4096 * 4)  # trash pages 3-6, keep the header
    path.write_bytes(bytes(data))
    caplog.set_level(logging.DEBUG, logger="dspex_actors")

    reopened = SQLiteTier.open(tmp_path)
    try:
        assert len(reopened) == 0 and not reopened.read_only
        reopened.put("k", LMResponse(texts=("fresh",)))
        assert reopened.get("k", None) == LMResponse(texts=("fresh",))
    finally:
        reopened.close()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "is corrupt" in warnings[0]
    assert "private answer" not in caplog.text
    assert len(list(tmp_path.glob(f"{CACHE_FILENAME}.corrupt-*"))) == 1


def test_a_read_only_cache_dir_serves_hits_with_one_warning(
    lm_server: LocalLMServer, cache_dir: Path, tmp_path: Path
) -> None:
    lm = dx.LM("openai/local-model", api_base=lm_server.url)
    with dx.ActorSystem(lm=lm, cache_dir=cache_dir):
        assert lm("What is 2 + 3?") == ["5"]
    path = cache_dir / CACHE_FILENAME
    path.chmod(0o444)
    cache_dir.chmod(0o555)
    script = tmp_path / "child.py"
    script.write_text(CHILD, encoding="utf-8")
    env = {"PYTHONPATH": str(REPO_ROOT), "PATH": os.environ.get("PATH", "")}
    child = subprocess.run(
        [*_unprivileged(), sys.executable, str(script), lm_server.url, str(cache_dir)],
        capture_output=True,
        text=True,
        timeout=WAIT,
        env=env,
        check=False,
    )
    assert child.returncode == 0, child.stderr
    report = json.loads(child.stdout)
    assert report["old"] == ["5"] and report["new"] == [["8"]] * 3
    assert report["stats"]["persistent_hits"] == 1 and report["stats"]["persistent_read_only"]
    warnings = [line for line in child.stderr.splitlines() if line.startswith("WARNING")]
    assert len(warnings) == 1, child.stderr
    assert "read-only" in warnings[0] and "not stored" in warnings[0]
    assert lm_server.stats().requests_total == 2  # the hit sent nothing; the new one once
    with sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True) as db:
        assert db.execute("SELECT count(*) FROM entries").fetchone() == (1,)
