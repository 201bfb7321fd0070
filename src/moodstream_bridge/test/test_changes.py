from moodstream_bridge.changes import ChangeReporter


def test_one_line_per_change():
    r = ChangeReporter()
    assert r.update(False, 0, "", 0.0, 1.0, 0) is None  # nothing to report at the start
    assert r.update(True, 3, "happy", 0.81, 2.0, 1) == "[00:00:02.000] face #3: happy (81%)"
    assert r.update(True, 3, "happy", 0.90, 2.1, 1) is None
    assert r.update(True, 3, "sad", 0.55, 2.2, 2) == "[00:00:02.200] face #3: happy -> sad (55%) (2 faces in view)"
    assert r.update(True, 4, "sad", 0.60, 2.3, 2) == "[00:00:02.300] face #4: sad (60%) (2 faces in view)"
    assert r.update(False, 0, "", 0.0, 2.4, 0) == "[00:00:02.400] no face in view"
    assert r.update(False, 0, "", 0.0, 2.5, 0) is None


def test_an_aggregate_window_is_one_line_largest_share_first():
    from moodstream_bridge.changes import summary_line

    labels = ["happy", "sad", "angry", "neutral", "surprised", "fearful"]
    line = summary_line(0.0, 59.5, 1800, 4, False, labels, [0.2, 0.0, 0.0, 0.7, 0.1, 0.0])
    assert line.endswith("1800 frames, 4 people: neutral 70%, happy 20%, surprised 10%")
    assert summary_line(0.0, 60.0, 1800, 1, True, labels, [0.0] * 6).endswith(
        "1 person: too few people to report shares")
    assert summary_line(0.0, 60.0, 1800, 0, False, labels, [0.0] * 6).endswith("0 people: no face seen")
