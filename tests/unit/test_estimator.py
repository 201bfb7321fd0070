"""Estimator (model + tracking + smoothing + primary face) and its conversion to messages."""

import numpy as np
import pytest
from std_msgs.msg import Header

from moodstream_capture.synthetic import SyntheticScene
from moodstream_classify.convert import to_messages
from moodstream_classify.estimator import EmotionEstimator, FaceResult, FrameResult
from moodstream_classify.model import EmotionModel
from moodstream_classify.tracking import IouTracker
from moodstream_common.preprocess import Box, crop_face, to_gray
from moodstream_detect.detectors import HaarDetector


@pytest.fixture(scope="module")
def estimator_inputs(repo_root):
    scene = SyntheticScene(faces=1, seed=0)
    detector = HaarDetector(1.1, 4, 48, 0.6)
    frames = []
    for i in range(12):
        gray = to_gray(scene.render(i))
        boxes = [d.box for d in detector.detect(gray)]
        frames.append((boxes, [crop_face(gray, b) for b in boxes]))
    return EmotionModel(repo_root / "models" / "emotion.tflite"), frames


def test_real_face_keeps_its_track_and_reads_happy(estimator_inputs):
    model, frames = estimator_inputs
    est = EmotionEstimator(model)
    results = [est.process(boxes, [1.0] * len(boxes), crops) for boxes, crops in frames]
    ids = {f.track_id for r in results for f in r.faces}
    assert ids == {1}
    last = results[-1].primary
    assert last is not None and last.smoothed_label == "happy"
    assert abs(float(last.smoothed_probabilities.sum()) - 1.0) < 1e-4


def test_primary_coasts_over_a_missed_detection(estimator_inputs):
    model, frames = estimator_inputs
    est = EmotionEstimator(model, tracker=IouTracker(max_missed=2))
    boxes, crops = frames[0]
    first = est.process(boxes, [1.0], crops)
    missed = est.process([], [], [])
    assert missed.faces == [] and missed.primary == first.primary
    est.process([], [], [])
    gone = est.process([], [], [])  # missed 3 > max_missed 2
    assert gone.primary is None


def test_messages_carry_header_and_all_fields():
    labels = ["happy", "sad"]
    face = FaceResult(track_id=7, box=Box(1, 2, 30, 40), score=0.9, label="sad", confidence=0.6,
                      probabilities=np.array([0.4, 0.6], np.float32), smoothed_label="happy",
                      smoothed_confidence=0.55, smoothed_probabilities=np.array([0.55, 0.45], np.float32))
    header = Header(frame_id="cam")
    header.stamp.sec, header.stamp.nanosec = 12, 345
    array, primary = to_messages(FrameResult([face], face), header, labels, 640, 480, "m@1")
    assert array.header == header and primary.header == header
    assert (array.image_width, array.image_height, array.model) == (640, 480, "m@1")
    f = array.faces[0]
    assert (f.track_id, f.roi.x_offset, f.roi.y_offset, f.roi.width, f.roi.height) == (7, 1, 2, 30, 40)
    assert (f.label, f.smoothed_label, list(f.labels)) == ("sad", "happy", labels)
    assert list(f.probabilities) == pytest.approx([0.4, 0.6])
    assert list(f.smoothed_probabilities) == pytest.approx([0.55, 0.45])
    assert (f.mood, f.smoothed_mood, list(f.moods)) == ("negative", "positive",
                                                       ["positive", "negative", "neutral", "other"])
    assert list(f.mood_probabilities) == pytest.approx([0.4, 0.6, 0.0, 0.0])
    assert list(f.smoothed_mood_probabilities) == pytest.approx([0.55, 0.45, 0.0, 0.0])
    assert primary.face_present and primary.faces_in_view == 1 and primary.face == f
    _, nobody = to_messages(FrameResult([], None), header, labels, 640, 480, "m@1")
    assert not nobody.face_present and nobody.faces_in_view == 0


def test_forget_drops_every_person_and_never_reuses_a_track_id():
    """Consent revoked (issue 15): tracks, smoothing and the primary face are forgotten; the
    person seen afterwards is a new track."""
    labels = ["happy", "sad", "angry", "neutral", "surprised", "fearful"]
    estimator = EmotionEstimator(None, labels=labels)
    box = Box(100, 100, 80, 80)
    happy = np.array([[0.9, 0.02, 0.02, 0.02, 0.02, 0.02]], np.float32)
    for _ in range(5):
        before = estimator.update([box], [1.0], happy)
    assert before.primary.track_id == 1 and before.primary.smoothed_label == "happy"
    estimator.forget()
    sad = np.array([[0.02, 0.9, 0.02, 0.02, 0.02, 0.02]], np.float32)
    after = estimator.update([box], [1.0], sad)
    assert after.primary.track_id == 2  # the same box, but not linked to the person before
    assert after.primary.smoothed_label == "sad"  # no smoothed history carried over
