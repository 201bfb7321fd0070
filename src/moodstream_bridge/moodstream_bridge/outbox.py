"""A bounded, durable queue on SQLite: what the bridge accepted stays here until a sink confirms
it, across broker outages and restarts of the bridge (ROS-free)."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .store import open_database


def _init(db: sqlite3.Connection) -> None:
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, "
               "topic TEXT NOT NULL, payload BLOB NOT NULL)")
    db.execute("SELECT COUNT(*) FROM outbox").fetchone()


class Outbox:
    """Oldest first. Over ``max_messages`` the oldest are dropped and counted (``dropped``)."""

    def __init__(self, path: str | Path, max_messages: int = 100_000) -> None:
        self.path = Path(path)
        self.max_messages = max_messages
        self._lock = threading.Lock()
        self._db, self.recovered_from = open_database(self.path, _init)
        self.dropped = 0
        self._size = int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def put(self, topic: str, payload: bytes) -> int:
        with self._lock:
            cur = self._db.execute("INSERT INTO outbox (topic, payload) VALUES (?, ?)", (topic, payload))
            self._size += 1
            excess = self._size - self.max_messages
            if excess > 0:
                self._db.execute("DELETE FROM outbox WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT ?)",
                                 (excess,))
                self._size -= excess
                self.dropped += excess
            return int(cur.lastrowid)

    def peek(self, limit: int, after: int = 0) -> list[tuple[int, str, bytes]]:
        with self._lock:
            return self._db.execute("SELECT id, topic, payload FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
                                    (after, limit)).fetchall()

    def ack(self, ids: list[int]) -> None:
        if ids:
            with self._lock:
                cur = self._db.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in ids])
                self._size -= cur.rowcount  # ids dropped meanwhile as the oldest delete nothing

    def __len__(self) -> int:
        return self._size

    def close(self) -> None:
        with self._lock:
            self._db.close()


def wait_until_drained(outbox: Outbox, connected: Callable[[], bool], timeout: float) -> None:
    """Wait, at most ``timeout`` seconds, for a sending worker to empty ``outbox`` while it is connected."""
    deadline = time.monotonic() + timeout
    while connected() and len(outbox) and time.monotonic() < deadline:
        time.sleep(0.05)
