"""pipeline.launch.py without ``ros2 launch`` (not installable from PyPI).

The launch file is loaded with small stand-ins for ``launch`` / ``launch_ros`` that record what it
declares; every executable, parameter, remapping and launch argument it names is then checked
against what is installed. The same graph runs for real in test_nodes_in_processes.py.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import sys
import types
from pathlib import Path

import pytest
import rclpy
from rclpy.context import Context
from rclpy.parameter import Parameter

from moodstream.params import NODE_DEFAULTS, load_params_file


class Recorded:
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class LaunchConfiguration(Recorded):
    @property
    def name(self):
        return self.args[0]


def stand_in_modules() -> dict[str, types.ModuleType]:
    mods = {name: types.ModuleType(name) for name in (
        "launch", "launch.actions", "launch.conditions", "launch.substitutions", "launch_ros",
        "launch_ros.actions", "launch_ros.parameter_descriptions")}
    mods["launch"].LaunchDescription = lambda entities: list(entities)
    mods["launch.actions"].DeclareLaunchArgument = type("DeclareLaunchArgument", (Recorded,), {})
    mods["launch.conditions"].IfCondition = type("IfCondition", (Recorded,), {})
    mods["launch.substitutions"].LaunchConfiguration = LaunchConfiguration
    mods["launch.substitutions"].PythonExpression = type("PythonExpression", (Recorded,), {})
    mods["launch_ros.actions"].Node = type("Node", (Recorded,), {})
    mods["launch_ros.parameter_descriptions"].ParameterValue = type("ParameterValue", (Recorded,), {})
    return mods


@pytest.fixture(scope="module")
def launch_entities(monkeypatch_module, repo_root):
    for name, module in stand_in_modules().items():
        monkeypatch_module.setitem(sys.modules, name, module)
    from ament_index_python.packages import get_package_share_directory

    installed = Path(get_package_share_directory("moodstream")) / "launch" / "pipeline.launch.py"
    assert installed.read_text() == (repo_root / "launch" / "pipeline.launch.py").read_text()
    spec = importlib.util.spec_from_file_location("pipeline_launch", installed)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.generate_launch_description()


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def nodes_of(entities):
    return [e for e in entities if type(e).__name__ == "Node"]


def walk(value):
    """Every recorded object inside a launch value."""
    if isinstance(value, Recorded):
        yield value
        for v in list(value.args) + list(value.kwargs.values()):
            yield from walk(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from walk(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from walk(v)


def test_every_executable_is_installed(launch_entities):
    scripts = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="console_scripts")}
    nodes = nodes_of(launch_entities)
    assert {n.kwargs["name"] for n in nodes} == {"capture", "detect", "classify", "openmv", "bridge", "console"}
    for node in nodes:
        pkg, exe = node.kwargs["package"], node.kwargs["executable"]
        assert exe in scripts and scripts[exe].startswith(f"{pkg}."), f"{pkg}/{exe} is not installed"
        assert (Path(sys.executable).parent / exe).is_file()
        # colcon installs ament_python executables into lib/<package>, where ros2 launch looks.
        setup_cfg = Path(__file__).resolve().parents[2] / "src" / pkg / "setup.cfg"
        assert f"install_scripts=$base/lib/{pkg}" in setup_cfg.read_text()


def test_every_parameter_is_declared_by_its_node(launch_entities):
    args = {e.args[0] if e.args else e.kwargs["name"]: e for e in launch_entities
            if type(e).__name__ == "DeclareLaunchArgument"}
    params_file = Path(args["params_file"].kwargs["default_value"])
    from_file = load_params_file(params_file)
    for node in nodes_of(launch_entities):
        name = node.kwargs["name"]
        for entry in node.kwargs.get("parameters", []):
            if isinstance(entry, dict):
                unknown = set(entry) - set(NODE_DEFAULTS[name])
                assert not unknown, f"launch sets undeclared {name} parameters {unknown}"
            else:
                assert isinstance(entry, LaunchConfiguration) and entry.name == "params_file"
                assert set(from_file[name]) <= set(NODE_DEFAULTS[name])


def test_every_launch_configuration_is_declared(launch_entities):
    declared = {e.args[0] for e in launch_entities if type(e).__name__ == "DeclareLaunchArgument"}
    used = {r.name for e in launch_entities for r in walk(e) if isinstance(r, LaunchConfiguration)}
    assert used <= declared, used - declared


def test_remappings_name_topics_the_nodes_use(launch_entities):
    from moodstream_openmv.node import OpenMVNode

    from moodstream_bridge.bridge_node import BridgeNode
    from moodstream_bridge.console_node import ConsoleNode
    from moodstream_capture.node import CaptureNode
    from moodstream_classify.node import ClassifyNode
    from moodstream_detect.node import DetectNode

    classes = {"capture": CaptureNode, "detect": DetectNode, "classify": ClassifyNode, "console": ConsoleNode,
               "openmv": OpenMVNode, "bridge": BridgeNode}
    context = Context()
    rclpy.init(context=context)
    try:
        for node_decl in nodes_of(launch_entities):
            name = node_decl.kwargs["name"]
            # classify reads image_raw only while someone watches emotion/image: make it always.
            overrides = [Parameter("annotate", value="always")] if name == "classify" else []
            if name == "bridge":  # keep the test's history out of the user's state folder
                overrides = [Parameter("history", value="never")]
            node = classes[name](context=context, parameter_overrides=overrides)
            topics = {s.topic_name for s in node.subscriptions} | {p.topic_name for p in node.publishers}
            node.destroy_node()
            for src, _dst in node_decl.kwargs.get("remappings", []):
                assert f"/{src}" in topics, (name, src, topics)
    finally:
        rclpy.try_shutdown(context=context)


def condition_text(node) -> str:
    expr = next(r for r in walk(node.kwargs["condition"]) if type(r).__name__ == "PythonExpression")
    return "".join(x if isinstance(x, str) else "<source>" for x in expr.args[0])


@pytest.mark.parametrize("source,expected", [
    ("synthetic", {"capture", "detect", "classify"}), ("topic", {"detect", "classify"}), ("openmv", {"openmv"})])
def test_source_picks_the_nodes(launch_entities, source, expected):
    running = set()
    for node in nodes_of(launch_entities):
        if node.kwargs["name"] in ("console", "bridge"):
            continue
        if eval(condition_text(node).replace("<source>", source)):  # the launch file's own expression
            running.add(node.kwargs["name"])
    assert running == expected
