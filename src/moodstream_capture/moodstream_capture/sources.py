"""Frame sources of the capture stage (ROS-free): webcam, video file, image folder, synthetic."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from .synthetic import SyntheticScene

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".ppm", ".tif", ".tiff", ".webp"}
SOURCE_KINDS = ("synthetic", "webcam", "video", "images")


class SourceError(RuntimeError):
    """A source that cannot deliver frames; the message says what to check."""


class FrameSource(Protocol):
    description: str

    def open(self) -> None: ...

    def read(self) -> np.ndarray | None:
        """The next frame (BGR or gray uint8), or None at the end of a finite source."""

    def close(self) -> None: ...


def validate_frame(frame: np.ndarray | None, origin: str) -> np.ndarray:
    """Reject empty, odd-shaped or non-8-bit frames with a message naming their origin."""
    if frame is None or not isinstance(frame, np.ndarray) or frame.size == 0:
        raise SourceError(f"{origin}: empty frame")
    if frame.dtype != np.uint8:
        raise SourceError(f"{origin}: frames must be 8-bit, got {frame.dtype}")
    if frame.ndim not in (2, 3) or (frame.ndim == 3 and frame.shape[2] not in (1, 3, 4)):
        raise SourceError(f"{origin}: unsupported frame shape {frame.shape}")
    if frame.shape[0] < 2 or frame.shape[1] < 2:
        raise SourceError(f"{origin}: frame of {frame.shape[1]}x{frame.shape[0]} pixels is too small")
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[:, :, 0]
    if frame.ndim == 3 and frame.shape[2] == 4:
        frame = cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    return frame


class WebcamSource:
    """A V4L2 / UVC camera by index (``0``) or device path (``/dev/video2``)."""

    def __init__(self, device: str | int = 0, width: int = 640, height: int = 480, fps: float = 30.0) -> None:
        self.device = int(device) if str(device).isdigit() else str(device)
        self.width, self.height, self.fps = width, height, fps
        self.description = f"webcam {self.device}"
        self._cap: cv2.VideoCapture | None = None

    def open(self) -> None:
        if isinstance(self.device, str) and not os.path.exists(self.device):
            raise SourceError(f"camera {self.device} does not exist: is it plugged in? (ls /dev/video*)")
        cap = cv2.VideoCapture(self.device)
        if not cap.isOpened():
            cap.release()
            raise SourceError(
                f"camera {self.device} could not be opened: check that it is plugged in, that no other "
                "program holds it, and that this user may read it (group 'video')"
            )
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        cap.set(cv2.CAP_PROP_FPS, self.fps)
        self._cap = cap

    def read(self) -> np.ndarray | None:
        if self._cap is None:
            raise SourceError(f"{self.description} is not open")
        ok, frame = self._cap.read()
        if not ok:
            raise SourceError(f"{self.description} stopped delivering frames (unplugged?)")
        return validate_frame(frame, self.description)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class VideoFileSource:
    """A video file, played once or looped."""

    def __init__(self, path: str | Path, loop: bool = True) -> None:
        self.path = Path(path)
        self.loop = loop
        self.description = f"video {self.path}"
        self._cap: cv2.VideoCapture | None = None

    def open(self) -> None:
        if not self.path.is_file():
            raise SourceError(f"video file {self.path} does not exist")
        cap = cv2.VideoCapture(str(self.path))
        ok, _ = cap.read() if cap.isOpened() else (False, None)
        if not ok:
            cap.release()
            raise SourceError(f"video file {self.path} cannot be decoded: is it a video OpenCV can read?")
        cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
        self._cap = cap

    def read(self) -> np.ndarray | None:
        if self._cap is None:
            raise SourceError(f"{self.description} is not open")
        ok, frame = self._cap.read()
        if not ok and self.loop:
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = self._cap.read()
        if not ok:
            return None
        return validate_frame(frame, self.description)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class ImageFolderSource:
    """Every image of a folder in name order; unreadable files are skipped and counted."""

    def __init__(self, folder: str | Path, loop: bool = True) -> None:
        self.folder = Path(folder)
        self.loop = loop
        self.description = f"images {self.folder}"
        self._files: list[Path] = []
        self._next = 0
        self.skipped = 0

    def open(self) -> None:
        if not self.folder.is_dir():
            raise SourceError(f"image folder {self.folder} does not exist")
        self._files = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self._files:
            raise SourceError(f"image folder {self.folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        self._next = 0

    def read(self) -> np.ndarray | None:
        for _ in range(len(self._files)):
            if self._next >= len(self._files):
                if not self.loop:
                    return None
                self._next = 0
            path = self._files[self._next]
            self._next += 1
            frame = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
            try:
                return validate_frame(frame, str(path))
            except SourceError as err:
                self.skipped += 1
                log.warning("skipping %s: %s", path, err)
        raise SourceError(f"no image in {self.folder} could be read")

    def close(self) -> None:
        self._files = []


class SyntheticSource:
    """Real faces without a camera: see :class:`SyntheticScene`. ``frames`` 0 = endless."""

    def __init__(self, width: int = 640, height: int = 480, faces: int = 1, seed: int = 0, frames: int = 0) -> None:
        self.scene = SyntheticScene(width, height, faces, seed)
        self.frames = frames
        self.description = f"synthetic {width}x{height}, {faces} face(s)"
        self._index = 0

    def open(self) -> None:
        self._index = 0

    def read(self) -> np.ndarray | None:
        if self.frames and self._index >= self.frames:
            return None
        frame = self.scene.render(self._index)
        self._index += 1
        return frame

    def close(self) -> None:
        pass


def make_source(kind: str, *, device: str = "0", path: str = "", width: int = 640, height: int = 480,
                fps: float = 30.0, loop: bool = True, synthetic_faces: int = 1, seed: int = 0) -> FrameSource:
    """Build the source named by the ``source`` parameter."""
    if kind == "synthetic":
        return SyntheticSource(width, height, synthetic_faces, seed)
    if kind == "webcam":
        return WebcamSource(device, width, height, fps)
    if kind == "video":
        if not path:
            raise SourceError("source 'video' needs the parameter 'path' (a video file)")
        return VideoFileSource(path, loop)
    if kind == "images":
        if not path:
            raise SourceError("source 'images' needs the parameter 'path' (a folder of images)")
        return ImageFolderSource(path, loop)
    raise SourceError(f"unknown source {kind!r}; choose one of {', '.join(SOURCE_KINDS)} (or 'topic' in the runner)")
