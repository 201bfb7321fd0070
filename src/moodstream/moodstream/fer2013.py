"""FER2013 as packed in ``../shared/data/fer2013`` (npz inside xz), in MoodStream's six classes."""

from __future__ import annotations

import io
import lzma
import os
from pathlib import Path

import numpy as np

#: FER2013 label name -> MoodStream label ("disgust" has none and is dropped).
FER_TO_MOODSTREAM = {"happy": "happy", "sad": "sad", "angry": "angry", "neutral": "neutral",
                     "surprise": "surprised", "fear": "fearful"}


def default_data_dir() -> Path:
    """``$MOODSTREAM_FER2013``, else ``../shared/data/fer2013`` beside the working directory's project."""
    env = os.environ.get("MOODSTREAM_FER2013")
    if env:
        return Path(env)
    for base in (Path.cwd(), *Path.cwd().parents):
        candidate = base / "shared" / "data" / "fer2013"
        if candidate.is_dir():
            return candidate
    return Path("../shared/data/fer2013")


def load_split(data_dir: Path, split: str, labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 (N,48,48), label indices into labels)``; classes not in ``labels`` dropped."""
    path = Path(data_dir) / f"fer2013_{split}.npz.xz"
    if not path.is_file():
        raise FileNotFoundError(f"FER2013 split {split!r} not found: {path} (give the folder with --data or "
                                "$MOODSTREAM_FER2013)")
    with lzma.open(path) as fh:
        archive = np.load(io.BytesIO(fh.read()))
        images, fer_labels, names = archive["images"], archive["labels"], archive["label_names"]
    remap = np.array([labels.index(FER_TO_MOODSTREAM[str(n)]) if FER_TO_MOODSTREAM.get(str(n)) in labels else -1
                      for n in names])
    mapped = remap[fer_labels]
    keep = mapped >= 0
    return images[keep], mapped[keep]
