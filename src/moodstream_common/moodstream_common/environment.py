"""Process set-up before ``rclpy.init()``; imports nothing from ROS, so the HTTP API can use it too.

Library code (the nodes, ``run_node``) never chooses DDS settings: the launch file and the
runner do, through :func:`choose_dds_profile`, and a user's own choice always wins.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, MutableMapping
from pathlib import Path

#: The variables Fast DDS reads its XML profile from: FASTDDS_ since Fast DDS 3 (Kilted),
#: FASTRTPS_ before (Humble, Jazzy).
PROFILE_VARIABLES = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")


def prepare_environment() -> None:
    """In a venv with ROS 2 from PyPI there is no ``setup.bash``: add the venv to
    ``AMENT_PREFIX_PATH`` so that package shares and interface type support are found."""
    prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    if sys.prefix != sys.base_prefix and sys.prefix not in prefixes:
        os.environ["AMENT_PREFIX_PATH"] = os.pathsep.join([sys.prefix, *prefixes])


#: The processes that publish images: capture, classify (``emotion/image``), and any process
#: holding either (``pipeline_node``, the runner). The others publish only results and get the
#: profile with a small shared-memory segment.
IMAGE_PUBLISHERS = frozenset({"capture", "classify", "pipeline", "runner"})


def dds_profile(process: str = "pipeline") -> Path | None:
    """MoodStream's Fast DDS profile for ``process``, as installed by moodstream_common: for a
    process that publishes images, a 32 MB shared-memory segment (with Fast DDS's default one,
    most 640x480 frames between processes are lost); for the others a 2 MB one, since a process's
    own segment is resident in full from its start."""
    name = "fastdds.xml" if process in IMAGE_PUBLISHERS else "fastdds_results.xml"
    try:
        from ament_index_python.packages import get_package_share_directory

        profile = Path(get_package_share_directory("moodstream_common")) / "config" / name
    except (ImportError, LookupError, OSError):
        return None
    return profile if profile.is_file() else None


def profile_variable(ros_distro: str | None) -> str:
    """The variable this distribution's Fast DDS reads (3.x warns about the old name)."""
    return PROFILE_VARIABLES[1] if ros_distro in ("humble", "iron", "jazzy") else PROFILE_VARIABLES[0]


def dds_settings(env: Mapping[str, str] = os.environ, process: str = "pipeline") -> dict[str, str]:
    """The variables to set for ``process``'s Fast DDS profile (:func:`dds_profile`): none if the
    user set either name."""
    profile = dds_profile(process)
    if profile is None or any(env.get(name) for name in PROFILE_VARIABLES):
        return {}
    return {profile_variable(env.get("ROS_DISTRO")): str(profile)}


#: What :func:`choose_dds_profile` set in this process's environment (so not the user's choice).
_CHOSEN: dict[str, str] = {}


def choose_dds_profile(env: MutableMapping[str, str] = os.environ, process: str = "pipeline") -> dict[str, str]:
    """Apply :func:`dds_settings` to ``env``; returns what was set."""
    settings = dds_settings(env, process)
    env.update(settings)
    if env is os.environ:
        _CHOSEN.update(settings)
    return settings


def user_environment() -> dict[str, str]:
    """This process's environment without the profile :func:`choose_dds_profile` chose for it: what
    a child process of another kind starts from (it then gets its own :func:`dds_settings`)."""
    return {name: value for name, value in os.environ.items() if _CHOSEN.get(name) != value}
