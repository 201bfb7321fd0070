"""One preprocessing and one calibration for every host path (issue 14): the same face gives the
same probabilities through the classify node's estimator, the HTTP API's analyzer and
``moodstream evaluate``."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from moodstream.evaluate import predict_all
from moodstream_api.analysis import ImageAnalyzer
from moodstream_classify.estimator import ESTIMATOR_SPECS, estimator_from_params
from moodstream_classify.model import EmotionModel
from moodstream_common.parameters import defaults
from moodstream_common.preprocess import crop_face, to_gray, to_model_input

FACE = Path(__file__).resolve().parents[2] / "src/moodstream_capture/moodstream_capture/data/astronaut_face.jpg"


def test_every_host_path_gives_the_same_probabilities(repo_root):
    model_path = repo_root / "models" / "emotion.tflite"
    image = cv2.imread(str(FACE))
    # The API's own detection fixes the box; the other paths take the same crop.
    api = ImageAnalyzer(model_path).analyze(image, "haar")
    assert len(api) == 1
    crop = crop_face(to_gray(image), api[0].box)
    model = EmotionModel(model_path)

    through_api = np.array([api[0].emotions[label] for label in model.labels])
    estimator = estimator_from_params(defaults(ESTIMATOR_SPECS), model)
    through_node = estimator.process([api[0].box], [1.0], [crop]).faces[0].probabilities
    through_evaluate = predict_all(model, np.stack([crop]))[0]
    assert np.allclose(through_node, through_api, atol=1e-6)
    assert np.allclose(through_evaluate, through_api, atol=1e-6)
    # ... and they are the equalized, calibrated ones, not the bare crop's.
    bare = model.predict(to_model_input([crop]), calibrated=False)[0]
    assert not np.allclose(bare, through_api, atol=1e-3)


def test_end_to_end_evaluation_crops_faces_from_frames(repo_root, fer2013_dir):
    """`moodstream evaluate --end-to-end` on 200 PublicTest faces: each is found in its frame and
    classified about as well as the dataset's own crop (a misplaced crop falls to chance)."""
    from moodstream.evaluate import end_to_end
    from moodstream.fer2013 import load_split

    if not (fer2013_dir / "fer2013_PublicTest.npz.xz").is_file():
        pytest.skip(f"FER2013 PublicTest not found under {fer2013_dir} (set MOODSTREAM_FER2013)")
    model = EmotionModel(repo_root / "models" / "emotion.tflite")
    images, truth = load_split(fer2013_dir, "PublicTest", model.labels)
    result = end_to_end(model, images[:200], truth[:200])
    assert result["faces"] == 200 and 100 <= result["detected"] <= 200
    assert abs(result["accuracy_on_detected"] - result["crop_level_accuracy_same_faces"]) < 0.1, result
    assert result["accuracy_on_detected"] > 0.5, result
