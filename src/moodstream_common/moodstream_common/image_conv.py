"""sensor_msgs/Image <-> numpy, and any camera's image to the BGR (or gray) frame the stages use.

cv_bridge is not installable from PyPI; where a ROS install provides it, it is used instead.
Both paths are checked against the same cases in the tests. Whatever the path, an image the
stages cannot use raises :class:`ImageFormatError` (cv_bridge's ``CvBridgeError`` included),
which the nodes count as a dropped frame in ``/diagnostics``: never a crash.
"""

from __future__ import annotations

import array as pyarray

import numpy as np
from sensor_msgs.msg import Image

try:  # a robot's ROS install
    from cv_bridge import CvBridge, CvBridgeError

    _BRIDGE: CvBridge | None = CvBridge()
except ImportError:  # rclpy from PyPI
    _BRIDGE = None

    class CvBridgeError(TypeError):
        """Never raised without cv_bridge; lets ``except CvBridgeError`` stay unconditional."""


#: encoding -> channels, for 8-bit images.
ENCODINGS = {"mono8": 1, "8UC1": 1, "bgr8": 3, "rgb8": 3, "8UC3": 3, "bgra8": 4, "rgba8": 4}
#: 16-bit encodings -> channels: scaled to 8 bits (the top byte) before the stages see them.
ENCODINGS_16 = {"mono16": 1, "16UC1": 1, "bgr16": 3, "rgb16": 3, "bgra16": 4, "rgba16": 4}
#: Packed YUV 4:2:2 (two bytes a pixel) -> the OpenCV conversion to BGR. ROS's ``yuv422`` is UYVY.
YUV422 = {"yuv422": "COLOR_YUV2BGR_UYVY", "uyvy": "COLOR_YUV2BGR_UYVY",
          "yuv422_yuy2": "COLOR_YUV2BGR_YUY2", "yuyv": "COLOR_YUV2BGR_YUY2"}
#: Every encoding :func:`image_to_bgr` turns into a frame.
USABLE_ENCODINGS = sorted([*ENCODINGS, *ENCODINGS_16, *YUV422])


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
    rows = _rows(msg, channels)
    if channels == 1:
        return rows.reshape(msg.height, msg.width)
    return rows.reshape(msg.height, msg.width, channels)


def _rows(msg: Image, bytes_per_pixel: int) -> np.ndarray:
    """(H, W * bytes_per_pixel) uint8 rows of ``msg``, checked against its size and step."""
    if msg.width == 0 or msg.height == 0:
        raise ImageFormatError(f"empty image ({msg.width}x{msg.height})")
    row_bytes = msg.width * bytes_per_pixel
    if msg.step < row_bytes:
        raise ImageFormatError(f"step {msg.step} is smaller than width*bytes per pixel = {row_bytes}")
    buf = np.frombuffer(msg.data, dtype=np.uint8)
    if buf.size < msg.step * msg.height:
        raise ImageFormatError(f"image data holds {buf.size} bytes, {msg.height} rows of step {msg.step} need "
                               f"{msg.step * msg.height}")
    return buf[: msg.step * msg.height].reshape(msg.height, msg.step)[:, :row_bytes]


def _convert_without_bridge(msg: Image) -> np.ndarray:
    import cv2

    encoding = msg.encoding
    if encoding in ENCODINGS:
        return to_bgr(image_to_numpy(msg, use_cv_bridge=False), encoding)
    if encoding in ENCODINGS_16:
        channels = ENCODINGS_16[encoding]
        rows = _rows(msg, 2 * channels)
        values = rows.copy().view(">u2" if msg.is_bigendian else "<u2")
        image = (values >> 8).astype(np.uint8).reshape(msg.height, msg.width, channels)
        image = image[:, :, 0] if channels == 1 else image
        return to_bgr(image, encoding.replace("16", "8"))
    if encoding in YUV422:
        if msg.width % 2:
            raise ImageFormatError(f"{encoding} needs an even width, got {msg.width}")
        packed = np.ascontiguousarray(_rows(msg, 2)).reshape(msg.height, msg.width, 2)
        return cv2.cvtColor(packed, getattr(cv2, YUV422[encoding]))
    raise ImageFormatError(f"unsupported image encoding {encoding!r}; MoodStream reads {', '.join(USABLE_ENCODINGS)}")


def image_to_bgr(msg: Image, use_cv_bridge: bool = True) -> np.ndarray:
    """The frame of any camera's Image message as uint8 BGR (gray stays gray: mono8 and mono16).

    Raises :class:`ImageFormatError` for an image the stages cannot use (an unknown or
    floating-point encoding, a truncated buffer), whichever converter ran.
    """
    if use_cv_bridge and _BRIDGE is not None:
        gray = msg.encoding in ("mono8", "8UC1", "mono16", "16UC1")
        if msg.encoding not in USABLE_ENCODINGS:
            raise ImageFormatError(
                f"unsupported image encoding {msg.encoding!r}; MoodStream reads {', '.join(USABLE_ENCODINGS)}")
        try:
            if msg.encoding in ("mono16", "16UC1"):
                return (_BRIDGE.imgmsg_to_cv2(msg, desired_encoding="passthrough") >> 8).astype(np.uint8)
            return _BRIDGE.imgmsg_to_cv2(msg, desired_encoding="mono8" if gray else "bgr8")
        except (CvBridgeError, ValueError, TypeError) as err:
            raise ImageFormatError(f"cv_bridge cannot convert this {msg.encoding} image: {err}") from err
    return _convert_without_bridge(msg)


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
