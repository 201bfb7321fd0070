"""A camera-free source of real faces: the bundled astronaut photograph moving, scaling and
changing light over a textured background. Deterministic for a given seed."""

from __future__ import annotations

import math
from importlib import resources

import cv2
import numpy as np


def load_face_image() -> np.ndarray:
    """The bundled public-domain face picture (BGR)."""
    data = resources.files("moodstream_capture").joinpath("data/astronaut_face.jpg").read_bytes()
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise RuntimeError("the bundled face image moodstream_capture/data/astronaut_face.jpg is unreadable")
    return image


class SyntheticScene:
    """Renders frame ``i`` of a scene with ``faces`` people (1 or 2) drifting across it."""

    def __init__(self, width: int = 640, height: int = 480, faces: int = 1, seed: int = 0) -> None:
        if width < 160 or height < 120:
            raise ValueError(f"synthetic frames need at least 160x120 pixels, got {width}x{height}")
        if not 0 <= faces <= 2:
            raise ValueError(f"the synthetic scene holds 0, 1 or 2 faces, got {faces}")
        self.width, self.height, self.faces = width, height, faces
        rng = np.random.default_rng(seed)
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        base = 90 + 40 * np.sin(xx / 53.0) * np.cos(yy / 71.0) + rng.normal(0, 6, (height, width))
        self._background = cv2.cvtColor(np.clip(base, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)
        self._face = load_face_image()
        self._phase = rng.uniform(0, 2 * math.pi, 4)

    def render(self, index: int) -> np.ndarray:
        frame = self._background.copy()
        t = index / 30.0
        for person in range(self.faces):
            face = self._face if person == 0 else cv2.flip(self._face, 1)
            # Face height between 40% and 55% of the frame, one person on each side.
            scale = (0.40 + 0.15 * (0.5 + 0.5 * math.sin(0.7 * t + self._phase[person]))) * self.height
            scale /= face.shape[0]
            if person == 1:
                scale *= 0.8
            fw, fh = int(face.shape[1] * scale), int(face.shape[0] * scale)
            sprite = cv2.resize(face, (fw, fh), interpolation=cv2.INTER_AREA)
            gain = 0.75 + 0.35 * (0.5 + 0.5 * math.sin(0.9 * t + self._phase[2 + person]))
            sprite = cv2.convertScaleAbs(sprite, alpha=gain, beta=0)
            lane = (self.width / max(1, self.faces)) * person
            span = max(1.0, self.width / max(1, self.faces) - fw)
            cx = lane + span * (0.5 + 0.45 * math.sin(0.5 * t + self._phase[person]))
            cy = (self.height - fh) * (0.5 + 0.3 * math.cos(0.4 * t + self._phase[person]))
            x, y = int(cx), int(cy)
            x0, y0 = max(0, x), max(0, y)
            x1, y1 = min(self.width, x + fw), min(self.height, y + fh)
            if x1 > x0 and y1 > y0:
                frame[y0:y1, x0:x1] = sprite[y0 - y : y1 - y, x0 - x : x1 - x]
        return frame
