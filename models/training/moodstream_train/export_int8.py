"""Full-integer (int8) export of an EmotionNet checkpoint for the OpenMV Cam H7 Plus.

    python -m moodstream_train.export_int8 runs/student/final.pt --out models/emotion_int8.tflite

Same network and weights as the float16 model; batch fixed to 1 (TensorFlow Lite Micro has no
dynamic shapes); int8 input (a 48x48 gray face scaled to [0,1] and quantised with the input's
scale and zero point) and int8 softmax output. Calibrated on ``--calibration`` Training images
(never PublicTest). Writes ``emotion_int8.json`` beside the model: labels, quantisation
parameters, size and the largest activation tensors (what the camera's tensor arena must hold).
``--flip-tta`` averages the softmax of the face and of its mirror image inside the graph, as the
float16 model's export does by default (twice the multiply-accumulates).
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

from .data import DEFAULT_DATA_DIR, LABELS, PREPROCESS, load_split
from .export import build_keras_trunk, copy_weights, softmax_graph, validation_split
from .nets import count_macs
from .train import load_checkpoint

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
log = logging.getLogger("moodstream_train.export_int8")


def convert_int8(trunk, calibration: np.ndarray, flip_tta: bool = False) -> bytes:
    import keras
    import tensorflow as tf

    face = keras.Input((48, 48, 1), batch_size=1, name="face")
    model = keras.Model(face, softmax_graph(trunk, face, flip_tta))

    def representative():
        for image in calibration:
            yield [image[None, ..., None].astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return converter.convert()


def arena_estimate(model_bytes: bytes) -> dict:
    """The largest activation tensor and the largest sum of one op's activation inputs and output:
    a lower bound of the tensor arena the camera must give the interpreter."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=model_bytes)
    interp.allocate_tensors()
    details = {t["index"]: t for t in interp.get_tensor_details()}
    ops = interp._get_ops_details()  # no public API lists the graph's ops
    activations = {interp.get_input_details()[0]["index"]} | {o for op in ops for o in op["outputs"]}

    def nbytes(index: int) -> int:
        t = details[index]
        return int(np.prod(t["shape"])) * np.dtype(t["dtype"]).itemsize

    per_op = [sum(nbytes(i) for i in list(op["inputs"]) + list(op["outputs"]) if i in activations) for op in ops]
    return {"largest_activation_bytes": max(nbytes(i) for i in activations),
            "largest_op_activations_bytes": max(per_op)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("--out", type=Path, default=Path("models/emotion_int8.tflite"))
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA_DIR)
    ap.add_argument("--calibration", type=int, default=500, help="Training images for calibration")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--name", default="moodstream-emotion-int8", help="the model's name in its JSON")
    ap.add_argument("--flip-tta", action="store_true", help="average with the mirror image inside the graph")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    model, ckpt = load_checkpoint(args.checkpoint, torch.device("cpu"))
    trunk = build_keras_trunk(ckpt["spec"])
    copy_weights(model, trunk)
    images, _ = load_split(args.data, "Training")
    rng = np.random.default_rng(args.seed)
    pick = rng.choice(len(images), size=args.calibration, replace=False)
    tflite = convert_int8(trunk, images[pick].astype(np.float32) / 255.0, args.flip_tta)
    args.out.write_bytes(tflite)

    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=tflite)
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    digest = hashlib.sha256(tflite).hexdigest()
    meta = {
        "name": args.name,
        "version": f"{dt.date.today():%Y.%m.%d}-{digest[:8]}",
        "labels": list(LABELS),
        "input": {"shape": [int(v) for v in inp["shape"]], "dtype": "int8",
                  "scale": float(inp["quantization"][0]), "zero_point": int(inp["quantization"][1]),
                  "meaning": "48x48 gray face, value v in [0,1] stored as round(v / scale) + zero_point"},
        "preprocess": PREPROCESS,
        "output": {"dtype": "int8", "scale": float(out["quantization"][0]),
                   "zero_point": int(out["quantization"][1]), "meaning": "softmax probabilities in label order"},
        "architecture": {"spec": ckpt["spec"], "params": ckpt.get("summary", {}).get("params"),
                         "macs": count_macs(ckpt["spec"]) * (2 if args.flip_tta else 1)},
        "flip_tta_in_graph": args.flip_tta,
        "calibration": {"split": "Training", "images": args.calibration, "seed": args.seed},
        "validation_split": validation_split(ckpt.get("summary", {})),
        "sha256": digest,
        "size_bytes": len(tflite),
        "memory": arena_estimate(tflite),
    }
    args.out.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    log.info("wrote %s (%d bytes): %s", args.out, len(tflite), json.dumps(meta["memory"]))


if __name__ == "__main__":
    main()
