"""Emotion records: what the bridge relays, as plain data, and its versioned JSON payload (ROS-free).

The payload (``schema`` ``moodstream.emotion/1``) is documented in docs/bridge.md.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

SCHEMA = "moodstream.emotion/1"


@dataclass(frozen=True)
class EmotionRecord:
    robot: str
    camera: str
    source: str  # "pipeline" or "openmv"
    model: str
    stamp_ns: int  # the source frame's time
    track_id: int
    box: tuple[int, int, int, int]
    label: str
    confidence: float
    smoothed_label: str
    smoothed_confidence: float
    labels: tuple[str, ...]
    probabilities: tuple[float, ...]
    mood: str
    smoothed_mood: str

    def to_payload(self, message_id: str) -> dict:
        x, y, w, h = self.box
        return {
            "schema": SCHEMA,
            "id": message_id,
            "robot": self.robot,
            "camera": self.camera,
            "source": self.source,
            "model": self.model,
            "timestamp": iso8601_ns(self.stamp_ns),
            "timestamp_ns": self.stamp_ns,
            "track_id": self.track_id,
            "box": {"x": x, "y": y, "width": w, "height": h},
            "label": self.label,
            "confidence": round(self.confidence, 4),
            "probabilities": {lab: round(p, 4) for lab, p in zip(self.labels, self.probabilities, strict=True)},
            "smoothed_label": self.smoothed_label,
            "smoothed_confidence": round(self.smoothed_confidence, 4),
            "mood": self.mood,
            "smoothed_mood": self.smoothed_mood,
        }


def iso8601_ns(stamp_ns: int) -> str:
    """UTC ISO 8601 with nanoseconds, e.g. 2026-11-26T12:00:00.123456789Z."""
    seconds, nanos = divmod(stamp_ns, 1_000_000_000)
    base = dt.datetime.fromtimestamp(seconds, tz=dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{nanos:09d}Z"


def encode(payload: dict) -> bytes:
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


def records_from_array(msg, robot: str, camera: str) -> list[EmotionRecord]:
    """Records of an ``EmotionArray`` message (duck-typed: no rclpy needed)."""
    stamp_ns = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
    source = "openmv" if msg.model.startswith("openmv") else "pipeline"
    out = []
    for f in msg.faces:
        out.append(EmotionRecord(
            robot=robot, camera=camera, source=source, model=msg.model, stamp_ns=stamp_ns, track_id=f.track_id,
            box=(f.roi.x_offset, f.roi.y_offset, f.roi.width, f.roi.height), label=f.label,
            confidence=float(f.confidence), smoothed_label=f.smoothed_label,
            smoothed_confidence=float(f.smoothed_confidence), labels=tuple(f.labels),
            probabilities=tuple(float(p) for p in f.probabilities), mood=f.mood, smoothed_mood=f.smoothed_mood,
        ))
    return out


class RateLimiter:
    """Per face (robot, camera, track): pass a record when its smoothed label changed (``on_change``)
    or always, and never more than ``max_per_second`` (0: no cap)."""

    def __init__(self, on_change: bool = True, max_per_second: float = 1.0) -> None:
        self.on_change, self.max_per_second = on_change, max_per_second
        self._last: dict[tuple, tuple[str, float]] = {}

    def allow(self, record: EmotionRecord, now_s: float) -> bool:
        key = (record.robot, record.camera, record.track_id)
        last = self._last.get(key)
        if last is not None:
            label, at = last
            if self.on_change and label == record.smoothed_label:
                return False
            if self.max_per_second > 0 and now_s - at < 1.0 / self.max_per_second:
                return False
        self._last[key] = (record.smoothed_label, now_s)
        if len(self._last) > 10_000:  # forget the oldest faces
            for stale in list(self._last)[:1000]:
                del self._last[stale]
        return True


SUMMARY_SCHEMA = "moodstream.summary/1"


def summary_payload(msg, robot: str, camera: str) -> dict:
    """The JSON payload of an ``EmotionSummary`` (aggregate mode; duck-typed: no rclpy needed)."""

    def iso(stamp) -> str:
        seconds = stamp.sec + stamp.nanosec * 1e-9
        return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).isoformat(timespec="milliseconds")[:-6] + "Z"

    return {
        "schema": SUMMARY_SCHEMA, "robot": robot, "camera": camera,
        "window_start": iso(msg.window_start), "window_end": iso(msg.header.stamp),
        "frames": msg.frames, "face_observations": msg.face_observations, "people": msg.people,
        "max_faces_in_view": msg.max_faces_in_view, "suppressed": bool(msg.suppressed),
        "counts": dict(zip(msg.labels, (int(c) for c in msg.counts), strict=True)),
        "shares": dict(zip(msg.labels, (round(float(s), 6) for s in msg.shares), strict=True)),
    }
