"""The persistent cache tier: one SQLite file (WAL) under the cache directory.

A stored entry is committed before the caller gets its result, so a re-run after a
crash reuses every completed call. Writes use ``synchronous=NORMAL``: a commit survives
a crash of the process (power loss may drop the last commits).

Opening checks the file (``PRAGMA quick_check``): a corrupt one is moved aside (renamed
``...corrupt-<time>``) with one warning and an empty cache starts in its place. A file
that cannot be written (a read-only ``cache_dir``) is opened read-only: hits are served,
new entries are not stored, and one warning per process says so. Warnings name the
file and the problem, never cached content.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
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


_warned_read_only: set[Path] = set()
_warned_lock = threading.Lock()


def _warn_read_only_once(path: Path) -> None:
    with _warned_lock:
        if path in _warned_read_only:
            return
        _warned_read_only.add(path)
    logger.warning(
        "persistent cache %s is read-only: cached replies are served, new ones are not stored",
        path,
    )


class _Corrupt(Exception):
    """The file is not a sound SQLite database (the reason names no content)."""


def _connect(path: Path, *, read_only: bool = False, immutable: bool = False) -> sqlite3.Connection:
    if not read_only:
        return sqlite3.connect(path, timeout=10.0, check_same_thread=False)
    flag = "immutable=1" if immutable else "mode=ro"
    uri = f"{path.resolve().as_uri()}?{flag}"
    return sqlite3.connect(uri, uri=True, timeout=10.0, check_same_thread=False)


def _check(db: sqlite3.Connection) -> None:
    """Raise _Corrupt unless a quick integrity check passes."""
    try:
        rows = db.execute("PRAGMA quick_check(1)").fetchall()
    except sqlite3.OperationalError:  # cannot open, read-only, locked: not corruption
        raise
    except sqlite3.DatabaseError as exc:  # not a database, malformed
        raise _Corrupt(str(exc).splitlines()[0]) from None
    if rows != [("ok",)]:
        raise _Corrupt("the integrity check failed")


def _set_up(db: sqlite3.Connection) -> None:
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute(
        "CREATE TABLE IF NOT EXISTS entries ("
        " key TEXT PRIMARY KEY, value TEXT NOT NULL, created REAL NOT NULL)"
    )
    db.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
    db.commit()
    db.execute("SELECT key FROM entries LIMIT 1").fetchall()


def _move_aside(path: Path, reason: str) -> Path:
    """Rename a corrupt cache file (and its WAL/SHM companions) out of the way."""
    aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
    for suffix in ("-wal", "-shm"):
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            companion.replace(aside.with_name(aside.name + suffix))
    path.replace(aside)
    logger.warning(
        "persistent cache %s is corrupt (%s): moved it to %s and started an empty cache",
        path,
        reason,
        aside.name,
    )
    return aside


class SQLiteTier:
    """A key → LMResponse table in ``<cache_dir>/dspex_cache.sqlite3``.

    Used from one thread at a time (the Cache actor's). ``read_only``: hits only.
    """

    def __init__(self, connection: sqlite3.Connection, path: Path, *, read_only: bool = False):
        self._db = connection
        self.path = path
        self.read_only = read_only

    @classmethod
    def open(cls, cache_dir: str | Path) -> SQLiteTier:
        """Open or create the cache file; a CacheError saying why when that fails."""
        path = Path(cache_dir) / CACHE_FILENAME
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CacheError(f"cannot open the persistent cache {path}: {exc}") from None
        for attempt in range(2):
            try:
                return cls._open_writable(path)
            except _Corrupt as exc:
                if attempt:
                    raise CacheError(f"the persistent cache {path} is not usable ({exc})") from None
                try:
                    _move_aside(path, str(exc))
                except OSError as move_error:
                    raise CacheError(
                        f"the persistent cache {path} is corrupt ({exc}) and cannot be moved "
                        f"aside ({move_error.strerror}); remove it or choose another cache_dir"
                    ) from None
            except sqlite3.OperationalError as exc:
                if not path.exists() or (
                    os.access(path.parent, os.W_OK) and os.access(path, os.W_OK)
                ):
                    raise CacheError(
                        f"the persistent cache {path} is not usable ({exc}); "
                        "move it away or choose another cache_dir"
                    ) from None
                return cls._open_read_only(path)
        raise AssertionError("unreachable")

    @classmethod
    def _open_writable(cls, path: Path) -> SQLiteTier:
        try:
            db = _connect(path)
        except sqlite3.Error as exc:
            raise CacheError(f"cannot open the persistent cache {path}: {exc}") from None
        try:
            _check(db)
            _set_up(db)
        except BaseException:
            db.close()
            raise
        return cls(db, path)

    @classmethod
    def _open_read_only(cls, path: Path) -> SQLiteTier:
        """A cache file this process cannot write: served read-only, one warning."""
        last: Exception | None = None
        for immutable in (False, True):  # a WAL file in a read-only directory needs immutable
            try:
                db = _connect(path, read_only=True, immutable=immutable)
            except sqlite3.Error as exc:
                last = exc
                continue
            try:
                _check(db)
                db.execute("SELECT key FROM entries LIMIT 1").fetchall()
            except (_Corrupt, sqlite3.Error) as exc:
                db.close()
                last = exc
                continue
            _warn_read_only_once(path)
            return cls(db, path, read_only=True)
        raise CacheError(f"the persistent cache {path} is read-only and not readable ({last})")

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
        """Store and commit (durable when this returns); nothing when read-only."""
        if self.read_only:
            return
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
