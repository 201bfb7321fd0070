"""``moodstream audit``: print the audit log and verify its hash chain (exit 1 when it breaks)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path

from moodstream_common.audit import default_path, read, verify

from .history_cli import parse_time


def cmd_audit(args: argparse.Namespace) -> int:
    path = Path(args.file) if args.file else default_path()
    if not path.is_file():
        print(f"no audit log at {path}: nothing has left this machine or been stored through the bridge")
        return 0
    check = verify(path)
    since = parse_time(args.since, dt.datetime.now(tz=dt.timezone.utc)) if args.since else None
    try:
        entries = read(path)
    except ValueError:
        entries = []
    for entry in entries:
        if since is not None and dt.datetime.fromisoformat(entry["time"]) < since:
            continue
        details = json.dumps(entry.get("details", {}), sort_keys=True)
        level, source = entry.get("level", "info"), entry.get("source", "")
        print(f"{entry['time']}  {level:5s}  {source}  {entry['event']}  {details}")
    if check.ok:
        print(f"{path}: {check.entries} entries, the hash chain holds (last hash {check.last_hash[:16]}...)")
        return 0
    print(f"{path}: THE HASH CHAIN IS BROKEN after {check.entries} good entries: {check.problem}")
    return 1


def add_parser(sub) -> None:
    p = sub.add_parser("audit", help="the audit log (where emotions went, what was stored) and its hash chain")
    p.add_argument("--since", help="only entries from this time on (24h, 7d, or 2026-11-26T08:00)")
    p.add_argument("--file", help="the log (default: $XDG_STATE_HOME/moodstream/audit.jsonl)")
    p.set_defaults(func=cmd_audit)
