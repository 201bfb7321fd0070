"""sensor_msgs/Image <-> numpy for the 8-bit encodings MoodStream uses.

cv_bridge is not installable from PyPI; where a ROS install provides it, it is used instead.
Both paths are checked against the same cases in the tests.
"""

from __future__ import annotations

import array as pyarray

import numpy as np
from sensor_msgs.msg import Image

try:  # a robot's ROS install
    from cv_bridge import CvBridge

    _BRIDGE: CvBridge | None = CvBridge()
except ImportError:  # rclpy from PyPI
    _BRIDGE = None

#: encoding -> channels, for 8-bit images.
ENCODINGS = {"mono8": 1, "8UC1": 1, "bgr8": 3, "rgb8": 3, "8UC3": 3, "bgra8": 4, "rgba8": 4}


class ImageFormatError(ValueError):
    """An Image message that cannot be read as an 8-bit picture."""


def image_to_numpy(msg: Image, use_cv_bridge: bool = True) -> np.ndarray:
    """An (H, W) or (H, W, C) uint8 view of ``msg`` in its own channel order; respects ``step``."""
    if use_cv_bridge and _BRIDGE is not None:
        return _BRIDGE.imgmsg_to_cv2(msg, desired_encoding="passthrough")
    channels = ENCODINGS.get(msg.encoding)
    if channels is None:
        raise ImageFormatError(
            f"unsupported image encoding {msg.encoding!r}; expected one of {sorted(ENCODINGS)}"
        )
    if msg.width == 0 or msg.height == 0:
        raise ImageFormatError(f"empty image ({msg.width}x{msg.height})")
    row_bytes = msg.width * channels
    if msg.step < row_bytes:
        raise ImageFormatError(f"step {msg.step} is smaller than width*channels = {row_bytes}")
    buf = np.frombuffer(msg.data, dtype=np.uint8)
    if buf.size < msg.step * msg.height:
        raise ImageFormatError(
            f"image data holds {buf.size} bytes, {msg.height} rows of step {msg.step} need "
            f"{msg.step * msg.height}"
        )
    rows = buf[: msg.step * msg.height].reshape(msg.height, msg.step)[:, :row_bytes]
    if channels == 1:
        return rows.reshape(msg.height, msg.width)
    return rows.reshape(msg.height, msg.width, channels)


def to_bgr(image: np.ndarray, encoding: str) -> np.ndarray:
    """A BGR (or gray, for mono) array whatever the message's channel order was."""
    import cv2

    if encoding == "rgb8":
        return cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    if encoding == "rgba8":
        return cv2.cvtColor(image, cv2.COLOR_RGBA2BGR)
    if encoding == "bgra8":
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


def numpy_to_image(array: np.ndarray, encoding: str | None = None, header=None) -> Image:
    """An Image message holding ``array`` (uint8, gray or 3-channel BGR by default)."""
    array = np.ascontiguousarray(array)
    if array.dtype != np.uint8:
        raise ImageFormatError(f"only uint8 images are supported, got {array.dtype}")
    if encoding is None:
        encoding = "mono8" if array.ndim == 2 else {3: "bgr8", 4: "bgra8"}.get(array.shape[2], "")
    channels = ENCODINGS.get(encoding)
    if channels is None or (array.ndim == 2) != (channels == 1):
        raise ImageFormatError(f"array of shape {array.shape} does not fit encoding {encoding!r}")
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(array.shape[0]), int(array.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = msg.width * channels
    # An array.array is taken as is; any other sequence is checked element by element.
    data = pyarray.array("B")
    data.frombytes(memoryview(array).cast("B"))
    msg.data = data
    return msg
