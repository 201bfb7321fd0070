from setuptools import setup

package_name = "moodstream_models"
MODELS = ["emotion.tflite", "emotion.json", "emotion.onnx", "emotion_int8.tflite", "emotion_int8.json",
          "emotion_camera.tflite", "emotion_camera.json",
          "emotion_reference.npz",
          "MODEL_CARD.md"]

setup(
    name=package_name,
    version="0.1.0",
    packages=[package_name],
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        # models/ is a link to the repository's top-level folder.
        ("share/" + package_name + "/models", ["models/" + name for name in MODELS]),
    ],
    install_requires=["setuptools"],
    extras_require={"test": ["pytest"]},  # colcon test runs test/ with pytest
    zip_safe=True,
    maintainer="MoodStream maintainers",
    maintainer_email="maintainers@moodstream.dev",
    description="MoodStream's emotion models.",
    license="Apache-2.0",
)
