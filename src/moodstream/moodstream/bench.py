"""``moodstream bench``: the whole pipeline offline on a fixed 640x480 clip of real faces, beside a
naive MoodStream-style loop (read -> gray -> Haar 1.3/5/48 -> per-face TFLite -> print).

The pipeline run uses the real node classes and topics in one process; frames are fed one at a
time (the next when the previous frame's ``emotion`` arrives), so latency has no queueing in it.
The naive loop runs in a child process so that each peak RSS is its own.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from moodstream_capture.synthetic import SyntheticScene
from moodstream_detect.detectors import find_cascade

from .bench_graph import peak_rss_mb
from .bench_graph import percentiles as pct

CLIP_FRAMES = 300


def write_clip(path: Path, frames: int = CLIP_FRAMES, faces: int = 1) -> Path:
    """The benchmark clip: the synthetic scene (a real photographed face), 640x480, MJPG AVI."""
    scene = SyntheticScene(640, 480, faces=faces, seed=0)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (640, 480))
    if not writer.isOpened():
        raise RuntimeError(f"cannot write the benchmark clip {path}")
    for i in range(frames):
        writer.write(scene.render(i))
    writer.release()
    return path


def run_naive(clip: Path, model_path: Path) -> dict:
    """The original MoodStream's loop, for comparison."""
    from moodstream_classify.model import EmotionModel

    cascade = cv2.CascadeClassifier(str(find_cascade("haarcascade_frontalface_default.xml")))
    model = EmotionModel(model_path, num_threads=1)
    cap = cv2.VideoCapture(str(clip))
    sink = io.StringIO()
    stages: dict[str, list[float]] = {"read": [], "gray": [], "detect": [], "classify": []}
    frame_times, faces = [], 0
    start = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        ok, frame = cap.read()
        if not ok:
            break
        t1 = time.perf_counter()
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        t2 = time.perf_counter()
        boxes = cascade.detectMultiScale(gray, scaleFactor=1.3, minNeighbors=5, minSize=(48, 48))
        t3 = time.perf_counter()
        for x, y, w, h in boxes if len(boxes) else []:
            face = cv2.resize(gray[y : y + h, x : x + w], (48, 48)).astype(np.float32) / 255.0
            probs = model.predict(face[np.newaxis, :, :, np.newaxis])[0]
            print(model.labels[int(np.argmax(probs))], file=sink)
            faces += 1
        t4 = time.perf_counter()
        for name, dt in (("read", t1 - t0), ("gray", t2 - t1), ("detect", t3 - t2), ("classify", t4 - t3)):
            stages[name].append(dt)
        frame_times.append(t4 - t0)
    wall = time.perf_counter() - start
    return {"frames": len(frame_times), "faces": faces, "fps": len(frame_times) / wall,
            "stages_ms": {k: pct(v) for k, v in stages.items()}, "frame_to_emotion_ms": pct(frame_times),
            "peak_rss_mb": peak_rss_mb()}


