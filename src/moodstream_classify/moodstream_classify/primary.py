"""Choice of the primary face: the largest tracked face, held with hysteresis (ROS-free)."""

from __future__ import annotations


class PrimaryFaceSelector:
    """Keeps the current primary face until it leaves, or until another face is larger by
    ``switch_ratio`` for ``hold_frames`` frames in a row."""

    def __init__(self, switch_ratio: float = 1.3, hold_frames: int = 5) -> None:
        if switch_ratio < 1.0 or hold_frames < 1:
            raise ValueError("switch_ratio must be >= 1 and hold_frames >= 1")
        self.switch_ratio, self.hold_frames = switch_ratio, hold_frames
        self.current: int | None = None
        self._challenger: int | None = None
        self._count = 0

    def update(self, areas: dict[int, int]) -> int | None:
        """``areas``: track id -> box area of this frame's faces. Returns the primary track id."""
        if not areas:
            self.current, self._challenger, self._count = None, None, 0
            return None
        largest = max(areas, key=lambda tid: (areas[tid], -tid))
        if self.current not in areas:
            self.current, self._challenger, self._count = largest, None, 0
        elif largest != self.current and areas[largest] >= self.switch_ratio * areas[self.current]:
            self._count = self._count + 1 if largest == self._challenger else 1
            self._challenger = largest
            if self._count >= self.hold_frames:
                self.current, self._challenger, self._count = largest, None, 0
        else:
            self._challenger, self._count = None, 0
        return self.current
