import numpy as np
import pytest
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from moodstream_common import image_conv
from moodstream_common.image_conv import ImageFormatError, image_to_numpy, numpy_to_image, to_bgr


@pytest.mark.parametrize("shape,encoding", [((5, 7), "mono8"), ((5, 7, 3), "bgr8"), ((5, 7, 3), "rgb8"),
                                            ((5, 7, 4), "bgra8")])
def test_round_trip(shape, encoding):
    array = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    msg = numpy_to_image(array, encoding, Header(frame_id="cam"))
    assert (msg.height, msg.width, msg.encoding, msg.header.frame_id) == (5, 7, encoding, "cam")
    assert msg.step == 7 * (1 if len(shape) == 2 else shape[2])
    assert np.array_equal(image_to_numpy(msg, use_cv_bridge=False), array)


def test_step_padding_is_respected():
    msg = Image(height=2, width=3, encoding="mono8", step=4)
    msg.data = bytes([1, 2, 3, 99, 4, 5, 6, 99])
    assert image_to_numpy(msg, use_cv_bridge=False).tolist() == [[1, 2, 3], [4, 5, 6]]


def test_rgb_is_turned_to_bgr():
    rgb = np.zeros((1, 1, 3), np.uint8)
    rgb[0, 0] = (255, 0, 0)
    assert to_bgr(rgb, "rgb8")[0, 0].tolist() == [0, 0, 255]


@pytest.mark.parametrize("msg,match", [
    (Image(height=2, width=2, encoding="16UC1", step=4, data=bytes(8)), "unsupported image encoding"),
    (Image(height=0, width=0, encoding="mono8"), "empty image"),
    (Image(height=2, width=4, encoding="mono8", step=4, data=bytes(5)), "holds 5 bytes"),
    (Image(height=2, width=4, encoding="bgr8", step=4, data=bytes(24)), "step 4 is smaller"),
])
def test_bad_messages_are_refused_clearly(msg, match):
    with pytest.raises(ImageFormatError, match=match):
        image_to_numpy(msg, use_cv_bridge=False)


def test_numpy_to_image_refuses_mismatches():
    with pytest.raises(ImageFormatError):
        numpy_to_image(np.zeros((2, 2), np.float32))
    with pytest.raises(ImageFormatError):
        numpy_to_image(np.zeros((2, 2, 3), np.uint8), "mono8")


@pytest.mark.skipif(image_conv._BRIDGE is None, reason="cv_bridge is not installed (ROS from PyPI)")
def test_cv_bridge_agrees_with_the_fallback():
    array = np.random.default_rng(1).integers(0, 256, (6, 9, 3), dtype=np.uint8)
    msg = numpy_to_image(array, "bgr8")
    assert np.array_equal(image_to_numpy(msg, use_cv_bridge=True), image_to_numpy(msg, use_cv_bridge=False))


# -- any camera's image to the frame the stages use -------------------------------------------------
from moodstream_common.image_conv import USABLE_ENCODINGS, image_to_bgr  # noqa: E402


def raw(array: np.ndarray, encoding: str, bigendian: bool = False) -> Image:
    msg = Image(height=array.shape[0], width=array.shape[1], encoding=encoding, is_bigendian=int(bigendian))
    msg.step = array.nbytes // array.shape[0]
    msg.data = array.tobytes()
    return msg


BGR = np.random.default_rng(3).integers(0, 256, (4, 6, 3), dtype=np.uint8)


@pytest.mark.parametrize("encoding,make", [
    ("bgr8", lambda: BGR), ("rgb8", lambda: BGR[:, :, ::-1].copy()),
    ("rgba8", lambda: np.dstack([BGR[:, :, ::-1], np.full(BGR.shape[:2], 255, np.uint8)])),
    ("bgra8", lambda: np.dstack([BGR, np.zeros(BGR.shape[:2], np.uint8)])),
    ("rgb16", lambda: BGR[:, :, ::-1].astype("<u2") * 257), ("bgra16", lambda: np.dstack(
        [BGR, np.zeros(BGR.shape[:2], np.uint8)]).astype("<u2") << 8)])
def test_color_encodings_become_bgr(encoding, make):
    assert np.array_equal(image_to_bgr(raw(make(), encoding), use_cv_bridge=False), BGR)


@pytest.mark.parametrize("bigendian", [False, True])
def test_mono16_keeps_its_top_byte(bigendian):
    gray = BGR[:, :, 0]
    values = (gray.astype(np.uint16) << 8) | 0x7F
    msg = raw(values.astype(">u2" if bigendian else "<u2"), "mono16", bigendian)
    assert np.array_equal(image_to_bgr(msg, use_cv_bridge=False), gray)


@pytest.mark.parametrize("encoding,order", [("yuv422", "UYVY"), ("yuv422_yuy2", "YUYV")])
def test_yuv422_is_decoded(encoding, order):
    gray_level = 140  # a flat gray: Y = 140, U = V = 128 in any YUV flavour
    pair = {"UYVY": [128, gray_level, 128, gray_level], "YUYV": [gray_level, 128, gray_level, 128]}[order]
    msg = raw(np.tile(np.array(pair, np.uint8), (4, 3)), encoding)  # 4 rows of 6 pixels, 12 bytes each
    msg.width = 6
    bgr = image_to_bgr(msg, use_cv_bridge=False)
    assert bgr.shape == (4, 6, 3) and np.abs(bgr.astype(int) - gray_level).max() <= 12


@pytest.mark.parametrize("msg,message", [
    (raw(np.zeros((4, 6), np.float32), "32FC1"), "unsupported image encoding '32FC1'"),
    (raw(np.zeros((4, 6), np.uint8), "bayer_rggb8"), "unsupported image encoding 'bayer_rggb8'"),
    (Image(height=4, width=6, encoding="mono16", step=12, data=b"\0" * 10), "image data holds 10 bytes"),
    (Image(height=4, width=5, encoding="yuv422", step=10, data=b"\0" * 40), "needs an even width"),
    (Image(height=0, width=0, encoding="bgr8", step=0), "empty image"),
])
def test_unusable_images_raise_a_clear_error(msg, message):
    with pytest.raises(ImageFormatError, match=message) as err:
        image_to_bgr(msg, use_cv_bridge=False)
    assert "mono16" in str(err.value) or "bytes" in message or "width" in message or "empty" in message


@pytest.mark.skipif(image_conv._BRIDGE is None, reason="cv_bridge is not installed (ROS from PyPI)")
def test_cv_bridge_path_agrees():
    for encoding in USABLE_ENCODINGS:
        width = 6
        if encoding in image_conv.YUV422:
            bytes_per_pixel = 2
        elif encoding in image_conv.ENCODINGS_16:
            bytes_per_pixel = 2 * image_conv.ENCODINGS_16[encoding]
        else:
            bytes_per_pixel = image_conv.ENCODINGS[encoding]
        data = np.random.default_rng(4).integers(0, 256, (4, width * bytes_per_pixel), dtype=np.uint8)
        msg = raw(data, encoding)
        msg.width = width
        diff = np.abs(image_to_bgr(msg).astype(int) - image_to_bgr(msg, use_cv_bridge=False).astype(int)).max()
        assert diff <= 2, encoding
