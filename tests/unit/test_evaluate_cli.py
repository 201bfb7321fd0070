"""``moodstream evaluate`` from its command line, on a small split cut from PublicTest: it writes
the confusion matrix's picture only where it is asked to, and never into the working directory."""

from __future__ import annotations

import io
import lzma
from pathlib import Path

import cv2
import numpy as np
import pytest

from moodstream.cli import main
from moodstream.fer2013 import default_data_dir

FACES = 60


@pytest.fixture()
def small_split(tmp_path: Path) -> Path:
    """``fer2013_Small.npz.xz``: PublicTest's first faces, in the dataset's own packing."""
    source = default_data_dir() / "fer2013_PublicTest.npz.xz"
    if not source.is_file():
        pytest.skip(f"FER2013 not found at {source}")
    with lzma.open(source) as fh:
        archive = np.load(io.BytesIO(fh.read()))
        packed = io.BytesIO()
        np.savez(packed, images=archive["images"][:FACES], labels=archive["labels"][:FACES],
                 label_names=archive["label_names"])
    data = tmp_path / "data"
    data.mkdir()
    with lzma.open(data / "fer2013_Small.npz.xz", "wb") as fh:
        fh.write(packed.getvalue())
    return data


def test_evaluate_writes_no_picture_unless_asked(small_split: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    assert main(["evaluate", "--data", str(small_split), "--split", "Small"]) == 0
    out = capsys.readouterr().out
    assert "FER2013 Small:" in out and "accuracy" in out
    assert "confusion matrix image" not in out
    assert list(workdir.iterdir()) == []


def test_evaluate_draws_the_confusion_matrix_where_asked(small_split: Path, tmp_path: Path, monkeypatch,
                                                         capsys) -> None:
    monkeypatch.chdir(tmp_path)
    png = tmp_path / "figures" / "confusion.png"
    png.parent.mkdir()
    assert main(["evaluate", "--data", str(small_split), "--split", "Small", "--confusion-png", str(png)]) == 0
    assert f"confusion matrix image: {png}" in capsys.readouterr().out
    picture = cv2.imread(str(png))
    assert picture is not None and picture.shape[0] > 100 and picture.shape[1] > 100


def test_evaluate_names_a_missing_split(tmp_path: Path, capsys) -> None:
    assert main(["evaluate", "--data", str(tmp_path), "--split", "Small"]) == 2
    err = capsys.readouterr().err
    assert "FER2013 split 'Small' not found" in err and "--data" in err


def test_evaluate_records_each_detectors_end_to_end_figures(small_split: Path, tmp_path: Path) -> None:
    """`--end-to-end --detector haar mtcnn --update-metadata` keeps both detectors' figures in the
    model's JSON: Haar's (the pipeline's default) under the key adopt.sh reads, MTCNN's beside it."""
    import json
    import shutil

    models = Path(__file__).resolve().parents[2] / "models"
    for name in ("emotion.tflite", "emotion.json"):
        shutil.copy(models / name, tmp_path / name)
    assert main(["evaluate", "--model", str(tmp_path / "emotion.tflite"), "--data", str(small_split), "--split",
                 "Small", "--end-to-end", "--detector", "haar", "mtcnn", "--update-metadata"]) == 0
    evaluation = json.loads((tmp_path / "emotion.json").read_text())["evaluation"]
    assert evaluation["Small_end_to_end"]["detector"].startswith("haar")
    assert evaluation["Small_end_to_end_mtcnn"]["detector"].startswith("mtcnn")
    for key in ("Small_end_to_end", "Small_end_to_end_mtcnn"):
        assert evaluation[key]["faces"] == evaluation["Small"]["images"]
        assert 0 < evaluation[key]["detected"] <= evaluation[key]["faces"]
