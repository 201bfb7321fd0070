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
        # --queue 14: room for the concurrency test's 8 clients; test_hostile_* starts its own server.
        proc = subprocess.Popen([str(BIN / "moodstream"), "serve", "--port", str(port), "--max-bytes", "2000000",
                                 "--max-pixels", "4000000", "--queue", "14"], stdout=out, stderr=subprocess.STDOUT)
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
    ({"content": b"plain text, not an image", "headers": {"Content-Type": "image/jpeg"}}, 415,
     "send a PNG, JPEG, GIF, BMP or WebP image"),
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


# -- hostile clients (issue 13: D3 formats, D4 overload, D5 slow clients) ----------------------------
def start_server(tmp_path, *args: str) -> tuple[str, subprocess.Popen, Path]:
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen([str(BIN / "moodstream"), "serve", "--port", str(port), *args],
                                stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return base, proc, log
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    pytest.fail(f"server did not start:\n{log.read_text()}")


def test_formats_whose_size_cannot_be_checked_are_refused_before_decoding(server):
    _, tiff = cv2.imencode(".tiff", np.zeros((8, 8, 3), np.uint8))
    r = httpx.post(f"{server}/v1/analyze", content=tiff.tobytes(), headers={"Content-Type": "image/tiff"})
    assert r.status_code == 415 and "size of other formats cannot be checked" in r.json()["detail"]
    # A WebP that declares 16000x16000 in its header: refused from the header, never decoded.
    webp = b"RIFF" + (30).to_bytes(4, "little") + b"WEBPVP8X" + (10).to_bytes(4, "little") + b"\0" * 4 \
        + (15999).to_bytes(3, "little") + (15999).to_bytes(3, "little") + b"\0" * 8
    started = time.monotonic()
    r = httpx.post(f"{server}/v1/analyze", content=webp, headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 413 and "16000x16000" in r.json()["detail"] and time.monotonic() - started < 1.0


def test_overload_is_answered_at_once_with_retry_after(tmp_path):
    base, proc, log = start_server(tmp_path, "--workers", "1", "--queue", "1", "--detector", "haar")
    big = encode(cv2.resize(SyntheticScene(faces=2, seed=1).render(0), (1920, 1080)), ".jpg")
    try:
        def call(_: int) -> tuple[int, str, float]:
            started = time.monotonic()
            r = httpx.post(f"{base}/v1/analyze?detector=mtcnn", content=big,
                           headers={"Content-Type": "image/jpeg"}, timeout=60)
            return r.status_code, r.headers.get("retry-after", ""), time.monotonic() - started
        with concurrent.futures.ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(call, range(12)))
        busy = [a for a in answers if a[0] == 503]
        assert {a[0] for a in answers} <= {200, 503} and busy and any(a[0] == 200 for a in answers), answers
        assert all(retry for _, retry, _ in busy)
        assert httpx.get(f"{base}/health", timeout=3).status_code == 200  # still answering
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert "Traceback" not in log.read_text()


def test_a_stalled_upload_is_cut_off_and_a_vanished_client_is_quiet(tmp_path):
    import socket

    base, proc, log = start_server(tmp_path, "--read-timeout", "2")
    port = int(base.rsplit(":", 1)[1])
    head = (b"POST /v1/analyze HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\n"
            b"Content-Length: 100000\r\n\r\n")
    try:
        stalled = socket.create_connection(("127.0.0.1", port))
        stalled.sendall(head + b"\xff\xd8" + b"\0" * 1000)  # half a body, then nothing
        stalled.settimeout(10)
        started = time.monotonic()
        answer = stalled.recv(4096)
        assert answer.startswith(b"HTTP/1.1 408") and time.monotonic() - started < 5, answer[:200]
        stalled.close()
        gone = socket.create_connection(("127.0.0.1", port))
        gone.sendall(head + b"\xff\xd8" + b"\0" * 1000)
        gone.close()  # hangs up mid-upload
        time.sleep(1.0)
        assert httpx.get(f"{base}/health", timeout=3).status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]
