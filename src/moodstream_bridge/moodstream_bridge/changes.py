"""One console line per change of the primary face's emotion (ROS-free)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True)
class PrimaryState:
    present: bool
    track_id: int = 0
    label: str = ""


class ChangeReporter:
    """Reports when someone appears, leaves, the primary face changes, or its smoothed label changes."""

    def __init__(self) -> None:
        self._last: PrimaryState | None = None

    def update(self, present: bool, track_id: int, label: str, confidence: float, stamp_s: float,
               faces_in_view: int) -> str | None:
        """A line like ``[12:34:56.789] face #3: happy -> sad (62%)``, the frame's time in UTC."""
        when = dt.datetime.fromtimestamp(stamp_s, tz=dt.timezone.utc).strftime("%H:%M:%S.%f")[:-3]
        state = PrimaryState(present, track_id if present else 0, label if present else "")
        if state == self._last:
            return None
        previous, self._last = self._last, state
        if not present:
            return None if previous is None or not previous.present else f"[{when}] no face in view"
        who = f"face #{track_id}"
        extra = f" ({faces_in_view} faces in view)" if faces_in_view > 1 else ""
        if previous is not None and previous.present and previous.track_id == track_id:
            return f"[{when}] {who}: {previous.label} -> {label} ({confidence:.0%}){extra}"
        return f"[{when}] {who}: {label} ({confidence:.0%}){extra}"


def summary_line(start_s: float, end_s: float, frames: int, people: int, suppressed: bool,
                 labels: list[str], shares: list[float]) -> str:
    """One line for an aggregate window: its span, people, and the shares, largest first."""
    span = "-".join(dt.datetime.fromtimestamp(t).strftime("%H:%M:%S") for t in (start_s, end_s))
    who = f"{people} {'person' if people == 1 else 'people'}"
    if suppressed:
        return f"[{span}] {frames} frames, {who}: too few people to report shares"
    ranked = sorted(((label, share) for label, share in zip(labels, shares, strict=True) if share > 0),
                    key=lambda pair: -pair[1])
    return f"[{span}] {frames} frames, {who}: " + (", ".join(f"{label} {share:.0%}" for label, share in ranked)
                                                   or "no face seen")
