"""FER2013 loading in MoodStream's six-class order (``disgust`` dropped)."""

from __future__ import annotations

import io
import lzma
from pathlib import Path

import numpy as np

#: MoodStream's output order; the exported model and ``emotion.json`` use it.
LABELS = ("happy", "sad", "angry", "neutral", "surprised", "fearful")

#: FER2013 label name -> MoodStream label ("disgust" has no MoodStream class).
FER_TO_MOODSTREAM = {
    "happy": "happy",
    "sad": "sad",
    "angry": "angry",
    "neutral": "neutral",
    "surprise": "surprised",
    "fear": "fearful",
}

DEFAULT_DATA_DIR = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "fer2013"


#: The preprocessing contract the exported model's JSON names ("preprocess"), which every
#: MoodStream path applies at run time (moodstream_common.preprocess): training sees the same.
PREPROCESS = "gray48-equalize-unit"


def equalize(images: np.ndarray) -> np.ndarray:
    """``cv2.equalizeHist`` on each 48x48 uint8 face, as MoodStream does to every crop."""
    import cv2

    return np.stack([cv2.equalizeHist(np.ascontiguousarray(face)) for face in images])


def load_split(data_dir: Path | str, split: str, preprocess: str = PREPROCESS) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(images uint8 (N,48,48), labels int64 (N,))`` of a FER2013 split, six classes,
    equalized once more when ``preprocess`` says so (the shared copy is equalized already; the
    extra pass is close to, but not exactly, a no-op, and run time applies it)."""
    path = Path(data_dir) / f"fer2013_{split}.npz.xz"
    if not path.is_file():
        raise FileNotFoundError(f"FER2013 split {split!r} not found at {path}")
    with lzma.open(path) as fh:
        archive = np.load(io.BytesIO(fh.read()))
        images, labels, names = archive["images"], archive["labels"], archive["label_names"]
    remap = np.full(len(names), -1, dtype=np.int64)
    for fer_index, fer_name in enumerate(names):
        target = FER_TO_MOODSTREAM.get(str(fer_name))
        if target is not None:
            remap[fer_index] = LABELS.index(target)
    mapped = remap[labels]
    keep = mapped >= 0
    kept = np.ascontiguousarray(images[keep])
    if preprocess == "gray48-equalize-unit":
        kept = equalize(kept)
    elif preprocess != "gray48-unit":
        raise ValueError(f"unknown preprocessing {preprocess!r}")
    return kept, mapped[keep]


def stratified_holdout(
    labels: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (train, holdout), the same fraction of every class, reproducibly."""
    rng = np.random.default_rng(seed)
    train_idx, hold_idx = [], []
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        rng.shuffle(idx)
        n_hold = int(round(len(idx) * fraction))
        hold_idx.append(idx[:n_hold])
        train_idx.append(idx[n_hold:])
    return np.sort(np.concatenate(train_idx)), np.sort(np.concatenate(hold_idx))
