"""The shipped model: loading, contract, agreement with the training framework, bad files."""

import json
import shutil

import numpy as np
import pytest

from moodstream_classify.model import EmotionModel, ModelError, default_model_path
from moodstream_common.preprocess import to_model_input

LABELS = ["happy", "sad", "angry", "neutral", "surprised", "fearful"]


@pytest.fixture(scope="module")
def models_dir():
    """share/moodstream_models/models, found through the ament index as the node finds it."""
    return default_model_path().parent


@pytest.fixture(scope="module")
def model(models_dir):
    return EmotionModel(models_dir / "emotion.tflite")


def test_contract(model, models_dir):
    assert model.labels == LABELS
    path = models_dir / "emotion.tflite"
    assert path.stat().st_size <= 5 * 1024 * 1024
    meta = json.loads((models_dir / "emotion.json").read_text())
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


def test_tflite_matches_the_training_framework(model, models_dir):
    """``export.py`` recorded PyTorch's outputs for fixed inputs when it wrote the model."""
    ref = np.load(models_dir / "emotion_reference.npz")
    got = model.predict(to_model_input(list(ref["images"])), calibrated=False)  # the network's own softmax
    diff = np.abs(got - ref["torch_probs"]).max()
    assert diff < 0.01, f"max |tflite - torch| = {diff}"
    assert (got.argmax(1) == ref["torch_probs"].argmax(1)).mean() >= 0.95


def test_missing_model(tmp_path):
    with pytest.raises(ModelError, match=r"model file .*nothing.tflite does not exist"):
        EmotionModel(tmp_path / "nothing.tflite")


def test_corrupt_model_names_the_file_and_the_expectation(tmp_path, models_dir):
    bad = tmp_path / "emotion.tflite"
    bad.write_bytes(b"this is not a flatbuffer" * 50)
    shutil.copy(models_dir / "emotion.json", tmp_path / "emotion.json")
    with pytest.raises(ModelError, match=r"emotion.tflite is not a loadable TFLite model.*\(N,48,48,1\)"):
        EmotionModel(bad)
    truncated = tmp_path / "t.tflite"
    truncated.write_bytes((models_dir / "emotion.tflite").read_bytes()[:5000])
    shutil.copy(models_dir / "emotion.json", tmp_path / "t.json")
    with pytest.raises(ModelError, match="t.tflite is not a loadable"):
        EmotionModel(truncated)


def test_labels_that_do_not_fit_the_model(tmp_path, models_dir):
    model = tmp_path / "m.tflite"
    shutil.copy(models_dir / "emotion.tflite", model)
    with pytest.raises(ModelError, match="no labels for"):
        EmotionModel(model)
    (tmp_path / "m.txt").write_text("happy\nsad\nangry\n")
    with pytest.raises(ModelError, match="gives 6 outputs but its labels file names 3 labels"):
        EmotionModel(model)
    (tmp_path / "m.json").write_text("{not json")
    with pytest.raises(ModelError, match="not valid JSON"):
        EmotionModel(model)


# -- the ONNX model: what rosdep's onnxruntime runs on a robot without a TFLite runtime ------------
onnxruntime = pytest.importorskip("onnxruntime")


def hide_tflite(monkeypatch) -> None:
    """As on a ROS install: neither TFLite runtime imports."""
    for name in ("ai_edge_litert", "ai_edge_litert.interpreter", "tflite_runtime", "tflite_runtime.interpreter"):
        monkeypatch.setitem(__import__("sys").modules, name, None)


def test_onnx_gives_the_tflite_probabilities(model, models_dir):
    onnx = EmotionModel(models_dir / "emotion.onnx")
    assert onnx.runtime == "onnx" and model.runtime == "tflite" and onnx.labels == model.labels
    ref = np.load(models_dir / "emotion_reference.npz")
    batch = to_model_input(list(ref["images"]))
    assert np.abs(onnx.predict(batch) - model.predict(batch)).max() < 1e-4
    rng = np.random.default_rng(1)
    noise = rng.random((3, 48, 48, 1), dtype=np.float32)
    assert np.abs(onnx.predict(noise) - model.predict(noise)).max() < 1e-4
    assert onnx.predict(noise[:0]).shape == (0, 6)


def test_without_tflite_the_installed_model_runs_on_onnxruntime(monkeypatch, model):
    hide_tflite(monkeypatch)
    fallback = EmotionModel(default_model_path())
    assert fallback.runtime == "onnx" and fallback.path.suffix == ".onnx"
    crops = to_model_input([np.full((48, 48), 128, np.uint8)])
    assert np.allclose(fallback.predict(crops), model.predict(crops), atol=1e-4)
    with pytest.raises(ModelError, match="no TFLite runtime found: pip install ai-edge-litert"):
        EmotionModel(default_model_path(), runtime="tflite")


def test_without_any_runtime_the_error_names_both(monkeypatch):
    hide_tflite(monkeypatch)
    monkeypatch.setitem(__import__("sys").modules, "onnxruntime", None)
    with pytest.raises(ModelError, match="python3-onnxruntime-pip"):
        EmotionModel(default_model_path())


