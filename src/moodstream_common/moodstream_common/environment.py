"""Process set-up before ``rclpy.init()``; imports nothing from ROS, so the HTTP API can use it too."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def prepare_environment() -> None:
    """Set up what rclpy needs before ``rclpy.init()``.

    - In a venv with ROS 2 from PyPI there is no ``setup.bash``: add the venv to
      ``AMENT_PREFIX_PATH`` so that package shares and interface type support are found.
    - Point Fast DDS at MoodStream's shared-memory profile unless the user chose one.
    """
    prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    if sys.prefix != sys.base_prefix and sys.prefix not in prefixes:
        os.environ["AMENT_PREFIX_PATH"] = os.pathsep.join([sys.prefix, *prefixes])
    if "FASTDDS_DEFAULT_PROFILES_FILE" in os.environ:
        return
    try:
        from ament_index_python.packages import get_package_share_directory

        profile = Path(get_package_share_directory("moodstream_common")) / "config" / "fastdds.xml"
    except (ImportError, LookupError):
        return
    if profile.is_file():
        os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = str(profile)
