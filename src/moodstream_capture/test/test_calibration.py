"""Calibration files in the camera_calibration_parsers format: read, and refused with the reason."""

import pytest
import yaml

from moodstream_capture.calibration import CalibrationError, load_calibration

GOOD = {
    "image_width": 640, "image_height": 480, "camera_name": "front",
    "camera_matrix": {"rows": 3, "cols": 3, "data": [600.0, 0.0, 320.0, 0.0, 600.0, 240.0, 0.0, 0.0, 1.0]},
    "distortion_model": "plumb_bob",
    "distortion_coefficients": {"rows": 1, "cols": 5, "data": [0.1, -0.2, 0.0, 0.0, 0.05]},
    "rectification_matrix": {"rows": 3, "cols": 3, "data": [1, 0, 0, 0, 1, 0, 0, 0, 1]},
    "projection_matrix": {"rows": 3, "cols": 4, "data": [600, 0, 320, 0, 0, 600, 240, 0, 0, 0, 1, 0]},
}


def write(tmp_path, doc) -> str:
    path = tmp_path / "front.yaml"
    path.write_text(yaml.safe_dump(doc) if not isinstance(doc, str) else doc)
    return str(path)


def test_reads_a_calibration_by_path_and_url(tmp_path):
    path = write(tmp_path, GOOD)
    for location in (path, f"file://{path}"):
        c = load_calibration(location)
        assert (c.width, c.height, c.camera_name, c.distortion_model) == (640, 480, "front", "plumb_bob")
        assert c.k[0] == 600.0 and len(c.d) == 5 and len(c.r) == 9 and len(c.p) == 12


@pytest.mark.parametrize("change,message", [
    ({"camera_matrix": {"rows": 3, "cols": 3, "data": [1.0] * 8}}, "holds 8 values"),
    ({"projection_matrix": {"rows": 3, "cols": 3, "data": [1.0] * 9}}, "must be 3x4"),
    ({"image_width": 0}, "positive integers"),
    ({"distortion_coefficients": {"rows": 1, "cols": 2, "data": ["a", 1]}}, "not a number"),
    ({"camera_matrix": {"rows": 3, "cols": 3, "data": [float("nan")] * 9}}, "not finite"),
    ({"rectification_matrix": None}, "'rectification_matrix' must have"),
])
def test_bad_files_are_refused_with_the_reason(tmp_path, change, message):
    with pytest.raises(CalibrationError, match=message):
        load_calibration(write(tmp_path, {**GOOD, **change}))


def test_missing_and_non_yaml_files(tmp_path):
    with pytest.raises(CalibrationError, match="cannot read the calibration file"):
        load_calibration(str(tmp_path / "nothing.yaml"))
    with pytest.raises(CalibrationError, match="is not YAML"):
        load_calibration(write(tmp_path, "camera_matrix: [unclosed"))
    with pytest.raises(CalibrationError, match="no mapping"):
        load_calibration(write(tmp_path, "- a list\n"))
