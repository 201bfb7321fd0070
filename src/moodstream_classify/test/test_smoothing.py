import numpy as np
import pytest

from moodstream_classify.smoothing import EmotionSmoother


def dist(*values):
    return np.array(values, dtype=np.float32)


def test_ema_numbers():
    s = EmotionSmoother("ema", alpha=0.5, switch_margin=0.0, hold_frames=1)
    label, p = s.update(dist(1, 0, 0))
    assert label == 0 and np.allclose(p, [1, 0, 0])
    label, p = s.update(dist(0, 1, 0))
    assert np.allclose(p, [0.5, 0.5, 0])
    label, p = s.update(dist(0, 1, 0))
    assert np.allclose(p, [0.25, 0.75, 0]) and label == 1


def test_window_is_the_mean_of_the_last_frames():
    s = EmotionSmoother("window", window=2, switch_margin=0.0, hold_frames=1)
    s.update(dist(1, 0))
    s.update(dist(0, 1))
    _, p = s.update(dist(0, 1))
    assert np.allclose(p, [0, 1])


def test_hysteresis_holds_the_label_until_margin_and_frames():
    s = EmotionSmoother("none", switch_margin=0.2, hold_frames=3)
    assert s.update(dist(0.6, 0.4))[0] == 0
    # Leader changes but only by 0.1 < margin: held.
    for _ in range(5):
        assert s.update(dist(0.45, 0.55))[0] == 0
    # Leads by 0.4: switches on the third such frame, not before.
    assert s.update(dist(0.3, 0.7))[0] == 0
    assert s.update(dist(0.3, 0.7))[0] == 0
    assert s.update(dist(0.3, 0.7))[0] == 1


def test_interrupted_streak_restarts():
    s = EmotionSmoother("none", switch_margin=0.1, hold_frames=2)
    s.update(dist(0.9, 0.1))
    s.update(dist(0.2, 0.8))
    s.update(dist(0.9, 0.1))  # streak broken
    assert s.update(dist(0.2, 0.8))[0] == 0
    assert s.update(dist(0.2, 0.8))[0] == 1


def test_bad_configuration():
    with pytest.raises(ValueError):
        EmotionSmoother("median")
    with pytest.raises(ValueError):
        EmotionSmoother(alpha=0)
    with pytest.raises(ValueError):
        EmotionSmoother(hold_frames=0)
