"""MoodStream pipeline: capture -> detect -> classify (-> console), one process per stage.

    ros2 launch moodstream pipeline.launch.py
    ros2 launch moodstream pipeline.launch.py source:=webcam device:=/dev/video0
    ros2 launch moodstream pipeline.launch.py source:=topic image_topic:=/camera/image_raw
    ros2 launch moodstream pipeline.launch.py source:=openmv port:=/dev/ttyACM0
    ros2 launch moodstream pipeline.launch.py namespace:=front_camera params_file:=my_params.yaml

Launch arguments override the parameters file; the runner (`moodstream run`) takes the same names.
"""

from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PythonExpression
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

from launch import LaunchDescription


def generate_launch_description() -> LaunchDescription:
    share = Path(get_package_share_directory("moodstream"))
    namespace = LaunchConfiguration("namespace")
    params_file = LaunchConfiguration("params_file")
    source = LaunchConfiguration("source")
    image_topic = LaunchConfiguration("image_topic")
    capturing = IfCondition(PythonExpression(["'", source, "' not in ('topic', 'openmv')"]))
    on_host = IfCondition(PythonExpression(["'", source, "' != 'openmv'"]))
    on_camera = IfCondition(PythonExpression(["'", source, "' == 'openmv'"]))
    image_remap = [("image_raw", image_topic)]

    return LaunchDescription([
        DeclareLaunchArgument("namespace", default_value="", description="namespace of every node and topic"),
        DeclareLaunchArgument("params_file", default_value=str(share / "config" / "params.yaml")),
        DeclareLaunchArgument("source", default_value="synthetic",
                              description="synthetic | webcam | video | images | topic | openmv"),
        DeclareLaunchArgument("device", default_value="0", description="webcam index or device path"),
        DeclareLaunchArgument("path", default_value="", description="video file or image folder"),
        DeclareLaunchArgument("image_topic", default_value="image_raw",
                              description="image topic the detector reads (a camera driver's, with source:=topic)"),
        DeclareLaunchArgument("port", default_value="/dev/ttyACM0", description="the OpenMV camera's serial port"),
        DeclareLaunchArgument("console", default_value="false", description="log each emotion change"),
        DeclareLaunchArgument("bridge", default_value="true",
                              description="relay to MQTT (bridge.mqtt_url) or record the local mood history"),
        Node(
            package="moodstream_capture", executable="capture_node", name="capture", namespace=namespace,
            # ParameterValue(str): "0" must stay a string, not become the integer 0.
            parameters=[params_file, {"source": source,
                                      "device": ParameterValue(LaunchConfiguration("device"), value_type=str),
                                      "path": ParameterValue(LaunchConfiguration("path"), value_type=str)}],
            remappings=image_remap, condition=capturing, output="screen",
        ),
        Node(
            package="moodstream_detect", executable="detect_node", name="detect", namespace=namespace,
            parameters=[params_file], remappings=image_remap, condition=on_host, output="screen",
        ),
        Node(
            package="moodstream_classify", executable="classify_node", name="classify", namespace=namespace,
            parameters=[params_file], remappings=image_remap, condition=on_host, output="screen",
        ),
        Node(
            # The camera detects and classifies; this node publishes its results as emotions/emotion.
            package="moodstream_openmv", executable="openmv_node", name="openmv", namespace=namespace,
            parameters=[params_file, {"port": LaunchConfiguration("port")}],
            remappings=[("openmv/emotions", "emotions"), ("openmv/emotion", "emotion")],
            condition=on_camera, output="screen",
        ),
        Node(
            package="moodstream_bridge", executable="bridge_node", name="bridge", namespace=namespace,
            parameters=[params_file], condition=IfCondition(LaunchConfiguration("bridge")), output="screen",
        ),
        Node(
            package="moodstream_bridge", executable="console_node", name="console", namespace=namespace,
            condition=IfCondition(LaunchConfiguration("console")), output="screen",
        ),
    ])
