"""``moodstream calibrate``: fit the model's temperature on held-out Training faces, check it on
PublicTest, and record it in the model's JSON (``"confidence_calibration"``), which every path applies.

The temperature is fitted on the faces of FER2013 Training that the model's training set aside
and never trained on: the fraction of each class and the seed its JSON records (``models/training``
writes them), or ``--split FRACTION SEED`` for a model whose JSON does not. Fitting it on faces the
network learned would understate its overconfidence. PublicTest only reports. The expected
calibration error uses 15 equal-width confidence bins.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from itertools import pairwise
from pathlib import Path

import cv2
import numpy as np

from moodstream_classify.model import EmotionModel, ModelError, apply_temperature, default_model_path, read_metadata
from moodstream_common.preprocess import to_model_input

from .fer2013 import default_data_dir, load_split


def held_out_split(meta: dict) -> tuple[float, int] | None:
    """(fraction, seed) of the Training faces the model's training held out, from its JSON, if it says.

    Exports write ``validation_split``; older float exports have only the training summary, where
    ``split_seed`` defaults to ``seed`` (as ``models/training`` resumes them).
    """
    split = meta.get("validation_split")
    if isinstance(split, dict) and "fraction" in split and "seed" in split:
        return float(split["fraction"]), int(split["seed"])
    training = meta.get("training")
    if isinstance(training, dict) and training.get("val_fraction") and "seed" in training:
        return float(training["val_fraction"]), int(training.get("split_seed", training["seed"]))
    return None


def stratified_holdout(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """The indices of the same held-out split as ``models/training`` (per class, shuffled by seed)."""
    rng = np.random.default_rng(seed)
    held = []
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        rng.shuffle(idx)
        held.append(idx[: int(round(len(idx) * fraction))])
    return np.sort(np.concatenate(held))


def expected_calibration_error(probs: np.ndarray, truth: np.ndarray, bins: int = 15) -> float:
    """Weighted mean |accuracy - confidence| over equal-width bins of the top probability."""
    confidence, correct = probs.max(axis=1), probs.argmax(axis=1) == truth
    edges = np.linspace(0.0, 1.0, bins + 1)
    error = 0.0
    for lo, hi in pairwise(edges):
        in_bin = (confidence > lo) & (confidence <= hi)
        if in_bin.any():
            error += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(error)


def negative_log_likelihood(probs: np.ndarray, truth: np.ndarray) -> float:
    return float(-np.log(np.clip(probs[np.arange(len(truth)), truth], 1e-12, 1.0)).mean())


def fit_temperature(probs: np.ndarray, truth: np.ndarray) -> float:
    """The T in [0.25, 4] that minimises the NLL of softmax(log p / T): a grid, then a finer one."""
    grid = np.arange(0.25, 4.0001, 0.05)
    best = min(grid, key=lambda t: negative_log_likelihood(apply_temperature(probs, t), truth))
    fine = np.arange(max(0.25, best - 0.05), best + 0.0501, 0.005)
    return float(min(fine, key=lambda t: negative_log_likelihood(apply_temperature(probs, t), truth)))


def reliability_png(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: Path, title: str, bins: int = 15) -> None:
    """Accuracy against confidence per bin, one line per curve, the diagonal for reference."""
    size, margin = 420, 50
    img = np.full((size + 2 * margin, size + 2 * margin + 160, 3), 255, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX

    def xy(conf: float, acc: float) -> tuple[int, int]:
        return margin + int(conf * size), margin + size - int(acc * size)
    cv2.rectangle(img, xy(0, 0), xy(1, 1), (180, 180, 180), 1)
    cv2.line(img, xy(0, 0), xy(1, 1), (160, 160, 160), 1, cv2.LINE_AA)
    for v in (0.2, 0.4, 0.6, 0.8):
        cv2.putText(img, f"{v:.1f}", (xy(v, 0)[0] - 10, margin + size + 18), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.putText(img, f"{v:.1f}", (margin - 32, xy(0, v)[1] + 4), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, "confidence", (margin + size // 2 - 40, margin + size + 38), font, 0.45, (0, 0, 0), 1)
    cv2.putText(img, "accuracy", (5, margin - 12), font, 0.45, (0, 0, 0), 1)
    cv2.putText(img, title, (margin, 22), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    colors = [(200, 90, 30), (30, 140, 30)]
    edges = np.linspace(0.0, 1.0, bins + 1)
    for k, (name, (probs, truth)) in enumerate(curves.items()):
        confidence, correct = probs.max(axis=1), probs.argmax(axis=1) == truth
        points = []
        for lo, hi in pairwise(edges):
            in_bin = (confidence > lo) & (confidence <= hi)
            if in_bin.sum() >= 10:
                points.append(xy(float(confidence[in_bin].mean()), float(correct[in_bin].mean())))
        for a, b in pairwise(points):
            cv2.line(img, a, b, colors[k % 2], 2, cv2.LINE_AA)
        for p in points:
            cv2.circle(img, p, 3, colors[k % 2], -1, cv2.LINE_AA)
        cv2.putText(img, name, (margin + size + 15, margin + 20 + 22 * k), font, 0.45, colors[k % 2], 1, cv2.LINE_AA)
    cv2.imwrite(str(path), img)


def cmd_calibrate(args: argparse.Namespace) -> int:
    model_path = Path(args.model) if args.model else default_model_path()
    data_dir = Path(args.data) if args.data else default_data_dir()
    model = EmotionModel(model_path, num_threads=1)
    if args.split:
        fraction, seed = args.split
        if not seed.is_integer():
            raise ModelError(f"the split's seed is an integer, not {seed}")
        seed = int(seed)
    else:
        split = held_out_split(read_metadata(model.path))
        if split is None:
            raise ModelError(f"{model.path.with_suffix('.json')} does not say which Training faces the model's "
                             "training held out (validation_split): pass them as --split FRACTION SEED")
        fraction, seed = split
    if not 0.0 < fraction < 1.0:
        raise ModelError(f"the held-out fraction must lie between 0 and 1, not {fraction}")
    train_images, train_truth = load_split(data_dir, "Training", model.labels)
    held = stratified_holdout(train_truth, fraction, seed)
    test_images, test_truth = load_split(data_dir, "PublicTest", model.labels)

    def raw(images: np.ndarray) -> np.ndarray:
        return np.concatenate([model.predict(to_model_input(images[i:i + 256], model.preprocess), calibrated=False)
                               for i in range(0, len(images), 256)])
    held_probs, test_probs = raw(train_images[held]), raw(test_images)
    temperature = fit_temperature(held_probs, train_truth[held])
    before, after = test_probs, apply_temperature(test_probs, temperature)
    figures = {
        "method": "temperature", "temperature": round(temperature, 3), "preprocess": model.preprocess,
        "fitted_on": f"FER2013 Training, {fraction:.0%} of each class held out by the training "
                     f"(seed {seed}): {len(held)} faces",
        "held_out_nll": [round(negative_log_likelihood(p, train_truth[held]), 4)
                         for p in (held_probs, apply_temperature(held_probs, temperature))],
        "PublicTest_ece_15_bins": [round(expected_calibration_error(before, test_truth), 4),
                                   round(expected_calibration_error(after, test_truth), 4)],
        "PublicTest_nll": [round(negative_log_likelihood(before, test_truth), 4),
                           round(negative_log_likelihood(after, test_truth), 4)],
        "PublicTest_accuracy": round(float((after.argmax(1) == test_truth).mean()), 4),
        "date": dt.date.today().isoformat(),
    }
    print(f"model {model.path} ({model.name}@{model.version}), preprocessing {model.preprocess}")
    print(f"temperature fitted on {len(held)} held-out Training faces: {temperature:.3f}")
    print(f"PublicTest ECE (15 bins) before / after: {figures['PublicTest_ece_15_bins'][0]:.4f} / "
          f"{figures['PublicTest_ece_15_bins'][1]:.4f}; NLL {figures['PublicTest_nll'][0]:.4f} / "
          f"{figures['PublicTest_nll'][1]:.4f}; accuracy {figures['PublicTest_accuracy']:.4f} (unchanged by T)")
    if args.diagram:
        reliability_png({"softmax": (before, test_truth), f"T = {temperature:.2f}": (after, test_truth)},
                        args.diagram, f"{model.name}@{model.version}, FER2013 PublicTest, 15 bins")
        print(f"reliability diagram: {args.diagram}")
    if args.update_metadata:
        meta_path = model.path.with_suffix(".json")
        meta = json.loads(meta_path.read_text())
        meta["confidence_calibration"] = figures
        meta_path.write_text(json.dumps(meta, indent=2) + "\n")
        print(f"calibration written to {meta_path}")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("calibrate", help="fit and record the model's confidence calibration (temperature)")
    p.add_argument("--model", help="a .tflite or .onnx (default: the installed models/emotion.tflite)")
    p.add_argument("--data", help="folder with fer2013_<split>.npz.xz (default: ../shared/data/fer2013)")
    p.add_argument("--split", nargs=2, type=float, metavar=("FRACTION", "SEED"),
                   help="the held-out share of each Training class and its seed (default: from the model's JSON)")
    p.add_argument("--diagram", type=Path, help="write the PublicTest reliability diagram (PNG) here")
    p.add_argument("--update-metadata", action="store_true", help="write the temperature into the model's .json")
    p.set_defaults(func=cmd_calibrate)
