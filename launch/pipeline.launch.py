"""MoodStream pipeline: capture -> detect -> classify (-> bridge, console): by default the three stages
in one process (`pipeline_node`, frames handed over in-process), `composed:=false` one process each.

    ros2 launch moodstream pipeline.launch.py
    ros2 launch moodstream pipeline.launch.py source:=webcam device:=/dev/video0
    ros2 launch moodstream pipeline.launch.py source:=topic image_topic:=/camera/image_raw
    ros2 launch moodstream pipeline.launch.py source:=openmv port:=/dev/ttyACM0
    ros2 launch moodstream pipeline.launch.py namespace:=front_camera params_file:=my_params.yaml
    ros2 launch moodstream pipeline.launch.py rviz:=true

Launch arguments override the parameters file. The runner (`moodstream run`) reads the same
parameters file and node parameters; its flags for these arguments are spelled differently:

    launch argument             runner
    namespace:=NS               --namespace NS
    params_file:=FILE           --params FILE
    source:=KIND                --source KIND
    device:=DEV, path:=PATH     the argument after --source (--source webcam DEV, --source video PATH)
    image_topic:=TOPIC          --source topic TOPIC
    port:=PORT                  --source openmv PORT
    console:=true               always on (one line per change on stdout)
    bridge:=true|false          on with --mqtt / --influx; off otherwise
    rviz:=true                  --display (an OpenCV window)
    composed:=true|false        always composed (one process)

A stage that dies is started again after 2 s. Fast DDS gets MoodStream's shared-memory profiles
(FASTDDS_/FASTRTPS_DEFAULT_PROFILES_FILE): an 8 MB segment for the processes that publish images
(fastdds_large_images.xml, 32 MB, for cameras larger than 1280x720), 2 MB for the others; unless
you set either variable yourself.
"""

from pathlib import Path

from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
from launch.actions import DeclareLaunchArgument, LogInfo, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PythonExpression
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

from launch import LaunchDescription
from moodstream_common.environment import dds_settings

SOURCES = ["synthetic", "webcam", "video", "images", "topic", "openmv"]
#: Every stage is started again this long after it dies (not after Ctrl-C).
RESPAWN = {"respawn": True, "respawn_delay": 2.0}




def rviz(context, config: str) -> list:
    """rviz2 with MoodStream's view, where rviz2 is installed; a clear message where it is not."""
    try:
        get_package_share_directory("rviz2")
    except PackageNotFoundError:
        return [LogInfo(msg="rviz:=true, but rviz2 is not installed: sudo apt install ros-$ROS_DISTRO-rviz2 "
                            f"(then: rviz2 -d {config})")]
    return [Node(package="rviz2", executable="rviz2", name="rviz", namespace=LaunchConfiguration("namespace"),
                 arguments=["-d", config], output="screen", additional_env=dds_settings(process="rviz"))]


