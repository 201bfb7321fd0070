"""The mood history: emotions recorded in a local SQLite file, and their summary (ROS-free)."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from .records import EmotionRecord
from .store import open_database

#: Where the bridge keeps its outboxes and the mood history ($XDG_STATE_HOME/moodstream).
STATE_DIR = Path(os.environ.get("XDG_STATE_HOME", "~/.local/state")).expanduser() / "moodstream"

#: Two records of a face further apart than this do not make the time between them count.
MAX_GAP_NS = 5_000_000_000


def _init(db: sqlite3.Connection) -> None:
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(
        "CREATE TABLE IF NOT EXISTS emotions (stamp_ns INTEGER NOT NULL, robot TEXT, camera TEXT, source TEXT,"
        " track_id INTEGER, label TEXT, confidence REAL, smoothed_label TEXT, smoothed_confidence REAL,"
        " mood TEXT, smoothed_mood TEXT)")
    db.execute("CREATE INDEX IF NOT EXISTS emotions_stamp ON emotions (stamp_ns)")


class History:
    def __init__(self, path: str | Path, retention_days: float | None = None, clock=time.time_ns) -> None:
        """``retention_days``: the writer's retention, enforced at open and every minute while
        recording; None for a reader (``moodstream history``), which never deletes."""
        self.path = Path(path).expanduser()
        self.retention_ns = None if retention_days is None else int(retention_days * 86400e9)
        self._lock = threading.Lock()
        self._db, self.recovered_from = open_database(self.path, _init)
        self._clock = clock
        self._last_prune = 0.0
        if self.retention_ns is not None:
            with self._lock:
                self.prune()  # what outlived the retention while nothing ran goes at once

    def add(self, record: EmotionRecord) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO emotions VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (record.stamp_ns, record.robot, record.camera, record.source, record.track_id, record.label,
                 record.confidence, record.smoothed_label, record.smoothed_confidence, record.mood,
                 record.smoothed_mood))
            if self.retention_ns is not None and time.monotonic() - self._last_prune > 60:
                self.prune()

    def prune(self, now_ns: int | None = None) -> int:
        """Delete records older than the retention; returns how many."""
        if self.retention_ns is None:
            raise ValueError("this history was opened for reading (no retention): it deletes nothing")
        now_ns = now_ns if now_ns is not None else self._clock()
        cur = self._db.execute("DELETE FROM emotions WHERE stamp_ns < ?", (now_ns - self.retention_ns,))
        self._last_prune = time.monotonic()
        return cur.rowcount

    def rows(self, since_ns: int, until_ns: int) -> list[tuple]:
        with self._lock:
            return self._db.execute(
                "SELECT stamp_ns, robot, camera, track_id, smoothed_label, smoothed_mood FROM emotions "
                "WHERE stamp_ns >= ? AND stamp_ns < ? ORDER BY stamp_ns", (since_ns, until_ns)).fetchall()

    def close(self) -> None:
        with self._lock:
            self._db.close()


@dataclass
class Summary:
    records: int = 0
    seconds_per_label: Counter = field(default_factory=Counter)
    changes: int = 0
    mood_seconds_per_hour: dict[int, Counter] = field(default_factory=lambda: defaultdict(Counter))

    def dominant_mood_per_hour(self) -> dict[int, str]:
        return {hour: c.most_common(1)[0][0] for hour, c in sorted(self.mood_seconds_per_hour.items()) if c}


def summarize(rows: list[tuple]) -> Summary:
    """Time per smoothed emotion (each record lasts until the face's next one, at most 5 s), the
    number of label changes per face, and the dominant mood of each hour (UTC epoch hours)."""
    s = Summary(records=len(rows))
    last: dict[tuple, tuple[int, str, str]] = {}
    for stamp_ns, robot, camera, track_id, label, mood in rows:
        key = (robot, camera, track_id)
        if key in last:
            prev_ns, prev_label, prev_mood = last[key]
            gap = stamp_ns - prev_ns
            if 0 < gap <= MAX_GAP_NS:
                s.seconds_per_label[prev_label] += gap / 1e9
                s.mood_seconds_per_hour[prev_ns // 3_600_000_000_000][prev_mood] += gap / 1e9
            if label != prev_label:
                s.changes += 1
        last[key] = (stamp_ns, label, mood)
    return s
