"""Reconnect delays shared by the capture and OpenMV nodes (ROS-free)."""

from __future__ import annotations


class Backoff:
    """Delays between reconnect attempts: initial, doubling, capped."""

    def __init__(self, initial: float = 0.5, maximum: float = 10.0, factor: float = 2.0) -> None:
        self.initial, self.maximum, self.factor = initial, maximum, factor
        self._delay = initial
        self.attempts = 0

    def next_delay(self) -> float:
        delay = self._delay
        self._delay = min(self.maximum, self._delay * self.factor)
        self.attempts += 1
        return delay

    def reset(self) -> None:
        self._delay = self.initial
        self.attempts = 0
