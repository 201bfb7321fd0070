"""Per-stage counters for diagnostics: rate, latency percentiles, dropped frames."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class HealthConfig:
    """When a stage's diagnostics leave OK (the ``expected_rate_hz``, ``stall_warn_s``,
    ``stall_error_s`` and ``latency_budget_ms`` parameters)."""

    expected_rate_hz: float = 0.0  # 0: no rate expected, only a stall is judged
    stall_warn_s: float = 2.0
    stall_error_s: float = 10.0
    latency_budget_ms: float = 0.0  # 0: no budget


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
        self.started_at = clock()
        #: When the last input arrived, processed or dropped (None before the first).
        self.last_input_at: float | None = None

    def restart_clock(self) -> None:
        """Judge stalls from now on (a stage that was just activated has had no input yet)."""
        self.started_at, self.last_input_at = self._clock(), None
        self._stamps.clear()

    def tick(self) -> None:
        self.processed += 1
        self._stamps.append(self._clock())
        self.last_input_at = self._stamps[-1]

    def drop(self, reason: str) -> None:
        """Count a dropped frame and remember why."""
        self.dropped += 1
        self._drop_reason, self._dropped_at = reason, self._clock()
        self.last_input_at = self._dropped_at

    def recent_rate_hz(self, window_s: float = 3.0) -> float:
        """Processed frames per second over the last ``window_s``: falls as soon as input slows."""
        now = self._clock()
        recent = sum(1 for stamp in self._stamps if now - stamp <= window_s)
        span = min(window_s, now - self.started_at)
        return recent / span if span > 0 else 0.0

    def health(self, config: HealthConfig, latency: str | None = None, what: str = "input") -> tuple[str, str]:
        """("ok" | "warn" | "error", why): input flowing at the expected rate, within the budget."""
        now = self._clock()
        silent = now - (self.last_input_at if self.last_input_at is not None else self.started_at)
        never = self.last_input_at is None
        if silent > config.stall_error_s:
            return "error", f"no {what} for {silent:.0f} s" + (" (none yet)" if never else "")
        if silent > config.stall_warn_s:
            return "warn", f"no {what} for {silent:.1f} s" + (" (none yet)" if never else "")
        if never:
            return "ok", f"waiting for the first {what}"
        reason = self.recent_drop()
        if reason:
            return "warn", reason
        rate = self.recent_rate_hz()
        if config.expected_rate_hz > 0 and now - self.started_at > 3.0 and rate < config.expected_rate_hz / 2:
            return "warn", f"{what} at {rate:.1f} Hz, less than half the expected {config.expected_rate_hz:g} Hz"
        lat = self.latency_ms(latency) if latency else None
        if config.latency_budget_ms > 0 and lat is not None and lat[1] > config.latency_budget_ms:
            return "warn", f"{latency} latency p95 {lat[1]:.1f} ms is over the {config.latency_budget_ms:g} ms budget"
        return "ok", ""

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
