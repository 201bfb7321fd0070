import cv2
import numpy as np
import pytest

from moodstream_capture.sources import (
    ImageFolderSource,
    SourceError,
    SyntheticSource,
    VideoFileSource,
    WebcamSource,
    make_source,
    validate_frame,
)
from moodstream_capture.synthetic import SyntheticScene
from moodstream_common.backoff import Backoff


def test_synthetic_frames_are_deterministic_and_move():
    a, b = SyntheticSource(seed=3, frames=3), SyntheticSource(seed=3)
    a.open()
    b.open()
    f0, f1 = a.read(), a.read()
    assert f0.shape == (480, 640, 3) and f0.dtype == np.uint8
    assert np.array_equal(f0, b.read())
    assert not np.array_equal(f0, f1)
    a.read()
    assert a.read() is None  # bounded by frames=3


def test_missing_webcam_is_a_clear_error():
    with pytest.raises(SourceError, match="does not exist: is it plugged in"):
        WebcamSource("/dev/video-moodstream-missing").open()


def test_video_errors_name_the_file(tmp_path):
    with pytest.raises(SourceError, match="does not exist"):
        VideoFileSource(tmp_path / "none.mp4").open()
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00not a video" * 100)
    with pytest.raises(SourceError, match="cannot be decoded"):
        VideoFileSource(garbage).open()


@pytest.fixture(scope="module")
def face_clip(tmp_path_factory):
    """90 frames of the synthetic scene as a 640x480 MJPG video."""
    path = tmp_path_factory.mktemp("clip") / "faces.avi"
    scene = SyntheticScene(640, 480, faces=1, seed=0)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (640, 480))
    for i in range(90):
        writer.write(scene.render(i))
    writer.release()
    return path


def test_video_once_ends_and_loop_wraps(face_clip):
    once = VideoFileSource(face_clip, loop=False)
    once.open()
    frames = 0
    while once.read() is not None:
        frames += 1
    assert frames == 90
    looped = VideoFileSource(face_clip, loop=True)
    looped.open()
    for _ in range(95):
        assert looped.read() is not None


def test_image_folder_skips_unreadable_files(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), np.full((20, 30), 9, np.uint8))
    (tmp_path / "b.png").write_bytes(b"corrupt")
    cv2.imwrite(str(tmp_path / "c.jpg"), np.zeros((20, 30, 3), np.uint8))
    src = ImageFolderSource(tmp_path, loop=False)
    src.open()
    shapes = []
    while (frame := src.read()) is not None:
        shapes.append(frame.shape)
    assert shapes == [(20, 30), (20, 30, 3)] and src.skipped == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SourceError, match="holds no images"):
        ImageFolderSource(empty).open()
    with pytest.raises(SourceError, match="does not exist"):
        ImageFolderSource(tmp_path / "missing").open()


@pytest.mark.parametrize("frame,match", [
    (None, "empty frame"), (np.zeros((0, 5), np.uint8), "empty frame"), (np.zeros((4, 4), np.float32), "8-bit"),
    (np.zeros((4, 4, 2), np.uint8), "unsupported frame shape"), (np.zeros((1, 9), np.uint8), "too small"),
])
def test_odd_frames_are_refused(frame, match):
    with pytest.raises(SourceError, match=match):
        validate_frame(frame, "test")


def test_make_source_explains_missing_settings():
    with pytest.raises(SourceError, match="needs the parameter 'path'"):
        make_source("video")
    with pytest.raises(SourceError, match="unknown source"):
        make_source("ftp")


def test_backoff_doubles_and_caps_and_resets():
    b = Backoff(initial=0.5, maximum=2.0)
    assert [b.next_delay() for _ in range(4)] == [0.5, 1.0, 2.0, 2.0]
    b.reset()
    assert b.next_delay() == 0.5
