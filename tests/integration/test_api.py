"""The mood API: a real server (``moodstream serve``) on loopback, real image files."""

from __future__ import annotations

import concurrent.futures
import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
from services.mosquitto import free_port

from moodstream_capture.synthetic import SyntheticScene

BIN = Path(sys.executable).parent
FACE_JPG = Path(__file__).resolve().parents[2] / "src/moodstream_capture/moodstream_capture/data/astronaut_face.jpg"
MOODS = ["positive", "negative", "neutral", "other"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("api") / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen([str(BIN / "moodstream"), "serve", "--port", str(port), "--max-bytes", "2000000",
                                 "--max-pixels", "4000000"], stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail(f"server did not start:\n{log.read_text()}")
    yield base
    proc.terminate()
    proc.wait(timeout=10)
    served_log = log.read_text()
    assert "Traceback" not in served_log


def encode(image: np.ndarray, ext: str = ".png") -> bytes:
    ok, buf = cv2.imencode(ext, image)
    assert ok
    return buf.tobytes()


def test_alameda_route_on_a_real_face(server):
    r = httpx.post(f"{server}/upload-meaa-image", files={"file": ("face.jpg", FACE_JPG.read_bytes(), "image/jpeg")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["face_found"] and body["predicted_mood"] == "positive"
    assert sum(body[m] for m in MOODS) == pytest.approx(1.0, abs=1e-4)
    face = body["faces"][0]
    box = face["box"]
    # The face of the 210x290 picture: upper middle, about 100 pixels wide.
    assert 40 <= box["x"] <= 90 and 30 <= box["y"] <= 80 and 70 <= box["width"] <= 130
    assert sum(face["emotions"].values()) == pytest.approx(1.0, abs=1e-4)
    assert face["moods"]["positive"] == pytest.approx(face["emotions"]["happy"])


def test_both_routes_agree_and_field_image_works(server):
    data = FACE_JPG.read_bytes()
    alameda = httpx.post(f"{server}/upload-meaa-image", files={"image": ("f.jpg", data, "image/jpeg")}).json()
    raw = httpx.post(f"{server}/v1/analyze?detector=mtcnn", content=data,
                     headers={"Content-Type": "image/jpeg"}).json()
    multipart = httpx.post(f"{server}/v1/analyze", files={"file": ("f.jpg", data, "image/jpeg")}).json()
    assert raw == multipart
    assert raw["face_count"] == 1 and raw["image_width"] == 210 and raw["image_height"] == 290
    assert raw["faces"] == alameda["faces"]
    assert raw["moods"] == {m: alameda[m] for m in MOODS} and raw["mood"] == alameda["predicted_mood"]


def test_two_faces_largest_first_with_haar(server):
    frame = SyntheticScene(faces=2, seed=0).render(0)
    r = httpx.post(f"{server}/v1/analyze?detector=haar", content=encode(frame),
                   headers={"Content-Type": "image/png"})
    body = r.json()
    assert r.status_code == 200 and body["face_count"] == 2 and body["detector"] == "haar"
    areas = [f["box"]["width"] * f["box"]["height"] for f in body["faces"]]
    assert areas == sorted(areas, reverse=True)


def test_no_face_is_a_valid_answer(server):
    blank = encode(np.full((240, 320, 3), 128, np.uint8))
    r = httpx.post(f"{server}/upload-meaa-image", files={"file": ("blank.png", blank, "image/png")})
    assert r.status_code == 200
    body = r.json()
    assert not body["face_found"] and body["predicted_mood"] is None and body["faces"] == []
    assert all(body[m] is None for m in MOODS)


@pytest.mark.parametrize("kwargs,status,message", [
    ({"content": b"plain text, not an image", "headers": {"Content-Type": "image/jpeg"}}, 415, "not an image"),
    ({"content": FACE_JPG.read_bytes()[:4000], "headers": {"Content-Type": "image/jpeg"}}, 400, "truncated"),
    ({"content": b"", "headers": {"Content-Type": "image/jpeg"}}, 400, "holds no image"),
    ({"content": os.urandom(2_100_000), "headers": {"Content-Type": "application/octet-stream"}}, 413, "exceeds"),
    ({"content": encode(np.zeros((2500, 2000), np.uint8)), "headers": {"Content-Type": "image/png"}}, 413,
     "2000x2500 pixels is larger"),
    ({"files": {"photo": ("f.jpg", b"x", "image/jpeg")}}, 422, "named 'file' or 'image'"),
    ({"content": b"--x\r\n", "headers": {"Content-Type": "multipart/form-data"}}, 400, "without a boundary"),
    ({"params": {"detector": "yolo"}, "content": b"x", "headers": {"Content-Type": "image/jpeg"}}, 422, "detector"),
])
def test_bad_input_gets_a_clear_4xx(server, kwargs, status, message):
    r = httpx.post(f"{server}/v1/analyze", **kwargs)
    assert r.status_code == status, r.text
    assert message in r.text
    assert httpx.get(f"{server}/health").status_code == 200


def test_alameda_route_wants_multipart(server):
    r = httpx.post(f"{server}/upload-meaa-image", content=FACE_JPG.read_bytes(), headers={"Content-Type": "image/jpeg"})
    assert r.status_code == 415 and "multipart" in r.json()["detail"]


def test_concurrent_requests_do_not_mix_results(server):
    scene = SyntheticScene(faces=1, seed=0)
    images = [encode(scene.render(i * 7)) for i in range(6)] + [FACE_JPG.read_bytes()]

    def call(data: bytes) -> dict:
        return httpx.post(f"{server}/v1/analyze?detector=haar", content=data,
                          headers={"Content-Type": "application/octet-stream"}, timeout=30).json()

    expected = [call(d) for d in images]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        for _ in range(3):
            got = list(pool.map(call, images * 2))
            assert got == expected * 2


def test_openapi_document_and_property_based_run(server):
    doc = httpx.get(f"{server}/openapi.json").json()
    assert {"/upload-meaa-image", "/v1/analyze", "/health"} <= set(doc["paths"])
    out = subprocess.run([str(BIN / "schemathesis"), "run", f"{server}/openapi.json", "--checks",
                          "not_a_server_error,status_code_conformance,response_schema_conformance",
                          "--max-examples", "25", "--phases", "examples,coverage,fuzzing", "--no-color"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
