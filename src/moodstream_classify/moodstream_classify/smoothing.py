"""Temporal smoothing of a face's emotion distribution, with hysteresis on its top label (ROS-free)."""

from __future__ import annotations

from collections import deque

import numpy as np

METHODS = ("ema", "window", "none")


class EmotionSmoother:
    """Smooths one track's probabilities and holds its label against flicker.

    ``method``: ``ema`` (exponential, weight ``alpha`` on the newest frame), ``window`` (mean of
    the last ``window`` frames) or ``none``. The smoothed label changes only when another label
    leads the current one by at least ``switch_margin`` for ``hold_frames`` frames in a row.
    """

    def __init__(self, method: str = "ema", alpha: float = 0.4, window: int = 8,
                 switch_margin: float = 0.1, hold_frames: int = 3) -> None:
        if method not in METHODS:
            raise ValueError(f"smoothing method must be one of {METHODS}, got {method!r}")
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"smoothing alpha must lie in (0, 1], got {alpha}")
        if window < 1 or hold_frames < 1 or switch_margin < 0:
            raise ValueError("window and hold_frames must be >= 1 and switch_margin >= 0")
        self.method, self.alpha, self.switch_margin, self.hold_frames = method, alpha, switch_margin, hold_frames
        self._history: deque[np.ndarray] = deque(maxlen=window)
        self._state: np.ndarray | None = None
        self._label: int | None = None
        self._pending = 0

    def resume_from(self, other: EmotionSmoother) -> EmotionSmoother:
        """Carry ``other``'s smoothed state and label over (after a change of settings)."""
        self._state, self._label = other._state, other._label
        self._history.extend(list(other._history)[-self._history.maxlen:])
        return self

    def update(self, probabilities: np.ndarray) -> tuple[int, np.ndarray]:
        """Add one frame's distribution; return (held label index, smoothed distribution)."""
        p = np.asarray(probabilities, dtype=np.float64)
        if self.method == "ema":
            self._state = p.copy() if self._state is None else self.alpha * p + (1 - self.alpha) * self._state
        elif self.method == "window":
            self._history.append(p)
            self._state = np.mean(self._history, axis=0)
        else:
            self._state = p
        smoothed = self._state
        leader = int(np.argmax(smoothed))
        if self._label is None:
            self._label = leader
        elif leader != self._label and smoothed[leader] - smoothed[self._label] >= self.switch_margin:
            self._pending += 1
            if self._pending >= self.hold_frames:
                self._label, self._pending = leader, 0
        else:
            self._pending = 0
        return self._label, smoothed.astype(np.float32)
