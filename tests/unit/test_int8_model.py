"""The camera's int8 model against the float16 model."""

import json

import numpy as np
import pytest

from moodstream.fer2013 import load_split
from moodstream_classify.model import EmotionModel
from moodstream_common.preprocess import to_model_input


@pytest.fixture(scope="module")
def models(repo_root):
    return (EmotionModel(repo_root / "models" / "emotion.tflite", num_threads=2),
            EmotionModel(repo_root / "models" / "emotion_int8.tflite"))


def test_int8_contract(models, repo_root):
    fp16, int8 = models
    assert int8.quantized and int8.labels == fp16.labels
    meta = json.loads((repo_root / "models" / "emotion_int8.json").read_text())
    assert meta["input"]["dtype"] == "int8" and meta["input"]["shape"] == [1, 48, 48, 1]
    assert (repo_root / "models" / "emotion_int8.tflite").stat().st_size == meta["size_bytes"] < 2_000_000


def test_int8_agrees_with_float16(models, fer2013_dir, repo_root):
    """Quantisation fidelity: the int8 graph against the float16 network computing the same thing.
    The int8 graph averages each face with its mirror image where the float16 graph does not (it
    has the time: adopt.sh), so the float16 side is then the mean of its two passes, which is what
    flip averaging in a graph computes. Both uncalibrated: each graph has its own temperature."""
    fp16, int8 = models
    if (fer2013_dir / "fer2013_PublicTest.npz.xz").is_file():
        images, _ = load_split(fer2013_dir, "PublicTest", fp16.labels)
        images = images[::7]  # 505 faces
    else:  # the committed reference patterns (not faces) still exercise the whole graph
        images = np.load(repo_root / "models" / "emotion_reference.npz")["images"]
    flips = [json.loads((repo_root / "models" / name).read_text())["flip_tta_in_graph"]
             for name in ("emotion.json", "emotion_int8.json")]
    x = to_model_input(list(images))
    a, b = fp16.predict(x, calibrated=False), int8.predict(x, calibrated=False)
    if flips == [False, True]:
        a = (a + fp16.predict(x[:, :, ::-1], calibrated=False)) / 2
    else:
        assert flips[0] == flips[1]
    agreement = float((a.argmax(1) == b.argmax(1)).mean())
    print(f"int8 vs float16 top-1 agreement on {len(x)} inputs: {agreement:.1%}, "
          f"mean |diff| {np.abs(a - b).mean():.4f}")
    assert agreement >= 0.95
    assert np.abs(a - b).max() < 0.15


def test_the_camera_model_fits_the_camera_and_scores_what_its_card_says(repo_root, fer2013_dir):
    """Issue 16: the camera's own model is small (at most 10 M multiply-accumulates), takes the
    input OpenMV writes (scale 1/255, zero point -128: what main.py checks at start-up), uses the
    host's preprocessing, and its recorded PublicTest accuracy is what it scores."""
    path = repo_root / "models" / "emotion_camera.tflite"
    meta = json.loads(path.with_suffix(".json").read_text())
    camera = EmotionModel(path)
    assert camera.quantized and camera.labels == ["happy", "sad", "angry", "neutral", "surprised", "fearful"]
    assert meta["architecture"]["macs"] <= 10_000_000 and path.stat().st_size == meta["size_bytes"] < 500_000
    assert meta["input"]["scale"] == pytest.approx(1 / 255) and meta["input"]["zero_point"] == -128
    assert meta["preprocess"] == "gray48-equalize-unit"
    assert 0.05 <= meta["confidence_calibration"]["temperature"] <= 20
    if not (fer2013_dir / "fer2013_PublicTest.npz.xz").is_file():
        pytest.skip(f"FER2013 PublicTest is not in {fer2013_dir}")
    images, labels = load_split(fer2013_dir, "PublicTest", camera.labels)
    predicted = camera.predict_faces(list(images)).argmax(1)
    accuracy = float((predicted == labels).mean())
    assert accuracy == pytest.approx(meta["evaluation"]["PublicTest"]["accuracy"], abs=5e-4)
