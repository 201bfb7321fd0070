"""The shipped model: loading, contract, agreement with the training framework, bad files."""

import json
import shutil

import numpy as np
import pytest

from moodstream_classify.model import EmotionModel, ModelError, default_model_path
from moodstream_common.preprocess import to_model_input

LABELS = ["happy", "sad", "angry", "neutral", "surprised", "fearful"]


@pytest.fixture(scope="module")
def model(repo_root):
    return EmotionModel(repo_root / "models" / "emotion.tflite")


def test_contract(model, repo_root):
    assert model.labels == LABELS
    path = repo_root / "models" / "emotion.tflite"
    assert path.stat().st_size <= 5 * 1024 * 1024
    meta = json.loads((repo_root / "models" / "emotion.json").read_text())
    assert meta["weights"] == "float16" and meta["input"]["shape"] == [-1, 48, 48, 1]


def test_probabilities_and_batching(model):
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 256, (48, 48), dtype=np.uint8) for _ in range(5)]
    batch = model.predict(to_model_input(crops))
    assert batch.shape == (5, 6)
    assert np.allclose(batch.sum(axis=1), 1.0, atol=1e-4) and (batch >= 0).all()
    singles = np.concatenate([model.predict(to_model_input([c])) for c in crops])
    assert np.allclose(batch, singles, atol=1e-5)
    assert model.predict(to_model_input([])).shape == (0, 6)
    with pytest.raises(ValueError, match="model input"):
        model.predict(np.zeros((1, 48, 48), np.float32))


def test_tflite_matches_the_training_framework(model, repo_root):
    """``export.py`` recorded PyTorch's outputs for fixed inputs when it wrote the model."""
    ref = np.load(repo_root / "models" / "emotion_reference.npz")
    got = model.predict(to_model_input(list(ref["images"])))
    diff = np.abs(got - ref["torch_probs"]).max()
    assert diff < 0.01, f"max |tflite - torch| = {diff}"
    assert (got.argmax(1) == ref["torch_probs"].argmax(1)).mean() >= 0.95


def test_installed_model_is_the_repository_model(repo_root):
    installed = default_model_path()
    assert installed.read_bytes() == (repo_root / "models" / "emotion.tflite").read_bytes()
    assert installed.with_suffix(".json").read_text() == (repo_root / "models" / "emotion.json").read_text()


def test_missing_model(tmp_path):
    with pytest.raises(ModelError, match=r"model file .*nothing.tflite does not exist"):
        EmotionModel(tmp_path / "nothing.tflite")


def test_corrupt_model_names_the_file_and_the_expectation(tmp_path, repo_root):
    bad = tmp_path / "emotion.tflite"
    bad.write_bytes(b"this is not a flatbuffer" * 50)
    shutil.copy(repo_root / "models" / "emotion.json", tmp_path / "emotion.json")
    with pytest.raises(ModelError, match=r"emotion.tflite is not a loadable TFLite model.*\(N,48,48,1\)"):
        EmotionModel(bad)
    truncated = tmp_path / "t.tflite"
    truncated.write_bytes((repo_root / "models" / "emotion.tflite").read_bytes()[:5000])
    shutil.copy(repo_root / "models" / "emotion.json", tmp_path / "t.json")
    with pytest.raises(ModelError, match="t.tflite is not a loadable"):
        EmotionModel(truncated)


def test_labels_that_do_not_fit_the_model(tmp_path, repo_root):
    model = tmp_path / "m.tflite"
    shutil.copy(repo_root / "models" / "emotion.tflite", model)
    with pytest.raises(ModelError, match="no labels for"):
        EmotionModel(model)
    (tmp_path / "m.txt").write_text("happy\nsad\nangry\n")
    with pytest.raises(ModelError, match="gives 6 outputs but its labels file names 3 labels"):
        EmotionModel(model)
    (tmp_path / "m.json").write_text("{not json")
    with pytest.raises(ModelError, match="not valid JSON"):
        EmotionModel(model)
