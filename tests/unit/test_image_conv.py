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
