from setuptools import setup

package_name = "moodstream_bridge"

setup(
    name=package_name,
    version="0.1.0",
    packages=[package_name],
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
    ],
    install_requires=["setuptools"],
    extras_require={"test": ["pytest"]},  # colcon test runs test/ with pytest
    zip_safe=True,
    maintainer="MoodStream maintainers",
    maintainer_email="maintainers@moodstream.dev",
    description="MoodStream bridge.",
    license="Apache-2.0",
    entry_points={"console_scripts": ["console_node = moodstream_common.executables:console_node",
                                       "bridge_node = moodstream_common.executables:bridge_node"]},
)
