"""Per-frame emotion estimation: model, tracking, smoothing and primary face together (ROS-free)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from moodstream_common.parameters import Spec, defaults
from moodstream_common.preprocess import Box

from .model import EmotionModel
from .primary import PrimaryFaceSelector
from .smoothing import METHODS, EmotionSmoother
from .tracking import IouTracker


@dataclass(frozen=True)
class FaceResult:
    track_id: int
    box: Box
    score: float
    label: str
    confidence: float
    probabilities: np.ndarray
    smoothed_label: str
    smoothed_confidence: float
    smoothed_probabilities: np.ndarray


@dataclass
class FrameResult:
    """The faces detected in this frame, and the primary face.

    The primary face may be a track that the detector missed in this frame but that is still
    alive (at most ``max_missed`` frames): then it is that track's last result, so that a
    single missed detection does not make the person vanish for a behaviour controller.
    """

    faces: list[FaceResult] = field(default_factory=list)
    primary: FaceResult | None = None

    @property
    def primary_track_id(self) -> int | None:
        return self.primary.track_id if self.primary is not None else None


@dataclass
class SmoothingConfig:
    method: str = "ema"
    alpha: float = 0.4
    window: int = 8
    switch_margin: float = 0.1
    hold_frames: int = 3


class EmotionEstimator:
    """Turns each frame's face crops into tracked, smoothed emotions."""

    def __init__(self, model: EmotionModel | None, tracker: IouTracker | None = None,
                 smoothing: SmoothingConfig | None = None, primary: PrimaryFaceSelector | None = None,
                 labels: Sequence[str] | None = None) -> None:
        """``model`` None: only :meth:`update` is used, with probabilities in ``labels`` order."""
        self.model = model
        self.labels = list(labels) if labels is not None else model.labels
        self.tracker = tracker or IouTracker()
        self.smoothing = smoothing or SmoothingConfig()
        EmotionSmoother(**vars(self.smoothing))  # fail at start-up on a bad configuration
        self.primary = primary or PrimaryFaceSelector()
        self._smoothers: dict[int, EmotionSmoother] = {}
        self._last: dict[int, FaceResult] = {}

    def forget(self) -> None:
        """Drop every track, its smoothed history and the primary face (consent revoked); new
        faces get new track ids, never one used before."""
        self.tracker.tracks.clear()
        self._smoothers.clear()
        self._last.clear()
        self.primary = PrimaryFaceSelector(self.primary.switch_ratio, self.primary.hold_frames)

    def reconfigure_smoothing(self, config: SmoothingConfig) -> None:
        """New smoothing for every face; each existing face keeps its smoothed probabilities."""
        self.smoothing = config
        for track_id, old in list(self._smoothers.items()):
            self._smoothers[track_id] = EmotionSmoother(**vars(config)).resume_from(old)

    def process(self, boxes: Sequence[Box], scores: Sequence[float], crops: Sequence[np.ndarray]) -> FrameResult:
        """``crops``: uint8 48x48 faces, one per box. All faces go to the model in one batch."""
        if not (len(boxes) == len(scores) == len(crops)):
            raise ValueError("boxes, scores and crops must have the same length")
        return self.update(boxes, scores, self.model.predict_faces(crops))

    def update(self, boxes: Sequence[Box], scores: Sequence[float], probs: np.ndarray) -> FrameResult:
        """Tracking, smoothing and the primary face for faces already classified (by this model, or
        on a camera that sends its own probabilities in the model's label order)."""
        if not (len(boxes) == len(scores) == len(probs)):
            raise ValueError("boxes, scores and probabilities must have the same length")
        probs = np.asarray(probs, dtype=np.float32).reshape(len(boxes), len(self.labels))
        ids = self.tracker.update(list(boxes))
        for tid in list(self._smoothers):
            if tid not in self.tracker.tracks:
                del self._smoothers[tid]
                self._last.pop(tid, None)
        faces = []
        for tid, box, score, p in zip(ids, boxes, scores, probs, strict=True):
            smoother = self._smoothers.setdefault(tid, EmotionSmoother(**vars(self.smoothing)))
            held, smoothed = smoother.update(p)
            top = int(np.argmax(p))
            faces.append(FaceResult(
                track_id=tid, box=box, score=float(score), label=self.labels[top], confidence=float(p[top]),
                probabilities=p.astype(np.float32), smoothed_label=self.labels[held],
                smoothed_confidence=float(smoothed[held]), smoothed_probabilities=smoothed,
            ))
        self._last.update((f.track_id, f) for f in faces)
        primary = self.primary.update({tid: f.box.area for tid, f in self._last.items()})
        return FrameResult(faces, self._last.get(primary) if primary is not None else None)


#: Tracking, smoothing and primary-face parameters (shared with the OpenMV host node).
ESTIMATOR_SPECS = {
    "smoothing": Spec("ema", "temporal smoothing of each face's probabilities", choices=METHODS),
    "smoothing_alpha": Spec(0.4, "EMA weight of the newest frame", 0.01, 1.0),
    "smoothing_window": Spec(8, "frames averaged by window smoothing", 1, 300),
    "switch_margin": Spec(0.1, "the smoothed label changes when another leads by this margin ...", 0.0, 1.0),
    "hold_frames": Spec(3, "... for this many frames", 1, 300),
    "iou_threshold": Spec(0.3, "tracking: overlap a face needs to keep its track", 0.01, 1.0),
    "max_missed_frames": Spec(10, "tracking: frames a face may be missed before its track ends", 0, 1000),
    "primary_switch_ratio": Spec(1.3, "another face becomes primary when this much larger ...", 1.0, 100.0),
    "primary_hold_frames": Spec(5, "... for this many frames", 1, 1000),
}
ESTIMATOR_DEFAULTS = defaults(ESTIMATOR_SPECS)


def estimator_from_params(p: dict, model: EmotionModel | None, labels: list[str] | None = None) -> EmotionEstimator:
    return EmotionEstimator(
        model,
        IouTracker(p["iou_threshold"], p["max_missed_frames"]),
        smoothing_from_params(p),
        PrimaryFaceSelector(p["primary_switch_ratio"], p["primary_hold_frames"]),
        labels=labels,
    )


def smoothing_from_params(p: dict) -> SmoothingConfig:
    return SmoothingConfig(p["smoothing"], p["smoothing_alpha"], p["smoothing_window"], p["switch_margin"],
                           p["hold_frames"])


def reconfigure(estimator: EmotionEstimator, p: dict) -> None:
    """Apply changed tracking, smoothing and primary-face parameters from the next frame on,
    keeping the tracks (and so their ids) and each face's smoothed state."""
    config = smoothing_from_params(p)
    EmotionSmoother(**vars(config))  # refuse a bad combination before changing anything
    PrimaryFaceSelector(p["primary_switch_ratio"], p["primary_hold_frames"])
    estimator.tracker.iou_threshold, estimator.tracker.max_missed = p["iou_threshold"], p["max_missed_frames"]
    estimator.primary.switch_ratio, estimator.primary.hold_frames = p["primary_switch_ratio"], p["primary_hold_frames"]
    estimator.reconfigure_smoothing(config)
