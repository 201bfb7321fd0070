"""Opening the bridge's SQLite files (outboxes, the mood history) safely (ROS-free).

Files are private: 0600, in a folder created 0700. A file that is not a usable database (cut
short by a power loss, overwritten, damaged on disk) never stops the robot: it is moved aside,
kept for inspection as ``<name>.corrupt-<unix time>``, and a new one is started.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("moodstream.bridge")


def _connect(path: Path, init: Callable[[sqlite3.Connection], None]) -> sqlite3.Connection:
    db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
    try:
        check = db.execute("PRAGMA quick_check").fetchone()
        if not check or check[0] != "ok":
            raise sqlite3.DatabaseError(f"integrity check: {check[0] if check else 'no answer'}")
        init(db)
    except sqlite3.DatabaseError:
        db.close()
        raise
    return db


def open_database(path: Path, init: Callable[[sqlite3.Connection], None]) -> tuple[sqlite3.Connection, Path | None]:
    """The connection, and where a corrupt predecessor was moved (None when there was none)."""
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700)
    created = not path.exists()
    moved: Path | None = None
    try:
        db = _connect(path, init)
    except sqlite3.DatabaseError as err:
        moved = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
        path.rename(moved)
        for suffix in ("-wal", "-shm"):  # SQLite's side files belong to the damaged file
            side = path.with_name(path.name + suffix)
            if side.exists():
                side.rename(moved.with_name(moved.name + suffix))
        log.warning("%s is not a usable database (%s): moved it to %s and started a new one", path, err, moved)
        created = True
        db = _connect(path, init)
    if created:
        with contextlib.suppress(OSError):
            os.chmod(path, 0o600)
    return db, moved
