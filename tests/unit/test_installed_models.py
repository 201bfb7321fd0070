"""What setup.sh and colcon install is the repository's model, found through the ament index."""

from moodstream_classify.model import default_model_path

FILES = ("emotion.tflite", "emotion.json", "emotion.onnx", "emotion_int8.tflite", "emotion_int8.json",
         "emotion_camera.tflite", "emotion_camera.json",
         "emotion_reference.npz")


def test_installed_models_are_the_repository_models(repo_root):
    installed = default_model_path().parent
    assert installed.parts[-3:] == ("moodstream_models", "models", installed.name) or installed.name == "models"
    for name in FILES:
        assert (installed / name).read_bytes() == (repo_root / "models" / name).read_bytes(), name
