from setuptools import setup

package_name = "moodstream"

setup(
    name=package_name,
    version="0.1.0",
    packages=[package_name],
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        # launch/ is a link to the repository's top-level folder.
        ("share/" + package_name + "/launch", ["launch/pipeline.launch.py"]),
        ("share/" + package_name + "/config", ["config/params.yaml", "config/moodstream.rviz"]),
    ],
    install_requires=["setuptools"],
    extras_require={"test": ["pytest"]},  # colcon test runs test/ with pytest
    zip_safe=True,
    maintainer="MoodStream maintainers",
    maintainer_email="maintainers@moodstream.dev",
    description="MoodStream bringup and runner.",
    license="Apache-2.0",
    entry_points={"console_scripts": ["moodstream = moodstream.cli:main",
                                      "pipeline_node = moodstream_common.executables:pipeline_node"]},
)
