"""Export a trained EmotionNet checkpoint to MoodStream's float16 TFLite model.

    python -m moodstream_train.export runs/student/final.pt --out models/emotion.tflite

The PyTorch weights are copied into a Keras mirror of the same network (``nets.py`` names the
layer types both sides share), wrapped so that the graph takes MoodStream's input exactly
(float32 in [0,1], shape (N,48,48,1)), averages the softmax of the face and of its mirror image
(test-time flip inside the graph), and converted with float16 weights. Writes, beside the model,
``emotion.json`` (labels, training facts) and ``emotion_reference.npz``: sample inputs and the
PyTorch outputs for them, which the test suite compares the ``.tflite`` against.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np
import torch

from .data import LABELS, PREPROCESS
from .nets import EmotionNet, parse_spec
from .train import load_checkpoint

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
log = logging.getLogger("moodstream_train.export")


def build_keras_trunk(spec: str):
    import keras

    layers = []
    for stage in parse_spec(spec):
        for width in stage:
            layers += [
                keras.layers.Conv2D(width, 3, padding="same", use_bias=False),
                keras.layers.BatchNormalization(epsilon=1e-5),
                keras.layers.ReLU(),
            ]
        layers.append(keras.layers.MaxPool2D(2))
    layers += [keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(len(LABELS))]
    trunk = keras.Sequential(layers)
    trunk.build((None, 48, 48, 1))
    return trunk


def copy_weights(model: EmotionNet, trunk) -> None:
    import keras

    torch_layers = [m for m in model.features if isinstance(m, torch.nn.Conv2d | torch.nn.BatchNorm2d)]
    torch_layers.append(model.classifier)
    keras_layers = [
        layer for layer in trunk.layers
        if isinstance(layer, keras.layers.Conv2D | keras.layers.BatchNormalization | keras.layers.Dense)
    ]
    assert len(torch_layers) == len(keras_layers), "torch and keras networks differ"
    for t, k in zip(torch_layers, keras_layers, strict=True):
        if isinstance(t, torch.nn.Conv2d):
            k.set_weights([t.weight.detach().permute(2, 3, 1, 0).numpy()])
        elif isinstance(t, torch.nn.BatchNorm2d):
            k.set_weights([x.detach().numpy() for x in (t.weight, t.bias, t.running_mean, t.running_var)])
        else:
            k.set_weights([t.weight.detach().T.numpy(), t.bias.detach().numpy()])


def softmax_graph(trunk, face, flip_tta: bool):
    """The probabilities of ``face`` (a Keras input): the trunk's softmax, averaged with the
    softmax of the mirror image when ``flip_tta``."""
    import keras

    probs = keras.layers.Softmax()(trunk(face))
    if flip_tta:
        mirrored = keras.layers.Lambda(lambda t: keras.ops.flip(t, axis=2))(face)
        probs = keras.layers.Average()([probs, keras.layers.Softmax()(trunk(mirrored))])
    return probs


def convert(trunk, flip_tta: bool) -> bytes:
    import keras
    import tensorflow as tf

    face = keras.Input((48, 48, 1), name="face")
    converter = tf.lite.TFLiteConverter.from_keras_model(keras.Model(face, softmax_graph(trunk, face, flip_tta)))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]
    return converter.convert()


def reference_images(count: int = 32, seed: int = 7) -> np.ndarray:
    """Deterministic 48x48 uint8 test patterns (no dataset images may be committed)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:48, 0:48] / 47.0
    out = []
    for i in range(count):
        a, b, c = rng.uniform(-1, 1, 3)
        smooth = 0.5 + 0.25 * np.sin(6 * a * xx + 4 * b * yy + c * i)
        noise = rng.uniform(0, 1, (48, 48))
        mix = rng.uniform(0.2, 0.8)
        out.append(np.clip(mix * smooth + (1 - mix) * noise, 0, 1))
    return np.round(np.asarray(out) * 255).astype(np.uint8)


def torch_probs(model: EmotionNet, x: np.ndarray, flip_tta: bool) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        t = torch.from_numpy(x).permute(0, 3, 1, 2)
        p = torch.softmax(model(t), 1)
        if flip_tta:
            p = (p + torch.softmax(model(t.flip(3)), 1)) / 2
    return p.numpy()


def validation_split(summary: dict) -> dict | None:
    """The Training faces a checkpoint's training held out, for the model's JSON: ``moodstream
    calibrate`` fits the temperature on exactly these (the network never trained on them)."""
    if not summary.get("val_fraction"):
        return None
    return {"dataset": "FER2013 Training", "stratified": True, "fraction": summary["val_fraction"],
            "seed": summary.get("split_seed", summary.get("seed", 1234)),
            "faces": summary.get("heldout_images")}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("--out", type=Path, default=Path("models/emotion.tflite"))
    ap.add_argument("--no-flip-tta", action="store_true")
    ap.add_argument("--model-version", default=None, help="defaults to the date and a hash of the model")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    flip_tta = not args.no_flip_tta

    model, ckpt = load_checkpoint(args.checkpoint, torch.device("cpu"))
    trunk = build_keras_trunk(ckpt["spec"])
    copy_weights(model, trunk)
    tflite = convert(trunk, flip_tta)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(tflite)

    from ai_edge_litert.interpreter import Interpreter

    images = reference_images()
    x = (images.astype(np.float32) / 255.0)[..., None]
    expected = torch_probs(model, x, flip_tta)
    interp = Interpreter(model_content=tflite)
    inp = interp.get_input_details()[0]["index"]
    interp.resize_tensor_input(inp, list(x.shape))
    interp.allocate_tensors()
    interp.set_tensor(inp, x)
    interp.invoke()
    got = interp.get_tensor(interp.get_output_details()[0]["index"])
    max_diff = float(np.abs(got - expected).max())
    log.info("tflite vs torch on %d reference inputs: max |diff| %.5f", len(x), max_diff)
    np.savez_compressed(args.out.with_name(args.out.stem + "_reference.npz"), images=images, torch_probs=expected)

    digest = hashlib.sha256(tflite).hexdigest()
    version = args.model_version or f"{dt.date.today():%Y.%m.%d}-{digest[:8]}"
    summary = ckpt.get("summary", {})
    meta = {
        "name": "moodstream-emotion",
        "version": version,
        "labels": list(LABELS),
        "input": {"shape": [-1, 48, 48, 1], "dtype": "float32", "range": [0.0, 1.0], "color": "gray"},
        "preprocess": PREPROCESS,
        "output": "softmax probabilities, one per label, in label order",
        "weights": "float16",
        "flip_tta_in_graph": flip_tta,
        "architecture": {"type": "vgg-style", "spec": ckpt["spec"], "params": summary.get("params")},
        "sha256": digest,
        "size_bytes": len(tflite),
        "exported": dt.date.today().isoformat(),
        "export_check": {"reference_inputs": len(x), "max_abs_diff_vs_torch": round(max_diff, 6)},
        "validation_split": validation_split(summary),
        "training": summary,
    }
    meta_path = args.out.with_suffix(".json")
    if meta_path.is_file():  # keep the evaluation written by `moodstream evaluate`
        old = json.loads(meta_path.read_text())
        if old.get("sha256") == digest and "evaluation" in old:
            meta["evaluation"] = old["evaluation"]
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    log.info("wrote %s (%d bytes) and %s", args.out, len(tflite), meta_path)


if __name__ == "__main__":
    main()
