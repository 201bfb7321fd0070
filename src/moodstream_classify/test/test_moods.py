import numpy as np
import pytest

from moodstream_classify.moods import MOODS, mood_matrix, to_moods

LABELS = ["happy", "sad", "angry", "neutral", "surprised", "fearful"]


def test_each_emotion_maps_to_one_mood():
    m = mood_matrix(LABELS)
    assert m.sum(axis=1).tolist() == [1.0] * 6
    assert [MOODS[i] for i in m.argmax(axis=1)] == ["positive", "negative", "negative", "neutral", "other",
                                                     "negative"]


def test_mood_probabilities_are_sums_and_keep_the_total():
    p = np.array([0.1, 0.2, 0.3, 0.15, 0.05, 0.2], np.float32)
    assert to_moods(p, LABELS).tolist() == pytest.approx([0.1, 0.7, 0.15, 0.05])
    batch = np.random.default_rng(0).dirichlet(np.ones(6), size=10).astype(np.float32)
    assert np.allclose(to_moods(batch, LABELS).sum(axis=1), 1.0, atol=1e-5)


def test_unknown_labels_count_as_other():
    assert to_moods(np.array([0.5, 0.5]), ["happy", "contempt"]).tolist() == [0.5, 0.0, 0.0, 0.5]
