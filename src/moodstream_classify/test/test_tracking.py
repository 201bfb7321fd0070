import pytest

from moodstream_classify.primary import PrimaryFaceSelector
from moodstream_classify.tracking import IouTracker, iou
from moodstream_common.preprocess import Box


def test_iou_numbers():
    assert iou(Box(0, 0, 10, 10), Box(0, 0, 10, 10)) == 1.0
    assert iou(Box(0, 0, 10, 10), Box(5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert iou(Box(0, 0, 10, 10), Box(20, 20, 5, 5)) == 0.0


def test_ids_stay_with_moving_faces():
    t = IouTracker(iou_threshold=0.3, max_missed=2)
    assert t.update([Box(0, 0, 50, 50), Box(200, 0, 50, 50)]) == [1, 2]
    # Both move a little and come in the other order.
    assert t.update([Box(205, 3, 50, 50), Box(4, 2, 50, 50)]) == [2, 1]


def test_new_face_new_id_and_ids_never_reused():
    t = IouTracker(max_missed=1)
    assert t.update([Box(0, 0, 50, 50)]) == [1]
    assert t.update([]) == []  # missed once: still alive
    assert t.update([Box(2, 0, 50, 50)]) == [1]
    t.update([])
    t.update([])  # missed twice > max_missed: gone
    assert 1 not in t.tracks
    assert t.update([Box(0, 0, 50, 50)]) == [2]


def test_primary_is_largest_and_held():
    p = PrimaryFaceSelector(switch_ratio=1.5, hold_frames=2)
    assert p.update({1: 100, 2: 50}) == 1
    assert p.update({1: 100, 2: 140}) == 1  # larger but below the ratio
    assert p.update({1: 100, 2: 160}) == 1  # above the ratio, first frame
    assert p.update({1: 100, 2: 160}) == 2  # second frame: switch
    assert p.update({1: 100}) == 1  # the primary left
    assert p.update({}) is None


def test_primary_challenge_restarts_when_interrupted():
    p = PrimaryFaceSelector(switch_ratio=1.2, hold_frames=2)
    p.update({1: 100})
    p.update({1: 100, 2: 130})
    p.update({1: 100, 2: 110})
    assert p.update({1: 100, 2: 130}) == 1
    assert p.update({1: 100, 2: 130}) == 2