def generate_launch_description() -> LaunchDescription:
    share = Path(get_package_share_directory("moodstream"))
    namespace = LaunchConfiguration("namespace")
    params_file = LaunchConfiguration("params_file")
    source = LaunchConfiguration("source")
    image_topic = LaunchConfiguration("image_topic")
    composed = LaunchConfiguration("composed")
    capturing = IfCondition(PythonExpression(["'", source, "' not in ('topic', 'openmv') and '", composed,
                                              "' != 'true'"]))
    on_host = IfCondition(PythonExpression(["'", source, "' != 'openmv' and '", composed, "' != 'true'"]))
    on_host_composed = IfCondition(PythonExpression(["'", source, "' != 'openmv' and '", composed, "' == 'true'"]))
    composed_stages = PythonExpression(["'detect,classify' if '", source, "' == 'topic' "
                                        "else 'capture,detect,classify'"])
    on_camera = IfCondition(PythonExpression(["'", source, "' == 'openmv'"]))
    image_remap = [("image_raw", image_topic)]
    # detect reads capture's image_mono, or with source:=topic the driver's image (colour is converted).
    detect_input = PythonExpression(["'", image_topic, "' if '", source, "' == 'topic' else 'image_mono'"])

    return LaunchDescription([
        DeclareLaunchArgument("namespace", default_value="", description="namespace of every node and topic"),
        DeclareLaunchArgument("params_file", default_value=str(share / "config" / "params.yaml"),
                              description="ROS 2 parameters file (the runner's --params)"),
        DeclareLaunchArgument("source", default_value="synthetic", choices=SOURCES,
                              description="where images come from"),
        DeclareLaunchArgument("device", default_value="0", description="webcam index or device path"),
        DeclareLaunchArgument("path", default_value="", description="video file or image folder"),
        DeclareLaunchArgument("image_topic", default_value="image_raw",
                              description="image topic the detector reads (a camera driver's, with source:=topic)"),
        DeclareLaunchArgument("port", default_value="/dev/ttyACM0", description="the OpenMV camera's serial port"),
        DeclareLaunchArgument("composed", default_value="true", choices=["true", "false"],
                              description="capture, detect and classify in one process, frames handed over "
                                          "in-process (false: a process per stage)"),
        DeclareLaunchArgument("console", default_value="false", choices=["true", "false"],
                              description="log each emotion change"),
        DeclareLaunchArgument("bridge", default_value="true", choices=["true", "false"],
                              description="relay to MQTT (bridge.mqtt_url) or record the local mood history"),
        DeclareLaunchArgument("rviz", default_value="false", choices=["true", "false"],
                              description="start rviz2 with config/moodstream.rviz (emotion/image)"),
        Node(
            package="moodstream_capture", executable="capture_node", name="capture", namespace=namespace,
            # ParameterValue(str): "0" must stay a string, not become the integer 0.
            parameters=[params_file, {"source": source,
                                      "device": ParameterValue(LaunchConfiguration("device"), value_type=str),
                                      "path": ParameterValue(LaunchConfiguration("path"), value_type=str)}],
            remappings=image_remap, condition=capturing, output="screen", **RESPAWN,
            additional_env=dds_settings(process="capture"),
        ),
        Node(
            package="moodstream_detect", executable="detect_node", name="detect", namespace=namespace,
            parameters=[params_file], remappings=[("image_mono", detect_input)], condition=on_host, output="screen",
            **RESPAWN, additional_env=dds_settings(process="detect"),
        ),
        Node(
            package="moodstream_classify", executable="classify_node", name="classify", namespace=namespace,
            parameters=[params_file], remappings=image_remap, condition=on_host, output="screen", **RESPAWN,
            additional_env=dds_settings(process="classify"),
        ),
        Node(
            # The three stages in one process (the same nodes, names, parameters and topics).
            package="moodstream", executable="pipeline_node", name=None, namespace=namespace,
            arguments=["--stages", composed_stages],
            parameters=[params_file, {"source": source,
                                      "device": ParameterValue(LaunchConfiguration("device"), value_type=str),
                                      "path": ParameterValue(LaunchConfiguration("path"), value_type=str)}],
            remappings=[*image_remap, ("image_mono", detect_input)], condition=on_host_composed, output="screen",
            **RESPAWN, additional_env=dds_settings(process="pipeline"),
        ),
        Node(
            # The camera detects and classifies; this node publishes its results as emotions/emotion.
            package="moodstream_openmv", executable="openmv_node", name="openmv", namespace=namespace,
            parameters=[params_file, {"port": LaunchConfiguration("port")}],
            remappings=[("openmv/emotions", "emotions"), ("openmv/emotion", "emotion"),
                        ("openmv/emotions/summary", "emotions/summary")],
            condition=on_camera, output="screen", **RESPAWN, additional_env=dds_settings(process="openmv"),
        ),
        Node(
            package="moodstream_bridge", executable="bridge_node", name="bridge", namespace=namespace,
            parameters=[params_file], condition=IfCondition(LaunchConfiguration("bridge")), output="screen", **RESPAWN,
            additional_env=dds_settings(process="bridge"),
        ),
        Node(
            package="moodstream_bridge", executable="console_node", name="console", namespace=namespace,
            parameters=[params_file], condition=IfCondition(LaunchConfiguration("console")), output="screen", **RESPAWN,
            additional_env=dds_settings(process="console"),
        ),
        OpaqueFunction(function=rviz, kwargs={"config": str(share / "config" / "moodstream.rviz")},
                       condition=IfCondition(LaunchConfiguration("rviz"))),
    ])
