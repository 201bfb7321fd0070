"""FrameResult -> MoodStream messages."""

from __future__ import annotations

from builtin_interfaces.msg import Time
from sensor_msgs.msg import RegionOfInterest
from std_msgs.msg import Header

from moodstream_common.aggregate import Summary
from moodstream_interfaces.msg import Emotion, EmotionArray, EmotionSummary, FaceEmotion

from .estimator import FaceResult, FrameResult
from .moods import MOODS, to_moods


def face_to_msg(face: FaceResult, labels: list[str]) -> FaceEmotion:
    b = face.box
    moods = to_moods(face.probabilities, labels)
    smoothed_moods = to_moods(face.smoothed_probabilities, labels)
    return FaceEmotion(
        track_id=face.track_id,
        roi=RegionOfInterest(x_offset=b.x, y_offset=b.y, width=b.width, height=b.height),
        detection_score=face.score,
        label=face.label,
        confidence=face.confidence,
        smoothed_label=face.smoothed_label,
        smoothed_confidence=face.smoothed_confidence,
        labels=list(labels),
        probabilities=[float(v) for v in face.probabilities],
        smoothed_probabilities=[float(v) for v in face.smoothed_probabilities],
        mood=MOODS[int(moods.argmax())],
        smoothed_mood=MOODS[int(smoothed_moods.argmax())],
        moods=list(MOODS),
        mood_probabilities=[float(v) for v in moods],
        smoothed_mood_probabilities=[float(v) for v in smoothed_moods],
    )


def to_messages(result: FrameResult, header: Header, labels: list[str], image_width: int, image_height: int,
                model: str) -> tuple[EmotionArray, Emotion]:
    """The ``emotions`` message (every face) and the ``emotion`` message (primary face) of a frame."""
    faces = [face_to_msg(f, labels) for f in result.faces]
    array = EmotionArray(header=header, image_width=image_width, image_height=image_height, model=model,
                         faces=faces)
    primary = Emotion(header=header, face_present=result.primary is not None, faces_in_view=len(faces))
    if result.primary is not None:
        # Detected in this frame: the same message as in `emotions`; coasting: its last result.
        by_track = {f.track_id: m for f, m in zip(result.faces, faces, strict=True)}
        primary.face = by_track.get(result.primary.track_id) or face_to_msg(result.primary, labels)
    return array, primary


def summary_to_msg(summary: Summary, frame_id: str) -> EmotionSummary:
    """An aggregate window (policy.aggregate_only) as an ``EmotionSummary``."""

    def stamp(seconds: float) -> Time:
        sec = int(seconds)
        return Time(sec=sec, nanosec=int(round((seconds - sec) * 1e9)) % 1_000_000_000)

    return EmotionSummary(
        header=Header(stamp=stamp(summary.end), frame_id=frame_id), window_start=stamp(summary.start),
        frames=summary.frames, face_observations=summary.face_observations, people=summary.people,
        max_faces_in_view=summary.max_faces_in_view, suppressed=summary.suppressed, labels=list(summary.labels),
        counts=list(summary.counts), shares=[float(s) for s in summary.shares])
