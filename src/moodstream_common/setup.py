from setuptools import setup

package_name = "moodstream_common"

setup(
    name=package_name,
    version="0.1.0",
    packages=[package_name],
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        ("share/" + package_name + "/config", ["config/fastdds.xml", "config/fastdds_results.xml",
                                                    "config/fastdds_large_images.xml"]),
    ],
    install_requires=["setuptools"],
    extras_require={"test": ["pytest"]},  # colcon test runs test/ with pytest
    zip_safe=True,
    maintainer="MoodStream maintainers",
    maintainer_email="maintainers@moodstream.dev",
    description="Shared parts of MoodStream's nodes.",
    license="Apache-2.0",
)
