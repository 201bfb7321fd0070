"""Face detectors behind one small interface (ROS-free).

A detector takes a uint8 gray image and returns face boxes in its pixels. Register another
with :func:`register_detector` and select it with the ``detector`` parameter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from moodstream_common.preprocess import Box


@dataclass(frozen=True)
class Detection:
    box: Box
    score: float = 1.0


class FaceDetector(Protocol):
    name: str

    def detect(self, gray: np.ndarray) -> list[Detection]: ...


class DetectorError(RuntimeError):
    """A detector that cannot be built (missing file, bad parameter)."""


class HaarDetector:
    """OpenCV's Haar frontal-face cascade; optional detection on a downscaled frame."""

    name = "haar"

    def __init__(
        self,
        scale_factor: float = 1.2,
        min_neighbors: int = 5,
        min_size: int = 48,
        downscale: float = 1.0,
        cascade: str = "haarcascade_frontalface_default.xml",
    ) -> None:
        if scale_factor <= 1.0:
            raise DetectorError(f"scale_factor must be > 1.0, got {scale_factor}")
        if not 0.1 <= downscale <= 1.0:
            raise DetectorError(f"downscale must lie in [0.1, 1.0], got {downscale}")
        path = Path(cascade)
        if not path.is_file():
            path = Path(cv2.data.haarcascades) / cascade
        if not path.is_file():
            raise DetectorError(f"Haar cascade {cascade} not found (looked in {cv2.data.haarcascades})")
        self._cascade = cv2.CascadeClassifier(str(path))
        if self._cascade.empty():
            raise DetectorError(f"Haar cascade {path} could not be loaded")
        self.scale_factor, self.min_neighbors = scale_factor, min_neighbors
        self.min_size, self.downscale = min_size, downscale

    def detect(self, gray: np.ndarray) -> list[Detection]:
        if gray.ndim != 2 or gray.dtype != np.uint8:
            raise ValueError(f"HaarDetector needs a uint8 gray image, got {gray.dtype} {gray.shape}")
        image, k = gray, self.downscale
        if k < 1.0:
            image = cv2.resize(gray, None, fx=k, fy=k, interpolation=cv2.INTER_AREA)
        min_side = max(8, int(round(self.min_size * k)))
        found = self._cascade.detectMultiScale(
            image, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=(min_side, min_side)
        )
        out = []
        for x, y, w, h in (found if len(found) else []):
            box = Box(int(round(x / k)), int(round(y / k)), int(round(w / k)), int(round(h / k)))
            out.append(Detection(box.clipped(gray.shape[1], gray.shape[0]), 1.0))
        return out


class RoiDetector:
    """Speeds up any detector with the faces it found last time.

    Every ``refresh_frames`` frames, or whenever a known face is not found again, the inner
    detector searches the whole frame; in between it searches only around the last boxes,
    enlarged by ``margin`` of their size on each side. A newcomer is found at the next refresh.
    ``refresh_frames`` 1 searches every frame in full.
    """

    def __init__(self, inner: FaceDetector, refresh_frames: int = 5, margin: float = 0.5) -> None:
        if refresh_frames < 1:
            raise DetectorError(f"roi_refresh_frames must be >= 1, got {refresh_frames}")
        self.inner, self.refresh_frames, self.margin = inner, refresh_frames, margin
        self.name = inner.name
        self._previous: list[Detection] = []
        self._since_full = 0
        self.full_searches = 0

    def _around_previous(self, gray: np.ndarray) -> list[Detection] | None:
        height, width = gray.shape
        found: list[Detection] = []
        for det in self._previous:
            b = det.box
            mx, my = int(b.width * self.margin), int(b.height * self.margin)
            roi = Box(b.x - mx, b.y - my, b.width + 2 * mx, b.height + 2 * my).clipped(width, height)
            hits = self.inner.detect(gray[roi.y : roi.y + roi.height, roi.x : roi.x + roi.width])
            if not hits:
                return None
            best = max(hits, key=lambda d: d.box.area)
            box = Box(best.box.x + roi.x, best.box.y + roi.y, best.box.width, best.box.height)
            if any(_overlaps(box, other.box) for other in found):
                return None  # two known faces collapsed into one: look at the whole frame
            found.append(Detection(box, best.score))
        return found

    def detect(self, gray: np.ndarray) -> list[Detection]:
        self._since_full += 1
        if self._previous and self._since_full < self.refresh_frames:
            found = self._around_previous(gray)
            if found is not None:
                self._previous = found
                return found
        self._since_full = 0
        self.full_searches += 1
        self._previous = self.inner.detect(gray)
        return self._previous


def _overlaps(a: Box, b: Box) -> bool:
    return a.x < b.x + b.width and b.x < a.x + a.width and a.y < b.y + b.height and b.y < a.y + a.height


_REGISTRY: dict[str, Callable[..., FaceDetector]] = {"haar": HaarDetector}


def register_detector(name: str, factory: Callable[..., FaceDetector]) -> None:
    _REGISTRY[name] = factory


def available_detectors() -> list[str]:
    return sorted(_REGISTRY)


def create_detector(name: str, **params: Any) -> FaceDetector:
    """Build the detector ``name`` with the parameters it accepts."""
    factory = _REGISTRY.get(name)
    if factory is None:
        raise DetectorError(f"unknown detector {name!r}; available: {', '.join(available_detectors())}")
    return factory(**params)
