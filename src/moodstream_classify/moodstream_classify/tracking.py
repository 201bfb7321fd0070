"""IoU tracking of face boxes across frames (ROS-free)."""

from __future__ import annotations

from dataclasses import dataclass, field

from moodstream_common.preprocess import Box


def iou(a: Box, b: Box) -> float:
    x0, y0 = max(a.x, b.x), max(a.y, b.y)
    x1, y1 = min(a.x + a.width, b.x + b.width), min(a.y + a.height, b.y + b.height)
    inter = max(0, x1 - x0) * max(0, y1 - y0)
    union = a.area + b.area - inter
    return inter / union if union > 0 else 0.0


@dataclass
class Track:
    track_id: int
    box: Box
    missed: int = 0
    hits: int = 1


@dataclass
class IouTracker:
    """Greedy IoU matching; a track survives ``max_missed`` frames without its face.

    Ids start at 1 and are never reused within one tracker.
    """

    iou_threshold: float = 0.3
    max_missed: int = 10
    tracks: dict[int, Track] = field(default_factory=dict)
    _next_id: int = 1

    def update(self, boxes: list[Box]) -> list[int]:
        """Track ids for ``boxes``, in their order."""
        pairs = sorted(
            ((iou(track.box, box), tid, i) for tid, track in self.tracks.items() for i, box in enumerate(boxes)),
            reverse=True,
        )
        assigned: dict[int, int] = {}
        used_tracks: set[int] = set()
        for overlap, tid, i in pairs:
            if overlap < self.iou_threshold:
                break
            if tid in used_tracks or i in assigned:
                continue
            assigned[i] = tid
            used_tracks.add(tid)
        for tid in list(self.tracks):
            if tid not in used_tracks:
                self.tracks[tid].missed += 1
                if self.tracks[tid].missed > self.max_missed:
                    del self.tracks[tid]
        ids = []
        for i, box in enumerate(boxes):
            tid = assigned.get(i)
            if tid is None:
                tid = self._next_id
                self._next_id += 1
                self.tracks[tid] = Track(tid, box)
            else:
                track = self.tracks[tid]
                track.box, track.missed, track.hits = box, 0, track.hits + 1
            ids.append(tid)
        return ids
