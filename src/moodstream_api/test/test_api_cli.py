"""The API's command line and input checks, without starting a server."""

import argparse

import numpy as np
import pytest

from moodstream_api.analysis import ImageError, decode_image
from moodstream_api.cli import DETECTORS, add_parser


def parse(*argv: str) -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    add_parser(ap.add_subparsers(dest="command"))
    return ap.parse_args(["serve", *argv])


def test_defaults_keep_the_api_on_this_machine():
    args = parse()
    assert args.host == "127.0.0.1" and args.detector == "mtcnn" and args.max_pixels == 25_000_000


def test_unknown_detector_is_refused(capsys):
    with pytest.raises(SystemExit):
        parse("--detector", "yolo")
    assert "invalid choice" in capsys.readouterr().err


def test_request_detectors_are_the_command_lines():
    fastapi = pytest.importorskip("fastapi")  # noqa: F841
    from moodstream_api.api import Detector

    assert [d.value for d in Detector] == list(DETECTORS)


@pytest.mark.parametrize("data,status,message", [
    (b"", 400, "holds no image"), (b"not an image at all", 415, "not an image|unsupported|cannot"),
])
def test_bad_bytes_are_refused_with_a_status(data, status, message):
    with pytest.raises(ImageError, match=message) as err:
        decode_image(data, max_pixels=1000)
    assert err.value.status == status


def test_a_png_decodes():
    cv2 = pytest.importorskip("cv2")
    ok, png = cv2.imencode(".png", np.full((8, 10, 3), 50, np.uint8))
    assert ok and decode_image(png.tobytes(), max_pixels=1000).shape == (8, 10, 3)
