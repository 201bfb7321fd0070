"""``moodstream evaluate --robustness``: the perturbations are what their names say, and the
measurement runs the real model on them."""

from __future__ import annotations

import numpy as np

from moodstream.evaluate import PERTURBATIONS, robustness
from moodstream_classify.model import EmotionModel


def face() -> np.ndarray:
    return np.tile(np.linspace(20, 235, 48).astype(np.uint8), (48, 1))


def test_each_perturbation_keeps_a_48x48_gray_face_and_changes_it():
    original = face()
    for name, change in PERTURBATIONS.items():
        changed = change(original)
        assert changed.shape == (48, 48) and changed.dtype == np.uint8, name
        assert not np.array_equal(changed, original), name
    assert (PERTURBATIONS["mask (lower 40% hidden)"](original)[29:] == 0).all()
    assert (PERTURBATIONS["sunglasses (eye band hidden)"](original)[12:24] == 0).all()
    assert PERTURBATIONS["darker (gamma 2.2)"](original).mean() < original.mean()
    assert PERTURBATIONS["brighter (gamma 0.45)"](original).mean() > original.mean()
    assert np.array_equal(PERTURBATIONS["sensor noise (sigma 12)"](original),
                          PERTURBATIONS["sensor noise (sigma 12)"](original))  # repeatable


def test_robustness_reports_every_condition_for_the_real_model(repo_root):
    model = EmotionModel(repo_root / "models" / "emotion_camera.tflite")
    images = np.stack([face(), face()[::-1], face().T])
    truth = model.predict_faces(list(images)).argmax(1)
    results = robustness(model, images, truth)
    assert list(results) == ["unchanged", *PERTURBATIONS]
    assert results["unchanged"] == 1.0  # the truth is the model's own answer on the unchanged faces
    assert all(0.0 <= v <= 1.0 for v in results.values())
