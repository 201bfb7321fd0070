"""``moodstream history``: a summary of the local mood history over a time range, and a plot."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

import cv2
import numpy as np

from moodstream_bridge.history import STATE_DIR, History, Summary, summarize
from moodstream_classify.moods import MOODS

from .params import ConfigError

MOOD_COLORS = {"positive": (80, 190, 80), "negative": (60, 60, 220), "neutral": (170, 170, 170),
               "other": (220, 160, 40)}


def parse_time(text: str, now: dt.datetime) -> dt.datetime:
    """ISO 8601 (``2026-11-26T09:00``), or relative: ``24h``, ``30m``, ``7d`` ago."""
    units = {"m": 60, "h": 3600, "d": 86400}
    if text and text[-1] in units and text[:-1].replace(".", "", 1).isdigit():
        return now - dt.timedelta(seconds=float(text[:-1]) * units[text[-1]])
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{text!r} is not a time: use ISO 8601 (2026-11-26T09:00) or 30m / 24h / 7d") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


def report(summary: Summary, since: dt.datetime, until: dt.datetime) -> str:
    lines = [f"mood history {since:%Y-%m-%d %H:%M} - {until:%Y-%m-%d %H:%M} UTC: {summary.records} records, "
             f"{summary.changes} emotion changes"]
    total = sum(summary.seconds_per_label.values())
    if not total:
        return "\n".join([*lines, "no face was seen in this range"])
    lines.append("time per emotion (smoothed):")
    for label, seconds in summary.seconds_per_label.most_common():
        lines.append(f"  {label:10s} {seconds:9.0f} s  {seconds / total:6.1%}")
    lines.append("dominant mood per hour:")
    for hour, mood in summary.dominant_mood_per_hour().items():
        start = dt.datetime.fromtimestamp(hour * 3600, tz=dt.timezone.utc)
        lines.append(f"  {start:%Y-%m-%d %H:00}  {mood}")
    return "\n".join(lines)


def plot(summary: Summary, path: Path) -> None:
    """One stacked bar per hour: the share of each mood."""
    hours = sorted(summary.mood_seconds_per_hour)
    width, height, left, bottom = max(480, 60 + 40 * len(hours)), 360, 50, 60
    img = np.full((height, width, 3), 255, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(img, "mood share per hour (UTC)", (left, 25), font, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    plot_h = height - bottom - 40
    for i, hour in enumerate(hours):
        counts = summary.mood_seconds_per_hour[hour]
        total = sum(counts.values()) or 1
        x, y = left + 40 * i, height - bottom
        for mood in MOODS:
            h = int(round(plot_h * counts[mood] / total))
            cv2.rectangle(img, (x, y - h), (x + 30, y), MOOD_COLORS[mood], -1)
            y -= h
        label = dt.datetime.fromtimestamp(hour * 3600, tz=dt.timezone.utc).strftime("%H")
        cv2.putText(img, label, (x + 6, height - bottom + 18), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    for j, mood in enumerate(MOODS):
        cv2.rectangle(img, (left + 110 * j, height - 25), (left + 110 * j + 12, height - 13), MOOD_COLORS[mood], -1)
        cv2.putText(img, mood, (left + 110 * j + 16, height - 14), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), img)


def cmd_history(args: argparse.Namespace) -> int:
    now = dt.datetime.now(tz=dt.timezone.utc)
    since, until = parse_time(args.since, now), parse_time(args.until, now) if args.until else now
    db = Path(args.db) if args.db else STATE_DIR / "history.db"
    if not db.is_file():
        raise SystemExit(f"moodstream: no mood history at {db} (the bridge writes it when asked: `moodstream run "
                         "--history` or bridge.history: always; --db to choose another file)")
    history = History(db)  # a reader: deletes nothing
    try:
        rows = history.rows(int(since.timestamp() * 1e9), int(until.timestamp() * 1e9))
    finally:
        history.close()
    summary = summarize(rows)
    print(report(summary, since, until))
    if args.plot:
        plot(summary, Path(args.plot))
        print(f"plot written to {args.plot}")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("history", help="summary and plot of the local mood history")
    p.add_argument("--db", help="history file (default: $XDG_STATE_HOME/moodstream/history.db)")
    p.add_argument("--since", default="24h", help="ISO 8601 time or 30m / 24h / 7d ago (default 24h)")
    p.add_argument("--until", help="ISO 8601 time (default: now)")
    p.add_argument("--plot", help="write a PNG of the mood share per hour here")
    p.set_defaults(func=cmd_history)
