"""The shipped model on FER2013 PublicTest, six classes: at least 66% (the required floor)."""

import pytest

from moodstream.evaluate import confusion_matrix, metrics, predict_all
from moodstream.fer2013 import load_split
from moodstream_classify.model import EmotionModel


def test_publictest_accuracy_floor(repo_root, fer2013_dir):
    if not (fer2013_dir / "fer2013_PublicTest.npz.xz").is_file():
        pytest.skip(f"FER2013 PublicTest not found under {fer2013_dir} (set MOODSTREAM_FER2013)")
    model = EmotionModel(repo_root / "models" / "emotion.tflite", num_threads=2)
    images, truth = load_split(fer2013_dir, "PublicTest", model.labels)
    assert len(images) == 3589 - 56  # disgust dropped
    cm = confusion_matrix(truth, predict_all(model, images).argmax(1), len(model.labels))
    acc = metrics(cm)["accuracy"]
    assert acc >= 0.66, f"PublicTest accuracy {acc:.4f} is below the 66% floor"


def test_metrics_numbers():
    import numpy as np

    cm = confusion_matrix(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), 2)
    assert cm.tolist() == [[1, 1], [0, 2]]
    m = metrics(cm)
    assert m["accuracy"] == 0.75
    assert m["precision"].tolist() == [1.0, 2 / 3]
    assert m["recall"].tolist() == [0.5, 1.0]
    assert m["weighted_f1"] == pytest.approx((2 / 3 + 0.8) / 2)
