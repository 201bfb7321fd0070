"""The MoodStream pipeline and a behaviour controller reacting to it.

    ros2 launch moodstream_examples reactor.launch.py
    ros2 launch moodstream_examples reactor.launch.py source:=webcam device:=/dev/video0 namespace:=front

Every argument of moodstream's pipeline.launch.py applies (source, device, console, bridge, ...).
"""

from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription


def generate_launch_description() -> LaunchDescription:
    pipeline = Path(get_package_share_directory("moodstream")) / "launch" / "pipeline.launch.py"
    namespace = LaunchConfiguration("namespace")
    return LaunchDescription([
        DeclareLaunchArgument("namespace", default_value="", description="namespace of every node and topic"),
        IncludeLaunchDescription(PythonLaunchDescriptionSource(str(pipeline)),
                                 launch_arguments={"namespace": namespace}.items()),
        Node(package="moodstream_examples", executable="emotion_reactor", name="emotion_reactor",
             namespace=namespace, output="screen", respawn=True, respawn_delay=2.0),
    ])
