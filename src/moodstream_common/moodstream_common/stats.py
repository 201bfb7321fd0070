"""Per-stage counters for diagnostics: rate, latency percentiles, dropped frames."""

from __future__ import annotations

import time
from collections import deque

import numpy as np


class StageStats:
    """Sliding-window statistics of one pipeline stage (ROS-free)."""

    def __init__(self, window: int = 300, clock=time.monotonic) -> None:
        self._clock = clock
        self._stamps: deque[float] = deque(maxlen=window)
        self._latencies: dict[str, deque[float]] = {}
        self._window = window
        self.processed = 0
        self.dropped = 0
        self.errors = 0
        self._drop_reason = ""
        self._dropped_at = float("-inf")

    def tick(self) -> None:
        self.processed += 1
        self._stamps.append(self._clock())

    def drop(self, reason: str) -> None:
        """Count a dropped frame and remember why."""
        self.dropped += 1
        self._drop_reason, self._dropped_at = reason, self._clock()

    def recent_drop(self, hold_s: float = 10.0) -> str:
        """Why the last frame was dropped, if that was less than ``hold_s`` ago; else ""."""
        return self._drop_reason if self._clock() - self._dropped_at < hold_s else ""

    def add_latency(self, name: str, seconds: float) -> None:
        self._latencies.setdefault(name, deque(maxlen=self._window)).append(seconds)

    def rate_hz(self) -> float:
        if len(self._stamps) < 2:
            return 0.0
        # Measured up to now, so a stalled stage shows its rate falling.
        span = self._clock() - self._stamps[0]
        return (len(self._stamps) - 1) / span if span > 0 else 0.0

    def latency_ms(self, name: str) -> tuple[float, float] | None:
        """(p50, p95) in milliseconds, or None before the first sample."""
        values = self._latencies.get(name)
        if not values:
            return None
        p50, p95 = np.percentile(np.fromiter(values, dtype=float), [50, 95])
        return float(p50) * 1e3, float(p95) * 1e3

    def summary(self) -> dict[str, str]:
        out = {
            "rate_hz": f"{self.rate_hz():.1f}",
            "processed": str(self.processed),
            "dropped": str(self.dropped),
            "errors": str(self.errors),
        }
        for name in sorted(self._latencies):
            lat = self.latency_ms(name)
            if lat is not None:
                out[f"{name}_p50_ms"] = f"{lat[0]:.2f}"
                out[f"{name}_p95_ms"] = f"{lat[1]:.2f}"
        return out
