"""``pipeline_node``: capture, detect and classify composed in one process.

The same three lifecycle nodes as ``capture_node``, ``detect_node`` and ``classify_node`` (same
names, parameters, services and topics), in one process and one executor, with frames and faces
handed from stage to stage in-process (:mod:`moodstream_common.local_bus`) instead of being
serialised between processes. ``pipeline.launch.py`` starts this by default
(``composed:=false``: one process per stage, e.g. to put detection on another machine).

    ros2 run moodstream pipeline_node --stages detect,classify --ros-args -r image_mono:=/camera/image_raw
"""

from __future__ import annotations

import argparse
import sys

STAGES = ("capture", "detect", "classify")


def stage_factories(stages: list[str]) -> list:
    from moodstream_capture.node import CaptureNode
    from moodstream_classify.node import ClassifyNode
    from moodstream_detect.node import DetectNode

    classes = {"capture": CaptureNode, "detect": DetectNode, "classify": ClassifyNode}
    return [classes[stage] for stage in STAGES if stage in stages]


def parse_stages(argv: list[str]) -> list[str]:
    from rclpy.utilities import remove_ros_args

    parser = argparse.ArgumentParser(prog="pipeline_node", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stages", default=",".join(STAGES),
                        help="comma-separated stages to run here (default: capture,detect,classify)")
    args = parser.parse_args(remove_ros_args(argv)[1:])
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = sorted(set(stages) - set(STAGES))
    if unknown or not stages:
        parser.error(f"--stages takes some of {', '.join(STAGES)}; got {args.stages!r}")
    return stages


def main(args: list[str] | None = None) -> None:
    from moodstream_common.local_bus import share_stage_topics
    from moodstream_common.ros import run_nodes

    argv = sys.argv if args is None else args
    run_nodes(stage_factories(parse_stages(argv)), argv, compose=share_stage_topics)


if __name__ == "__main__":
    main()
