import re

import pytest

from moodstream.cli import build_overrides, source_overrides
from moodstream.params import NODE_DEFAULTS, ConfigError, coerce, load_params_file, parse_assignments


def test_shipped_params_file_sets_exactly_the_declared_parameters(repo_root):
    loaded = load_params_file(repo_root / "src" / "moodstream" / "config" / "params.yaml")
    assert set(loaded) == set(NODE_DEFAULTS)
    for node, params in loaded.items():
        assert params == dict(NODE_DEFAULTS[node]), f"config/params.yaml and {node}'s defaults differ"


def test_coercion_keeps_the_declared_type():
    assert coerce("capture", "fps", 30) == 30.0 and isinstance(coerce("capture", "fps", 30), float)
    assert coerce("capture", "loop", "false") is False
    assert coerce("capture", "device", 0) == "0"
    assert coerce("detect", "min_size", "40") == 40
    with pytest.raises(ConfigError, match="must be a int"):
        coerce("detect", "min_size", 40.5)
    with pytest.raises(ConfigError, match="has no parameter 'scale_fator'"):
        coerce("detect", "scale_fator", 1.1)
    with pytest.raises(ConfigError, match="unknown node"):
        coerce("camera", "fps", 1)


def test_assignments_and_params_file(tmp_path):
    assert parse_assignments(["detect.downscale=0.5", "capture.source=webcam"]) == {
        "detect": {"downscale": 0.5}, "capture": {"source": "webcam"}}
    with pytest.raises(ConfigError, match="NODE.PARAM=VALUE"):
        parse_assignments(["downscale=0.5"])
    f = tmp_path / "p.yaml"
    f.write_text("/cam1/detect:\n  ros__parameters:\n    min_neighbors: 3\nother_node:\n  ros__parameters: {x: 1}\n")
    assert load_params_file(f) == {"detect": {"min_neighbors": 3}}
    f.write_text("detect: [1, 2")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params_file(f)
    with pytest.raises(ConfigError, match="cannot read"):
        load_params_file(tmp_path / "missing.yaml")


def test_source_flags_map_to_capture_parameters(face_clip):
    assert source_overrides(["video", str(face_clip)]) == (
        {"capture": {"source": "video", "path": str(face_clip)}}, None)
    assert source_overrides(["webcam"]) == ({"capture": {"source": "webcam", "device": "0"}}, None)
    assert source_overrides(["topic", "/cam/image_raw"]) == ({}, "/cam/image_raw")
    assert source_overrides(["openmv", "/dev/ttyUSB1"]) == ({"openmv": {"port": "/dev/ttyUSB1"}}, None)
    for bad in (["video"], ["video", "/no/such/clip.mp4"], ["topic"], ["ftp"], ["webcam", "0", "1"]):
        with pytest.raises(ConfigError):
            source_overrides(bad)


def test_layers_params_file_then_flags_then_p(tmp_path):
    import argparse

    from moodstream.cli import add_pipeline_args

    f = tmp_path / "p.yaml"
    f.write_text("/**/capture:\n  ros__parameters:\n    fps: 10.0\n    width: 320\n")
    ap = argparse.ArgumentParser()
    add_pipeline_args(ap)
    args = ap.parse_args(["--params", str(f), "--fps", "20", "-p", "capture.width=160"])
    overrides, topic = build_overrides(args, ["synthetic"])
    assert topic is None
    assert overrides["capture"] == {"fps": 20.0, "width": 160, "source": "synthetic"}


@pytest.mark.parametrize("assignment,message", [
    ("capture.fps=-5", "capture.fps must be a number from 0.1 to 1000, got -5.0"),
    ("capture.fps=0", "capture.fps must be a number from 0.1 to 1000"),
    ("capture.fps=.nan", "capture.fps must be a number from 0.1 to 1000, got nan"),
    ("capture.width=0", "capture.width must be an integer from 16 to 8192"),
    ("classify.smoothing=bogus", "classify.smoothing must be one of ema, window, none, got 'bogus'"),
    ("classify.smoothing_alpha=2", "classify.smoothing_alpha must be a number from 0.01 to 1, got 2.0"),
    ("bridge.history=bogus", "bridge.history must be one of never, always, auto"),
    ("detect.max_faces=-1", "detect.max_faces must be an integer from 1 to 100, got -1"),
    ("bridge.outbox_max_messages=0", "bridge.outbox_max_messages must be an integer from 1 to"),
])
def test_values_outside_the_specification_are_refused_with_what_is_allowed(assignment, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_assignments([assignment])


def test_the_runner_exits_2_with_one_line_for_a_bad_value():
    import subprocess
    import sys
    from pathlib import Path

    out = subprocess.run([str(Path(sys.executable).parent / "moodstream"), "run", "-p", "classify.smoothing=bogus",
                          "--duration", "1"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "classify.smoothing must be one of ema, window, none" in out.stderr