def test_runtime_choices(tmp_path, models_dir):
    with pytest.raises(ModelError, match="runtime must be one of auto, tflite, onnx"):
        EmotionModel(models_dir / "emotion.tflite", runtime="cuda")
    with pytest.raises(ModelError, match="is an ONNX model; the tflite runtime cannot load it"):
        EmotionModel(models_dir / "emotion.onnx", runtime="tflite")
    lone = tmp_path / "emotion.tflite"
    shutil.copy(models_dir / "emotion.tflite", lone)
    shutil.copy(models_dir / "emotion.json", tmp_path / "emotion.json")
    with pytest.raises(ModelError, match=r"runtime onnx needs .*emotion.onnx, which does not exist"):
        EmotionModel(lone, runtime="onnx")


def test_corrupt_onnx_model(tmp_path, models_dir):
    bad = tmp_path / "emotion.onnx"
    bad.write_bytes((models_dir / "emotion.onnx").read_bytes()[:5000])
    shutil.copy(models_dir / "emotion.json", tmp_path / "emotion.json")
    with pytest.raises(ModelError, match="is not a loadable ONNX model"):
        EmotionModel(bad)


def test_the_model_json_names_its_preprocessing_and_calibration(tmp_path, models_dir):
    """The contract of issue 14: the JSON says how faces are prepared and how confident the model
    is; every path uses them, and a model asking for something unknown is refused."""
    import json
    import shutil

    from moodstream_classify.model import apply_temperature

    model = EmotionModel(models_dir / "emotion.tflite")
    assert model.preprocess == "gray48-equalize-unit" and 0.5 < model.temperature < 2.0
    rng = np.random.default_rng(0)
    crops = [rng.integers(60, 180, (48, 48), dtype=np.uint8) for _ in range(3)]  # low contrast, like a raw crop
    equalized = to_model_input(crops, "gray48-equalize-unit")
    assert equalized.min() == 0.0 and equalized.max() == 1.0  # stretched as FER2013's faces are
    raw = model.predict(equalized, calibrated=False)
    assert np.allclose(model.predict_faces(crops), apply_temperature(raw, model.temperature), atol=1e-6)
    assert np.array_equal(model.predict_faces(crops).argmax(1), raw.argmax(1))  # calibration keeps the ranking

    for key, value, message in (("preprocess", "gray64-clahe", "does not implement"),
                                ("confidence_calibration", {"temperature": -1}, "must be a number")):
        folder = tmp_path / key
        folder.mkdir()
        shutil.copy(models_dir / "emotion.tflite", folder / "emotion.tflite")
        meta = json.loads((models_dir / "emotion.json").read_text())
        meta[key] = value
        (folder / "emotion.json").write_text(json.dumps(meta))
        with pytest.raises(ModelError, match=message):
            EmotionModel(folder / "emotion.tflite")


def test_a_frames_faces_share_one_interpreter_and_a_large_batch_gets_its_own(models_dir):
    # Each interpreter holds its own unpacked weights (10 MB): the few faces of a frame go one by
    # one through the batch-1 interpreter, as fast here as a batch; evaluation's batches of hundreds
    # still run as batches.
    model = EmotionModel(models_dir / "emotion.tflite", runtime="tflite")
    rng = np.random.default_rng(3)
    for n in (2, 3, 5, 8):
        faces = rng.random((n, 48, 48, 1), dtype=np.float32)
        together = model.predict(faces)
        alone = np.concatenate([model.predict(faces[i : i + 1]) for i in range(n)])
        assert np.allclose(together, alone, atol=1e-6)
    assert sorted(model._interpreters) == [1]
    model.predict(rng.random((20, 48, 48, 1), dtype=np.float32))
    assert sorted(model._interpreters) == [1, 32]


@pytest.mark.parametrize("name", ["emotion.tflite", "emotion.onnx", "emotion_int8.tflite"])
def test_flip_averaging_in_the_graph_is_what_the_json_says(models_dir, name):
    """A graph with flip averaging gives a face and its mirror image the same probabilities (the
    mean of the same two passes); a graph without it does not."""
    model = EmotionModel(models_dir / name)
    meta = json.loads((models_dir / name).with_suffix(".json").read_text()) if name.endswith(".tflite") else \
        json.loads((models_dir / "emotion.json").read_text())["onnx"]
    faces = list(np.load(models_dir / "emotion_reference.npz")["images"][:8])
    plain = model.predict(to_model_input(faces), calibrated=False)
    mirrored = model.predict(to_model_input([face[:, ::-1] for face in faces]), calibrated=False)
    # int8: the two passes are two branches of the graph, each with the activation scales calibrated for
    # its own input, so mirroring a face swaps which branch sees which image: measured up to two output
    # steps (1/256 each) apart, where the float16 graph without flip averaging differs by 0.044 (11 steps).
    tolerance = 1e-6 if not model.quantized else 2.5 / 256
    if meta["flip_tta_in_graph"]:
        assert np.abs(plain - mirrored).max() <= tolerance
    else:
        assert np.abs(plain - mirrored).max() > 1e-3
