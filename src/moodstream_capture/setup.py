from setuptools import setup

package_name = "moodstream_capture"

setup(
    name=package_name,
    version="0.1.0",
    packages=[package_name],
    package_data={package_name: ["data/*.jpg", "data/README.md"]},
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
    ],
    install_requires=["setuptools"],
    extras_require={"test": ["pytest"]},  # colcon test runs test/ with pytest
    zip_safe=False,
    maintainer="MoodStream maintainers",
    maintainer_email="maintainers@moodstream.dev",
    description="MoodStream capture stage.",
    license="Apache-2.0",
    entry_points={"console_scripts": ["capture_node = moodstream_common.executables:capture_node"]},
)
