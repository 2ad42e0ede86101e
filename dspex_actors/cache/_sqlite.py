"""The persistent cache tier: one SQLite file (WAL) under the cache directory.

A stored entry is committed before the caller gets its result, so a re-run after a
crash reuses every completed call. Writes use ``synchronous=NORMAL``: a commit survives
a crash of the process (power loss may drop the last commits).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from pathlib import Path
from typing import Any

from dspex_actors._errors import CacheError
from dspex_actors._types import LMResponse

__all__ = ["CACHE_FILENAME", "SQLiteTier"]

logger = logging.getLogger(__name__)

CACHE_FILENAME = "dspex_cache.sqlite3"
_SCHEMA_VERSION = 1


def _encode(response: LMResponse) -> str:
    return json.dumps(
        {
            "texts": list(response.texts),
            "usage": response.usage,
            "model": response.model,
            "finish_reasons": list(response.finish_reasons),
        }
    )


def _decode(text: str) -> LMResponse:
    data: Any = json.loads(text)
    texts = data["texts"]
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise ValueError("texts is not a list of strings")
    usage = {str(k): int(v) for k, v in dict(data.get("usage") or {}).items()}
    reasons = tuple(r if isinstance(r, str) else None for r in data.get("finish_reasons") or ())
    return LMResponse(
        texts=tuple(texts), usage=usage, model=str(data.get("model") or ""), finish_reasons=reasons
    )


class SQLiteTier:
    """A key → LMResponse table in ``<cache_dir>/dspex_cache.sqlite3``.

    Used from one thread at a time (the Cache actor's).
    """

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._db = connection
        self.path = path

    @classmethod
    def open(cls, cache_dir: str | Path) -> SQLiteTier:
        """Open or create the cache file; a CacheError saying why when that fails."""
        path = Path(cache_dir) / CACHE_FILENAME
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(path, timeout=10.0, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise CacheError(f"cannot open the persistent cache {path}: {exc}") from None
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS entries ("
                " key TEXT PRIMARY KEY, value TEXT NOT NULL, created REAL NOT NULL)"
            )
            db.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
            db.commit()
            db.execute("SELECT key FROM entries LIMIT 1").fetchall()
        except sqlite3.Error as exc:
            db.close()
            raise CacheError(
                f"the persistent cache {path} is not usable ({exc}); "
                "move it away or choose another cache_dir"
            ) from None
        return cls(db, path)

    def get(self, key: str, ttl: float | None) -> LMResponse | None:
        """The stored response, or None when absent or older than ``ttl`` seconds."""
        row = self._db.execute(
            "SELECT value, created FROM entries WHERE key = ?", (key,)
        ).fetchone()
        if row is None:
            return None
        value, created = row
        if ttl is not None and time.time() - float(created) > ttl:
            return None
        try:
            return _decode(value)
        except (ValueError, KeyError, TypeError) as exc:
            raise sqlite3.DataError(f"undecodable cache entry: {exc}") from None

    def put(self, key: str, response: LMResponse) -> None:
        """Store and commit (durable when this returns)."""
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO entries (key, value, created) VALUES (?, ?, ?)",
                (key, _encode(response), time.time()),
            )

    def __len__(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM entries").fetchone()[0])

    def close(self) -> None:
        try:
            self._db.close()
        except sqlite3.Error:
            logger.warning("closing the persistent cache %s failed", self.path, exc_info=True)
