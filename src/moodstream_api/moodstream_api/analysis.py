"""Single-image analysis for the HTTP API (ROS-free): decode, detect, classify, four moods.

Uses the same detectors, preprocessing, model and mood mapping as the ROS pipeline.
"""

from __future__ import annotations

import queue
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from moodstream_classify.model import EmotionModel
from moodstream_classify.moods import MOODS, to_moods
from moodstream_common.preprocess import Box, crop_face, to_gray
from moodstream_detect.detectors import FaceDetector, available_detectors, create_detector


class ImageError(ValueError):
    """Bytes that are not a usable image. ``status`` is the HTTP status that fits."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


#: The formats whose size is read from the header before decoding; any other is refused (a TIFF
#: or a PNM declares its size only where a bomb can hide it from a cheap check).
ACCEPTED_FORMATS = "PNG, JPEG, GIF, BMP or WebP"


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG, JPEG, GIF, BMP or WebP header without decoding; None if unknown."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and len(data) >= 30:
        chunk = data[12:16]
        if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
            w, h = struct.unpack("<HH", data[26:30])
            return w & 0x3FFF, h & 0x3FFF
        if chunk == b"VP8L" and data[20] == 0x2F:
            bits = int.from_bytes(data[21:25], "little")
            return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        if chunk == b"VP8X":
            return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
        return None
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return struct.unpack("<HH", data[6:10])
    if data[:2] == b"BM" and len(data) >= 26:
        w, h = struct.unpack("<ii", data[18:26])
        return abs(w), abs(h)
    if data[:2] == b"\xff\xd8":
        i = 2
        while i + 9 < len(data):
            if data[i] != 0xFF:
                return None
            marker = data[i + 1]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                i += 2
                continue
            length = struct.unpack(">H", data[i + 2 : i + 4])[0]
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                h, w = struct.unpack(">HH", data[i + 5 : i + 9])
                return w, h
            i += 2 + length
    return None


def looks_truncated(data: bytes) -> bool:
    """A JPEG without its end marker or a PNG without its IEND chunk (OpenCV would still decode
    the first part and fill the rest with gray)."""
    if data[:2] == b"\xff\xd8":
        return b"\xff\xd9" not in data[-64:]
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return b"IEND" not in data[-64:]
    return False


def decode_image(data: bytes, max_pixels: int) -> np.ndarray:
    """BGR image from encoded bytes, refusing empty, oversized, truncated or non-image input."""
    if not data:
        raise ImageError("the request holds no image (empty body or empty file)")
    size = image_size(data)
    if size is None:
        raise ImageError(f"send a {ACCEPTED_FORMATS} image: the size of other formats cannot be checked before "
                         "decoding", status=415)
    if size[0] * size[1] > max_pixels:
        raise ImageError(f"image of {size[0]}x{size[1]} pixels is larger than the {max_pixels} pixels allowed",
                         status=413)
    if looks_truncated(data):
        raise ImageError("the image is truncated (its data ends before the image does)")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ImageError(f"the data is not a {ACCEPTED_FORMATS} image OpenCV can decode",
                         status=415)
    if image.shape[0] * image.shape[1] > max_pixels:
        raise ImageError(f"image of {image.shape[1]}x{image.shape[0]} pixels is larger than the {max_pixels} "
                         "pixels allowed", status=413)
    return image


@dataclass(frozen=True)
class FaceAnalysis:
    box: Box
    detection_score: float
    label: str
    confidence: float
    emotions: dict[str, float]
    mood: str
    moods: dict[str, float]


class ImageAnalyzer:
    """One model and one detector of each kind; not thread-safe (see :class:`AnalyzerPool`)."""

    def __init__(self, model_path: str | Path, min_size: int = 32, min_confidence: float = 0.9) -> None:
        self.model = EmotionModel(model_path, num_threads=1)
        self._settings = {"min_size": min_size, "min_confidence": min_confidence, "scale_factor": 1.1,
                          "min_neighbors": 5, "downscale": 1.0}
        self._detectors: dict[str, FaceDetector] = {}

    def detector(self, name: str) -> FaceDetector:
        if name not in self._detectors:
            self._detectors[name] = create_detector(name, **self._settings)
        return self._detectors[name]

    def analyze(self, image: np.ndarray, detector: str) -> list[FaceAnalysis]:
        """Every face, largest first."""
        det = self.detector(detector)
        gray = to_gray(image)
        found = sorted(det.detect(gray if det.gray_input else image), key=lambda d: d.box.area, reverse=True)
        if not found:
            return []
        probs = self.model.predict_faces([crop_face(gray, d.box) for d in found])
        moods = to_moods(probs, self.model.labels)
        labels = self.model.labels
        out = []
        for d, p, m in zip(found, probs, moods, strict=True):
            top, top_mood = int(np.argmax(p)), int(np.argmax(m))
            out.append(FaceAnalysis(
                box=d.box, detection_score=float(d.score), label=labels[top], confidence=float(p[top]),
                emotions={lab: float(v) for lab, v in zip(labels, p, strict=True)},
                mood=MOODS[top_mood], moods={mood: float(v) for mood, v in zip(MOODS, m, strict=True)},
            ))
        return out


class AnalyzerPool:
    """``size`` analyzers, each used by one request at a time, so that concurrent requests never
    share an interpreter or a detector."""

    def __init__(self, model_path: str | Path, size: int = 2, **settings) -> None:
        analyzers = [ImageAnalyzer(model_path, **settings) for _ in range(max(1, size))]
        self._free: queue.Queue[ImageAnalyzer] = queue.Queue()
        for analyzer in analyzers:
            self._free.put(analyzer)
        model = analyzers[0].model
        self.labels = model.labels
        self.model_id = f"{model.name}@{model.version}"
        self.detectors = available_detectors()

    @contextmanager
    def analyzer(self) -> Iterator[ImageAnalyzer]:
        analyzer = self._free.get()
        try:
            yield analyzer
        finally:
            self._free.put(analyzer)

    def analyze(self, image: np.ndarray, detector: str) -> list[FaceAnalysis]:
        with self.analyzer() as analyzer:
            return analyzer.analyze(image, detector)
