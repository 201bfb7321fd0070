"""Camera calibration files in the camera_calibration_parsers YAML format (ROS-free).

The format ``ros2 run camera_calibration cameracalibrator`` writes and camera drivers read
(``camera_info_url``): image size, camera name, ``camera_matrix`` (3x3),
``distortion_model`` with ``distortion_coefficients``, ``rectification_matrix`` (3x3) and
``projection_matrix`` (3x4), each matrix as ``rows``, ``cols`` and row-major ``data``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import yaml


class CalibrationError(ValueError):
    """A calibration file that is missing or not in the camera_calibration_parsers format."""


@dataclass(frozen=True)
class Calibration:
    width: int
    height: int
    camera_name: str
    k: tuple[float, ...]  # 3x3 camera matrix, row-major
    distortion_model: str
    d: tuple[float, ...]
    r: tuple[float, ...]  # 3x3 rectification
    p: tuple[float, ...]  # 3x4 projection


def _matrix(doc: dict, key: str, rows: int, cols: int | None, path: Path) -> tuple[float, ...]:
    entry = doc.get(key)
    if not isinstance(entry, dict) or not isinstance(entry.get("data"), list):
        raise CalibrationError(f"{path}: '{key}' must have 'rows', 'cols' and a 'data' list")
    data = entry["data"]
    if entry.get("rows") != rows or (cols is not None and entry.get("cols") != cols):
        raise CalibrationError(f"{path}: '{key}' must be {rows}x{cols if cols is not None else 'N'}, "
                               f"got {entry.get('rows')}x{entry.get('cols')}")
    if len(data) != rows * entry["cols"]:
        raise CalibrationError(f"{path}: '{key}' holds {len(data)} values, {rows}x{entry['cols']} needs "
                               f"{rows * entry['cols']}")
    try:
        values = tuple(float(x) for x in data)
    except (TypeError, ValueError) as err:
        raise CalibrationError(f"{path}: '{key}' holds a value that is not a number") from err
    if not all(math.isfinite(v) for v in values):
        raise CalibrationError(f"{path}: '{key}' holds a value that is not finite")
    return values


def load_calibration(location: str) -> Calibration:
    """A calibration from a path or a ``file://`` URL (the ``camera_info_url`` form)."""
    path = Path(location.removeprefix("file://")).expanduser()
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as err:
        raise CalibrationError(f"cannot read the calibration file {path}: {err.strerror}") from err
    except yaml.YAMLError as err:
        raise CalibrationError(f"{path} is not YAML: {err}") from err
    if not isinstance(doc, dict):
        raise CalibrationError(f"{path} is not a camera_calibration_parsers YAML file (no mapping)")
    width, height = doc.get("image_width"), doc.get("image_height")
    if not (isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0):
        raise CalibrationError(f"{path}: image_width and image_height must be positive integers")
    return Calibration(
        width=width, height=height, camera_name=str(doc.get("camera_name", "")),
        k=_matrix(doc, "camera_matrix", 3, 3, path),
        distortion_model=str(doc.get("distortion_model", "plumb_bob")),
        d=_matrix(doc, "distortion_coefficients", 1, None, path),
        r=_matrix(doc, "rectification_matrix", 3, 3, path),
        p=_matrix(doc, "projection_matrix", 3, 4, path),
    )
