"""Face preprocessing as MoodStream defines it: crop -> 48x48 gray -> (equalized) -> float32 [0,1] -> (N,48,48,1).

A model's JSON names the preprocessing it was trained with (``"preprocess"``); every path that
feeds a model (the classify node, the API, ``evaluate``, the benchmarks) goes through
:func:`to_model_input` with that name, and a model asking for one not listed in
:data:`PREPROCESSINGS` is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

FACE_SIZE = 48
#: ``gray48-unit``: the 48x48 uint8 crop scaled to [0, 1]. ``gray48-equalize-unit``: histogram-
#: equalized first (``cv2.equalizeHist``), as every FER2013 image the models learned from is;
#: the OpenMV firmware does the same with ``histeq()``.
PREPROCESSINGS = ("gray48-unit", "gray48-equalize-unit")
#: What a model whose JSON names no preprocessing gets (the models made before the contract).
LEGACY_PREPROCESSING = "gray48-unit"


@dataclass(frozen=True)
class Box:
    """A face box in pixels: top-left corner, width and height."""

    x: int
    y: int
    width: int
    height: int

    @property
    def area(self) -> int:
        return self.width * self.height

    def clipped(self, image_width: int, image_height: int) -> Box:
        x0, y0 = max(0, self.x), max(0, self.y)
        x1 = min(image_width, self.x + self.width)
        y1 = min(image_height, self.y + self.height)
        return Box(x0, y0, max(0, x1 - x0), max(0, y1 - y0))


def to_gray(image: np.ndarray) -> np.ndarray:
    """uint8 gray from a gray, BGR or BGRA image."""
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 1:
        return image[:, :, 0]
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    raise ValueError(f"cannot make a gray image from an array of shape {image.shape}")


def crop_face(gray: np.ndarray, box: Box, size: int = FACE_SIZE) -> np.ndarray:
    """The face inside ``box`` (clipped to the image) resized to ``size`` x ``size`` uint8."""
    if gray.ndim != 2:
        raise ValueError(f"crop_face needs a 2-D gray image, got shape {gray.shape}")
    b = box.clipped(gray.shape[1], gray.shape[0])
    if b.width == 0 or b.height == 0:
        raise ValueError(f"face box {box} lies outside the {gray.shape[1]}x{gray.shape[0]} image")
    crop = gray[b.y : b.y + b.height, b.x : b.x + b.width]
    interpolation = cv2.INTER_AREA if min(b.width, b.height) >= size else cv2.INTER_LINEAR
    return cv2.resize(crop, (size, size), interpolation=interpolation)


def to_model_input(crops: Sequence[np.ndarray], preprocess: str = LEGACY_PREPROCESSING) -> np.ndarray:
    """Stack uint8 48x48 crops into the model's float32 (N,48,48,1) batch in [0,1], the way
    ``preprocess`` (one of :data:`PREPROCESSINGS`) says."""
    if preprocess not in PREPROCESSINGS:
        raise ValueError(f"unknown preprocessing {preprocess!r}; known: {', '.join(PREPROCESSINGS)}")
    if len(crops) == 0:
        return np.zeros((0, FACE_SIZE, FACE_SIZE, 1), dtype=np.float32)
    batch = np.stack([np.asarray(c) for c in crops])
    if batch.shape[1:] != (FACE_SIZE, FACE_SIZE):
        raise ValueError(f"face crops must be {FACE_SIZE}x{FACE_SIZE}, got {batch.shape[1:]}")
    if batch.dtype != np.uint8:
        raise ValueError(f"face crops must be uint8, got {batch.dtype}")
    if preprocess == "gray48-equalize-unit":
        batch = np.stack([cv2.equalizeHist(c) for c in batch])
    return (batch.astype(np.float32) / 255.0)[..., np.newaxis]
