"""Which Fast DDS profile each process gets, and that a user's own choice wins."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from moodstream_common.environment import (
    LARGEST_FRAME_FOR_DEFAULT_PROFILE,
    PROFILE_VARIABLES,
    dds_profile,
    dds_settings,
    large_frame_advice,
    prepare_environment,
)


@pytest.fixture(autouse=True)
def ament_index():
    prepare_environment()  # the venv's share/ is the ament index, as a sourced workspace's is


def segment_size(profile: Path) -> int:
    return int(re.search(r"<segment_size>(\d+)</segment_size>", profile.read_text())[1])


@pytest.mark.skipif(sys.prefix == sys.base_prefix, reason="needs moodstream_common installed in a venv")
@pytest.mark.parametrize(("process", "mib"), [("capture", 8), ("classify", 8), ("pipeline", 8), ("runner", 8),
                                               ("detect", 2), ("bridge", 2), ("console", 2), ("openmv", 2)])
def test_a_process_that_publishes_images_gets_the_large_segment_the_others_a_small_one(process, mib):
    profile = dds_profile(process)
    assert profile is not None and segment_size(profile) == mib << 20
    assert dds_settings({"ROS_DISTRO": "kilted"}, process) == {"FASTDDS_DEFAULT_PROFILES_FILE": str(profile)}
    assert dds_settings({"ROS_DISTRO": "humble"}, process) == {"FASTRTPS_DEFAULT_PROFILES_FILE": str(profile)}


@pytest.mark.parametrize("variable", PROFILE_VARIABLES)
def test_a_profile_the_user_chose_wins_for_every_process(variable):
    for process in ("capture", "detect"):
        assert dds_settings({variable: "/etc/my_fastdds.xml"}, process) == {}


def test_a_child_of_another_kind_starts_from_the_users_environment_not_the_profile_chosen_here(monkeypatch):
    from moodstream_common import environment

    for name in PROFILE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(environment, "_CHOSEN", {})
    chosen = environment.choose_dds_profile(process="runner")
    assert chosen and all(name not in environment.user_environment() for name in chosen)
    assert dds_settings(environment.user_environment(), "detect") == {
        name: str(dds_profile("detect")) for name in chosen}
    # A profile the user set is theirs: kept for every child.
    monkeypatch.setenv("FASTDDS_DEFAULT_PROFILES_FILE", "/etc/my_fastdds.xml")
    assert environment.user_environment()["FASTDDS_DEFAULT_PROFILES_FILE"] == "/etc/my_fastdds.xml"


@pytest.mark.skipif(sys.prefix == sys.base_prefix, reason="needs moodstream_common installed in a venv")
def test_frames_larger_than_1280x720_through_the_default_image_profile_get_advice():
    default, large = dds_profile("capture"), dds_profile(name="fastdds_large_images.xml")
    assert large is not None and segment_size(large) == 32 << 20
    env = {"FASTDDS_DEFAULT_PROFILES_FILE": str(default), "ROS_DISTRO": "kilted"}
    assert large_frame_advice(1280 * 720 * 3, env) is None  # measured to cross as through 32 MB
    advice = large_frame_advice(1920 * 1080 * 3, env)
    assert advice is not None and f"FASTDDS_DEFAULT_PROFILES_FILE={large}" in advice and "6.2 MB" in advice
    humble = large_frame_advice(1920 * 1080 * 3, {"FASTRTPS_DEFAULT_PROFILES_FILE": str(default),
                                                  "ROS_DISTRO": "humble"})
    assert humble is not None and f"FASTRTPS_DEFAULT_PROFILES_FILE={large}" in humble
    # A profile the user chose is theirs to size; none at all is Fast DDS's default, not ours.
    assert large_frame_advice(1920 * 1080 * 3, {"FASTDDS_DEFAULT_PROFILES_FILE": str(large)}) is None
    assert large_frame_advice(1920 * 1080 * 3, {}) is None
    assert LARGEST_FRAME_FOR_DEFAULT_PROFILE == 1280 * 720 * 3
