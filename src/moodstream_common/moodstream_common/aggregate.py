"""Aggregate output for ``policy.aggregate_only``: counts and shares of emotions over a time
window, with nothing that follows a person (ROS-free).

Track ids are used inside the process only, to count the distinct people of a window; they never
leave it. A window with fewer than ``min_people`` people is reported as suppressed, without its
counts: with one person in view a "share" would be that person's series.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Summary:
    start: float  # the window's first frame (s)
    end: float  # its last frame (s)
    frames: int
    face_observations: int  # faces classified, a face counted once per frame
    people: int  # distinct people seen in the window
    max_faces_in_view: int
    labels: tuple[str, ...]
    counts: tuple[int, ...]  # smoothed labels over the observations; zeros when suppressed
    suppressed: bool

    @property
    def shares(self) -> tuple[float, ...]:
        total = sum(self.counts)
        return tuple(c / total if total else 0.0 for c in self.counts)


class Aggregator:
    """Add frames in time order; a summary comes back when a window is complete."""

    def __init__(self, labels: Sequence[str], window_s: float, min_people: int) -> None:
        if window_s <= 0 or min_people < 1:
            raise ValueError("window_s must be positive and min_people at least 1")
        self.labels = tuple(labels)
        self.window_s = window_s
        self.min_people = min_people
        self._reset()

    def _reset(self) -> None:
        self._start: float | None = None
        self._end = 0.0
        self._frames = self._observations = self._max_faces = 0
        self._people: set[int] = set()
        self._counts = [0] * len(self.labels)

    def add(self, t: float, track_ids: Sequence[int], labels: Sequence[str]) -> Summary | None:
        """One frame at ``t`` (s) with each face's track id and smoothed label. Returns the
        previous window's summary when ``t`` starts a new one."""
        finished = None
        if self._start is not None and t - self._start >= self.window_s:
            finished = self.flush()
        if self._start is None:
            self._start = t
        self._end = max(self._end, t)
        self._frames += 1
        self._observations += len(labels)
        self._max_faces = max(self._max_faces, len(labels))
        self._people.update(track_ids)
        for label in labels:
            if label in self.labels:
                self._counts[self.labels.index(label)] += 1
        return finished

    def flush(self) -> Summary | None:
        """The current window's summary (None when it holds no frame); starts a new window."""
        if self._start is None:
            return None
        suppressed = len(self._people) < self.min_people
        summary = Summary(self._start, self._end, self._frames, self._observations, len(self._people),
                          self._max_faces, self.labels,
                          tuple(0 for _ in self._counts) if suppressed else tuple(self._counts), suppressed)
        self._reset()
        return summary

    def forget(self) -> None:
        """Drop the current window (consent revoked)."""
        self._reset()