def run_pipeline(clip: Path, model_path: Path | None, overrides: dict, in_flight: int = 1) -> dict:
    """The real nodes (detect, classify) in one executor, fed from the clip through ``image_mono``
    (detect's input; the feeder sends the decoded colour frame, as a camera driver would).

    ``in_flight`` frames travel through the graph at once (1: no queueing in the latency).
    """
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import Image

    from moodstream_classify.node import ClassifyNode
    from moodstream_common.image_conv import numpy_to_image
    from moodstream_common.ros import IMAGE_QOS, RESULT_QOS
    from moodstream_detect.node import DetectNode
    from moodstream_interfaces.msg import Emotion

    context = Context()
    rclpy.init(context=context)
    classify_params = dict(overrides.get("classify", {}))
    if model_path is not None:
        classify_params["model_path"] = str(model_path)
    detect = DetectNode(context=context, parameter_overrides=[
        Parameter(k, value=v) for k, v in overrides.get("detect", {}).items()])
    classify = ClassifyNode(context=context, parameter_overrides=[
        Parameter(k, value=v) for k, v in classify_params.items()])
    detect.bring_up()
    classify.bring_up()

    class Feeder(Node):
        def __init__(self) -> None:
            super().__init__("bench_feeder", context=context)
            self.pub = self.create_publisher(Image, "image_mono", IMAGE_QOS)
            self.create_subscription(Emotion, "emotion", self.on_emotion, RESULT_QOS)
            self.cap = cv2.VideoCapture(str(clip))
            self.capture_times: list[float] = []
            self.latencies: list[float] = []
            self.faces = 0
            self.done = False
            self.outstanding = 0
            self.running = False  # chain the next frame to each emotion once measuring
            self.sent_at: dict[tuple[int, int], float] = {}

        def send_next(self) -> None:
            t0 = time.perf_counter()
            ok, frame = self.cap.read()
            if not ok:
                self.done = self.outstanding == 0
                return
            msg = numpy_to_image(frame)
            msg.header.stamp = self.get_clock().now().to_msg()
            msg.header.frame_id = "bench"
            self.capture_times.append(time.perf_counter() - t0)
            self.sent_at[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = t0
            self.outstanding += 1
            self.pub.publish(msg)

        def on_emotion(self, msg: Emotion) -> None:
            sent = self.sent_at.pop((msg.header.stamp.sec, msg.header.stamp.nanosec), None)
            if sent is None:
                return
            self.outstanding -= 1
            self.latencies.append(time.perf_counter() - sent)
            self.faces += msg.faces_in_view
            if self.running:
                self.send_next()

    feeder = Feeder()
    executor = SingleThreadedExecutor(context=context)
    for node in (detect, classify, feeder):
        executor.add_node(node)
    # Warm-up: one frame through the graph so that set-up costs stay out of the numbers.
    feeder.send_next()
    while not feeder.latencies:
        executor.spin_once(timeout_sec=0.1)
    feeder.latencies.clear()
    feeder.capture_times.clear()
    detect.stats = type(detect.stats)()
    classify.stats = type(classify.stats)()
    feeder.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
    feeder.faces = 0
    feeder.running = True
    start = time.perf_counter()
    for _ in range(in_flight):
        feeder.send_next()
    while not feeder.done:
        executor.spin_once(timeout_sec=1.0)
    wall = time.perf_counter() - start
    result = {
        "frames": len(feeder.latencies), "faces": feeder.faces, "fps": len(feeder.latencies) / wall,
        "stages_ms": {"capture": pct(feeder.capture_times), "detect": detect.stats.latency_ms("detect"),
                      "classify": classify.stats.latency_ms("classify")},
        "frame_to_emotion_ms": pct(feeder.latencies), "peak_rss_mb": peak_rss_mb(), "in_flight": in_flight,
        "detect_params": {k: detect.params[k] for k in ("detector", "scale_factor", "min_neighbors",
                                                         "min_size", "downscale", "roi_refresh_frames")},
    }
    for node in (detect, classify, feeder):
        node.destroy_node()
    executor.shutdown()
    rclpy.try_shutdown(context=context)
    return result


def format_row(name: str, r: dict) -> list[str]:
    lines = [f"{name}: {r['frames']} frames, {r['faces']} faces, {r['fps']:.1f} frames/s, "
             f"frame-to-emotion p50 {r['frame_to_emotion_ms'][0]:.2f} ms p95 {r['frame_to_emotion_ms'][1]:.2f} ms, "
             f"peak RSS {r['peak_rss_mb']:.0f} MB"]
    for stage, lat in r["stages_ms"].items():
        if lat is not None:
            lines.append(f"    {stage:9s} p50 {lat[0]:7.2f} ms   p95 {lat[1]:7.2f} ms")
    return lines


def cmd_bench(args: argparse.Namespace) -> int:
    from moodstream_classify.model import default_model_path

    model_path = Path(args.model) if args.model else default_model_path()
    with tempfile.TemporaryDirectory() as tmp:
        clip = write_clip(Path(tmp) / "faces.avi", args.frames, args.faces)
        if args.naive_only:
            print(json.dumps(run_naive(clip if not args.clip else Path(args.clip), model_path)))
            return 0
        overrides = {"detect": {"downscale": args.downscale}}
        pipeline = run_pipeline(clip, model_path, overrides)
        child = subprocess.run(
            [sys.executable, "-m", "moodstream.cli", "bench", "--naive-only", "--model", str(model_path),
             "--clip", str(clip)], capture_output=True, text=True, check=True)
        naive = json.loads(child.stdout.strip().splitlines()[-1])
    print(f"clip: {args.frames} frames 640x480, {args.faces} real face(s) (synthetic scene), MJPG")
    print(f"model: {model_path}")
    print(f"pipeline detector: {pipeline['detect_params']}")
    print("\n".join(format_row("MoodStream pipeline (nodes and topics in one process)", pipeline)))
    print("\n".join(format_row("naive loop (Haar 1.3/5/48 full frame, per-face TFLite, own process)", naive)))
    if args.json:
        Path(args.json).write_text(json.dumps({"pipeline": pipeline, "naive": naive}, indent=2))
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="fps, per-stage latency and memory, pipeline vs a naive loop")
    p.add_argument("--frames", type=int, default=CLIP_FRAMES)
    p.add_argument("--faces", type=int, default=1, choices=(1, 2))
    p.add_argument("--downscale", type=float, default=0.6, help="detect.downscale for the pipeline")
    p.add_argument("--model")
    p.add_argument("--json", help="also write the numbers to this file")
    p.add_argument("--naive-only", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--clip", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_bench)

    d = sub.add_parser("bench-detectors", help="recall, false positives and time of the face detectors")
    d.add_argument("--frames", type=int, default=200)
    d.add_argument("--data", help="folder with fer2013_PublicTest.npz.xz (default: ../shared/data/fer2013)")
    d.set_defaults(func=cmd_bench_detectors)

    a = sub.add_parser("bench-api", help="requests per second of the HTTP API on loopback")
    a.add_argument("--requests", type=int, default=100)
    a.add_argument("--concurrency", type=int, default=4)
    a.add_argument("--workers", type=int, default=2)
    a.set_defaults(func=cmd_bench_api)


# -- detectors: recall, false positives and time on the same real faces ------------------------------


def detector_frames(data_dir: Path, frames: int, seed: int = 0) -> list[tuple[np.ndarray, list]]:
    """640x480 frames holding 1-2 real faces each, with their true boxes: FER2013 PublicTest faces
    (enlarged to 80-200 pixels, so the box is known by construction) on the synthetic scene's
    textured background."""
    from moodstream_common.preprocess import Box

    from .fer2013 import load_split

    faces, _ = load_split(data_dir, "PublicTest", ["happy", "sad", "angry", "neutral", "surprised", "fearful"])
    rng = np.random.default_rng(seed)
    background = SyntheticScene(faces=0, seed=seed).render(0)
    out = []
    for _ in range(frames):
        frame = background.copy()
        truth = []
        for _ in range(int(rng.integers(1, 3))):
            side = int(rng.integers(80, 201))
            for _attempt in range(20):
                x, y = int(rng.integers(0, 640 - side)), int(rng.integers(0, 480 - side))
                box = Box(x, y, side, side)
                if all(_disjoint(box, t) for t in truth):
                    break
            else:
                continue
            face = cv2.resize(faces[int(rng.integers(len(faces)))], (side, side), interpolation=cv2.INTER_CUBIC)
            frame[y : y + side, x : x + side] = face[..., None]
            truth.append(box)
        out.append((frame, truth))
    return out


def _disjoint(a, b) -> bool:
    return a.x + a.width <= b.x or b.x + b.width <= a.x or a.y + a.height <= b.y or b.y + b.height <= a.y


def score_detector(detector, frames: list[tuple[np.ndarray, list]], iou_min: float = 0.3) -> dict:
    from moodstream_classify.tracking import iou
    from moodstream_common.preprocess import to_gray

    found = missed = false_pos = 0
    times = []
    for frame, truth in frames:
        image = to_gray(frame) if detector.gray_input else frame
        t0 = time.perf_counter()
        boxes = [d.box for d in detector.detect(image)]
        times.append(time.perf_counter() - t0)
        matched = set()
        for t in truth:
            best = max(range(len(boxes)), key=lambda j: iou(t, boxes[j]), default=None)
            if best is not None and best not in matched and iou(t, boxes[best]) >= iou_min:
                matched.add(best)
                found += 1
            else:
                missed += 1
        false_pos += len(boxes) - len(matched)
    p50, p95 = pct(times)
    return {"faces": found + missed, "recall": found / max(1, found + missed), "false_positives": false_pos,
            "frames": len(frames), "ms_p50": p50, "ms_p95": p95}


def cmd_bench_detectors(args: argparse.Namespace) -> int:
    from moodstream_detect.detectors import create_detector

    from .fer2013 import default_data_dir

    frames = detector_frames(Path(args.data) if args.data else default_data_dir(), args.frames)
    configs = [
        ("haar 1.3/5/48, full frame (the original's)", "haar", {"scale_factor": 1.3, "min_neighbors": 5,
                                                                "min_size": 48, "downscale": 1.0}),
        ("haar 1.2/4/48, downscale 0.6 (pipeline default)", "haar", {"scale_factor": 1.2, "min_neighbors": 4,
                                                                     "min_size": 48, "downscale": 0.6}),
        ("haar 1.1/5/32, full frame (API)", "haar", {"scale_factor": 1.1, "min_neighbors": 5, "min_size": 32,
                                                     "downscale": 1.0}),
        ("mtcnn min 48, downscale 0.6", "mtcnn", {"min_size": 48, "downscale": 0.6}),
        ("mtcnn min 32, full frame (API)", "mtcnn", {"min_size": 32, "downscale": 1.0}),
    ]
    print(f"{len(frames)} frames 640x480, {sum(len(t) for _, t in frames)} real faces "
          "(FER2013 PublicTest faces of 80-200 px on a textured background); match: IoU >= 0.3")
    print(f"{'detector':50s} {'recall':>7s} {'false pos.':>10s} {'ms p50':>7s} {'ms p95':>7s}")
    for title, name, params in configs:
        r = score_detector(create_detector(name, **params), frames)
        print(f"{title:50s} {r['recall']:7.1%} {r['false_positives']:10d} {r['ms_p50']:7.1f} {r['ms_p95']:7.1f}")
    return 0


# -- the HTTP API: requests per second ---------------------------------------------------------------


def cmd_bench_api(args: argparse.Namespace) -> int:
    import concurrent.futures
    import socket
    import threading

    import httpx


    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "moodstream.cli", "serve", "--port", str(port),
                               "--workers", str(args.workers)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise RuntimeError("the API server did not start") from None
                time.sleep(0.2)
        _, buf = cv2.imencode(".jpg", SyntheticScene(faces=1, seed=0).render(0))
        image = buf.tobytes()
        print(f"one 640x480 JPEG with one face ({len(image)} bytes), {args.requests} requests per row, "
              f"{args.concurrency} clients, server with {args.workers} analysis workers")
        local = threading.local()  # one keep-alive connection per client thread
        for route, params in (("/upload-meaa-image", None), ("/v1/analyze", {"detector": "haar"})):
            def call(_i: int, route: str = route, params: dict | None = params) -> float:
                if not hasattr(local, "client"):
                    local.client = httpx.Client(timeout=30)
                t0 = time.perf_counter()
                r = local.client.post(f"{base}{route}", params=params,
                                      files={"file": ("f.jpg", image, "image/jpeg")})
                r.raise_for_status()
                return time.perf_counter() - t0

            call(0)
            start = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(args.concurrency) as pool:
                latencies = list(pool.map(call, range(args.requests)))
            wall = time.perf_counter() - start
            p50, p95 = pct(latencies)
            detector = "mtcnn" if params is None else params["detector"]
            print(f"{route} ({detector}): {args.requests / wall:.1f} requests/s, latency p50 {p50:.1f} ms "
                  f"p95 {p95:.1f} ms")
    finally:
        server.terminate()
        server.wait(timeout=10)
    return 0
