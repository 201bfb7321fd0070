"""The installed models: found through the ament index, complete, and what their metadata says."""

import hashlib
import json
from pathlib import Path

import pytest

ament_index = pytest.importorskip("ament_index_python.packages")


@pytest.fixture(scope="module")
def models() -> Path:
    return Path(ament_index.get_package_share_directory("moodstream_models")) / "models"


def test_every_model_file_is_installed(models):
    for name in ("emotion.tflite", "emotion.json", "emotion.onnx", "emotion_int8.tflite", "emotion_int8.json",
                 "emotion_camera.tflite", "emotion_camera.json",
                 "emotion_reference.npz", "MODEL_CARD.md"):
        assert (models / name).is_file(), name


def test_metadata_describes_the_files(models):
    meta = json.loads((models / "emotion.json").read_text())
    assert meta["labels"] == ["happy", "sad", "angry", "neutral", "surprised", "fearful"]
    tflite = (models / "emotion.tflite").read_bytes()
    assert hashlib.sha256(tflite).hexdigest() == meta["sha256"] and len(tflite) == meta["size_bytes"]
    assert meta["onnx"]["file"] == "emotion.onnx" and meta["onnx"]["max_abs_diff_vs_tflite"] < 1e-3
    assert json.loads((models / "emotion_int8.json").read_text())["labels"] == meta["labels"]
