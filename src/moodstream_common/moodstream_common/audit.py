"""An append-only audit log whose entries are hash-chained, so that a changed, removed or
reordered entry shows (ROS-free; any system that handles sensitive data can use it).

One JSON object a line::

    {"seq": 3, "time": "2026-11-27T17:30:00.123456+00:00", "source": "bridge", "event": "egress",
     "level": "warn", "details": {...}, "prev": "<hash of entry 2>", "hash": "<sha256 of this entry>"}

``hash`` is the SHA-256 of the entry's canonical JSON without ``hash`` (sorted keys, no spaces),
which includes ``prev``: editing any entry breaks its own hash, and removing or reordering
entries breaks the chain. :func:`verify` walks the file and says where it breaks. Appends from
several processes are serialised with an advisory lock on the file; the file is created 0600 in a
0700 folder. What it cannot do: stop someone with write access from rewriting the whole file and
its hashes (keep a copy of the last hash elsewhere for that; ``verify`` returns it).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GENESIS = "0" * 64
LEVELS = ("info", "warn", "error")


def default_path() -> Path:
    """``$XDG_STATE_HOME/moodstream/audit.jsonl`` (``~/.local/state/moodstream/audit.jsonl``)."""
    return Path(os.environ.get("XDG_STATE_HOME", "~/.local/state")).expanduser() / "moodstream" / "audit.jsonl"


def entry_hash(entry: dict) -> str:
    body = {k: v for k, v in entry.items() if k != "hash"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass
class Verification:
    entries: int
    ok: bool
    last_hash: str
    problem: str = ""  # where and how the chain breaks


def _last(handle) -> tuple[int, str]:
    """(seq, hash) of the file's last entry, or (0, GENESIS) for an empty file."""
    handle.seek(0)
    seq, last = 0, GENESIS
    for line in handle:
        if line.strip():
            entry = json.loads(line)
            seq, last = entry["seq"], entry["hash"]
    return seq, last


class AuditLog:
    """Appends entries to ``path`` (default: :func:`default_path`)."""

    def __init__(self, path: str | Path | None = None, source: str = "moodstream") -> None:
        self.path = Path(path).expanduser() if path else default_path()
        self.source = source
        if not self.path.parent.exists():
            self.path.parent.mkdir(parents=True, mode=0o700)
        if not self.path.exists():
            fd = os.open(self.path, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600)
            os.close(fd)

    def append(self, event: str, level: str = "info", **details: Any) -> dict:
        """Add one entry chained to the last one; returns it."""
        if level not in LEVELS:
            raise ValueError(f"level must be one of {', '.join(LEVELS)}, got {level!r}")
        with self.path.open("a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                seq, prev = _last(handle)
                entry = {"seq": seq + 1, "time": dt.datetime.now(dt.timezone.utc).isoformat(),
                         "source": self.source, "event": event, "level": level, "details": details, "prev": prev}
                entry["hash"] = entry_hash(entry)
                handle.seek(0, os.SEEK_END)
                handle.write(json.dumps(entry, sort_keys=True) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return entry


def read(path: str | Path) -> list[dict]:
    """Every entry, in file order (a line that is not JSON raises ValueError with its number)."""
    entries = []
    with Path(path).open() as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                entries.append(json.loads(line))
            except ValueError as err:
                raise ValueError(f"line {number} is not JSON: {err}") from None
    return entries


def verify(path: str | Path) -> Verification:
    """Check every entry's hash and its link to the one before."""
    try:
        entries = read(path)
    except ValueError as err:
        return Verification(0, False, GENESIS, str(err))
    prev = GENESIS
    for index, entry in enumerate(entries, 1):
        if entry.get("prev") != prev:
            return Verification(index - 1, False, prev,
                                f"entry {index} (seq {entry.get('seq')}) does not follow the one before: "
                                "an entry was removed, inserted or reordered")
        if entry.get("hash") != entry_hash(entry):
            return Verification(index - 1, False, prev, f"entry {index} (seq {entry.get('seq')}) was changed")
        prev = entry["hash"]
    return Verification(len(entries), True, prev)
