"""Test isolation: each test session gets its own ROS domain, localhost-only discovery and log folder."""

from __future__ import annotations

import os
import random
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent

# Before anything imports rclpy.
os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(1, 101)))
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_LOG_DIR", tempfile.mkdtemp(prefix="moodstream-roslog-"))
os.environ["PYTHONUNBUFFERED"] = "1"
# The bridge's outbox and mood history go to $XDG_STATE_HOME: keep the tests' out of the user's.
os.environ["XDG_STATE_HOME"] = tempfile.mkdtemp(prefix="moodstream-state-")

from moodstream_common.environment import choose_dds_profile, prepare_environment  # noqa: E402

prepare_environment()
choose_dds_profile()  # as the launch file and the runner do


@pytest.fixture(autouse=True)
def no_node_process_outlives_its_test():
    """A node left running by a failed test would run on beside every later one (its CPU, its
    topics in this session's domain)."""
    yield
    helpers = sys.modules.get("helpers")
    if helpers is not None:
        helpers.NodeProcess.stop_leftovers()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def fer2013_dir() -> Path:
    from moodstream.fer2013 import default_data_dir

    return default_data_dir()


@pytest.fixture(scope="session")
def face_clip(tmp_path_factory) -> Path:
    """A 640x480 MJPG video of a real photographed face moving (the synthetic scene), 90 frames."""
    from moodstream.bench import write_clip

    return write_clip(tmp_path_factory.mktemp("clip") / "faces.avi", frames=90, faces=1)
