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
