"""Confidence calibration (`moodstream calibrate`): the temperature is fitted on the Training faces
the model's training held out, as its JSON records them, and the figures it writes can be redone."""

import argparse
import json
import shutil

import numpy as np
import pytest

from moodstream.calibrate import (
    cmd_calibrate,
    expected_calibration_error,
    fit_temperature,
    held_out_split,
    stratified_holdout,
)
from moodstream.fer2013 import load_split
from moodstream_classify.model import EmotionModel, ModelError, apply_temperature
from moodstream_common.preprocess import to_model_input

SHIPPED = ("emotion.tflite", "emotion_int8.tflite", "emotion_camera.tflite")


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_fit_temperature_recovers_the_overconfidence_of_a_known_model():
    rng = np.random.default_rng(7)
    logits = rng.normal(0.0, 3.0, size=(20000, 6))
    # The labels follow softmax(logits / 2): the raw softmax is overconfident by a temperature of 2.
    truth_probs = softmax(logits / 2.0)
    truth = np.array([rng.choice(6, p=p) for p in truth_probs])
    raw = softmax(logits).astype(np.float32)
    temperature = fit_temperature(raw, truth)
    assert temperature == pytest.approx(2.0, abs=0.1)
    assert expected_calibration_error(apply_temperature(raw, temperature), truth) < 0.02
    assert expected_calibration_error(raw, truth) > 0.1


def test_expected_calibration_error_of_known_bins():
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.6, 0.4]])
    truth = np.array([0, 1, 0, 0])
    # Bin of 0.9: accuracy 0.5, gap 0.4; bin of 0.6: accuracy 1.0, gap 0.4; each half the faces.
    assert expected_calibration_error(probs, truth) == pytest.approx(0.4)


def test_the_held_out_split_comes_from_the_models_json():
    assert held_out_split({"validation_split": {"fraction": 0.1, "seed": 99}}) == (0.1, 99)
    # A float export older than validation_split: its training summary (split_seed defaults to seed).
    assert held_out_split({"training": {"val_fraction": 0.05, "seed": 1234}}) == (0.05, 1234)
    assert held_out_split({"training": {"val_fraction": 0.1, "seed": 7, "split_seed": 1234}}) == (0.1, 1234)
    assert held_out_split({"validation_split": None, "training": {"val_fraction": 0.0, "seed": 1}}) is None
    assert held_out_split({"labels": ["happy"]}) is None


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_model_says_which_faces_it_held_out(repo_root, fer2013_dir, name):
    meta = json.loads((repo_root / "models" / name).with_suffix(".json").read_text())
    fraction, seed = held_out_split(meta)
    if not (fer2013_dir / "fer2013_Training.npz.xz").is_file():
        pytest.skip(f"FER2013 Training not found under {fer2013_dir} (set MOODSTREAM_FER2013)")
    _, truth = load_split(fer2013_dir, "Training", meta["labels"])
    held = stratified_holdout(truth, fraction, seed)
    assert len(held) == meta["validation_split"]["faces"]
    if "confidence_calibration" in meta:  # ... and its calibration was fitted on those faces
        assert meta["confidence_calibration"]["fitted_on"].endswith(f"(seed {seed}): {len(held)} faces")


def test_the_shipped_temperature_is_the_fit_on_the_held_out_faces(repo_root, fer2013_dir):
    if not (fer2013_dir / "fer2013_Training.npz.xz").is_file():
        pytest.skip(f"FER2013 Training not found under {fer2013_dir} (set MOODSTREAM_FER2013)")
    model = EmotionModel(repo_root / "models" / "emotion.tflite", num_threads=2)
    meta = json.loads(model.path.with_suffix(".json").read_text())
    images, truth = load_split(fer2013_dir, "Training", model.labels)
    held = stratified_holdout(truth, *held_out_split(meta))
    raw = model.predict(to_model_input(images[held], model.preprocess), calibrated=False)
    assert fit_temperature(raw, truth[held]) == pytest.approx(meta["confidence_calibration"]["temperature"], abs=0.006)
    assert model.temperature == meta["confidence_calibration"]["temperature"]


def calibrate_args(model, **overrides) -> argparse.Namespace:
    args = {"model": str(model), "data": None, "split": None, "diagram": None, "update_metadata": False}
    args.update(overrides)
    return argparse.Namespace(**args)


def test_a_model_that_does_not_say_what_it_held_out_is_refused(repo_root, tmp_path):
    model = tmp_path / "emotion.tflite"
    shutil.copy(repo_root / "models" / "emotion.tflite", model)
    meta = json.loads((repo_root / "models" / "emotion.json").read_text())
    del meta["validation_split"], meta["training"]
    model.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="--split FRACTION SEED"):
        cmd_calibrate(calibrate_args(model))
    with pytest.raises(ModelError, match="between 0 and 1"):
        cmd_calibrate(calibrate_args(model, split=[1.5, 1234.0]))
    with pytest.raises(ModelError, match="integer"):
        cmd_calibrate(calibrate_args(model, split=[0.05, 12.5]))
