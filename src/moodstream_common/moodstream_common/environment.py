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


#: The largest frame (bgr8 bytes) measured to cross between processes through the 8 MB segment of
#: ``fastdds.xml`` as well as through 32 MB: 1280x720. Larger ones need ``fastdds_large_images.xml``.
LARGEST_FRAME_FOR_DEFAULT_PROFILE = 1280 * 720 * 3


def dds_profile(process: str = "pipeline", name: str | None = None) -> Path | None:
    """MoodStream's Fast DDS profile for ``process``, as installed by moodstream_common: for a
    process that publishes images, an 8 MB shared-memory segment (with Fast DDS's default one,
    most 640x480 frames between processes are lost); for the others a 2 MB one, since a process's
    own segment is resident in full from its start. ``name``: that file of the same folder."""
    name = name or ("fastdds.xml" if process in IMAGE_PUBLISHERS else "fastdds_results.xml")
    try:
        from ament_index_python.packages import get_package_share_directory

        profile = Path(get_package_share_directory("moodstream_common")) / "config" / name
    except (ImportError, LookupError, OSError):
        return None
    return profile if profile.is_file() else None


def large_frame_advice(frame_bytes: int, env: Mapping[str, str] = os.environ) -> str | None:
    """What to do when frames of ``frame_bytes`` go to other processes through MoodStream's default
    image profile, whose segment was measured good up to 1280x720; None when nothing is needed (a
    smaller frame, or a profile the user chose)."""
    default = dds_profile("capture")
    chosen = [env[name] for name in PROFILE_VARIABLES if env.get(name)]
    if frame_bytes <= LARGEST_FRAME_FOR_DEFAULT_PROFILE or default is None or chosen != [str(default)]:
        return None
    large = dds_profile(name="fastdds_large_images.xml")
    return (f"frames of {frame_bytes / 1e6:.1f} MB go to other processes through the 8 MB shared-memory "
            f"segment of {default}, which loses some of them with several subscribers: start the graph with "
            f"{profile_variable(env.get('ROS_DISTRO'))}={large} (32 MB), or compose the stages "
            "(composed:=true) so that frames stay in-process")


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
