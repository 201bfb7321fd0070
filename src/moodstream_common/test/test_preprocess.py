import numpy as np
import pytest

from moodstream_common.preprocess import Box, crop_face, to_gray, to_model_input


def test_model_input_exact_values_and_shape():
    crops = [np.full((48, 48), 0, np.uint8), np.full((48, 48), 51, np.uint8), np.full((48, 48), 255, np.uint8)]
    x = to_model_input(crops)
    assert x.shape == (3, 48, 48, 1) and x.dtype == np.float32
    assert x[0].max() == 0.0
    assert np.all(x[1] == np.float32(0.2))
    assert np.all(x[2] == 1.0)


def test_model_input_empty_and_wrong_size():
    assert to_model_input([]).shape == (0, 48, 48, 1)
    with pytest.raises(ValueError, match="48x48"):
        to_model_input([np.zeros((32, 32), np.uint8)])


def test_crop_is_the_box_resized():
    gray = np.zeros((100, 200), np.uint8)
    gray[10:58, 20:68] = 200  # a 48x48 square
    crop = crop_face(gray, Box(20, 10, 48, 48))
    assert crop.shape == (48, 48) and crop.dtype == np.uint8
    assert np.all(crop == 200)
    # A 96x96 box of a 2x2 checker of 0/100 averages to 50 per 2x2 block under INTER_AREA.
    gray2 = np.tile(np.array([[0, 100], [100, 0]], np.uint8), (48, 48))
    assert np.all(crop_face(gray2, Box(0, 0, 96, 96)) == 50)


def test_crop_clips_to_the_image_and_rejects_outside_boxes():
    gray = np.full((60, 80), 7, np.uint8)
    assert crop_face(gray, Box(-10, -10, 50, 50)).shape == (48, 48)
    with pytest.raises(ValueError, match="outside"):
        crop_face(gray, Box(100, 100, 10, 10))
    with pytest.raises(ValueError, match="2-D"):
        crop_face(np.zeros((10, 10, 3), np.uint8), Box(0, 0, 5, 5))


def test_box_clipping_and_area():
    b = Box(-5, 10, 20, 100).clipped(10, 50)
    assert b == Box(0, 10, 10, 40) and b.area == 400


def test_to_gray_accepts_gray_bgr_bgra():
    bgr = np.zeros((4, 4, 3), np.uint8)
    bgr[..., 2] = 255  # red
    assert to_gray(bgr)[0, 0] == 76  # 0.299 * 255
    assert to_gray(np.zeros((4, 4, 4), np.uint8)).shape == (4, 4)
    assert to_gray(np.zeros((4, 4, 1), np.uint8)).shape == (4, 4)
    with pytest.raises(ValueError):
        to_gray(np.zeros((4, 4, 2), np.uint8))
