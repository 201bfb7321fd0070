"""The installed launch file and rviz view, read with the real launch library (no processes:
tests/robot/ launches them). On a robot the ROS install provides ``launch``."""

from pathlib import Path

import pytest
import yaml

pytest.importorskip("launch_ros")
from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument
from launch.launch_description_sources import PythonLaunchDescriptionSource

from moodstream.params import NODE_DEFAULTS, load_params_file

SHARE = Path(get_package_share_directory("moodstream"))


@pytest.fixture(scope="module")
def arguments() -> dict[str, DeclareLaunchArgument]:
    source = PythonLaunchDescriptionSource(str(SHARE / "launch" / "pipeline.launch.py"))
    description = source.try_get_launch_description_without_context()
    return {a.name: a for a in description.entities if isinstance(a, DeclareLaunchArgument)}


def test_arguments_and_their_choices(arguments):
    assert set(arguments) == {"namespace", "params_file", "source", "device", "path", "image_topic", "port",
                              "composed", "console", "bridge", "rviz"}
    assert arguments["source"].choices == ["synthetic", "webcam", "video", "images", "topic", "openmv"]
    assert all(arguments[name].choices == ["true", "false"] for name in ("composed", "console", "bridge", "rviz"))
    assert all(a.description for a in arguments.values())


def test_every_parameter_in_the_installed_file_is_declared_by_its_node():
    for node, params in load_params_file(SHARE / "config" / "params.yaml").items():
        assert set(params) <= set(NODE_DEFAULTS[node]), (node, set(params) - set(NODE_DEFAULTS[node]))


def test_the_rviz_view_shows_the_annotated_image():
    config = yaml.safe_load((SHARE / "config" / "moodstream.rviz").read_text())
    displays = config["Visualization Manager"]["Displays"]
    images = {d["Name"]: d for d in displays if d["Class"] == "rviz_default_plugins/Image"}
    assert images["Emotions"]["Enabled"] and images["Emotions"]["Topic"]["Value"] == "emotion/image"
    assert images["Camera"]["Topic"]["Value"] == "image_raw"
    # classify and capture publish images best effort: a reliable rviz subscription would get nothing.
    assert all(d["Topic"]["Reliability Policy"] == "Best Effort" for d in images.values())
    assert config["Visualization Manager"]["Global Options"]["Fixed Frame"]
