"""Drawing of boxes, labels and confidence onto a frame (ROS-free)."""

from __future__ import annotations

import cv2
import numpy as np

from .estimator import FrameResult

PRIMARY_COLOR = (0, 200, 0)
OTHER_COLOR = (0, 180, 255)


def annotate(frame: np.ndarray, result: FrameResult) -> np.ndarray:
    """A BGR copy of ``frame`` with every face's box, track id, smoothed label and confidence."""
    out = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR) if frame.ndim == 2 else frame.copy()
    for face in result.faces:
        b = face.box
        color = PRIMARY_COLOR if face.track_id == result.primary_track_id else OTHER_COLOR
        cv2.rectangle(out, (b.x, b.y), (b.x + b.width, b.y + b.height), color, 2)
        text = f"#{face.track_id} {face.smoothed_label} {face.smoothed_confidence:.0%}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.55, 1)
        y = max(th + base, b.y - 4)
        cv2.rectangle(out, (b.x, y - th - base), (b.x + tw + 4, y + 2), color, -1)
        cv2.putText(out, text, (b.x + 2, y - 2), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    return out
